"""The built-in PPP engine (host role, over a TUN) against a module-role PppLink, on bad input.

Each test runs its asyncio loop in a thread switched into a throw-away network namespace
(the engine creates its TUN and addresses in the *current* namespace), with the module's
side played in the same loop: a module-role PppLink (or a scripted raw peer) pumped over
an in-memory pipe pair, plus a RouterAdvertiser answering Router Solicitations. Every
test asserts what the engine reports (state, reason, counters), what the kernel holds
(`ip -j addr` / `ip -j route` in the namespace), and that stop() leaves no task,
interface, address, route or DNS fragment behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address, IPv6Network
from pathlib import Path
from typing import Any

import pytest

from larappp.engine.ppp_builtin import BuiltinPppEngine, EngineOptions
from larappp.errors import PortClosed, PPPError
from larappp.proto import ip
from larappp.proto.hdlc import HdlcDecoder, HdlcEncoder, append_fcs
from larappp.proto.ipv6.ndp import ICMPV6_ROUTER_SOLICITATION
from larappp.proto.ipv6.slaac import RouterAdvertiser
from larappp.proto.ppp import events as ev
from larappp.proto.ppp import frame
from larappp.proto.ppp.fsm import control_packet, parse_control_packet
from larappp.proto.ppp.link import LinkConfig, PppLink
from larappp.transport.memory import MemoryPipe, pipe_pair
from larappp.transport.netns import call_in_netns, create_netns, delete_netns

pytestmark = [
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


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh network namespace, deleted afterwards even when the test fails."""
    name = f"lpeng-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    create_netns(name)
    try:
        yield name
    finally:
        delete_netns(name)


def run_scenario(netns: str, scenario: Callable[[], Awaitable[None]]) -> None:
    """Run `scenario()` in an asyncio loop inside `netns`, bounded by SCENARIO_TIMEOUT."""

    async def bounded() -> None:
        await asyncio.wait_for(scenario(), SCENARIO_TIMEOUT)

    call_in_netns(netns, asyncio.run, bounded())


