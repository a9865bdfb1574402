"""The built-in engine notices a lost link: NO CARRIER, a looped-back line, a silent peer.

Each scenario brings the session up against a module-role PppLink, takes the module's
PPP away in one way, and measures how long the engine takes to end the session: within
1 s for NO CARRIER and a looped-back line, within lcp_echo_interval x lcp_echo_failure
after the first unanswered Echo-Request for silence. The rig checks on exit that stop()
leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from larappp.errors import PortClosed
from tests.e2e.enginerig import NEEDS_ROOT_AND_TUN, EngineRig, run_scenario

pytestmark = NEEDS_ROOT_AND_TUN

ECHO_INTERVAL = 0.5
ECHO_FAILURES = 3


async def ended_within(rig: EngineRig, limit: float) -> float:
    """Seconds until the engine ended the session; fails past `limit`."""
    start = time.monotonic()
    await asyncio.wait_for(rig.engine.terminated.wait(), limit)
    return time.monotonic() - start


@pytest.mark.parametrize("result", ["NO CARRIER", "ERROR"])
def test_result_code_in_the_data_stream_ends_the_session(
    netns: str, tmp_path: Path, result: str
) -> None:
    async def scenario() -> None:
        async with EngineRig(netns, tmp_path) as rig:
            await rig.engine.wait_up(10)
            await rig.module.stop()  # the module's PPP is gone; it says so and nothing else
            await rig.module_pipe.write(f"\r\n{result}\r\n".encode())
            elapsed = await ended_within(rig, 1.0)
            engine = rig.engine
            assert f"the module left data mode: it sent {result}" in engine.reason
            assert engine.lost == "left-data-mode"
            assert any(f"the module left data mode: {result} between" in note for note in rig.notes)
            print(f"{result}: session ended {elapsed * 1000:.1f} ms after the result code")

    run_scenario(netns, scenario)


def test_dcd_dropping_ends_the_session_as_lost(netns: str, tmp_path: Path) -> None:
    """DCD on at CONNECT (AT&C1), then off while PPP still answers: only the line tells."""
    async def scenario() -> None:
        async with EngineRig(netns, tmp_path) as rig:
            await rig.engine.wait_up(10)
            rig.module_pipe.set_dcd(False)
            elapsed = await ended_within(rig, 1.0)
            assert rig.engine.lost == "dcd-dropped"
            assert rig.engine.reason.startswith("DCD dropped on ")
            print(f"DCD: session ended {elapsed * 1000:.1f} ms after DCD went off")

    run_scenario(netns, scenario)


def test_looped_back_line_ends_the_session(netns: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with EngineRig(
            netns, tmp_path, echo_interval=ECHO_INTERVAL, echo_failures=ECHO_FAILURES
        ) as rig:
            await rig.engine.wait_up(10)
            await rig.module.stop()
            pipe = rig.module_pipe

            async def echo_everything() -> None:  # command mode with ATE1
                with contextlib.suppress(PortClosed):
                    while True:
                        await pipe.write(await pipe.read())

            echo = asyncio.create_task(echo_everything())
            try:
                # the next Echo-Request (at most one interval away) comes straight back
                elapsed = await ended_within(rig, ECHO_INTERVAL + 1.0)
            finally:
                echo.cancel()
            assert rig.engine.lost == "looped-back"
            assert "looped back" in rig.engine.reason and "Magic-Number" in rig.engine.reason
            print(f"looped back: session ended {elapsed * 1000:.1f} ms after the loop began")

    run_scenario(netns, scenario)


def test_silent_module_ends_the_session_after_the_echo_failures(
    netns: str, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with EngineRig(
            netns, tmp_path, echo_interval=ECHO_INTERVAL, echo_failures=ECHO_FAILURES
        ) as rig:
            await rig.engine.wait_up(10)
            await rig.module.stop()  # hung: reads nothing, answers nothing
            # the first unanswered Echo-Request goes out within one interval, and the
            # session ends failures x interval after it
            limit = ECHO_INTERVAL * (ECHO_FAILURES + 1) + 0.5
            elapsed = await ended_within(rig, limit)
            assert elapsed >= ECHO_INTERVAL * (ECHO_FAILURES - 1)
            assert rig.engine.lost == "echo-timeout"
            assert f"none of {ECHO_FAILURES} Echo-Requests" in rig.engine.reason
            print(f"silence: session ended {elapsed * 1000:.0f} ms after the module went quiet")

    run_scenario(netns, scenario)
