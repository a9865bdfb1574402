"""A session's way back to command mode after a loss (Session._back_to_command_mode), against
a running simulator whose call is still up (the module's side of a silent link): what reaches
the call as data, how the call ends, and how long it takes.

A link lost in data mode (an LCP echo timeout) goes straight to the escape, no "AT" probe
first: nothing reaches the call as data before "+++", and the DTR drop on a port with modem
lines (RFC 2217) needs no guard time at all. Where the state is unknown the probe stays."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from larappp import session as session_module
from larappp.config import SessionConfig
from larappp.session import CONNECTED, Session
from larappp.sim import Simulator
from larappp.sim.data import DiscardDataSession
from larappp.sim.scenario import Scenario
from larappp.sim.state import COMMAND
from larappp.transport import open_pipe
from larappp.transport.pipe import Pipe

T = TypeVar("T")

GUARD_S = 0.3
FAST = Scenario(
    operator="europe", grant="IPV4V6", registration_delay=0.05, reboot_time=0.3,
    shutdown_delay=0.02, echo=False, escape_guard=GUARD_S, escape_max_gap=0.1,
)
#: the probe's timeout is min(2 s, the command timeout)
COMMAND_TIMEOUT_S = 1.0


def run(scenario: Callable[[], Awaitable[T]], timeout: float = 30) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(scenario(), timeout)

    return asyncio.run(bounded())


@pytest.fixture(autouse=True)
def short_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    """The host's silence before "+++": the simulator's guard time plus the same margin."""
    monkeypatch.setattr(session_module, "ESCAPE_WAIT_S", GUARD_S + 0.2)


@contextlib.asynccontextmanager
async def _in_a_call(tmp_path: Path, transport: str = "pty") -> AsyncIterator[tuple[Simulator, Session, DiscardDataSession]]:
    """A simulator, and a session that dialled cid 1 on its port 0 and stopped at CONNECT:
    the module's call is up."""
    sim = Simulator(FAST, ports=1, pty_dir=str(tmp_path / "sim"),
                    rfc2217_base_port=0 if transport == "rfc2217" else None, control_path=None)
    async with sim:
        spec = sim.pty_paths[0] if transport == "pty" else sim.rfc2217_urls[0]

        async def factory() -> Pipe:
            pipe = open_pipe(spec)
            await pipe.open()
            return pipe

        while not sim.module.registered:  # registration_delay after power-on
            await asyncio.sleep(0.01)
        session = Session(SessionConfig(cid=1, apn="internet"), spec, factory, command_timeout=COMMAND_TIMEOUT_S)
        try:
            await session.dial()
            assert session.state.state == CONNECTED
            call = sim.module.ports[0].call
            assert call is not None and isinstance(call.session, DiscardDataSession)
            yield sim, session, call.session
        finally:
            await session.close()


async def _back(session: Session, *, in_data_mode: bool) -> float:
    start = time.monotonic()
    await session._back_to_command_mode(in_data_mode=in_data_mode)
    return time.monotonic() - start


@pytest.mark.parametrize("transport", ["pty", "rfc2217"])
def test_a_link_lost_in_data_mode_skips_the_probe(tmp_path: Path, transport: str) -> None:
    async def scenario() -> None:
        async with _in_a_call(tmp_path, transport) as (sim, session, call):
            elapsed = await _back(session, in_data_mode=True)
            # Nothing reached the call as data: no "AT" before "+++" (or the DTR drop).
            assert call.received == b""
            assert sim.module.ports[0].mode == COMMAND and sim.module.ports[0].call is None
            if transport == "rfc2217":
                assert call.closed_reason == "dtr"  # the port has DTR: no guard time, no "+++"
                assert elapsed < GUARD_S + 0.2 + 1.5, elapsed
            else:
                assert call.closed_reason == "escape"
                # the guard time, "+++" and ATH: no probe timeout before them
                assert GUARD_S + 0.2 <= elapsed < GUARD_S + 0.2 + COMMAND_TIMEOUT_S, elapsed
            print(f"{transport}: back in command mode {elapsed:.2f} s after a loss in data mode")

    run(scenario)


def test_where_the_state_is_unknown_the_probe_comes_first(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with _in_a_call(tmp_path) as (_sim, session, call):
            elapsed = await _back(session, in_data_mode=False)
            assert b"AT\r" in call.received  # the probe, data to a call still up
            assert call.closed_reason == "escape"
            assert elapsed >= COMMAND_TIMEOUT_S + GUARD_S + 0.2, elapsed

    run(scenario)


def test_a_call_the_network_ended_answers_the_probe(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with _in_a_call(tmp_path) as (sim, session, call):
            sim.control.drop(cid=1)  # NO CARRIER: the port is in command mode already
            elapsed = await _back(session, in_data_mode=False)
            assert call.closed_reason == "network-drop"
            assert elapsed < 1.0, elapsed  # AT -> OK, no escape

    run(scenario)


def test_a_dtr_drop_that_does_not_reach_the_module_falls_back_to_the_escape(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with _in_a_call(tmp_path, "rfc2217") as (sim, session, call):
            assert session.pipe is not None and session.pipe.has_modem_lines

            async def unwired(hold_s: float = 1.0) -> None:
                """DTR not wired to the module (some UARTs; a VM's serial port on a pty)."""
                await asyncio.sleep(0)

            session.pipe.hangup = unwired  # type: ignore[method-assign]
            await _back(session, in_data_mode=True)
            # no NO CARRIER within the command timeout, no answer to AT: "+++" and ATH ended it
            assert call.closed_reason == "escape"
            assert sim.module.ports[0].mode == COMMAND and sim.module.ports[0].call is None

    run(scenario)


def test_after_a_dtr_drop_without_effect_a_call_already_ended_answers_at(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with _in_a_call(tmp_path, "rfc2217") as (sim, session, call):
            assert session.pipe is not None

            async def unwired(hold_s: float = 1.0) -> None:
                await asyncio.sleep(0)

            session.pipe.hangup = unwired  # type: ignore[method-assign]
            sim.control.drop(cid=1)
            # its NO CARRIER is lost (as into pppd's line discipline on a serial device)
            seen = b""
            while b"NO CARRIER" not in seen:
                seen += await asyncio.wait_for(session.pipe.read(), 5)
            # "+++" into command mode would get no answer and fail: AT -> OK is enough
            await _back(session, in_data_mode=True)
            assert call.closed_reason == "network-drop"
            assert sim.module.ports[0].mode == COMMAND

    run(scenario)
