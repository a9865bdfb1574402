"""Faults injected into a running simulator through its control socket (larappp.sim.control),
seen on the wire: bytes on its ptys, PPP frames and Router Advertisements a host-side
PppLink receives, port links vanishing and coming back; and a killed simulator leaving
nothing that stops the next one."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
import tty
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from ipaddress import IPv6Network
from pathlib import Path
from typing import Any, TypeVar

import pytest
import serial
from pyroute2 import netns as pyroute2_netns

from larappp.cli import main as larappp_main
from larappp.errors import PortError
from larappp.proto.ipv6 import ndp
from larappp.proto.ppp import events as ev
from larappp.proto.ppp.config import LinkConfig
from larappp.proto.ppp.link import PppLink
from larappp.sim import Simulator
from larappp.sim.control import request
from larappp.sim.faults import FaultError
from larappp.sim.network import OWNER_DIR, SimNetwork
from larappp.sim.scenario import Scenario
from larappp.transport.netns import delete_netns

T = TypeVar("T")

FAST = Scenario(
    operator="europe", grant="IPV4V6", registration_delay=0.05, reboot_time=0.3,
    shutdown_delay=0.02, echo=False, escape_guard=0.2, escape_max_gap=0.1,
)
ROOT = Path(__file__).resolve().parents[2]
NO_CARRIER = b"\r\nNO CARRIER\r\n"


def run(scenario: Callable[[], Awaitable[T]], timeout: float = 60) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(scenario(), timeout)

    return asyncio.run(bounded())


@pytest.fixture
def inet() -> Iterator[str]:
    """A namespace name nobody uses; deleted afterwards whatever happened."""
    name = f"lpfault-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    yield name
    delete_netns(name)
    with_lock = Path(OWNER_DIR) / f"{name}.lock"
    with_lock.unlink(missing_ok=True)


class Pty:
    """The DTE's end of one simulator port: the pty opened raw and non-blocking."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)
        self.buffer = bytearray()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def read_now(self) -> bytes:
        try:
            return os.read(self.fd, 65536)
        except (BlockingIOError, OSError):
            return b""

    async def read_until(self, marker: bytes, timeout: float = 5.0) -> bytes:
        deadline = time.monotonic() + timeout
        while marker not in self.buffer:
            if time.monotonic() > deadline:
                raise AssertionError(f"no {marker!r} in {bytes(self.buffer)!r}")
            data = self.read_now()
            if data:
                self.buffer += data
            else:
                await asyncio.sleep(0.01)
        end = self.buffer.index(marker) + len(marker)
        got = bytes(self.buffer[:end])
        del self.buffer[:end]
        return got

    async def command(self, line: str, final: bytes = b"OK\r\n") -> bytes:
        self.write(line.encode() + b"\r")
        return await self.read_until(final)


async def fault(sim: Simulator, **message: Any) -> dict[str, Any]:
    """One request through the control socket, from another thread (a client process would)."""
    assert sim.control_path is not None
    return await asyncio.to_thread(request, sim.control_path, message)


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def start_sim(tmp_path: Path, network: SimNetwork | None = None) -> Simulator:
    pty_dir = tmp_path / "sim"
    return Simulator(FAST, pty_dir=str(pty_dir), network=network, control_path=str(pty_dir / "control.sock"))


@contextlib.asynccontextmanager
async def registered(tmp_path: Path) -> AsyncIterator[tuple[Simulator, Pty, Pty]]:
    """A started, registered simulator with its control port (0) and a data port (1) open."""
    async with start_sim(tmp_path) as sim:
        await wait_for(lambda: sim.module.registered)
        control, data = Pty(sim.pty_paths[0]), Pty(sim.pty_paths[1])
        try:
            yield sim, control, data
        finally:
            control.close()
            data.close()


