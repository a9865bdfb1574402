"""SerialPipe over a real pty pair: the test plays the module on the master side."""

from __future__ import annotations

import asyncio
import os
import termios
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from larappp.errors import ConfigError, PortClosed, PortError
from larappp.transport.pipe import ModemLines
from larappp.transport.serial import CARRIER_POLL_S, SerialPipe
from tests.aio import run_bounded

MIB = 1024 * 1024


@dataclass
class Pty:
    master: int
    path: str
    master_open: bool = True

    def close_master(self) -> None:
        if self.master_open:
            self.master_open = False
            os.close(self.master)


@pytest.fixture
def pty() -> Iterator[Pty]:
    master, slave = os.openpty()
    path = os.ttyname(slave)
    os.close(slave)  # the pipe under test is the only slave opener
    os.set_blocking(master, False)
    pair = Pty(master=master, path=path)
    try:
        yield pair
    finally:
        pair.close_master()


async def wait_fd(fd: int, *, writable: bool) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    add = loop.add_writer if writable else loop.add_reader
    remove = loop.remove_writer if writable else loop.remove_reader

    def on_ready() -> None:
        if not ready.done():
            ready.set_result(None)

    add(fd, on_ready)
    try:
        await ready
    finally:
        remove(fd)


async def fd_read_exact(fd: int, count: int) -> bytes:
    data = bytearray()
    while len(data) < count:
        try:
            data += os.read(fd, count - len(data))
        except BlockingIOError:
            await wait_fd(fd, writable=False)
    return bytes(data)


async def fd_write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            await wait_fd(fd, writable=True)


async def pipe_read_exact(pipe: SerialPipe, count: int) -> bytes:
    data = bytearray()
    while len(data) < count:
        data += await pipe.read(count - len(data))
    return bytes(data)


def test_round_trip_one_mib_each_way_through_a_symlink(pty: Pty, tmp_path: Path) -> None:
    link = tmp_path / "ttyLARA"
    link.symlink_to(pty.path)
    outgoing = os.urandom(MIB)  # every byte value, XON/XOFF and NUL included
    incoming = os.urandom(MIB)

    async def scenario() -> tuple[bytes, bytes]:
        pipe = SerialPipe(str(link))
        await pipe.open()
        try:
            to_module, from_module, _, _ = await asyncio.gather(
                fd_read_exact(pty.master, MIB),
                pipe_read_exact(pipe, MIB),
                pipe.write(outgoing),
                fd_write_all(pty.master, incoming),
            )
            return to_module, from_module
        finally:
            await pipe.close()

    to_module, from_module = run_bounded(scenario)
    assert to_module == outgoing
    assert from_module == incoming


def test_master_closing_makes_read_raise_port_closed(pty: Pty) -> None:
    async def scenario() -> None:
        pipe = SerialPipe(pty.path)
        await pipe.open()
        try:
            await fd_write_all(pty.master, b"OK\r\n")
            assert await pipe.read() == b"OK\r\n"
            pending = asyncio.ensure_future(pipe.read())
            await asyncio.sleep(0)  # the read is now waiting for the fd
            pty.close_master()
            with pytest.raises(PortClosed, match=pty.path):
                await pending
            with pytest.raises(PortClosed):
                await pipe.write(b"AT\r")
        finally:
            await pipe.close()

    run_bounded(scenario)


def test_pty_has_no_modem_lines_and_says_what_to_use(pty: Pty) -> None:
    async def scenario() -> None:
        pipe = SerialPipe(pty.path)
        await pipe.open()
        try:
            assert pipe.has_modem_lines is False
            lines = pipe.modem_lines()
            assert (lines.cts, lines.dsr, lines.dcd, lines.ri) == (None, None, None, None)
            with pytest.raises(PortError, match=r"pty, which has no DTR line.*rfc2217://"):
                pipe.set_dtr(False)
            with pytest.raises(PortError, match="no RTS line"):
                pipe.set_rts(True)
            assert pipe.watch_carrier(lambda: None) is False  # no DCD: nothing armed
        finally:
            await pipe.close()

    run_bounded(scenario)


