"""Tier c: larappp with backend = "pppd", run inside the QEMU VM (whose kernel has PPP),
against the simulator on the host; then the same config on the built-in engine, which
must give the same host configuration.

QEMU opens the simulator's ports 0 and 1 as the guest's ttyS1 and ttyS2. In the guest,
`larappp up` brings the module up over ttyS1 and dials two sessions, each carried by its
own pppd, one on each of pppd's two ways to the module:
- lara1 on /dev/ttyS1 (backend "auto", no authentication): pppd owns the serial device
  (its stdin; the kernel's async PPP frames, larappp is off the data path);
- lara2 on rfc2217://127.0.0.1:7002, an RFC 2217 server in the guest over ttyS2
  (tests/vm/rfc2217_relay.py; backend "pppd", CHAP with a password that needs quoting, a
  route metric): pppd cannot open that, so it gets a pty larappp bridges to the port.
Round "pppd" ends lara1 by "+++" and ATH (pppd killed without a Terminate exchange, the
tty reclaimed from its line discipline) and lara2 by LCP Terminate; round "pppd-swap"
the other way round (SIGTERM on the device, the pty hang-up on the bridge). In round
"pppd", the pppd on the device is also killed with SIGKILL while up: larappp must see
it, take ttyS1 back from the PPP line discipline and redial lara1.
Checked: IPv4 with DNS, global IPv6 by SLAAC from the module's RA (with RDNSS), traffic
to the module and to the simulated internet, the uplink paced by a tbf on each link,
then `larappp down` and nothing left behind: no ppp interface, no pppd, no runtime files.
The guest's /etc/ppp is made hostile first (a plugin that does not exist in
/etc/ppp/options, an ip-pre-up that leaves a mark): pppd must not see it. Each round
also measures the daemon's CPU time while a ping flood crosses each link.

The guest runs this checkout (PYTHONPATH from this file's path) with the interpreter
running the tests, and writes what it saw to the share; the assertions run here.
"""

from __future__ import annotations

import asyncio
import compileall
import json
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from larappp.sim.addressing import AddressPlan
from larappp.sim.scenario import Scenario
from larappp.sim.state import AuthSetting
from tests.vm.qemu import PppdVm, VmArtifacts, running_simulator

REPO = Path(__file__).resolve().parents[2]
PLAN = AddressPlan()
#: the guest's RFC 2217 server over ttyS2 (tests/vm/rfc2217_relay.py)
RELAY_PORT = 7002
USER = "lara user"
PASSWORD = "p#ss w'rd 1"

CONFIG = f"""
[modem]
port = "/dev/ttyS1"
runtime_dir = "/run/larappp"
command_timeout = 20

[[session]]
cid = 1
apn = "internet"
backend = "auto"
dns = "file"
teardown = "escape"

[[session]]
cid = 2
apn = "second"
port = "rfc2217://127.0.0.1:{RELAY_PORT}"
backend = "pppd"
auth = "chap"
user = "{USER}"
password = "{PASSWORD}"
metric = 500
dns = "file"
teardown = "lcp"
"""

CONFIG_BUILTIN = CONFIG.replace('backend = "auto"', 'backend = "builtin"').replace(
    'backend = "pppd"', 'backend = "builtin"'
)
#: the teardowns swapped: LCP (SIGTERM) on the device, "+++" (the pty hang-up) on the bridge
CONFIG_SWAP = CONFIG.replace('teardown = "escape"', 'teardown = "SWAP"').replace(
    'teardown = "lcp"', 'teardown = "escape"').replace('teardown = "SWAP"', 'teardown = "lcp"')

