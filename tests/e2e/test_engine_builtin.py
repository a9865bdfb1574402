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
import contextlib
import json
import os
import random
import socket
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address, IPv6Network
from pathlib import Path
from typing import Any, Self

import pytest

from larappp.engine.ppp_builtin import BuiltinPppEngine, EngineOptions
from larappp.errors import NetworkSetupError, PortClosed, PPPError
from larappp.proto import ip
from larappp.proto.hdlc import HdlcDecoder, HdlcEncoder, append_fcs
from larappp.proto.ipv6.ndp import (
    ICMPV6_ROUTER_SOLICITATION,
    PrefixInformation,
    RecursiveDnsServers,
    RouterAdvertisement,
    build_router_advertisement,
)
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


class Session:
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
        # The kernel installs the local route of a new nodad IPv6 address from a workqueue a
        # moment after netlink acknowledged the address (a packet that arrives earlier is
        # dropped as Ip6InAddrErrors), so the downlink datagram is repeated until it lands.
        down = ip.build_udp(remote, local, 7000, port, b"down " + tag)
        receiving = asyncio.ensure_future(loop.sock_recvfrom(sock, 2048))
        try:
            for _ in range(25):
                session.module.send_packet(family, down)
                done, _ = await asyncio.wait({receiving}, timeout=0.2)
                if done:
                    break
            data, source = await asyncio.wait_for(receiving, 0.1)
        finally:
            receiving.cancel()
        assert data == b"down " + tag
        assert (IPv4Address(source[0]) if family == 4 else IPv6Address(source[0])) == remote