def ip_json(netns: str, *args: str) -> list[dict[str, Any]]:
    """`ip -j <args>` in the namespace; [] when the device does not exist."""
    done = subprocess.run(
        ["ip", "-n", netns, "-j", *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        assert "does not exist" in done.stderr or "Cannot find device" in done.stderr, done.stderr
        return []
    return json.loads(done.stdout or "[]")  # type: ignore[no-any-return]


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
    ) -> None:
        self.pipe = pipe
        self.link = PppLink("module", config, now=time.monotonic())
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
        if data:
            self._out.put_nowait(data)


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


class Session:
    """An engine and the module side it talks to, over one memory pipe pair."""

    def __init__(
        self,
        netns: str,
        tmp_path: Path,
        module_config: LinkConfig = MODULE_CONFIG,
        *,
        answer_rs: bool = True,
        **options: Any,
    ) -> None:
        self.netns = netns
        self.tmp_path = tmp_path
        self.host_pipe, self.module_pipe = pipe_pair()
        self.module = ModuleSide(self.module_pipe, module_config, answer_rs=answer_rs)
        self.notes: list[str] = []
        self.engine = BuiltinPppEngine(
            self.host_pipe, engine_options(tmp_path, **options), on_event=self.notes.append
        )

    async def __aenter__(self) -> Session:
        self.module.start()
        await self.engine.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await stop_and_check_clean(self.engine, self.netns, self.tmp_path)
        finally:
            await self.module.stop()


# -- happy path ----------------------------------------------------------------------------


def test_ipv4_and_ipv6_up_then_stop_leaves_nothing(netns: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Session(netns, tmp_path) as session:
            engine, module = session.engine, session.module
            await engine.wait_up(10)
            assert engine.families_up == {4, 6}
            assert not engine.terminated.is_set() and engine.reason == ""
            global_v6, link_local = host_ipv6(engine)
            assert addresses(netns) == {
                (str(HOST_V4), 32, str(MODULE_V4)),
                (str(link_local), 64, None),
                (str(global_v6), 64, None),
            }
            (v4_default,) = default_routes(netns, 4)
            assert v4_default["dev"] == IFNAME
            (v6_default,) = default_routes(netns, 6)
            assert v6_default["dev"] == IFNAME
            assert v6_default["gateway"] == str(IPv6Address(b"\xfe\x80" + bytes(6) + MODULE_IID))
            assert v6_default.get("metrics", [{}])[0].get("mtu") == RA_MTU
            fragment = (tmp_path / "resolv.conf.d" / f"{IFNAME}.conf").read_text()
            assert f"nameserver {DNS_V4}" in fragment and f"nameserver {DNS_V6}" in fragment
            status = engine.status()
            assert status["ipv4"] == str(HOST_V4) and status["ipv6_global"] == [str(global_v6)]
            assert status["phase"] == "Network" and status["bad_frames"] == 0
            assert module.solicitations >= 1
            assert len(engine_tasks()) == 5

    run_scenario(netns, scenario)


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


async def check_udp_both_ways(session: Session, family: int, tag: bytes) -> None:
    """A datagram from a socket in the namespace reaches the module; one back reaches it."""
    loop = asyncio.get_running_loop()
    if family == 4:
        local: IPv4Address | IPv6Address = HOST_V4
        remote: IPv4Address | IPv6Address = INTERNET_V4
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    else:
        local, remote = host_ipv6(session.engine)[0], INTERNET_V6
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    with sock:
        sock.setblocking(False)
        sock.bind((str(local), 0))
        port = sock.getsockname()[1]
        sock.sendto(b"up " + tag, (str(remote), 7000))
        while True:
            got_family, packet = await asyncio.wait_for(session.module.packets.get(), 5)
            datagram = ip.parse_udp(packet)
            if datagram is not None and datagram.dst_port == 7000:
                break  # (skip anything else the kernel sends, e.g. MLD reports)
        assert got_family == family
        assert (datagram.src, datagram.src_port, datagram.dst) == (local, port, remote)
        assert datagram.payload == b"up " + tag
        session.module.send_packet(family, ip.build_udp(remote, local, 7000, port, b"down " + tag))
        data, source = await asyncio.wait_for(loop.sock_recvfrom(sock, 2048), 5)
        assert data == b"down " + tag
        assert (IPv4Address(source[0]) if family == 4 else IPv6Address(source[0])) == remote


# -- bad frames on a link that is up ----------------------------------------------------


def test_bad_frames_are_counted_and_packets_still_flow(netns: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Session(netns, tmp_path) as session:
            engine, module = session.engine, session.module
            await engine.wait_up(10)
            await check_udp_both_ways(session, 4, b"before")
            await check_udp_both_ways(session, 6, b"before")
            decoder = engine.link.decoder
            before = (decoder.bad_fcs, decoder.too_short, decoder.too_long, decoder.aborted)
            encoder = HdlcEncoder(0)
            packet = ip.build_udp(INTERNET_V4, HOST_V4, 7000, 9, b"x" * 200)
            good = encoder.encode(frame.build_frame(frame.IPV4, packet))
            bad_fcs = good[:-3] + bytes((good[-3] ^ 0x01,)) + good[-2:]
            # a frame cut short: the next flag arrives in the middle of it
            truncated = good[: len(good) // 2]
            module.inject(truncated)
            module.inject(bad_fcs)
            module.inject(b"\x7e\x01\x02\x7e")  # shorter than any frame
            module.inject(b"\x7eline noise between frames\x13\x00\xff\x7e")
            module.inject(b"\x7e\xff\x03\x00\x21\x45\x7d\x7e")  # aborted (7D 7E)
            module.inject(b"\x7e" + bytes(range(0x80, 0xFD)) * 40 + b"\x7e")  # far too long
            # a good FCS around a malformed protocol field
            module.inject(b"\x7e" + append_fcs(b"\xff\x03\x00\x00\x01\x02").replace(b"\x7e", b"") + b"\x7e")
            # a protocol the host does not run: Protocol-Reject, the link stays
            ccp = control_packet(1, 1, b"\x12\x06\x00\x00\x00\x01")
            module.inject(encoder.encode(frame.build_frame(frame.CCP, ccp)))
            await check_udp_both_ways(session, 4, b"after")
            await check_udp_both_ways(session, 6, b"after")
            bad_fcs_count, too_short, too_long, aborted = (
                decoder.bad_fcs - before[0],
                decoder.too_short - before[1],
                decoder.too_long - before[2],
                decoder.aborted - before[3],
            )
            assert bad_fcs_count >= 3  # truncated, bad FCS, line noise
            assert too_short >= 1 and too_long >= 1 and aborted >= 1
            assert engine.link.stats.bad_frames == 1
            assert engine.link.stats.protocol_rejects_sent == 1
            assert engine.status()["bad_frames"] == 1
            assert not engine.terminated.is_set()
            assert engine.families_up == {4, 6}
            assert len(engine_tasks()) == 5

    run_scenario(netns, scenario)


def test_ip_frames_the_kernel_refuses_do_not_stop_the_pump(netns: str, tmp_path: Path) -> None:
    """Frames with a good FCS whose payload is no IP packet: the TUN write fails, the pump lives."""

    async def scenario() -> None:
        async with Session(netns, tmp_path) as session:
            engine, module = session.engine, session.module
            await engine.wait_up(10)
            encoder = HdlcEncoder(0)
            for protocol, payload in (
                (frame.IPV4, b"\x00" * 40),  # version nibble 0
                (frame.IPV6, b"\x45" + bytes(59)),  # an IPv4 header on the IPv6 protocol
                (frame.IPV4, b""),  # nothing at all
                (frame.IPV6, b"\x60"),  # one octet
            ):
                module.inject(encoder.encode(frame.build_frame(protocol, payload)))
            await check_udp_both_ways(session, 4, b"after")
            await check_udp_both_ways(session, 6, b"after")
            assert not engine.terminated.is_set()
            assert len(engine_tasks()) == 5
            # version nibble 0 and the empty packet are refused (EINVAL); the TUN picks the
            # family from the version nibble and passes the others up for IP to drop
            assert engine.tun_write_errors >= 2
            assert engine.status()["tun_write_errors"] == engine.tun_write_errors

    run_scenario(netns, scenario)