GUEST = r"""
set -u
exec 2>>/share/guest.err
export PYTHONPATH={repo}
PY={python}
mkdir -p /etc/larappp
cat >/etc/larappp/pppd.toml <<'LARAPPP_CONFIG'
{config}LARAPPP_CONFIG
cat >/etc/larappp/builtin.toml <<'LARAPPP_CONFIG'
{config_builtin}LARAPPP_CONFIG
cat >/etc/larappp/pppd-swap.toml <<'LARAPPP_CONFIG'
{config_swap}LARAPPP_CONFIG
# lara2's port: an RFC 2217 server over ttyS2 on the guest's loopback
ip link set lo up
$PY {relay} /dev/ttyS2 {relay_port} >/share/relay.log 2>&1 &
for i in $(seq 50); do grep -q "rfc2217 relay" /share/relay.log 2>/dev/null && break; sleep 0.2; done
# A hostile host /etc/ppp: pppd would fail on the plugin, and ip-pre-up leaves a mark.
echo "plugin /nonexistent/larappp-must-not-load.so" >>/etc/ppp/options
printf '#!/bin/sh\ntouch /share/host-ip-pre-up-ran\n' >/etc/ppp/ip-pre-up
chmod 755 /etc/ppp/ip-pre-up
rm -f /etc/ppp/resolv.conf
# The secrets to look for, in a file: a grep with them in its argv would find itself.
cat >/etc/larappp/secrets.txt <<'LARAPPP_SECRETS'
{secrets}
LARAPPP_SECRETS

# One round: up, look around, traffic, down, look again; files in /share/<round>/.
round() {{
    r=$1; out=/share/$1; mkdir -p $out; config=/etc/larappp/$1.toml
    note() {{ echo "$1=$2" >>$out/results.txt; }}
    $PY -m larappp.cli -c $config check >$out/check.txt 2>&1
    note check $?
    t0=$(cut -d' ' -f1 /proc/uptime)
    # -v: the AT trace and pppd's debug log go to larappp.log, secrets masked
    $PY -m larappp.cli -v -c $config up >$out/up.txt 2>&1
    note up $?
    note up_seconds "$(awk -v a="$t0" '{{print $1 - a}}' /proc/uptime)"
    cp /run/larappp/state.json $out/state.json
    ip -o addr show >$out/addr.txt
    {{ ip route; ip -6 route; }} >$out/routes.txt
    cat /run/larappp/resolv.conf.d/*.conf >$out/dns.txt
    for f in /run/larappp/pppd /run/larappp/pppd/lara1 /run/larappp/pppd/lara1/larappp.options /run/larappp/pppd/lara2/larappp.options /run/larappp/pppd/lara1/ip-up; do
        note "mode:$f" "$(stat -c %a "$f" 2>/dev/null)"
    done
    for pid in $(pgrep -x pppd); do
        tr '\0' ' ' </proc/$pid/cmdline >>$out/pppd-argv.txt; echo >>$out/pppd-argv.txt
        tr '\0' '\n' </proc/$pid/environ >>$out/pppd-env.txt
    done
    note pppd_count "$(pgrep -x pppd | wc -l)"
    # while up: no process shows the user or password in its command line or environment
    grep -lF -f /etc/larappp/secrets.txt /proc/[0-9]*/cmdline /proc/[0-9]*/environ >$out/secret-procs.txt 2>/dev/null
    note secret_procs "$(wc -l <$out/secret-procs.txt)"
    ping_check() {{ if ping -c 2 -i 0.3 -W 3 "$@" >/dev/null 2>&1; then echo ok; else echo FAIL; fi; }}
    note ping_module_v4 "$(ping_check -I lara1 {module_v4})"
    note ping_server_v4 "$(ping_check -I lara1 {server_v4})"
    note ping_server_v4_lara2 "$(ping_check -I lara2 {server_v4})"
    note ping_module_v6 "$(ping_check -I lara1 {module_v6})"
    note ping_server_v6 "$(ping_check {server_v6})"
    note ping_server_v6_lara2 "$(ping_check -I lara2 {server_v6})"
    note dns_answer "$(dig +short +time=3 +tries=2 @{dns_v4} server.larappp.test A)"
    # the uplink paced on each link by a tbf larappp added (modem.uplink_kbit, shared)
    note tbf_lara1 "$(tc qdisc show dev lara1 | grep -c '^qdisc tbf 1: root')"
    note tbf_lara2 "$(tc qdisc show dev lara2 | grep -c '^qdisc tbf 1: root')"
    # the daemon's CPU (clock ticks), the link's octets and the seconds: idle, then while
    # 5 pings a second of 1000 octets cross each link (a rate the bridged path carries in a
    # guest under TCG beside other work: at 20 a second, and at 10 on a busy host, the
    # daemon, the guest's RFC 2217 server and pppd fell behind and LCP echoes went missing)
    dpid=$(cat /run/larappp/larappp.pid)
    ticks() {{ awk '{{print $14 + $15}}' /proc/$dpid/stat; }}
    octets() {{ echo $(( $(cat /sys/class/net/$1/statistics/rx_bytes) + $(cat /sys/class/net/$1/statistics/tx_bytes) )); }}
    load() {{
        c0=$(ticks); t0=$(cut -d' ' -f1 /proc/uptime); b0=$(octets $1)
        if [ $2 = ping ]; then ping -q -c 40 -i 0.2 -s 1000 -w 20 -I $1 {server_v4} >/dev/null 2>&1; else sleep 8; fi
        echo "$(( $(ticks) - c0 )) $(( $(octets $1) - b0 )) $(awk -v a="$t0" '{{print $1 - a}}' /proc/uptime) $(getconf CLK_TCK)"
    }}
    note load_idle "$(load lara1 idle)"
    note load_lara1 "$(load lara1 ping)"
    note load_lara2 "$(load lara2 ping)"
    sleep 2.5  # the daemon writes its state every 2 s
    cp /run/larappp/state.json $out/state-loaded.json
    # lara1 lost once on the device path: until larappp has it up again, its seconds
    wait_recovered() {{
        note recovered FAIL
        for i in $(seq 150); do
            sleep 1
            if $PY -c "import json, sys; s = {{x['name']: x for x in json.load(open('/run/larappp/state.json'))['sessions']}}['lara1']; sys.exit(s['state'] != 'up' or s['losses'] != 1)"; then
                note recovered "$(awk -v a="$t0" '{{print $1 - a}}' /proc/uptime)"; break
            fi
        done
        note ping_after_recovery "$(ping_check -I lara1 {server_v4})"
        cp /run/larappp/state.json $out/state-recovered.json
    }}
    t0=$(cut -d' ' -f1 /proc/uptime)
    if [ $r = pppd ]; then
        # pppd on the device killed: N_PPP stays on ttyS1 and the module in data mode. larappp
        # must see the exit, reclaim the tty ("+++", ATH, since AT finds no answer) and redial.
        kill -9 $(pgrep -f '^/usr/sbin/pppd /dev/ttyS1 ')
        wait_recovered
    elif [ $r = pppd-swap ]; then
        # the network drops lara1's call (the host's test does it on this request): NO CARRIER
        # into pppd's line discipline, DCD unseen in this VM; pppd's LCP echoes go unanswered,
        # it exits 15, and larappp recovers the port and redials
        touch /share/drop-request
        wait_recovered
    fi

    t0=$(cut -d' ' -f1 /proc/uptime)
    $PY -m larappp.cli -c $config down >$out/down.txt 2>&1
    note down $?
    note down_seconds "$(awk -v a="$t0" '{{print $1 - a}}' /proc/uptime)"
    cp /run/larappp/state.json $out/state-after.json 2>/dev/null
    mv /run/larappp/larappp.log $out/larappp.log 2>/dev/null
    note links_after "$(ip -o link show | grep -c -E 'lara|ppp')"
    note pppd_after "$(pgrep -x pppd | wc -l)"
    note larappp_after "$(pgrep -f 'larappp.cli' | wc -l)"
    note runtime_after "$(ls -A /run/larappp | tr '\n' ' ')"
    note dns_files_after "$(ls -A /run/larappp/resolv.conf.d 2>/dev/null | wc -l)"
    note pidfiles_after "$(ls /run/lara1.pid /run/lara2.pid /run/ppp*.pid 2>/dev/null | wc -l)"
    note etc_ppp_resolv "$(test -e /etc/ppp/resolv.conf && echo present || echo absent)"
    note routes_after "$(ip route | grep -c -E 'lara|ppp') $(ip -6 route | grep -c -E 'lara|ppp')"
    note done 1
}}
round pppd
round pppd-swap
round builtin
"""


