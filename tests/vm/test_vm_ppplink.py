"""larappp's own PppLink (host role) against the real pppd (module role) in the QEMU VM."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address

from larappp.proto.ppp.config import LinkConfig
from larappp.proto.ppp.events import (
    IpcpOpened,
    Ipv6cpOpened,
    LinkEvent,
    LinkOpened,
    LinkTerminated,
    PacketReceived,
)
from larappp.proto.ppp.link import PppLink
from larappp.transport.pipe import Pipe
from tests.vm.frames import icmp_echo_request, parse_icmp
from tests.vm.qemu import PPPD_EXIT_HANGUP, PPPD_EXIT_OK, PppdVm, pppd_guest_script

# pppd as the module would be: hands out an address and a DNS server, no authentication.
# CCP and VJ stay on (pppd's defaults): PppLink must refuse them as the module's peer.
MODULE_ROLE = [
    "noauth", "10.64.0.1:10.64.0.2", "ms-dns 10.64.0.53", "ms-dns 10.64.0.54", "+ipv6", "debug",
    "lcp-echo-interval 5", "lcp-echo-failure 3",
]


class LinkPump:
    """A minimal asyncio pump for the test: pipe bytes into a PppLink, its output back out."""

    def __init__(self, link: PppLink, pipe: Pipe) -> None:
        self.link = link
        self.pipe = pipe
        self.events: list[LinkEvent] = []
        self._loop = asyncio.get_running_loop()
        self._read: asyncio.Task[bytes] | None = None

    def now(self) -> float:
        return self._loop.time()

    async def flush(self) -> None:
        data = self.link.data_to_send()
        if data:
            await self.pipe.write(data)

    async def until(self, wanted: Callable[[LinkEvent], bool], timeout: float) -> LinkEvent:
        """Run the link until an event satisfies `wanted`; return that event."""
        link = self.link
        deadline = self.now() + timeout
        while True:
            await self.flush()
            while (event := link.next_event()) is not None:
                self.events.append(event)
                if wanted(event):
                    return event
            now = self.now()
            if now >= deadline:
                raise TimeoutError(f"no wanted event in {timeout} s; events: {self.events}")
            timer = link.get_timer()
            wait = min(deadline, timer if timer is not None else deadline) - now
            if self._read is None:
                self._read = asyncio.ensure_future(self.pipe.read())
            done, _ = await asyncio.wait({self._read}, timeout=max(wait, 0.0))
            if done:
                data = self._read.result()
                self._read = None
                link.receive_data(data, self.now())
            if (timer := link.get_timer()) is not None and timer <= self.now():
                link.handle_timer(self.now())

    async def stop(self) -> None:
        if self._read is not None:
            self._read.cancel()
            await asyncio.gather(self._read, return_exceptions=True)


def _echo6(source: IPv6Address, destination: IPv6Address, seq: int, payload: bytes) -> bytes:
    from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6

    return bytes(IPv6(src=str(source), dst=str(destination), hlim=64)
                 / ICMPv6EchoRequest(id=0x4C50, seq=seq, data=payload))


def test_ppplink_host_role_against_real_pppd(pppd_vm: Callable[..., PppdVm]) -> None:
    script = pppd_guest_script(MODULE_ROLE)

    async def session(vm: PppdVm) -> list[LinkEvent]:
        pipe = await vm.open_pipe()
        pipe.attach("ppp")
        link = PppLink("host", LinkConfig(restart_interval=1.0))
        pump = LinkPump(link, pipe)
        link.open(pump.now())
        try:
            opened = await pump.until(lambda e: isinstance(e, LinkOpened), 45)
            assert isinstance(opened, LinkOpened) and opened.pfc and opened.acfc
            # IPCP and IPV6CP open in either order
            await pump.until(lambda e: any(isinstance(x, IpcpOpened) for x in pump.events)
                             and any(isinstance(x, Ipv6cpOpened) for x in pump.events), 20)
            (ipcp,) = [e for e in pump.events if isinstance(e, IpcpOpened)]
            (ipv6,) = [e for e in pump.events if isinstance(e, Ipv6cpOpened)]
            assert (ipcp.local, ipcp.peer, ipcp.dns) == (
                IPv4Address("10.64.0.2"),
                IPv4Address("10.64.0.1"),
                (IPv4Address("10.64.0.53"), IPv4Address("10.64.0.54")),
            )
            assert ipv6.peer_iid is not None

            # pppd drops IP until it has configured ppp0 (its ip-up runs after that)
            ip_up = await vm.wait_for_share("ip-up.txt", 20)
            assert "10.64.0.1 peer 10.64.0.2" in ip_up
            await vm.wait_for_share("ipv6-up.txt", 20)

            source, destination = ipcp.local.packed, ipaddress.IPv4Address("10.64.0.1").packed
            for seq in range(1, 4):
                payload = bytes(range(seq, seq + 56))
                assert link.send_packet(4, icmp_echo_request(source, destination, 0x4C50, seq, payload))
                got = await pump.until(lambda e: isinstance(e, PacketReceived) and e.family == 4, 10)
                assert isinstance(got, PacketReceived)
                reply = parse_icmp(got.packet)
                assert reply is not None
                assert (reply.icmp_type, reply.seq, reply.data) == (0, seq, payload)

            from scapy.layers.inet6 import ICMPv6EchoReply, IPv6

            local6, peer6 = ipv6.local_link_local, ipv6.peer_link_local
            assert peer6 is not None
            payload = b"larappp ipv6 over the real pppd"
            assert link.send_packet(6, _echo6(local6, peer6, 1, payload))
            # the guest kernel also sends Router Solicitations: wait for the echo reply itself
            got = await pump.until(
                lambda e: isinstance(e, PacketReceived) and e.family == 6
                and bool(IPv6(e.packet).haslayer(ICMPv6EchoReply)), 10
            )
            assert isinstance(got, PacketReceived)
            reply6 = IPv6(got.packet)
            assert IPv6Address(reply6.src) == peer6 and reply6[ICMPv6EchoReply].data == payload

            link.close(pump.now(), "test done")
            ended = await pump.until(lambda e: isinstance(e, LinkTerminated), 15)
            assert isinstance(ended, LinkTerminated)
        finally:
            await pump.stop()
            pipe.release("ppp")
            await pipe.close()
        return pump.events

    with pppd_vm(script) as vm:
        events = asyncio.run(session(vm))
        status = vm.wait(30)
    assert status in (PPPD_EXIT_OK, PPPD_EXIT_HANGUP)  # see test_vm_smoke: 16 after a clean end
    log = vm.read_share("pppd.log") or ""
    assert "LCP terminated by peer (test done)" in log
    # what PppLink refused: CCP by Protocol-Reject, VJ by Configure-Reject
    assert "Protocol-Reject for 'Compression Control Protocol'" in log
    assert "rcvd [IPCP ConfRej" in log
    assert any(isinstance(e, LinkOpened) for e in events)