def test_a_polled_dcd_that_drops_after_being_on_fires_the_carrier_watch(
    pty: Pty, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TIOCMGET as a serial device would answer it (a pty has no lines): off, on, on, off."""
    readings = [False, True, True, False]

    async def scenario() -> None:
        pipe = SerialPipe(pty.path)
        await pipe.open()
        monkeypatch.setattr(pipe, "has_modem_lines", True)
        monkeypatch.setattr(pipe, "modem_lines", lambda: ModemLines(dcd=readings.pop(0) if readings else False))
        try:
            dropped = asyncio.Event()
            started = asyncio.get_running_loop().time()
            assert pipe.watch_carrier(dropped.set)  # DCD off now: seen on only later
            await asyncio.wait_for(dropped.wait(), 2)
            elapsed = asyncio.get_running_loop().time() - started
            assert readings == [] and elapsed == pytest.approx(3 * CARRIER_POLL_S, abs=0.2)
        finally:
            await pipe.close()
        assert pipe._carrier_poll is None  # close() stopped the polling

    run_bounded(scenario)


def test_second_open_of_the_same_port_is_refused(pty: Pty) -> None:
    async def scenario() -> None:
        first = SerialPipe(pty.path)
        await first.open()
        try:
            second = SerialPipe(pty.path)
            with pytest.raises(PortError, match="is in use by another program"):
                await second.open()
            assert not second.is_open
        finally:
            await first.close()
        # the lock goes with the close
        third = SerialPipe(pty.path)
        await third.open()
        await third.close()

    run_bounded(scenario)


def test_open_errors_name_the_device_and_the_cause(tmp_path: Path) -> None:
    missing = str(tmp_path / "ttyACM9")
    plain = tmp_path / "not-a-tty"
    plain.write_bytes(b"")

    async def scenario() -> None:
        with pytest.raises(PortError, match=f"^{missing} does not exist: "):
            await SerialPipe(missing).open()
        with pytest.raises(PortError, match="is not a serial device or pty"):
            await SerialPipe(str(plain)).open()

    run_bounded(scenario)


def test_bad_baud_rate_is_a_config_error(pty: Pty) -> None:
    with pytest.raises(ConfigError, match="baud rate 0"):
        run_bounded(lambda: SerialPipe(pty.path, baud=0).open())


def test_hangup_shows_b0_on_the_master_then_restores_the_speed(pty: Pty) -> None:
    async def scenario() -> None:
        pipe = SerialPipe(pty.path, baud=115200, rtscts=True)
        await pipe.open()
        try:
            attrs = termios.tcgetattr(pty.master)
            assert attrs[4] == attrs[5] == termios.B115200
            assert attrs[2] & termios.CRTSCTS  # the module side sees the flow control setting
            hangup = asyncio.ensure_future(pipe.hangup(hold_s=3600))
            await asyncio.sleep(0)  # hangup() has set B0 and now holds it
            attrs = termios.tcgetattr(pty.master)
            assert attrs[4] == attrs[5] == termios.B0
            hangup.cancel()  # ending the hold early still restores the speed
            with pytest.raises(asyncio.CancelledError):
                await hangup
            attrs = termios.tcgetattr(pty.master)
            assert attrs[4] == attrs[5] == termios.B115200
            await pipe.hangup(hold_s=0)
            assert termios.tcgetattr(pty.master)[4] == termios.B115200
        finally:
            await pipe.close()

    run_bounded(scenario)


def test_close_wakes_a_waiting_read_and_the_pipe_reopens(pty: Pty) -> None:
    async def scenario() -> None:
        pipe = SerialPipe(pty.path)
        await pipe.open()
        pending = asyncio.ensure_future(pipe.read())
        await asyncio.sleep(0)
        with pytest.raises(PortError, match="two tasks read"):
            await pipe.read()
        await pipe.close()
        await pipe.close()  # twice is fine
        with pytest.raises(PortClosed, match="closed by larappp"):
            await pending
        with pytest.raises(PortClosed, match="is not open"):
            await pipe.read()
        await pipe.open()
        try:
            await fd_write_all(pty.master, b"\r\nRDY\r\n")
            assert await pipe_read_exact(pipe, 7) == b"\r\nRDY\r\n"
        finally:
            await pipe.close()

    run_bounded(scenario)


def test_open_twice_without_close_is_refused(pty: Pty) -> None:
    async def scenario() -> None:
        pipe = SerialPipe(pty.path)
        await pipe.open()
        try:
            with pytest.raises(PortError, match="already open"):
                await pipe.open()
        finally:
            await pipe.close()

    run_bounded(scenario)


def test_a_paused_reader_gets_all_that_waited_in_one_delivery(pty: Pty) -> None:
    """The data path's rest: while paused the tty holds what arrives; resumed, one wakeup
    delivers all of it (several tty reads of at most 4095 octets, joined)."""

    async def scenario() -> None:
        pipe = SerialPipe(pty.path)
        await pipe.open()
        deliveries: list[bytes] = []
        closed: list[PortClosed] = []
        try:
            pipe.start_reading(deliveries.append, closed.append)
            assert pipe.pause_reading()
            payload = bytes(range(256)) * 40  # 10 kB: more than one n_tty buffer
            await fd_write_all(pty.master, payload)
            await asyncio.sleep(0.05)
            assert deliveries == []
            pipe.resume_reading()
            deadline = asyncio.get_running_loop().time() + 2
            while sum(map(len, deliveries)) < len(payload):
                assert asyncio.get_running_loop().time() < deadline, deliveries
                await asyncio.sleep(0.01)
            assert b"".join(deliveries) == payload
            assert len(deliveries[0]) > 4095
            assert closed == []
        finally:
            await pipe.close()

    run_bounded(scenario)


def test_try_write_takes_what_fits_and_never_waits(pty: Pty) -> None:
    async def scenario() -> None:
        pipe = SerialPipe(pty.path)
        await pipe.open()
        try:
            assert pipe.try_write(b"AT\r") == 3
            assert await fd_read_exact(pty.master, 3) == b"AT\r"
            written = [pipe.try_write(bytes(4096)) for _ in range(64)]  # nobody reads the master
            assert written[0] > 0 and written[-1] == 0
            total = sum(written)
            assert await fd_read_exact(pty.master, total) == bytes(total)
            pty.close_master()
            with pytest.raises(PortClosed):
                pipe.try_write(b"AT\r")
        finally:
            await pipe.close()

    run_bounded(scenario)