class Round:
    """What the guest saw in one round (files under /share/<name>/)."""

    def __init__(self, vm: PppdVm, name: str) -> None:
        self.vm = vm
        self.name = name
        text = self.file("results.txt")
        self.results = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)

    def file(self, name: str) -> str:
        return self.vm.read_share(f"{self.name}/{name}") or ""

    def context(self) -> str:
        return (f"round {self.name}: {self.results}\nup: {self.file('up.txt')}\ndown: {self.file('down.txt')}\n"
                f"err: {self.vm.read_share('guest.err')}")


def check_round(r: Round, backend: str) -> None:
    """What both backends must give for the same config: the same host configuration."""
    got = r.results
    assert got.get("done") == "1", r.context()
    assert got["check"] == "0", r.file("check.txt")
    assert got["up"] == "0", r.context()
    # both sessions up, with addresses from IPCP and SLAAC, DNS from IPCP and RDNSS
    state = json.loads(r.file("state.json") or "{}")
    sessions = {s["name"]: s for s in state["sessions"]}
    assert sessions.keys() == {"lara1", "lara2"}
    for cid, name in ((1, "lara1"), (2, "lara2")):
        s = sessions[name]
        assert (s["state"], s.get("backend", "builtin"), s["families_up"]) == ("up", backend, [4, 6]), s
        assert s["ipv4"] == str(PLAN.ipv4_address(cid)) and s["ipv4_peer"] == str(PLAN.ipv4_peer(cid))
        assert s["ipv6_global"] == [str(PLAN.dte_ipv6(cid))]
        assert s["ipv6_link_local"] == "fe80::90a1:5cfc:3cc9:7301"
        assert s["ipv6_router"] == "fe80::2a0b:ad40:1:102a"
        assert s["dns"] == [*map(str, PLAN.dns_v4), *map(str, PLAN.dns_v6)]
    addresses = r.file("addr.txt")
    assert f"inet {PLAN.ipv4_address(1)} peer {PLAN.ipv4_peer(1)}/32" in addresses
    assert f"inet6 {PLAN.dte_ipv6(1)}/64 scope global" in addresses
    routes = r.file("routes.txt")
    assert "default dev lara1 proto static scope link" in routes
    assert "default dev lara2 proto static scope link metric 500" in routes
    assert "default via fe80::2a0b:ad40:1:102a dev lara2 proto static metric 500 mtu 1430" in routes
    dns = r.file("dns.txt")
    assert f"nameserver {PLAN.dns_v4[0]}" in dns and f"nameserver {PLAN.dns_v6[0]}" in dns
    # traffic: the module answers for itself, the simulated internet through it
    for key in ("ping_module_v4", "ping_server_v4", "ping_server_v4_lara2", "ping_module_v6",
                "ping_server_v6", "ping_server_v6_lara2"):
        assert got[key] == "ok", (key, r.context())
    assert got["dns_answer"] == str(PLAN.server_v4)
    assert (got["tbf_lara1"], got["tbf_lara2"]) == ("1", "1"), r.context()  # modem.uplink_kbit (default on)
    # both links carried the pings of the CPU measurement without a loss
    loaded = {s["name"]: s for s in json.loads(r.file("state-loaded.json") or "{}")["sessions"]}
    assert [(loaded[n]["state"], loaded[n]["losses"]) for n in ("lara1", "lara2")] == [("up", 0)] * 2, loaded
    # The user name counts as a secret too (Config.secrets()): neither shows anywhere, in
    # no process while the sessions are up, in no output, state or log (the -v AT trace
    # and pppd's debug log included)
    assert got["secret_procs"] == "0", r.file("secret-procs.txt")
    for secret in (PASSWORD, "p#ss", USER):
        for where in ("up.txt", "down.txt", "state.json", "state-after.json", "larappp.log", "pppd-argv.txt",
                      "pppd-env.txt"):
            assert secret not in r.file(where), f"a secret in {r.name}/{where}"
    # down (lara1 by "+++" and ATH, lara2 by LCP Terminate): nothing left behind
    assert got["down"] == "0", r.context()
    assert "larappp is down" in r.file("down.txt")
    assert (got["links_after"], got["pppd_after"], got["larappp_after"]) == ("0", "0", "0"), got
    # what stays: the state `larappp status` reads, and the DNS folder (empty)
    assert set(got["runtime_after"].split()) <= {"state.json", "resolv.conf.d", "larappp.lock"}, got
    assert got["dns_files_after"] == "0"
    assert got["pidfiles_after"] == "0" and got["routes_after"].split() == ["0", "0"]
    after = json.loads(r.file("state-after.json") or "{}")
    assert after["state"] == "down" and not after["error"], after


