"""The rig of the built-in engine's tests: the engine (host role, over a TUN) in a network
namespace against a module-role PppLink or a scripted raw peer, over an in-memory pipe pair.

Each test runs its asyncio loop in a thread switched into a throw-away network namespace
(the engine creates its TUN and addresses in the *current* namespace), with the module's
side played in the same loop: a module-role PppLink (or a scripted raw peer) pumped over
an in-memory pipe pair, plus a RouterAdvertiser answering Router Solicitations. Every
test asserts what the engine reports (state, reason, counters), what the kernel holds
(`ip -j addr` / `ip -j route` in the namespace), and that stop() leaves no task,
interface, address, route or DNS fragment behind (`EngineRig` checks it on exit).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address, IPv6Network
from pathlib import Path
from typing import Any, Self

import pytest

from larappp.engine.options import EngineOptions
from larappp.engine.ppp_builtin import BuiltinPppEngine
from larappp.errors import PortClosed
from larappp.proto import ip
from larappp.proto.hdlc import HdlcDecoder, HdlcEncoder
from larappp.proto.ipv6.ndp import ICMPV6_ROUTER_SOLICITATION
from larappp.proto.ipv6.slaac import RouterAdvertiser
from larappp.proto.ppp import events as ev
from larappp.proto.ppp import frame
from larappp.proto.ppp.config import LinkConfig
from larappp.proto.ppp.fsm import parse_control_packet
from larappp.proto.ppp.link import PppLink
from larappp.transport.memory import MemoryPipe, pipe_pair
from tests.nshelp import in_netns, ip_json

NEEDS_ROOT_AND_TUN = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces and TUN"),
    pytest.mark.skipif(not os.path.exists("/dev/net/tun"), reason="no /dev/net/tun"),

]

IFNAME = "lppp0"
MODULE_V4 = IPv4Address("10.64.64.1")
HOST_V4 = IPv4Address("10.64.64.2")
DNS_V4 = IPv4Address("10.64.0.53")
MODULE_IID = bytes.fromhex("02a0c6fffe000001")
PREFIX = IPv6Network("2001:db8:64:1::/64")
DNS_V6 = IPv6Address("2001:db8:53::53")
RA_MTU = 1400
ROUTER_LL = IPv6Address(b"\xfe\x80" + bytes(6) + MODULE_IID)
INTERNET_V4 = IPv4Address("192.0.2.10")
INTERNET_V6 = IPv6Address("2001:db8:ffff::10")
SCENARIO_TIMEOUT = 25.0  # no test may hang: the whole scenario is bounded

MODULE_CONFIG = LinkConfig(
    ipv4_address=MODULE_V4,
    ipv4_peer_address=HOST_V4,
    dns_servers=(DNS_V4,),
    ipv6_interface_id=MODULE_IID,
    echo_interval=None,
    restart_interval=0.2,
)


# -- namespace and kernel views -------------------------------------------------------------


def run_scenario(netns: str, scenario: Callable[[], Awaitable[None]]) -> None:
    """Run `scenario()` in an asyncio loop inside `netns`, bounded by SCENARIO_TIMEOUT."""

    async def bounded() -> None:
        await asyncio.wait_for(scenario(), SCENARIO_TIMEOUT)

    in_netns(netns, lambda: asyncio.run(bounded()))


def addresses(netns: str, ifname: str = IFNAME) -> set[tuple[str, int, str | None]]:
    """(address, prefix length, peer) of every address on `ifname`."""
    found = set()
    for link in ip_json(netns, "addr", "show", "dev", ifname):
        for info in link.get("addr_info", []):
            found.add((info["local"], info["prefixlen"], info.get("address")))
    return found


def default_routes(netns: str, family: int) -> list[dict[str, Any]]:
    return ip_json(netns, f"-{family}", "route", "show", "default")


# -- the module's side ---------------------------------------------------------------------


class ModuleSide:
    """A module-role PppLink pumped over the module end of a memory pipe, with an RA router."""

    def __init__(
        self,
        pipe: MemoryPipe,
        config: LinkConfig = MODULE_CONFIG,
        *,
        answer_rs: bool = True,
        drop_to_host: Callable[[int], bool] | None = None,
    ) -> None:
        self.pipe = pipe
        self.link = PppLink("module", config, now=time.monotonic())
        #: (protocol, code) of every control frame the host sent, in order
        self.from_host: list[tuple[int, int]] = []
        self._tap = HdlcDecoder(0)
        self._drop_to_host = drop_to_host
        self._filter_decoder = HdlcDecoder(0)
        self._filter_encoder = HdlcEncoder()
        self.router = RouterAdvertiser(
            PREFIX,
            MODULE_IID,
            mtu=RA_MTU,
            dns=(DNS_V6,),
            response_delay_max=0.0,
            min_delay_between_ras=0.0,
        )
        self.answer_rs = answer_rs
        self.solicitations = 0
        self.events: list[ev.LinkEvent] = []
        self.packets: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
        self.terminated = asyncio.Event()
        self.port_closed = False
        self._out: asyncio.Queue[bytes] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.link.open(time.monotonic())
        self._process()
        for coro in (self._reader(), self._writer(), self._ticker()):
            self._tasks.append(asyncio.create_task(coro))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def send_packet(self, family: int, packet: bytes) -> None:
        assert self.link.send_packet(family, packet), f"IPv{family} is not open on the module"
        self._flush()

    def inject(self, raw: bytes) -> None:
        """Put raw octets on the serial line, between the frames the link sends."""
        self._flush()
        self._out.put_nowait(raw)

    def close(self, reason: str) -> None:
        self.link.close(time.monotonic(), reason)
        self._process()

    def first(self, kind: type[Any]) -> Any:
        for event in self.events:
            if isinstance(event, kind):
                return event
        raise AssertionError(f"no {kind.__name__} on the module side: {self.events}")

    async def _reader(self) -> None:
        try:
            while True:
                data = await self.pipe.read()
                for decoded in self._tap.receive_data(data):
                    with contextlib.suppress(ValueError):
                        protocol, info = frame.split_protocol(decoded)
                        if protocol >= 0x8000:
                            self.from_host.append((protocol, info[0] if info else -1))
                self.link.receive_data(data, time.monotonic())
                self._process()
        except PortClosed:
            self.port_closed = True

    async def _writer(self) -> None:
        while True:
            data = await self._out.get()
            try:
                await self.pipe.write(data)
            except PortClosed:
                self.port_closed = True
                return

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(0.02)
            now = time.monotonic()
            self.link.handle_timer(now)
            self.router.handle_timer(now)
            self._process()

    def _process(self) -> None:
        while (event := self.link.next_event()) is not None:
            if isinstance(event, ev.PacketReceived):
                packet = event.packet
                is_rs = (
                    event.family == 6
                    and len(packet) > 40
                    and packet[6] == ip.PROTO_ICMPV6
                    and packet[40] == ICMPV6_ROUTER_SOLICITATION
                )
                if is_rs:
                    self.solicitations += 1
                    if self.answer_rs:
                        self.router.receive_packet(packet, time.monotonic())
                        self.router.handle_timer(time.monotonic())
                else:
                    self.packets.put_nowait((event.family, packet))
                continue
            self.events.append(event)
            if isinstance(event, ev.LinkTerminated):
                self.terminated.set()
        if self.link.is_open(6):
            for ra in self.router.packets_to_send():
                self.link.send_packet(6, ra)
        self._flush()

    def _flush(self) -> None:
        data = self.link.data_to_send()
        if data and self._drop_to_host is not None:
            kept = []
            for decoded in self._filter_decoder.receive_data(data):
                if not self._drop_to_host(frame.split_protocol(decoded)[0]):
                    kept.append(decoded)
            data = self._filter_encoder.encode_many(kept)
        if data:
            self._out.put_nowait(data)

    def sent(self, protocol: int, code: int) -> int:
        """How many control packets of `protocol` with `code` the host sent."""
        return self.from_host.count((protocol, code))


class RawPeer:
    """A scripted module speaking raw PPP frames, to misbehave on purpose.

    `answer(protocol, info)` returns the (protocol, info) frames to send back for each
    frame the host sends.
    """

    def __init__(
        self, pipe: MemoryPipe, answer: Callable[[int, bytes], list[tuple[int, bytes]]]
    ) -> None:
        self.pipe = pipe
        self.answer = answer
        self.received: list[tuple[int, bytes]] = []
        self._decoder = HdlcDecoder(0)
        self._encoder = HdlcEncoder()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def requests(self, protocol: int) -> list[tuple[int, bytes]]:
        """(identifier, options) of the Configure-Requests the host sent for `protocol`."""
        found = []
        for got, info in self.received:
            parsed = parse_control_packet(info)
            if got == protocol and parsed is not None and parsed[0] == 1:
                found.append((parsed[1], parsed[2]))
        return found

    async def _run(self) -> None:
        with contextlib.suppress(PortClosed):
            while True:
                data = await self.pipe.read()
                out = []
                for decoded in self._decoder.receive_data(data):
                    protocol, info = frame.split_protocol(decoded)
                    self.received.append((protocol, info))
                    for answer in self.answer(protocol, info):
                        out.append(frame.build_frame(*answer))
                if out:
                    await self.pipe.write(self._encoder.encode_many(out))


def engine_options(tmp_path: Path, **overrides: Any) -> EngineOptions:
    options = EngineOptions(
        ifname=IFNAME,
        dns_mode="file",
        dns_dir=str(tmp_path / "resolv.conf.d"),
        rs_interval=0.3,
    )
    return replace(options, **overrides)


def engine_tasks() -> list[asyncio.Task[Any]]:
    """The engine's pump tasks still alive in this loop."""
    return [t for t in asyncio.all_tasks() if t.get_name().startswith(f"ppp {IFNAME} ")]


