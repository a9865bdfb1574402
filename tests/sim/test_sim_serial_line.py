"""The simulator's serial line and CTS flow control over RFC 2217, against larappp's own
Rfc2217Pipe: bytes go at baud/10 per second, and a module whose uplink buffer fills turns
CTS off, so a DTE honouring RTS/CTS loses nothing in the module while one that does not
overflows it (app note §4)."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from larappp.sim import Simulator
from larappp.sim.data import DataCall, DataSession, HangupCallback, SendCallback
from larappp.sim.scenario import Scenario
from larappp.transport.rfc2217 import Rfc2217Pipe
from tests.aio import run_bounded

FAST = Scenario(operator="europe", registration_delay=0.05, echo=False)


class RadioUplinkSession(DataSession):
    """A data call without PPP: what the DTE sends goes over the module's radio uplink in
    packets of up to 1000 bytes, as the module-side PPP session hands it IP packets."""

    def __init__(self, sim: Simulator, call: DataCall, send: SendCallback, hangup: HangupCallback) -> None:
        super().__init__(call, send, hangup)
        self.sim = sim
        self.carried = 0

    def on_data(self, data: bytes) -> None:
        assert self.sim.driver is not None
        for start in range(0, len(data), 1000):
            size = min(1000, len(data) - start)
            self.sim.module.radio.uplink.offer(size, self._sent(size), self.sim.driver.now)

    def _sent(self, size: int):  # type: ignore[no-untyped-def]
        def sent() -> None:
            self.carried += size
        return sent

    def close(self, reason: str) -> None:
        pass

    def get_timer(self) -> float | None:
        return self.sim.module.radio.get_timer()

    def handle_timer(self, now: float) -> None:
        self.sim.module.radio.handle_timer(now)


async def start_sim(scenario: Scenario) -> tuple[Simulator, list[RadioUplinkSession]]:
    sessions: list[RadioUplinkSession] = []

    def factory(call: DataCall, send: SendCallback, hangup: HangupCallback) -> DataSession:
        sessions.append(RadioUplinkSession(sim, call, send, hangup))
        return sessions[-1]

    sim = Simulator(scenario, ports=1, pty_dir=None, rfc2217_base_port=0, session_factory=factory, control_path=None)
    await sim.start()
    return sim, sessions


async def read_until(pipe: Rfc2217Pipe, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        data += await pipe.read()
    return data


async def dial(sim: Simulator, pipe: Rfc2217Pipe) -> None:
    while not sim.module.registered:
        await asyncio.sleep(0.02)
    await pipe.write(b'AT+CGDCONT=2,"IPV4V6","apn2"\r')
    await read_until(pipe, b"OK\r\n")
    await pipe.write(b"ATD*99***2#\r")
    await read_until(pipe, b"CONNECT\r\n")


def test_the_line_carries_a_tenth_of_the_baud_rate_each_way() -> None:
    baud = 115200
    payload = os.urandom(23040)  # 2 s at 11 520 bytes a second

    async def scenario() -> tuple[float, float, int]:
        sim, sessions = await start_sim(replace_scenario(baud=baud))
        pipe = Rfc2217Pipe(sim.rfc2217_urls[0])
        try:
            await pipe.open()
            await dial(sim, pipe)
            started = time.monotonic()
            await pipe.write(payload)
            while sessions[0].carried < len(payload):
                await asyncio.sleep(0.01)
            uplink = time.monotonic() - started
            started = time.monotonic()
            sim.module.ports[0].call.session.send(payload)  # type: ignore[union-attr]
            sim.driver.wake()  # type: ignore[union-attr]
            got = await read_exact(pipe, len(payload))
            downlink = time.monotonic() - started
            assert got == payload
            return uplink, downlink, sim.driver.lines[0].from_dte.counters.bytes  # type: ignore[union-attr]
        finally:
            await pipe.close()
            await sim.stop()

    uplink, downlink, carried = run_bounded(scenario)
    expected = len(payload) * 10 / baud
    print(f"{len(payload)} bytes at {baud} baud: up {uplink:.2f} s, down {downlink:.2f} s, line time {expected:.2f} s")
    assert expected * 0.95 < uplink < expected * 1.3
    assert expected * 0.95 < downlink < expected * 1.3
    assert carried >= len(payload)


async def read_exact(pipe: Rfc2217Pipe, count: int) -> bytes:
    data = bytearray()
    while len(data) < count:
        data += await pipe.read(count - len(data))
    return bytes(data)


def replace_scenario(**knobs: object) -> Scenario:
    from dataclasses import replace

    return replace(FAST, **knobs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("rtscts", "baud"), [(True, 921600), (False, 921600), (True, 0)])
def test_cts_stops_a_dte_with_rtscts_before_the_module_buffer_overflows(rtscts: bool, baud: int) -> None:
    # a 921 600 baud line (92 160 bytes/s; or none: as fast as TCP) into a 200 kbit/s radio
    # uplink (25 000 bytes/s)
    scenario = replace_scenario(baud=baud, uplink_kbit=200, uplink_buffer=8000)
    payload = os.urandom(60000)

    async def scenario_run() -> tuple[dict[str, int], dict[str, float | int], dict[str, object], int]:
        sim, sessions = await start_sim(scenario)
        pipe = Rfc2217Pipe(sim.rfc2217_urls[0], rtscts=rtscts)
        try:
            await pipe.open()
            await dial(sim, pipe)
            writing = asyncio.ensure_future(pipe.write(payload))
            for _ in range(3):
                await asyncio.sleep(0.3)
                # The simulator is late (a loaded machine): what the line carried meanwhile
                # must not all land in the module past the moment CTS would have gone off.
                time.sleep(0.15)  # noqa: ASYNC251 - blocking the loop is the point
            await writing
            deadline = time.monotonic() + 10
            radio = sim.module.radio.uplink.counters
            while radio.bytes + radio.dropped_bytes < len(payload) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.5)
            assert sim.driver is not None
            return (sim.module.radio.uplink.counters.to_json(), pipe.flow_counters(),
                    sim.driver.lines[0].to_json(sim.driver.now), sessions[0].carried)
        finally:
            await pipe.close()
            await sim.stop()

    radio, flow, line, carried = run_bounded(scenario_run)
    print(f"rtscts {rtscts}: radio {radio}, pipe {flow}, line {line}")
    if rtscts:
        assert radio["dropped"] == 0 and carried == len(payload), radio
        assert radio["peak_backlog"] <= 8000
        assert flow["cts_offs"] >= 1 and flow["cts_off_s"] > 0.5, flow  # ~1.7 s of 2.4 s held
        assert line["from_dte"]["holds"] >= 1  # type: ignore[index]
    else:
        assert radio["dropped"] > 10, radio  # §4: the module drops what the radio cannot send
        assert flow == {}
        assert line["from_dte"]["holds"] == 0  # type: ignore[index]


def test_a_pty_port_is_read_at_the_line_rate_and_has_no_cts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Over a pty the line rate holds too (the simulator reads no faster than the line
    carries: the rest waits in the pty); CTS never reaches a pty, so nothing holds."""
    from larappp.transport.serial import SerialPipe

    baud = 115200
    payload = os.urandom(11520)  # 1 s of line time

    async def scenario() -> tuple[float, int]:
        sim = Simulator(replace_scenario(baud=baud), ports=1, pty_dir=str(tmp_path / "sim"), control_path=None)
        await sim.start()
        pipe = SerialPipe(sim.pty_paths[0])
        try:
            await pipe.open()
            while not sim.module.registered:
                await asyncio.sleep(0.02)
            await pipe.write(b"AT+CGDCONT=2,\"IPV4V6\",\"apn2\"\r")
            data = b""
            while b"OK\r\n" not in data:
                data += await pipe.read()
            await pipe.write(b"ATD*99***2#\r")
            while b"CONNECT\r\n" not in data:
                data += await pipe.read()
            session = sim.module.ports[0].call.session  # type: ignore[union-attr]
            started = time.monotonic()
            await pipe.write(payload)
            while session.bytes_received < len(payload):  # type: ignore[attr-defined]
                await asyncio.sleep(0.01)
            assert sim.driver is not None
            return time.monotonic() - started, sim.driver.lines[0].from_dte.counters.holds
        finally:
            await pipe.close()
            await sim.stop()

    elapsed, holds = run_bounded(scenario)
    print(f"{len(payload)} bytes through a pty at {baud} baud: {elapsed:.2f} s")
    assert 0.95 < elapsed < 1.3
    assert holds == 0
