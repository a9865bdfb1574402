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


# -- happy path ----------------------------------------------------------------------------


def test_ipv4_and_ipv6_up_then_stop_leaves_nothing(netns: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        host_pipe, module_pipe = pipe_pair()
        module = ModuleSide(module_pipe)
        notes: list[str] = []
        engine = BuiltinPppEngine(host_pipe, engine_options(tmp_path), on_event=notes.append)
        module.start()
        await engine.start()
        try:
            await engine.wait_up(10)
            assert engine.families_up == {4, 6}
            assert not engine.terminated.is_set() and engine.reason == ""
            ipv6cp = engine.link.ipv6cp
            assert ipv6cp is not None
            host_iid = ipv6cp.local_iid
            assert host_iid != MODULE_IID
            global_v6 = IPv6Address(PREFIX.network_address.packed[:8] + host_iid)
            link_local = IPv6Address(b"\xfe\x80" + bytes(6) + host_iid)
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
        finally:
            await stop_and_check_clean(engine, netns, tmp_path)
            await module.stop()

    run_scenario(netns, scenario)