def test_larappp_with_pppd_and_builtin_in_the_vm(
    vm_artifacts: VmArtifacts, pppd_vm: Callable[..., PppdVm], request: pytest.FixtureRequest
) -> None:
    # The guest mounts its own tmpfs on /tmp and /run, hiding a checkout there (CI clones
    # anywhere): it imports a copy of the package from a folder it can see.
    guest_src = Path(tempfile.mkdtemp(prefix="larappp-guest-src-", dir="/var/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(guest_src, ignore_errors=True))
    shutil.copytree(REPO / "larappp", guest_src / "larappp", ignore=shutil.ignore_patterns("__pycache__"))
    compileall.compile_dir(str(guest_src / "larappp"), quiet=1)  # the guest imports, TCG need not compile
    shutil.copy(Path(__file__).with_name("rfc2217_relay.py"), guest_src / "rfc2217_relay.py")
    script = GUEST.format(
        repo=shlex.quote(str(guest_src)), python=shlex.quote(sys.executable), config=CONFIG,
        config_builtin=CONFIG_BUILTIN, config_swap=CONFIG_SWAP, relay=shlex.quote(str(guest_src / "rfc2217_relay.py")),
        relay_port=RELAY_PORT, secrets=f"{USER}\n{PASSWORD}", module_v4=PLAN.ipv4_peer(1), server_v4=PLAN.server_v4,
        module_v6=PLAN.module_ipv6(1), server_v6=PLAN.server_v6, dns_v4=PLAN.dns_v4[0],
    )

    async def session() -> tuple[PppdVm, dict[str, int]]:
        async with running_simulator(Scenario(operator="europe", name="europe"), ports=3) as sim:
            # The module checks cid 2's CHAP credentials (as if AT+UAUTHREQ=2,2,... had been
            # stored before): what pppd (or PppLink) answers must match.
            sim.module.nvm.auth[2] = AuthSetting(2, USER, PASSWORD)
            vm = pppd_vm(script, host_ttys=sim.pty_paths[:2], memory_mb=384)

            async def drop_on_request() -> None:
                while vm.read_share("drop-request") is None:
                    await asyncio.sleep(0.2)
                sim.control.drop(cid=1)

            dropper = asyncio.create_task(drop_on_request())
            try:
                await vm.wait_async(500)
            finally:
                dropper.cancel()
            return vm, dict(sim.module.counters)

    vm, counters = asyncio.run(session())
    pppd, swap, builtin = Round(vm, "pppd"), Round(vm, "pppd-swap"), Round(vm, "builtin")
    for r in (pppd, swap):
        check_round(r, "pppd")
        assert "auto -> pppd" in r.file("check.txt")
        # one pppd owns /dev/ttyS1 (its stdin), the other is bridged to the RFC 2217 port
        argv = r.file("pppd-argv.txt")
        assert "/usr/sbin/pppd /dev/ttyS1 file /run/larappp/pppd/lara1/larappp.options" in argv, argv
        assert "/usr/sbin/pppd /dev/pts/" in argv and "file /run/larappp/pppd/lara2/larappp.options" in argv, argv
        sessions = {s["name"]: s for s in json.loads(r.file("state.json"))["sessions"]}
        assert (sessions["lara1"]["data_path"], sessions["lara1"]["tty"]) == ("device", "/dev/ttyS1")
        assert sessions["lara2"]["data_path"] == "pty bridge"
        # the one radio's uplink (5200 kbit/s by default), shared: each link paced at half
        assert [sessions[n]["uplink"]["paced_kbit"] for n in ("lara1", "lara2")] == [2600, 2600]

    # pppd: the runtime folder is private, secrets only in its 0600 options files
    got = pppd.results
    assert got["mode:/run/larappp/pppd"] == "700" and got["mode:/run/larappp/pppd/lara1"] == "700"
    assert got["mode:/run/larappp/pppd/lara1/larappp.options"] == "600"
    assert got["mode:/run/larappp/pppd/lara2/larappp.options"] == "600"
    assert got["mode:/run/larappp/pppd/lara1/ip-up"] == "700"
    assert got["pppd_count"] == "2"
    # pppd never saw the host's /etc/ppp: no plugin error, no ip-pre-up, no resolv.conf
    assert vm.read_share("host-ip-pre-up-ran") is None
    assert got["etc_ppp_resolv"] == "absent"
    log = pppd.file("larappp.log")
    assert "reads the host's /etc/ppp" not in log
    # pppd's debug log: CHAP with the module, the user name masked
    assert "rcvd [CHAP Challenge id=" in log and 'sent [CHAP Response id=' in log and 'name = "***"]' in log
    assert "rcvd [CHAP Success" in log

    # the built-in engine, same config: the same host configuration, no pppd
    check_round(builtin, "builtin")
    assert builtin.results["pppd_count"] == "0"

    # lara1 on the device lost and redialled: in round pppd its pppd killed with SIGKILL (the
    # tty reclaimed from N_PPP), in pppd-swap its call dropped by the network (pppd's echoes fail:
    # unanswered, or, the module back in command mode echoing what it hears, its own replies back)
    swap_causes = ("stopped answering LCP Echo-Requests", "LCP Echo-Requests came back to it (exit status 15)")
    for r, causes in ((pppd, ("pppd was killed by SIGKILL",)), (swap, swap_causes)):
        got = r.results
        assert got["recovered"] != "FAIL" and got["ping_after_recovery"] == "ok", r.context()
        recovered = {s["name"]: s for s in json.loads(r.file("state-recovered.json"))["sessions"]}["lara1"]
        cause = next((c for c in causes if c in recovered["last_loss_cause"]), None)
        assert cause is not None, recovered
        print(f"\nVM tier c: {r.name}: lara1 ({cause}) up again after {float(got['recovered']):.1f} s (guest, TCG)")

    # "+++" (pppd ended without a Terminate: the module still in data mode), which ends the
    # call itself under the AT&D2 larappp sets on every dial port (the ATH after it finds no
    # call), and LCP Terminate: pppd's text for it, then the built-in engine's. Round pppd:
    # lara1 (device) "+++", lara2 (bridge) LCP; pppd-swap the other way; builtin as pppd.
    ended = {k: v for k, v in counters.items() if k.startswith("calls_ended_")}
    assert ended == {
        "calls_ended_escape": 4,  # and once more on the redial after the SIGKILL
        "calls_ended_lcp: LCP: the peer sent Terminate-Request (User request)": 2,
        "calls_ended_lcp: LCP: the peer sent Terminate-Request (larappp down)": 1,
        "calls_ended_network-drop": 1,  # lara1 in round pppd-swap
    }, counters
    rounds = (pppd, swap, builtin)
    seconds = {r.name: (float(r.results["up_seconds"]), float(r.results["down_seconds"])) for r in rounds}
    print("\nVM tier c (guest seconds, TCG): " + ", ".join(
        f"{name} up {up:.1f} down {down:.1f}" for name, (up, down) in seconds.items()))
    # the daemon's CPU per MB crossing each link beyond its idle rate (guest CPU under TCG:
    # compare the paths, do not quote the figures as a real machine's)
    for r in rounds:
        idle_ticks, _, idle_s, hz = map(float, r.results["load_idle"].split())
        for name in ("lara1", "lara2"):
            ticks, octets, seconds, _ = map(float, r.results[f"load_{name}"].split())
            assert octets > 0.75 * 40 * 1028 * 2, (r.name, name, octets)  # most pings crossed the link
            extra_ms = max(0.0, ticks - idle_ticks / idle_s * seconds) * 1000 / hz
            print(f"VM tier c: {r.name} {name}: daemon {ticks * 1000 / hz:.0f} ms CPU in {seconds:.1f} s "
                  f"(idle rate {idle_ticks * 1000 / hz / idle_s:.0f} ms/s), {extra_ms / (octets / 1e6):.0f} ms "
                  f"beyond idle per MB")