# -- AT level: the ptys ---------------------------------------------------------------------------
def test_drop_through_the_socket_puts_no_carrier_on_the_data_port(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with registered(tmp_path) as (sim, _, data):
            assert (await data.command("ATD*99***1#", b"CONNECT\r\n")).endswith(b"\r\nCONNECT\r\n")
            assert await fault(sim, fault="drop", cid=1) == {"ok": True, "port": 1, "cid": 1}
            assert await data.read_until(NO_CARRIER) == NO_CARRIER
            # Command mode again: AT answered, the context still up for a redial.
            assert await data.command("AT") == b"\r\nOK\r\n"
            assert await data.command("ATD*99***1#", b"CONNECT\r\n") == b"\r\nCONNECT\r\n"
            answer = await fault(sim, fault="drop", cid=3)
            assert answer == {"ok": False, "error": "no data call is up on cid 3"}

    run(scenario)


def test_drop_on_rfc2217_turns_dcd_off(tmp_path: Path) -> None:
    def until(ser: serial.SerialBase, marker: bytes) -> bytes:
        data = b""
        deadline = time.monotonic() + 5
        while marker not in data and time.monotonic() < deadline:
            data += ser.read(ser.in_waiting or 1)
        return data

    def dcd_becomes(ser: serial.SerialBase, on: bool) -> bool:
        deadline = time.monotonic() + 5
        while ser.cd != on and time.monotonic() < deadline:
            time.sleep(0.01)
        return ser.cd == on

    async def scenario() -> None:
        control = str(tmp_path / "control.sock")
        async with Simulator(FAST, pty_dir=None, rfc2217_base_port=0, control_path=control) as sim:
            await wait_for(lambda: sim.module.registered)
            ser = await asyncio.to_thread(serial.serial_for_url, sim.rfc2217_urls[1], timeout=0.05)
            try:
                ser.write(b"ATD*99***1#\r")
                assert (await asyncio.to_thread(until, ser, b"CONNECT\r\n")).endswith(b"CONNECT\r\n")
                assert await asyncio.to_thread(dcd_becomes, ser, True)
                assert (await asyncio.to_thread(request, control, {"fault": "drop", "cid": 1}))["ok"]
                assert await asyncio.to_thread(until, ser, NO_CARRIER) == NO_CARRIER
                assert await asyncio.to_thread(dcd_becomes, ser, False)
            finally:
                await asyncio.to_thread(ser.close)

    run(scenario)


def test_deactivation_through_the_socket_sends_cgev_and_no_carrier(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with registered(tmp_path) as (sim, control, data):
            await control.command("AT+CGEREP=1")
            await data.command('AT+CGDCONT=2,"IPV4V6","iot.example"')
            await data.command("ATD*99***2#", b"CONNECT\r\n")
            await control.read_until(b"+CGEV: ME PDN ACT 2\r\n")
            assert (await fault(sim, fault="deactivate", cid=2))["ok"]
            assert await data.read_until(NO_CARRIER) == NO_CARRIER
            urc = b"\r\n+CGEV: NW PDN DEACT 2\r\n"
            assert await control.read_until(urc) == urc
            assert await control.command("AT+CGACT?") == b"\r\n+CGACT: 1,1\r\n+CGACT: 2,0\r\n\r\nOK\r\n"

    run(scenario)


def test_radio_off_sends_cereg_0_then_radio_on_registers_again(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with registered(tmp_path) as (sim, control, data):
            await control.command("AT+CEREG=1")
            await data.command("ATD*99***1#", b"CONNECT\r\n")
            assert (await fault(sim, fault="radio-off"))["ok"]
            assert await control.read_until(b"\r\n+CEREG: 0\r\n") == b"\r\n+CEREG: 0\r\n"
            assert await data.read_until(NO_CARRIER) == NO_CARRIER
            assert (await fault(sim, fault="radio-on"))["ok"]
            await control.read_until(b"\r\n+CEREG: 1\r\n")

    run(scenario)


def test_reboot_and_unplug_take_the_port_links_away_and_bring_them_back(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with start_sim(tmp_path) as sim:
            await wait_for(lambda: sim.module.registered)
            link = sim.pty_paths[1]
            data = Pty(link)
            await data.command("ATD*99***1#", b"CONNECT\r\n")
            # The command line tool, as a user would run it (in a thread: it blocks).
            assert sim.control_path is not None
            argv = ["sim", "fault", "--socket", sim.control_path, "unplug", "--seconds", "1"]
            status = await asyncio.to_thread(larappp_main, argv)
            assert status == 0
            await wait_for(lambda: not os.path.lexists(link))
            data.close()
            unplugged_at = time.monotonic()
            await wait_for(lambda: os.path.lexists(link))
            assert time.monotonic() - unplugged_at > 0.5
            assert sim.module.registered  # the module itself ran on
            data = Pty(link)
            assert await data.command("AT") == b"\r\nOK\r\n"
            data.close()

            assert (await fault(sim, fault="reboot", seconds=0.5))["ok"]
            await wait_for(lambda: not os.path.lexists(link))
            await wait_for(lambda: os.path.lexists(link))
            data = Pty(link)
            try:
                # Back unregistered: searching, then registered again.
                assert (await data.command("AT+CEREG?")).startswith(b"\r\n+CEREG: 0,")
                await wait_for(lambda: sim.module.registered)
            finally:
                data.close()

    run(scenario)


def test_the_same_faults_in_process_without_the_socket(tmp_path: Path) -> None:
    async def scenario() -> None:
        pty_dir = tmp_path / "sim"
        async with Simulator(FAST, pty_dir=str(pty_dir), control_path=None) as sim:
            assert sim.control_path is None and not (pty_dir / "control.sock").exists()
            await wait_for(lambda: sim.module.registered)
            data = Pty(sim.pty_paths[1])
            try:
                await data.command("ATD*99***1#", b"CONNECT\r\n")
                assert sim.control.silence(cid=1, seconds=30) == {"port": 1, "cid": 1}
                assert sim.control.status()["ports"][1] == {"port": 1, "mode": "data", "cid": 1, "silent": True}
                assert sim.control.drop(port=1) == {"port": 1, "cid": 1}
                assert await data.read_until(NO_CARRIER) == NO_CARRIER
                with pytest.raises(FaultError, match="no data call is up"):
                    sim.control.drop()
            finally:
                data.close()

    run(scenario)


def test_bad_requests_are_answered_not_fatal(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with start_sim(tmp_path) as sim:
            assert sim.control_path is not None
            assert (await fault(sim, fault="explode"))["error"].startswith("fault 'explode' is unknown")
            assert "bad request" in (await fault(sim, fault="unplug"))["error"]
            answer = await fault(sim, fault="renegotiate", cid=1, family=5)
            assert answer == {"ok": False, "error": "family 5 is not an IP version: give 4 (IPCP) or 6 (IPV6CP)"}

            def raw() -> bytes:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                    client.connect(str(sim.control_path))
                    client.sendall(b"not json\n[1]\n")
                    time.sleep(0.2)
                    return client.recv(4096)

            replies = (await asyncio.to_thread(raw)).splitlines()
            assert b"bad request" in replies[0]
            status = await fault(sim, fault="status")
            assert status["ok"] and status["state"] == "on" and len(status["ports"]) == 3

    run(scenario)


# -- what a killed simulator leaves -----------------------------------------------------------------
def test_stale_links_and_socket_are_cleaned_and_a_live_dir_is_refused(tmp_path: Path) -> None:
    pty_dir = tmp_path / "sim"
    pty_dir.mkdir()
    (pty_dir / "ttyLARA7").symlink_to("/dev/pts/4242")
    (pty_dir / "ttyLARA0.999.tmp").symlink_to("/dev/pts/4243")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(pty_dir / "control.sock"))
    stale.close()  # the file stays, nobody listens: what a killed simulator leaves

    async def scenario() -> None:
        async with start_sim(tmp_path) as sim:
            assert sorted(p.name for p in pty_dir.iterdir()) == [
                ".lock", "control.sock", "ttyLARA0", "ttyLARA1", "ttyLARA2",
            ]
            assert (await fault(sim, fault="status"))["ok"]
            with pytest.raises(PortError, match="another simulator has its ports in"):
                await Simulator(FAST, pty_dir=str(pty_dir)).start()
        assert not pty_dir.exists()  # it held only a killed simulator's leftovers

    run(scenario)


def test_a_killed_simulator_leaves_nothing_that_stops_the_next(tmp_path: Path, inet: str) -> None:
    argv = [sys.executable, "-m", "larappp.cli", "sim", "--pty-dir", str(tmp_path / "sim"),
            "--rfc2217-port", "none", "--ports", "1", "--registration-delay", "0.05", "--network", inet]

    def start() -> tuple[subprocess.Popen[str], list[str]]:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 30
        while not any(line.startswith("network:") for line in lines) and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
        return proc, lines

    first, lines = start()
    try:
        assert any(line.startswith("network:") for line in lines), lines
        assert f"control: {tmp_path / 'sim' / 'control.sock'}\n" in lines
        first.kill()
        first.wait(timeout=10)
        assert inet in pyroute2_netns.listnetns()  # left behind, with the port link
        assert (tmp_path / "sim" / "ttyLARA0").is_symlink()
        second, lines = start()
        try:
            assert any(line.startswith("network:") for line in lines), lines
            assert request(str(tmp_path / "sim" / "control.sock"), {"fault": "status"})["ok"]
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=20)
        assert second.returncode == 0
        assert inet not in pyroute2_netns.listnetns()
        assert not (tmp_path / "sim").exists()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()


# -- PPP level: a host-side PppLink on the data pty -------------------------------------------------
class HostPpp:
    """larappp's PPP core in host role on one pty of the simulator, pumped by hand."""

    def __init__(self, pty: Pty, config: LinkConfig) -> None:
        self.pty = pty
        self.loop = asyncio.get_running_loop()
        self.link = PppLink("host", config, self.loop.time(), random.Random(5))
        self.events: list[object] = []
        #: bytes that arrived outside HDLC frames (result codes such as NO CARRIER)
        self.raw = bytearray()

    async def run_for(self, seconds: float) -> None:
        """Run the link for `seconds`, whatever happens."""
        with contextlib.suppress(TimeoutError):
            await self.pump(lambda e: False, timeout=seconds)

    async def pump(self, until: Callable[[object], bool], timeout: float = 10.0) -> object:
        """Run the link until an event satisfies `until`; return that event."""
        deadline = time.monotonic() + timeout
        seen = len(self.events)
        while True:
            for event in self.events[seen:]:
                if until(event):
                    return event
            seen = len(self.events)
            if time.monotonic() > deadline:
                raise TimeoutError(f"no such event; got {self.events}")
            now = self.loop.time()
            data = self.pty.read_now()
            if data:
                self.raw += data
                self.link.receive_data(data, now)
            self.link.handle_timer(now)
            out = self.link.data_to_send()
            if out:
                self.pty.write(out)
            while (event := self.link.next_event()) is not None:
                self.events.append(event)
            if not data:
                await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def ppp_call(tmp_path: Path, inet: str, config: LinkConfig) -> AsyncIterator[tuple[SimNetwork, Simulator, HostPpp]]:
    """A simulator with its network in `inet` and a host PppLink up on cid 1 over port 1."""
    network = await SimNetwork.start(inet)
    try:
        async with start_sim(tmp_path, network) as sim:
            await wait_for(lambda: sim.module.registered)
            pty = Pty(sim.pty_paths[1])
            try:
                await pty.command("ATD*99***1#", b"CONNECT\r\n")
                host = HostPpp(pty, config)
                host.link.open(host.loop.time())
                await host.pump(lambda e: host.link.is_open(4) and host.link.is_open(6))
                yield network, sim, host
            finally:
                pty.close()
    finally:
        await network.stop()


def test_a_silent_peer_stops_answering_lcp_echo(tmp_path: Path, inet: str) -> None:
    async def scenario() -> None:
        async with ppp_call(tmp_path, inet, LinkConfig(echo_interval=0.3, echo_failures=3)) as (_, sim, host):
            await host.run_for(1.0)  # echoes answered: the link stays
            assert not any(isinstance(e, ev.EchoTimedOut) for e in host.events)
            started = time.monotonic()
            assert (await fault(sim, fault="silence", cid=1))["ok"]
            await host.pump(lambda e: isinstance(e, ev.EchoTimedOut))
            assert 0.6 < time.monotonic() - started < 5.0
            assert NO_CARRIER not in host.raw  # silence, not a hang-up
            assert sim.module.ports[1].call is not None
            assert sim.module.counters["bytes_lost_silent"] > 0

    run(scenario)


def test_ncp_renegotiation_reaches_the_host_while_lcp_stays_up(tmp_path: Path, inet: str) -> None:
    async def scenario() -> None:
        async with ppp_call(tmp_path, inet, LinkConfig(echo_interval=None)) as (_, sim, host):
            for family, opened in ((6, ev.Ipv6cpOpened), (4, ev.IpcpOpened)):
                mark = len(host.events)
                answer = await fault(sim, fault="renegotiate", cid=1, family=family)
                assert answer == {"ok": True, "port": 1, "cid": 1, "family": family}
                await host.pump(lambda e, o=opened: isinstance(e, o))  # type: ignore[misc]
                new = host.events[mark:]
                name = "IPV6CP" if family == 6 else "IPCP"
                assert any(isinstance(e, ev.NetworkProtocolClosed) and e.protocol == name for e in new)
                assert not any(isinstance(e, (ev.LinkWentDown, ev.LinkTerminated)) for e in new)

    run(scenario)


def _advertisements(host: HostPpp, start: int) -> list[ndp.RouterAdvertisement]:
    found = []
    for event in host.events[start:]:
        if isinstance(event, ev.PacketReceived) and event.family == 6 and len(event.packet) > 40 \
                and event.packet[6] == 58 and event.packet[40] == ndp.ICMPV6_ROUTER_ADVERTISEMENT:
            found.append(ndp.decode_router_advertisement(event.packet))
    return found


async def next_advertisement(
    host: HostPpp, start: int, match: Callable[[ndp.RouterAdvertisement], bool]
) -> ndp.RouterAdvertisement:
    """The first RA the host received since event `start` that `match`es (periodic ones skipped)."""
    await host.pump(lambda e: any(match(ra) for ra in _advertisements(host, start)))
    return next(ra for ra in _advertisements(host, start) if match(ra))


def test_ra_faults_renumber_and_withdraw(tmp_path: Path, inet: str) -> None:
    async def scenario() -> None:
        async with ppp_call(tmp_path, inet, LinkConfig(echo_interval=None)) as (network, sim, host):
            old = network.plan.ipv6_prefix(1)
            new = IPv6Network("2001:db8:0:99::/64")
            mark = len(host.events)
            answer = await fault(sim, fault="ra", cid=1, prefix=str(new))
            assert answer == {"ok": True, "cid": 1, "prefix": str(new)}
            ra = await next_advertisement(host, mark, lambda ra: any(p.prefix == new for p in ra.prefixes))
            by_prefix = {p.prefix: p for p in ra.prefixes}
            assert by_prefix[new].valid_lifetime > 0 and by_prefix[new].preferred_lifetime > 0
            assert (by_prefix[old].valid_lifetime, by_prefix[old].preferred_lifetime) == (0, 0)
            assert ra.router_lifetime > 0
            assert network.session(1) is not None and network.session(1).ipv6_prefix == new  # type: ignore[union-attr]

            mark = len(host.events)
            assert (await fault(sim, fault="ra", cid=1, lifetime=0))["ok"]
            ra = await next_advertisement(host, mark, lambda ra: ra.router_lifetime == 0)
            assert [(p.prefix, p.valid_lifetime, p.preferred_lifetime) for p in ra.prefixes] == [(new, 0, 0)]

            answer = await fault(sim, fault="ra", cid=1, prefix="2001:db9::/64")
            assert not answer["ok"] and "give a /64 inside 2001:db8::/48" in answer["error"]

    run(scenario)