def test_an_interface_name_in_use_fails_clearly_and_harms_nothing(
    netns: str, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with Session(netns, tmp_path) as session:
            await session.engine.wait_up(10)
            other_host, _other_module = pipe_pair()
            second = BuiltinPppEngine(other_host, engine_options(tmp_path))
            with pytest.raises(NetworkSetupError) as caught:
                await second.start()
            assert str(caught.value) == (
                f"interface '{IFNAME}' already exists and is in use: choose another name"
            )
            assert await second.stop() == []
            assert other_host.owner is None
            # the first session is untouched: its addresses, DNS and traffic
            assert (str(HOST_V4), 32, str(MODULE_V4)) in addresses(netns)
            assert (tmp_path / "resolv.conf.d" / f"{IFNAME}.conf").exists()
            await check_udp_both_ways(session, 4, b"still mine")

    run_scenario(netns, scenario)

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


def test_a_flood_of_line_noise_is_counted_and_the_link_stays(netns: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Session(netns, tmp_path) as session:
            engine, module = session.engine, session.module
            await engine.wait_up(10)
            rng = random.Random(7)
            noise = bytearray()
            for _ in range(2000):  # 2000 flag-delimited pieces of random octets
                noise += b"\x7e" + rng.randbytes(rng.randint(1, 200)).replace(b"\x7e", b"\x7d")
            noise += b"\x7e"
            assert HdlcDecoder(0).receive_data(bytes(noise)) == []  # not one good frame in it
            decoder = engine.link.decoder
            seen = decoder.bad_fcs + decoder.too_short + decoder.aborted
            started = time.monotonic()
            for offset in range(0, len(noise), 4096):
                module.inject(bytes(noise[offset : offset + 4096]))
            await check_udp_both_ways(session, 4, b"after noise")
            assert time.monotonic() - started < 3
            assert decoder.bad_fcs + decoder.too_short + decoder.aborted - seen >= 1900
            assert not engine.terminated.is_set() and engine.families_up == {4, 6}

    run_scenario(netns, scenario)


def test_a_pump_that_fails_ends_the_session_with_a_reason(netns: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Session(netns, tmp_path) as session:
            engine, module = session.engine, session.module
            await engine.wait_up(10)

            def broken(data: bytes, now: float | None = None) -> None:
                raise RuntimeError("decoder exploded")

            engine.link.receive_data = broken  # type: ignore[method-assign]
            module.inject(b"\x7e\x01\x02\x03\x04\x7e")
            await asyncio.wait_for(engine.terminated.wait(), 2)
            assert engine.reason == (
                f"larappp's ppp {IFNAME} serial-in pump failed: RuntimeError('decoder exploded')"
            )
            assert len(engine_tasks()) == 4  # the others run until stop()

    run_scenario(netns, scenario)


# -- negotiation that goes wrong ---------------------------------------------------------


def storm_options(rng: random.Random, count: int) -> bytes:
    """`count` options LCP does not know, and a few malformed ones in the middle."""
    unknown = [b"\x00\x02", b"\x04\x02", b"\x06\x02", b"\x09\x03\x00", b"\x0d\x02",
               b"\x11\x04\x00\x00", b"\x17\x02", b"\x4d\x02", b"\x80\x02", b"\xff\x02"]
    options = [rng.choice(unknown) for _ in range(count)]
    options[count // 2 : count // 2] = [b"\x01\x03\x05", b"\x05\x04\x00\x00"]
    return b"".join(options)


def test_option_storm_during_negotiation_still_opens(netns: str, tmp_path: Path) -> None:
    """Hundreds of Configure-Requests full of unknown options before and while the module's
    own request comes: each is rejected, the link opens when the storm is over."""

    async def scenario() -> None:
        rng = random.Random(3)
        # A storm request that lands after the host acknowledged the module's request
        # takes the host back to Req-Sent (RFC 1661 RCR- in Ack-Sent): the restart timer
        # renegotiates, so the module's timers must not run out before the host's.
        async with Session(netns, tmp_path, link_timers={"restart_interval": 0.2}) as session:
            engine, module = session.engine, session.module
            encoder = HdlcEncoder()
            storm = []
            for identifier in range(300):
                options = storm_options(rng, 300)
                assert len(options) > 600
                request = control_packet(1, identifier & 0xFF, options)
                storm.append(encoder.encode(frame.build_frame(frame.LCP, request)))
            started = time.monotonic()
            for index, frame_octets in enumerate(storm):
                module.inject(frame_octets)
                if index % 50 == 0:
                    await asyncio.sleep(0)  # interleave with the genuine negotiation
            await engine.wait_up(10)
            assert time.monotonic() - started < 8
            assert engine.families_up == {4, 6}
            # every storm request got its Configure-Reject (4), none was acknowledged blindly
            assert module.sent(frame.LCP, 4) >= 300
            assert engine.link.decoder.bad_fcs == 0
            await check_udp_both_ways(session, 4, b"after the storm")

    run_scenario(netns, scenario)


SHORT_TIMERS = {"restart_interval": 0.1, "max_configure": 4}


def test_a_silent_peer_ends_in_max_configure(netns: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Session(
            netns, tmp_path, raw_peer=lambda protocol, info: [], link_timers=SHORT_TIMERS
        ) as session:
            engine = session.engine
            started = time.monotonic()
            with pytest.raises(PPPError) as caught:
                await engine.wait_up(10)
            assert time.monotonic() - started < 3
            assert str(caught.value) == (
                f"PPP on {IFNAME} ended before it was up: LCP: the peer did not agree to any "
                "of 4 Configure-Requests (it was silent or kept refusing)"
            )
            assert engine.terminated.is_set()
            assert session.raw is not None and len(session.raw.requests(frame.LCP)) == 4

    run_scenario(netns, scenario)


def test_a_peer_that_naks_every_request_ends_in_max_configure(netns: str, tmp_path: Path) -> None:
    suggestions = iter(range(600, 1500))

    def nak_everything(protocol: int, info: bytes) -> list[tuple[int, bytes]]:
        parsed = parse_control_packet(info)
        if protocol != frame.LCP or parsed is None or parsed[0] != 1:
            return []
        mru = next(suggestions)  # each time yet another MRU
        return [(frame.LCP, control_packet(3, parsed[1], b"\x01\x04" + mru.to_bytes(2, "big")))]

    async def scenario() -> None:
        async with Session(
            netns, tmp_path, raw_peer=nak_everything, link_timers=SHORT_TIMERS
        ) as session:
            started = time.monotonic()
            with pytest.raises(PPPError, match="did not agree to any of 4 Configure-Requests"):
                await session.engine.wait_up(10)
            assert time.monotonic() - started < 5
            assert session.raw is not None
            # Max-Failure (5) Naks are followed, then the option is dropped and the
            # unanswered retransmissions run out
            assert 5 <= len(session.raw.requests(frame.LCP)) <= 12

    run_scenario(netns, scenario)


def test_a_peer_that_storms_instead_of_answering_ends_in_max_configure(
    netns: str, tmp_path: Path
) -> None:
    rng = random.Random(5)

    def storm(protocol: int, info: bytes) -> list[tuple[int, bytes]]:
        parsed = parse_control_packet(info)
        if protocol != frame.LCP or parsed is None or parsed[0] != 1:
            return []
        # never an answer, only more requests full of options nobody knows
        return [
            (frame.LCP, control_packet(1, rng.randrange(256), storm_options(rng, 400)))
            for _ in range(20)
        ]

    async def scenario() -> None:
        async with Session(netns, tmp_path, raw_peer=storm, link_timers=SHORT_TIMERS) as session:
            started = time.monotonic()
            with pytest.raises(PPPError, match="did not agree to any of 4 Configure-Requests"):
                await session.engine.wait_up(10)
            assert time.monotonic() - started < 5
            assert session.raw is not None
            rejects = [info for protocol, info in session.raw.received if info[:1] == b"\x04"]
            assert len(rejects) >= 60  # 20 per request of ours, each rejected

    run_scenario(netns, scenario)


def test_an_ncp_that_never_opens_is_a_clear_error(netns: str, tmp_path: Path) -> None:
    """LCP opens, but the module never answers IPCP: an IPv4-only session fails."""

    async def scenario() -> None:
        async with Session(
            netns,
            tmp_path,
            drop_to_host=lambda protocol: protocol == frame.IPCP,
            link_timers=SHORT_TIMERS,
            families=(4,),
        ) as session:
            engine = session.engine
            with pytest.raises(PPPError) as caught:
                await engine.wait_up(10)
            # the NCP's own reason, not only "no family left"
            assert str(caught.value) == (
                f"PPP on {IFNAME} did not open IPCP (IPCP: "
                "the peer did not agree to any of 4 Configure-Requests (it was silent or kept "
                "refusing)): check the APN and the PDP type"
            )
            assert engine.families_up == set()
            assert addresses(netns) == set()

    run_scenario(netns, scenario)


def test_wait_up_times_out_with_what_is_missing(netns: str, tmp_path: Path) -> None:
    """A peer that answers nothing, with the default (long) timers: wait_up's own timeout."""

    async def scenario() -> None:
        async with Session(netns, tmp_path, raw_peer=lambda protocol, info: []) as session:
            with pytest.raises(PPPError) as caught:
                await session.engine.wait_up(0.5)
            assert str(caught.value) == (
                f"PPP on {IFNAME} was not up within 0.5 s (IPv4, IPv6 not usable yet, LCP "
                "phase Establish): check the APN and PDP type, or raise the timeout"
            )
            assert not session.engine.terminated.is_set()

    run_scenario(netns, scenario)


# -- an IPv4-only module, an RA that never comes ---------------------------------------------

IPV4_ONLY_MODULE = replace(MODULE_CONFIG, ipv6=False, ipv6_interface_id=None)


def test_ipv6cp_rejected_by_an_ipv4_only_module_comes_up_with_ipv4(
    netns: str, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with Session(netns, tmp_path, IPV4_ONLY_MODULE) as session:
            engine, module = session.engine, session.module
            await engine.wait_up(10)
            assert engine.families_up == {4} and engine.families_expected == {4}
            assert module.link.stats.protocol_rejects_sent == 1
            assert module.sent(frame.IPV6CP, 1) == 1  # asked once, then never again
            assert any("ProtocolRejected" in note and "IPV6CP" in note for note in session.notes)
            assert engine.slaac is None
            assert addresses(netns) == {(str(HOST_V4), 32, str(MODULE_V4))}  # no fe80::
            assert default_routes(netns, 6) == []
            fragment = (tmp_path / "resolv.conf.d" / f"{IFNAME}.conf").read_text()
            assert f"nameserver {DNS_V4}" in fragment and "2001:" not in fragment
            await check_udp_both_ways(session, 4, b"v4 only")
            assert not engine.terminated.is_set()

    run_scenario(netns, scenario)


def test_ipv6_only_session_against_an_ipv4_only_module_fails_clearly(
    netns: str, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with Session(netns, tmp_path, IPV4_ONLY_MODULE, families=(6,)) as session:
            engine, module = session.engine, session.module
            started = time.monotonic()
            with pytest.raises(PPPError) as caught:
                await engine.wait_up(10)
            assert time.monotonic() - started < 3
            assert str(caught.value) == (
                f"PPP on {IFNAME}: the network offers none of the configured IP families "
                "(the peer Protocol-Rejected IPV6CP): check the APN and the PDP type"
            )
            assert engine.terminated.is_set() and engine.reason == str(caught.value)
            assert module.link.stats.protocol_rejects_sent == 1
            # the host's link has no network protocol left and ends itself
            await asyncio.wait_for(module.terminated.wait(), 3)
            assert module.sent(frame.LCP, 5) >= 1  # Terminate-Request from the host
            assert addresses(netns) == set()

    run_scenario(netns, scenario)


def test_router_advertisement_that_never_comes(netns: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Session(netns, tmp_path, answer_rs=False, rs_interval=0.2) as session:
            engine, module = session.engine, session.module
            started = time.monotonic()
            with pytest.raises(PPPError) as caught:
                await engine.wait_up(10)
            # up to 1 s random delay (RFC 4861), 3 RS 0.2 s apart, 0.2 s more for the RA
            assert time.monotonic() - started < 4
            assert str(caught.value) == (
                f"no Router Advertisement on {IFNAME} (no Router Advertisement after 3 Router "
                "Solicitations): the network gave no IPv6 prefix; check the PDP type, or use "
                'pdp_type = "IP"'
            )
            assert engine.reason == str(caught.value)
            assert module.solicitations == 3
            assert engine.families_up == {4}
            ipv6cp = engine.link.ipv6cp
            assert ipv6cp is not None
            link_local = IPv6Address(b"\xfe\x80" + bytes(6) + ipv6cp.local_iid)
            assert addresses(netns) == {
                (str(HOST_V4), 32, str(MODULE_V4)),
                (str(link_local), 64, None),
            }

    run_scenario(netns, scenario)



def ra_packet(**fields: Any) -> bytes:
    """A Router Advertisement from the module's link-local address."""
    advertisement = RouterAdvertisement(source=ROUTER_LL, **fields)
    return build_router_advertisement(advertisement)


def test_odd_router_advertisements_keep_the_session(netns: str, tmp_path: Path) -> None:
    """RAs that are malformed, out of range or short-lived: ignored or followed, never fatal."""
    second = IPv6Network("2001:db8:64:2::/64")

    async def scenario() -> None:
        async with Session(netns, tmp_path) as session:
            engine, module = session.engine, session.module
            await engine.wait_up(10)
            global_v6, link_local = host_ipv6(engine)
            iid = global_v6.packed[8:]
            prefix = PrefixInformation(PREFIX)
            header_only = ra_packet()[:44]  # cut inside the RA header: checksum and length off
            for packet in (
                header_only,
                ra_packet(mtu=500, prefixes=(prefix,)),  # below the IPv6 minimum
                ra_packet(mtu=9000, prefixes=(prefix,)),  # above the PPP link's MTU
                ra_packet(prefixes=(PrefixInformation(IPv6Network("2001:db8:99::/48")),)),
                ra_packet(prefixes=(PrefixInformation(IPv6Network("2001:db8:98::/64"), True,
                                                      True, 100, 200),)),  # preferred > valid
                ip.build_icmpv6(  # hop limit 64: not from the link (RFC 4861 §6.1.2)
                    ROUTER_LL, "ff02::1", 134, 0, ra_packet(prefixes=(prefix,))[44:], hop_limit=64
                ),
                ra_packet(dns=(RecursiveDnsServers((IPv6Address("2001:db8:53::99"),), 0),)),
                ra_packet(mtu=1300),  # a legitimate change
                ra_packet(prefixes=(PrefixInformation(second, True, True, 1, 1),)),  # short-lived
            ):
                module.send_packet(6, packet)
            second_address = IPv6Address(second.network_address.packed[:8] + iid)
            # the short-lived prefix gives an address that goes away on its own
            deadline = time.monotonic() + 6
            seen = False
            while time.monotonic() < deadline:
                present = [entry[0] for entry in addresses(netns)]
                seen = seen or str(second_address) in present
                listed = engine.status()["ipv6_global"]
                assert isinstance(listed, list)
                if seen and str(second_address) not in present + listed:
                    break  # the kernel and SLAAC both let it expire
                await asyncio.sleep(0.1)
            assert seen, f"the address of the second prefix never appeared: {engine.reason}"
            assert addresses(netns) == {
                (str(HOST_V4), 32, str(MODULE_V4)),
                (str(link_local), 64, None),
                (str(global_v6), 64, None),
            }
            ipv6_mtu = Path(f"/proc/sys/net/ipv6/conf/{IFNAME}/mtu").read_text()
            assert int(ipv6_mtu) == 1300
            fragment = (tmp_path / "resolv.conf.d" / f"{IFNAME}.conf").read_text()
            assert f"nameserver {DNS_V6}" in fragment and "2001:db8:53::99" not in fragment
            assert not engine.terminated.is_set() and engine.families_up == {4, 6}
            assert engine.status()["ipv6_global"] == [str(global_v6)]
            await check_udp_both_ways(session, 6, b"after odd RAs")

    run_scenario(netns, scenario)

# -- the end of the link -----------------------------------------------------------------


def test_port_vanishing_while_up(netns: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Session(netns, tmp_path) as session:
            engine = session.engine
            await engine.wait_up(10)
            await session.module_pipe.close()
            await asyncio.wait_for(engine.terminated.wait(), 2)
            assert engine.reason == "the module's port closed (host: the other end closed)"
            # the pumps that do not touch the port keep running until stop()
            assert {t.get_name() for t in engine_tasks()} >= {f"ppp {IFNAME} tun-in"}
            await engine.wait_up(0.1)  # returns at once: the session had been up

    run_scenario(netns, scenario)


def test_port_vanishing_during_negotiation(netns: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Session(netns, tmp_path, raw_peer=lambda protocol, info: []) as session:
            await session.module_pipe.close()
            with pytest.raises(PPPError) as caught:
                await session.engine.wait_up(5)
            assert str(caught.value) == (
                f"PPP on {IFNAME} ended before it was up: the module's port closed "
                "(host: the other end closed)"
            )

    run_scenario(netns, scenario)

def test_terminate_request_from_the_module(netns: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        # RFC 1661: after a Terminate-Request the host waits one restart interval
        # (Stopping, zrc) before the link is finished; 3 s by default, 0.3 s here
        async with Session(netns, tmp_path, link_timers={"restart_interval": 0.3}) as session:
            engine, module = session.engine, session.module
            await engine.wait_up(10)
            module.close("network detached")
            await asyncio.wait_for(engine.terminated.wait(), 3)
            assert engine.reason == "LCP: the peer sent Terminate-Request (network detached)"
            assert engine.link.terminated
            await asyncio.wait_for(module.terminated.wait(), 3)
            assert module.sent(frame.LCP, 6) == 1  # the host's Terminate-Ack
            await engine.terminate(timeout=1)  # already over: returns at once

    run_scenario(netns, scenario)


def test_terminate_from_the_host(netns: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Session(netns, tmp_path) as session:
            engine, module = session.engine, session.module
            await engine.wait_up(10)
            started = time.monotonic()
            await engine.terminate(timeout=3)
            assert time.monotonic() - started < 2
            assert engine.terminated.is_set() and engine.reason == "larappp down"
            await asyncio.wait_for(module.terminated.wait(), 1)
            assert module.sent(frame.LCP, 5) == 1
            terminated = module.first(ev.LinkTerminated)
            assert terminated.reason == "LCP: the peer sent Terminate-Request (larappp down)"

    run_scenario(netns, scenario)


def test_terminate_from_the_host_when_the_module_is_silent(netns: str, tmp_path: Path) -> None:
    """The module stops answering: terminate() still returns, after Max-Terminate."""

    async def scenario() -> None:
        async with Session(netns, tmp_path, link_timers={"restart_interval": 0.2}) as session:
            engine, module = session.engine, session.module
            await engine.wait_up(10)
            await module.stop()
            started = time.monotonic()
            await engine.terminate(timeout=3)
            assert time.monotonic() - started < 2
            assert engine.terminated.is_set()
            assert engine.reason == "larappp down"

    run_scenario(netns, scenario)
