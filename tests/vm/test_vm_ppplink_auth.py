"""Tier a, continued: larappp's PppLink (host role) against the real pppd (module role) in the
QEMU VM, with authentication, pings both ways, LCP echo both ways, and the link ended by
either side.

pppd plays the module: it asks for PAP or CHAP (its secrets file in the guest's overlay),
hands out an address and a DNS server over IPCP and interface identifiers over IPV6CP,
sends LCP Echo-Requests every second. PppLink answers the echo requests, sends its own,
and the test answers the guest's pings (IPv4 and IPv6 link-local) with echo replies.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable
from ipaddress import IPv4Address

from larappp.errors import PortClosed
from larappp.proto.ip import echo_reply
from larappp.proto.ipv6.ndp import link_local_from_iid
from larappp.proto.ppp.config import LinkConfig
from larappp.proto.ppp.events import (
    AuthFailed,
    AuthSucceeded,
    EchoTimedOut,
    IpcpOpened,
    Ipv6cpOpened,
    LinkEvent,
    LinkTerminated,
    NetworkProtocolClosed,
    PacketReceived,
)
from larappp.proto.ppp.link import PppLink
from tests.vm.frames import icmp_echo_request, parse_icmp
from tests.vm.qemu import PPPD_EXIT_HANGUP, PPPD_EXIT_OK, PppdVm, pppd_guest_script
from tests.vm.test_vm_ppplink import LinkPump

USER = "lara user"
PASSWORD = "p a#ss'1"  # a space, a hash and a quote: pppd's secrets file quotes them
HOST_IID = bytes.fromhex("02000000000000a1")
HOST_LL = link_local_from_iid(HOST_IID)
PPPD_EXIT_SIGTERM = 5
PPPD_EXIT_PEER_AUTH_FAILED = 11
MODULE_ROLE = [
    # debug twice: at level 1 pppd stops logging LCP echoes once the link is up
    "10.64.0.1:10.64.0.2", "ms-dns 10.64.0.53", "+ipv6", "debug", "debug", "name lara-r6",
    "lcp-echo-interval 1", "lcp-echo-failure 3", "noccp", "novj",
]


def secrets_file(kind: str, secret: str) -> str:
    """The guest's /etc/ppp/{kind}-secrets: client, server, secret, addresses."""
    return f"cat >/etc/ppp/{kind}-secrets <<'LARA_SECRETS'\n\"{USER}\" * \"{secret}\" *\nLARA_SECRETS\n"


def host_link(method: str, password: str = PASSWORD) -> PppLink:
    return PppLink("host", LinkConfig(
        username=USER, password=password, answer_auth=(method,), echo_interval=1.0,
        restart_interval=1.0, ipv6_interface_id=HOST_IID,
    ))


class EchoServer:
    """Answers the guest's pings on the link while waiting for an event."""

    def __init__(self, pump: LinkPump) -> None:
        self.pump = pump
        self.answered: list[int] = []

    async def until(self, wanted: Callable[[LinkEvent], bool], timeout: float) -> LinkEvent:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            event = await self.pump.until(
                lambda e: wanted(e) or (isinstance(e, PacketReceived) and echo_reply(e.packet) is not None),
                max(0.0, deadline - loop.time()),
            )
            if wanted(event):
                return event
            assert isinstance(event, PacketReceived)
            reply = echo_reply(event.packet)
            assert reply is not None and self.pump.link.send_packet(event.family, reply)
            self.answered.append(event.family)  # LinkPump.until flushes it first thing


# Once IPCP and IPV6CP are up: ping the host (IPv4 and its IPv6 link-local), let LCP
# echoes run, then end the link from the module's side (pppd's SIGTERM: Terminate-Request).
GUEST_PINGS = r"""
(
    i=0
    until [ -f /share/ip-up.txt ] && [ -f /share/ipv6-up.txt ]; do
        sleep 0.2; i=$((i+1)); [ $i -gt 300 ] && break
    done
    ping -c 3 -i 0.3 -W 3 10.64.0.2 >/share/ping4.txt 2>&1; echo "status $?" >>/share/ping4.txt
    ping -6 -c 3 -i 0.3 -W 3 {host_ll}%ppp0 >/share/ping6.txt 2>&1; echo "status $?" >>/share/ping6.txt
    sleep 4
    kill -TERM $(cat /run/ppp0.pid)
) &
"""


