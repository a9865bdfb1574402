"""DCD over RFC 2217 against the simulator: a pipe's carrier watch fires when the call's
DCD goes off (the `dcd-off` fault, or `drop` with its NO CARRIER), and never under AT&C0,
where DCD is always on and carries no information."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from larappp.sim import Simulator
from larappp.sim.control import request
from larappp.transport.rfc2217 import Rfc2217Pipe
from tests.sim.test_sim_fault_control import FAST, run, wait_for


async def _read_until(pipe: Rfc2217Pipe, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        data += await asyncio.wait_for(pipe.read(), 5)
    return data


async def _dialled(pipe: Rfc2217Pipe, amp_c: int) -> None:
    await pipe.write(f"AT&C{amp_c}\r".encode())
    await _read_until(pipe, b"OK\r\n")
    await pipe.write(b"ATD*99***1#\r")
    await _read_until(pipe, b"CONNECT\r\n")
    await wait_for(lambda: pipe.modem_lines().dcd is True)


def _carrier_watch(fault: str, amp_c: int, tmp_path: Path) -> float | None:
    """Seconds from the fault to the watch firing; None when it did not fire within 1.5 s."""
    async def scenario() -> float | None:
        control = str(tmp_path / "control.sock")
        async with Simulator(FAST, pty_dir=None, rfc2217_base_port=0, control_path=control) as sim:
            await wait_for(lambda: sim.module.registered)
            pipe = Rfc2217Pipe(sim.rfc2217_urls[1])
            await pipe.open()
            try:
                await _dialled(pipe, amp_c)
                dropped = asyncio.Event()
                assert pipe.watch_carrier(dropped.set)
                injected = time.monotonic()
                assert (await asyncio.to_thread(request, control, {"fault": fault, "cid": 1}))["ok"]
                try:
                    await asyncio.wait_for(dropped.wait(), 1.5)
                except TimeoutError:
                    return None
                return time.monotonic() - injected
            finally:
                pipe.unwatch_carrier()
                await pipe.close()

    return run(scenario)


def test_dcd_off_alone_fires_the_carrier_watch(tmp_path: Path) -> None:
    elapsed = _carrier_watch("dcd-off", 1, tmp_path)
    print(f"dcd-off over RFC 2217: noticed after {elapsed}")
    assert elapsed is not None and elapsed < 1.0


def test_a_dropped_call_fires_the_carrier_watch(tmp_path: Path) -> None:
    elapsed = _carrier_watch("drop", 1, tmp_path)
    print(f"drop over RFC 2217: DCD noticed after {elapsed}")
    assert elapsed is not None and elapsed < 1.0


def test_under_amp_c0_dcd_stays_on_and_nothing_fires(tmp_path: Path) -> None:
    assert _carrier_watch("drop", 0, tmp_path) is None
