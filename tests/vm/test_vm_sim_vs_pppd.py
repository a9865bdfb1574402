"""Tier b: the simulator's module side (AT, then module-role PPP into its network namespace)
against Debian's real pppd as the DTE, in the QEMU VM.

The simulator runs in this process on pty ports; QEMU opens its port 0 as the guest's
ttyS1. In the guest, pppd dials with chat (AT, ATD*99***1#, CONNECT), negotiates LCP,
IPCP (address and DNS) and IPV6CP with the module, the guest kernel forms its global
IPv6 address from the module's Router Advertisement, and pings go to the module itself
(answered by the module) and to the simulated internet's server (the namespace's kernel
answers). Then pppd ends the link with LCP Terminate-Request and the module says NO CARRIER.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from larappp.sim.addressing import AddressPlan
from larappp.sim.scenario import Scenario
from tests.vm.qemu import PppdVm, VmArtifacts, pppd_guest_script, running_simulator

PLAN = AddressPlan()
CID = 1
DTE_V4, MODULE_V4 = PLAN.ipv4_address(CID), PLAN.ipv4_peer(CID)
DTE_V6, MODULE_V6 = PLAN.dte_ipv6(CID), PLAN.module_ipv6(CID)
PPPD_EXIT_SIGTERM = 5

CHAT = (
    "ABORT ERROR\nABORT 'NO CARRIER'\nTIMEOUT 15\n"
    "'' AT\nOK ATD*99***1#\nCONNECT ''\n"
)
# pppd as a user would run it towards a LARA-R6; CCP and VJ stay on (pppd's defaults): the
# module must refuse them.
DTE_ROLE = [
    'connect "/usr/sbin/chat -s -v -f /etc/ppp/lara.chat"',
    "noauth", "nocrtscts", "nolock", "noipdefault", "usepeerdns", "defaultroute", "+ipv6",
    "lcp-echo-interval 2", "lcp-echo-failure 3", "debug",
]
# In the background: once IPCP and IPV6CP are up, ping the module and the internet, both
# families, note the guest's view, then end pppd (SIGTERM: LCP Terminate-Request).
PINGS = r"""
(
    i=0
    until [ -f /share/ip-up.txt ] && [ -f /share/ipv6-up.txt ]; do
        sleep 0.2; i=$((i+1)); [ $i -gt 300 ] && break
    done
    i=0  # the global address comes with the module's RA, a moment after IPV6CP
    until ip -6 addr show dev ppp0 scope global | grep -q inet6; do
        sleep 0.2; i=$((i+1)); [ $i -gt 50 ] && break
    done
    for target in {module_v4} {server_v4} {module_v6} {server_v6}; do
        if ping -c 2 -i 0.3 -W 3 $target >/dev/null 2>&1; then echo "$target ok"; else echo "$target FAIL"; fi
    done >/share/pings.txt
    {{ ip addr show dev ppp0; ip -6 route; ip route; }} >/share/guest-net.txt 2>&1
    sleep 5  # some LCP echoes both ways
    kill -TERM $(cat /run/ppp0.pid)
) &
"""


def test_simulated_module_serves_real_pppd(
    vm_artifacts: VmArtifacts, pppd_vm: Callable[..., PppdVm]
) -> None:
    script = pppd_guest_script(
        DTE_ROLE,
        before=(
            f"cat >/etc/ppp/lara.chat <<'LARA_CHAT'\n{CHAT}LARA_CHAT\n"
            + PINGS.format(module_v4=MODULE_V4, server_v4=PLAN.server_v4, module_v6=MODULE_V6,
                           server_v6=PLAN.server_v6)
        ),
    )

    async def session() -> tuple[PppdVm, dict[str, int], list[object]]:
        async with running_simulator(Scenario(operator="europe", name="europe")) as sim:
            vm = pppd_vm(script, host_ttys=sim.pty_paths[:1], memory_mb=160)
            status = await vm.wait_async(120)
            counters = dict(sim.module.counters)
            assert status == PPPD_EXIT_SIGTERM, vm.read_share("pppd.log")
            return vm, counters, list(sim.module.calls)

    vm, counters, calls = asyncio.run(session())
    log = vm.read_share("pppd.log") or ""
    # LCP, then IPCP with the address and DNS the network assigned, then IPV6CP
    assert f"local  IP address {DTE_V4}" in log
    assert f"remote IP address {MODULE_V4}" in log
    assert f"primary   DNS address {PLAN.dns_v4[0]}" in log
    assert "local  LL address fe80::90a1:5cfc:3cc9:7301" in log  # the IID the module gave (§4.1.2)
    assert "remote LL address fe80::2a0b:ad40:0001:102a" in log  # pppd pads each group
    # the module refused what it does not do: CCP by Protocol-Reject, VJ by Configure-Reject
    assert "Protocol-Reject for 'Compression Control Protocol'" in log
    assert "rcvd [IPCP ConfRej" in log
    # LCP echoes were answered both ways, and pppd ended the link by Terminate-Request
    assert "rcvd [LCP EchoRep" in log
    assert "sent [LCP TermReq" in log and "rcvd [LCP TermAck" in log
    pings = vm.read_share("pings.txt") or ""
    assert pings.split("\n")[:4] == [
        f"{MODULE_V4} ok", f"{PLAN.server_v4} ok", f"{MODULE_V6} ok", f"{PLAN.server_v6} ok"
    ], (pings, vm.read_share("guest-net.txt"))
    assert f"inet6 {DTE_V6}/64 scope global" in (vm.read_share("guest-net.txt") or "")
    assert calls == []  # the call ended with the link
    assert (counters["dials"], counters["connects"]) == (1, 1)
    # pppd closes its tty right after the Terminate-Ack, which drops DTR (the 8250's MCR):
    # the module ends the call on that before its own LCP Stopping period is over.
    ended = [k for k in counters if k.startswith("calls_ended_")]
    assert ended in (["calls_ended_dtr"], ["calls_ended_lcp: LCP: the peer sent Terminate-Request (User request)"]), counters