def test_pap_pings_both_ways_echo_and_module_ends_the_link(pppd_vm: Callable[..., PppdVm]) -> None:
    script = pppd_guest_script(
        ["require-pap", *MODULE_ROLE],
        before=secrets_file("pap", PASSWORD) + GUEST_PINGS.format(host_ll=HOST_LL),
    )

    async def session(vm: PppdVm) -> tuple[list[LinkEvent], EchoServer]:
        pipe = await vm.open_pipe()
        link = host_link("pap")
        pump = LinkPump(link, pipe)
        server = EchoServer(pump)
        link.open(pump.now())
        try:
            ended = await server.until(lambda e: isinstance(e, LinkTerminated), 90)
            assert isinstance(ended, LinkTerminated)
        except PortClosed:
            # PppLink finishes one restart period after acking (RFC 1661 Stopping), and the
            # guest may have powered off by then: the NCPs must have closed on the way.
            assert any(isinstance(e, NetworkProtocolClosed) for e in pump.events), pump.events
        finally:
            await pump.stop()
            await pipe.close()
        return pump.events, server

    with pppd_vm(script) as vm:
        events, server = asyncio.run(session(vm))
        status = vm.wait(30)
    log = vm.read_share("pppd.log") or ""
    assert status == PPPD_EXIT_SIGTERM, log[-2000:]
    assert AuthSucceeded("pap", USER, as_authenticator=False) in events
    assert f"PAP peer authentication succeeded for {USER}" in log
    (ipcp,) = [e for e in events if isinstance(e, IpcpOpened)]
    # pppd with one ms-dns hands the same server out as primary and secondary
    assert (ipcp.local, set(ipcp.dns)) == (IPv4Address("10.64.0.2"), {IPv4Address("10.64.0.53")})
    (ipv6,) = [e for e in events if isinstance(e, Ipv6cpOpened)]
    assert ipv6.local_link_local == HOST_LL
    # the guest's pings were answered, both families
    assert server.answered.count(4) == 3 and server.answered.count(6) == 3, server.answered
    for name in ("ping4.txt", "ping6.txt"):
        text = vm.read_share(name) or ""
        assert "3 received" in text and "status 0" in text, text
    # LCP echo both ways: pppd's requests answered by PppLink, PppLink's answered by pppd
    assert log.count("sent [LCP EchoReq") >= 3 and log.count("rcvd [LCP EchoRep") >= 3
    assert log.count("rcvd [LCP EchoReq") >= 3 and log.count("sent [LCP EchoRep") >= 3
    assert not any(isinstance(e, EchoTimedOut) for e in events)
    # the module (pppd) ended the link: its Terminate-Request, PppLink's Terminate-Ack
    assert 'sent [LCP TermReq id=' in log and "rcvd [LCP TermAck" in log


def test_chap_host_pings_and_ends_the_link(pppd_vm: Callable[..., PppdVm]) -> None:
    script = pppd_guest_script(["require-chap", *MODULE_ROLE], before=secrets_file("chap", PASSWORD))

    async def session(vm: PppdVm) -> list[LinkEvent]:
        pipe = await vm.open_pipe()
        link = host_link("chap")
        pump = LinkPump(link, pipe)
        link.open(pump.now())
        try:
            await pump.until(lambda e: isinstance(e, IpcpOpened), 60)
            await vm.wait_for_share("ip-up.txt", 20)  # pppd passes IP once its ip-up ran
            source, destination = IPv4Address("10.64.0.2").packed, IPv4Address("10.64.0.1").packed
            for seq in (1, 2):
                assert link.send_packet(4, icmp_echo_request(source, destination, 0x4C51, seq, b"chap ping"))
                got = await pump.until(lambda e: isinstance(e, PacketReceived) and e.family == 4, 10)
                assert isinstance(got, PacketReceived)
                reply = parse_icmp(got.packet)
                assert reply is not None and (reply.icmp_type, reply.seq) == (0, seq)
                assert ipaddress.IPv4Address(reply.source) == IPv4Address("10.64.0.1")
            link.close(pump.now(), "larappp down")
            await pump.until(lambda e: isinstance(e, LinkTerminated), 15)
        finally:
            await pump.stop()
            await pipe.close()
        return pump.events

    with pppd_vm(script) as vm:
        events = asyncio.run(session(vm))
        status = vm.wait(30)
    log = vm.read_share("pppd.log") or ""
    assert status in (PPPD_EXIT_OK, PPPD_EXIT_HANGUP), log[-2000:]
    assert AuthSucceeded("chap", USER, as_authenticator=False) in events
    assert 'rcvd [CHAP Response id=' in log and f'name = "{USER}"]' in log
    assert "sent [CHAP Success" in log
    assert "LCP terminated by peer (larappp down)" in log


def test_wrong_chap_secret_fails_on_both_sides(pppd_vm: Callable[..., PppdVm]) -> None:
    script = pppd_guest_script(["require-chap", *MODULE_ROLE], before=secrets_file("chap", PASSWORD))

    async def session(vm: PppdVm) -> list[LinkEvent]:
        pipe = await vm.open_pipe()
        link = host_link("chap", password="not the secret")
        pump = LinkPump(link, pipe)
        link.open(pump.now())
        try:
            await pump.until(lambda e: isinstance(e, LinkTerminated), 60)
        except PortClosed:
            pass  # pppd ended and the guest powered off within our Stopping period
        finally:
            await pump.stop()
            await pipe.close()
        return pump.events

    with pppd_vm(script) as vm:
        events = asyncio.run(session(vm))
        status = vm.wait(30)
    log = vm.read_share("pppd.log") or ""
    assert status == PPPD_EXIT_PEER_AUTH_FAILED, log[-2000:]
    failed = [e for e in events if isinstance(e, AuthFailed)]
    assert [(e.method, e.as_authenticator) for e in failed] == [("chap", False)], events
    assert f"Peer {USER} failed CHAP authentication" in log and "sent [CHAP Failure" in log
    assert not any(isinstance(e, (IpcpOpened, Ipv6cpOpened)) for e in events)