async def stop_and_check_clean(engine: BuiltinPppEngine, netns: str, tmp_path: Path) -> None:
    """stop() leaves no task, interface, address, route or DNS fragment, and frees the pipe."""
    assert await engine.stop() == []
    assert engine_tasks() == []
    assert engine.pipe.owner is None
    assert ip_json(netns, "link", "show", "dev", IFNAME) == []
    assert addresses(netns) == set()
    assert default_routes(netns, 4) == [] and default_routes(netns, 6) == []
    assert list((tmp_path / "resolv.conf.d").glob("*")) == []
    assert await engine.stop() == []  # a second stop() is harmless


class EngineRig:
    """An engine and the module side it talks to, over one memory pipe pair."""

    def __init__(
        self,
        netns: str,
        tmp_path: Path,
        module_config: LinkConfig = MODULE_CONFIG,
        *,
        answer_rs: bool = True,
        drop_to_host: Callable[[int], bool] | None = None,
        raw_peer: Callable[[int, bytes], list[tuple[int, bytes]]] | None = None,
        link_timers: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        self.netns = netns
        self.tmp_path = tmp_path
        self.host_pipe, self.module_pipe = pipe_pair()
        self.module = ModuleSide(
            self.module_pipe, module_config, answer_rs=answer_rs, drop_to_host=drop_to_host
        )
        self.raw = RawPeer(self.module_pipe, raw_peer) if raw_peer is not None else None
        self.notes: list[str] = []
        self.engine = BuiltinPppEngine(
            self.host_pipe, engine_options(tmp_path, **options), on_event=self.notes.append
        )
        if link_timers:
            # EngineOptions has no knob for the RFC 1661 restart timer and counters (yet):
            # swap in a host link with the same configuration and shorter timers.
            config = replace(self.engine.link.config, **link_timers)
            self.engine.link = PppLink("host", config, now=time.monotonic())

    async def __aenter__(self) -> Self:
        if self.raw is not None:
            self.raw.start()
        else:
            self.module.start()
        await self.engine.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await stop_and_check_clean(self.engine, self.netns, self.tmp_path)
        finally:
            await self.module.stop()
            if self.raw is not None:
                await self.raw.stop()


def host_ipv6(engine: BuiltinPppEngine) -> tuple[IPv6Address, IPv6Address]:
    """(global SLAAC address, link-local) the host must use: its own IID, not the module's."""
    ipv6cp = engine.link.ipv6cp
    assert ipv6cp is not None
    iid = ipv6cp.local_iid
    assert len(iid) == 8 and iid != MODULE_IID
    return (
        IPv6Address(PREFIX.network_address.packed[:8] + iid),
        IPv6Address(b"\xfe\x80" + bytes(6) + iid),
    )


async def check_udp_both_ways(rig: EngineRig, family: int, tag: bytes) -> None:
    """A datagram from a socket in the namespace reaches the module; one back reaches it."""
    loop = asyncio.get_running_loop()
    if family == 4:
        local: IPv4Address | IPv6Address = HOST_V4
        remote: IPv4Address | IPv6Address = INTERNET_V4
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    else:
        local, remote = host_ipv6(rig.engine)[0], INTERNET_V6
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    with sock:
        sock.setblocking(False)
        sock.bind((str(local), 0))
        port = sock.getsockname()[1]
        sock.sendto(b"up " + tag, (str(remote), 7000))
        while True:
            got_family, packet = await asyncio.wait_for(rig.module.packets.get(), 5)
            datagram = ip.parse_udp(packet)
            if datagram is not None and datagram.dst_port == 7000:
                break  # (skip anything else the kernel sends, e.g. MLD reports)
        assert got_family == family
        assert (datagram.src, datagram.src_port, datagram.dst) == (local, port, remote)
        assert datagram.payload == b"up " + tag
        # The kernel installs the local route of a new nodad IPv6 address from a workqueue a
        # moment after netlink acknowledged the address (a packet that arrives earlier is
        # dropped as Ip6InAddrErrors), so the downlink datagram is repeated until it lands.
        down = ip.build_udp(remote, local, 7000, port, b"down " + tag)
        receiving = asyncio.ensure_future(loop.sock_recvfrom(sock, 2048))
        try:
            for _ in range(25):
                rig.module.send_packet(family, down)
                done, _ = await asyncio.wait({receiving}, timeout=0.2)
                if done:
                    break
            data, source = await asyncio.wait_for(receiving, 0.1)
        finally:
            receiving.cancel()
        assert data == b"down " + tag
        assert (IPv4Address(source[0]) if family == 4 else IPv6Address(source[0])) == remote
