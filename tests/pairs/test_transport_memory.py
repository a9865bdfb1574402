"""The in-memory pipe pair: data both ways, null-modem lines, close semantics."""

from __future__ import annotations

import asyncio
import os

import pytest

from larappp.errors import PortClosed, PortError
from larappp.transport.memory import MemoryPipe, pipe_pair
from larappp.transport.pipe import ModemLines
from tests.aio import run_bounded


async def read_exact(pipe: MemoryPipe, count: int) -> bytes:
    data = bytearray()
    while len(data) < count:
        data += await pipe.read(count - len(data))
    return bytes(data)


def test_data_flows_both_ways_and_reads_respect_max_bytes() -> None:
    async def scenario() -> None:
        host, module = pipe_pair()
        await host.write(b"AT\r")
        assert await module.read() == b"AT\r"
        await module.write(b"\r\nOK\r\n")
        assert await host.read(2) == b"\r\n"
        assert host.buffered() == 4
        assert await host.read() == b"OK\r\n"

    run_bounded(scenario)


def test_a_bounded_buffer_makes_the_writer_wait_for_the_reader() -> None:
    blob = os.urandom(100_000)

    async def scenario() -> None:
        host, module = pipe_pair(capacity=4096)
        writer = asyncio.ensure_future(host.write(blob))
        await asyncio.sleep(0)
        assert not writer.done()
        assert module.buffered() == 4096
        assert await read_exact(module, len(blob)) == blob
        await writer

    run_bounded(scenario)


def test_dtr_shows_as_the_peers_dsr_and_dcd_and_calls_its_callback() -> None:
    host, module = pipe_pair()
    seen: list[ModemLines] = []
    module.watch_modem_lines(seen.append)
    assert module.modem_lines() == ModemLines(cts=True, dsr=True, dcd=True, ri=False)
    host.set_dtr(False)
    assert module.modem_lines().dsr is False
    assert module.modem_lines().dcd is False
    host.set_dtr(False)  # no change, no callback
    host.set_rts(False)
    assert seen == [
        ModemLines(cts=True, dsr=False, dcd=False, ri=False),
        ModemLines(cts=False, dsr=False, dcd=False, ri=False),
    ]
    assert module.line_history == seen
    # the module side drives DCD and RI on its own
    host_seen: list[ModemLines] = []
    host.watch_modem_lines(host_seen.append)
    module.set_dcd(False)
    module.set_ri(True)
    assert host.modem_lines() == ModemLines(cts=True, dsr=True, dcd=False, ri=True)
    module.set_dcd(None)
    assert host.modem_lines().dcd is True
    assert len(host_seen) == 3
    module.watch_modem_lines(None)
    host.set_dtr(True)
    assert len(seen) == 2


def test_a_pair_without_modem_lines_behaves_like_a_pty() -> None:
    host, _module = pipe_pair(modem_lines=False)
    assert host.has_modem_lines is False
    assert host.modem_lines() == ModemLines()
    with pytest.raises(PortError, match="no DTR line"):
        host.set_dtr(False)


def test_closing_one_end_ends_the_other_ends_reads_after_buffered_data() -> None:
    async def scenario() -> None:
        host, module = pipe_pair()
        pending = asyncio.ensure_future(host.read())
        await asyncio.sleep(0)
        with pytest.raises(PortError, match="two tasks read"):
            await host.read()
        await module.write(b"NO CARRIER\r\n")
        assert await pending == b"NO CARRIER\r\n"
        await module.write(b"tail")
        waiting = asyncio.ensure_future(host.read(2))
        await asyncio.sleep(0)
        await module.close()
        await module.close()  # twice is fine
        assert await waiting == b"ta"
        assert await host.read() == b"il"
        with pytest.raises(PortClosed, match="other end closed"):
            await host.read()
        with pytest.raises(PortClosed, match="other end closed"):
            await host.write(b"AT\r")
        with pytest.raises(PortClosed, match="module was closed"):
            await module.read()
        with pytest.raises(PortError, match="make a new pipe_pair"):
            await module.open()

    run_bounded(scenario)


def test_close_wakes_a_writer_blocked_on_a_full_peer() -> None:
    async def scenario() -> None:
        host, module = pipe_pair(capacity=8)
        writer = asyncio.ensure_future(host.write(b"0123456789abcdef"))
        await asyncio.sleep(0)
        await module.close()
        with pytest.raises(PortClosed):
            await writer

    run_bounded(scenario)


def test_ownership_is_exclusive() -> None:
    host, _module = pipe_pair()
    host.attach("at")
    with pytest.raises(PortError, match="held by at"):
        host.attach("ppp")
    host.release("at")
    host.attach("ppp")
    assert host.owner == "ppp"


def test_hangup_drops_dtr_then_raises_it() -> None:
    async def scenario() -> list[ModemLines]:
        host, module = pipe_pair()
        await host.hangup(hold_s=0)
        return module.line_history

    history = run_bounded(scenario)
    assert [lines.dsr for lines in history] == [False, True]
    with pytest.raises(PortError, match="no DTR line"):
        run_bounded(lambda: pipe_pair(modem_lines=False)[0].hangup(hold_s=0))
