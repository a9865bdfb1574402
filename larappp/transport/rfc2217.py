"""A module port reached over the network through an RFC 2217 server (ser2net, a simulator).

pyserial's blocking RFC 2217 client does the Telnet work. One background thread reads
it and hands data and modem line changes to the event loop with
`call_soon_threadsafe`; writes and DTR/RTS changes run, in order, on one executor
thread because pyserial waits for the server to acknowledge each line change. Correct
rather than fast: pyserial queues received data byte by byte (about 0.5 MB/s, FACTS).

With RTS/CTS (`rtscts=True`, which also asks the server for hardware flow control), writes
hold while the server reports CTS off (NOTIFY-MODEMSTATE): a write goes out in slices of
CTS_SLICE, each once CTS is on. pyserial's own write ignores CTS. The wait reaches the
pipe's writer, so what cannot leave stays in the engine's bounded uplink queue rather
than in a buffer here.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import serial
import serial.rfc2217

from larappp.errors import ConfigError, PortClosed, PortError
from larappp.transport.pipe import ModemLines, Pipe

log = logging.getLogger(__name__)

#: How long the reader thread blocks in pyserial before checking for close or line changes.
POLL_S = 0.05
#: With RTS/CTS a write goes out in slices of this many bytes, each once CTS is on: what
#: may still leave after CTS went off (besides what the reader has not seen yet, < POLL_S)
CTS_SLICE = 4096
# RFC 2217 §"NOTIFY-MODEMSTATE" bit masks, as pyserial names them.
_CTS = serial.rfc2217.MODEMSTATE_MASK_CTS
_DSR = serial.rfc2217.MODEMSTATE_MASK_DSR
_RI = serial.rfc2217.MODEMSTATE_MASK_RI
_CD = serial.rfc2217.MODEMSTATE_MASK_CD


def parse_rfc2217_url(url: str) -> tuple[str, int]:
    """Host and TCP port of an rfc2217://HOST:PORT URL; ConfigError saying the form otherwise."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "rfc2217" or not parts.hostname or port is None or port == 0:
        raise ConfigError(
            f"'{url}' is not a valid RFC 2217 URL: write it as rfc2217://HOST:PORT,"
            " for example rfc2217://192.0.2.10:3333"
        )
    return parts.hostname, port


def _lines_from_state(state: int) -> ModemLines:
    return ModemLines(
        cts=bool(state & _CTS), dsr=bool(state & _DSR), dcd=bool(state & _CD), ri=bool(state & _RI)
    )


class Rfc2217Pipe(Pipe):
    """A module port behind an RFC 2217 server, with DTR/RTS out and CTS/DSR/DCD/RI in."""

    has_modem_lines = True

    def __init__(self, url: str, *, baud: int = 115200, rtscts: bool = False) -> None:
        super().__init__()
        self.host, self.port = parse_rfc2217_url(url)
        self.url = url
        self.name = url
        self.baud = baud
        self.rtscts = rtscts
        self._serial: Any = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._reader: threading.Thread | None = None
        self._stopping = threading.Event()
        self._buffer = bytearray()
        self._read_waiter: asyncio.Future[None] | None = None
        self._lost: str | None = None
        self._lines = ModemLines()
        self._pending_control: list[concurrent.futures.Future[None]] = []
        #: set while writes may go (CTS on, or not honoured); cleared while CTS is off
        self._cts_clear = asyncio.Event()
        self._cts_clear.set()
        self._cts_off_since = 0.0
        #: seconds CTS was off (RTS/CTS only) and how many times it went off, for status
        self.cts_off_s = 0.0
        self.cts_offs = 0
        self._write_lock = asyncio.Lock()

    @property
    def is_open(self) -> bool:
        return self._serial is not None

    # -- open / close ------------------------------------------------------------------
    async def open(self) -> None:
        """Connect and negotiate RFC 2217; raises PortError naming the URL and the cause."""
        if self._serial is not None:
            raise PortError(f"{self.url} is already open in this larappp; close it first")
        loop = asyncio.get_running_loop()
        try:
            ser = serial.serial_for_url(
                self.url, baudrate=self.baud, rtscts=self.rtscts, timeout=POLL_S, do_not_open=True
            )
        except (ValueError, serial.SerialException) as exc:
            raise ConfigError(
                f"'{self.url}' is not accepted ({exc}): fix the URL's options"
            ) from exc
        executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="larappp-rfc2217-writer"
        )
        try:
            await loop.run_in_executor(executor, ser.open)
        except (serial.SerialException, OSError) as exc:
            # the worker is idle once open() failed: wait so no thread outlives the pipe
            await asyncio.to_thread(executor.shutdown, True)
            raise PortError(self._open_failure(exc)) from exc
        except BaseException:
            # cancelled while pyserial connects: close once open() returns, on the same thread
            executor.submit(ser.close)
            executor.shutdown(wait=False)
            raise
        self._serial = ser
        self._executor = executor
        self._stopping = threading.Event()
        self._buffer = bytearray()
        self._lost = None
        self._lines = ModemLines()
        self._pending_control = []
        self._cts_clear.set()
        self._reader = threading.Thread(
            target=self._read_loop,
            args=(ser, loop, self._stopping),
            name=f"larappp-rfc2217-reader {self.host}:{self.port}",
            daemon=True,
        )
        self._reader.start()

    def _open_failure(self, exc: BaseException) -> str:
        text = str(exc)
        if "RFC2217" in text or "BINARY" in text:
            return (
                f"{self.host}:{self.port} answered but does not speak RFC 2217:"
                " configure the server (e.g. ser2net) for telnet/RFC 2217 on that port"
            )
        if "parameter change" in text:
            return f"{self.url} refused baud rate {self.baud}: choose a rate the server accepts"
        cause = text.split(": ", 1)[1] if text.startswith("Could not open port") else text
        return (
            f"cannot connect to {self.url} ({cause}): check that the RFC 2217 server runs"
            " and the host and port are right"
        )

    async def close(self) -> None:
        """Disconnect, waking a waiting read with PortClosed; safe to call twice."""
        ser = self._serial
        if ser is None:
            return
        self._serial = None
        self._stopping.set()
        self._buffer.clear()
        self._wake_reader()
        self._follow_cts(None)  # a write waiting for CTS wakes and finds the pipe closed
        reader, executor = self._reader, self._executor
        self._reader = self._executor = None

        def shut_down() -> None:
            ser.close()  # shuts the socket down: pending writes and the reader thread end
            if reader is not None:
                reader.join()
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)

        await asyncio.to_thread(shut_down)

    # -- the reader thread -------------------------------------------------------------
    def _read_loop(
        self, ser: Any, loop: asyncio.AbstractEventLoop, stopping: threading.Event
    ) -> None:
        last_state: int | None = None
        reason = "the server closed the connection"  # what pyserial's dead reader thread means
        try:
            while not stopping.is_set():
                data = ser.read(max(1, ser.in_waiting))
                if data:
                    loop.call_soon_threadsafe(self._on_data, stopping, bytes(data))
                try:
                    state = int(ser.get_modem_state())
                except serial.SerialException:
                    state = None  # the server has not sent NOTIFY-MODEMSTATE yet
                if state is not None and state != last_state:
                    last_state = state
                    loop.call_soon_threadsafe(self._on_lines, stopping, _lines_from_state(state))
        except serial.SerialException as exc:
            log.debug("%s: reader stopped: %s", self.url, exc)
        except (OSError, AttributeError, TypeError, ValueError) as exc:
            # pyserial raises these when its socket is torn down under it
            reason = str(exc) or type(exc).__name__
        if stopping.is_set():
            return
        try:
            loop.call_soon_threadsafe(self._on_lost, stopping, reason)
        except RuntimeError:
            pass  # the loop is closed: nobody is left to tell

    # The reader thread's callbacks run in the loop; `stopping` tells them apart from a
    # previous open's, which may still be queued after close().
    def _on_data(self, stopping: threading.Event, data: bytes) -> None:
        if stopping.is_set():
            return
        self._buffer += data
        self._wake_reader()

    def _on_lines(self, stopping: threading.Event, lines: ModemLines) -> None:
        if not stopping.is_set() and lines != self._lines:
            self._lines = lines
            self._follow_cts(lines.cts)
            self._notify_modem_lines(lines)

    def _follow_cts(self, cts: bool | None) -> None:
        """Hold writes while CTS is off (RTS/CTS only); None (unknown, closed) lets them go."""
        off = self.rtscts and cts is False
        if off and self._cts_clear.is_set():
            self._cts_clear.clear()
            self._cts_off_since = time.monotonic()
            self.cts_offs += 1
        elif not off and not self._cts_clear.is_set():
            self.cts_off_s += time.monotonic() - self._cts_off_since
            self._cts_clear.set()

    def flow_counters(self) -> dict[str, float | int]:
        """How long (s) and how often the module held the uplink with CTS (RTS/CTS only)."""
        if not self.rtscts:
            return {}
        now_off = 0.0 if self._cts_clear.is_set() else time.monotonic() - self._cts_off_since
        return {"cts_off_s": round(self.cts_off_s + now_off, 3), "cts_offs": self.cts_offs}

    def _on_lost(self, stopping: threading.Event, reason: str) -> None:
        if not stopping.is_set():
            self._lose(reason)

    def _lose(self, reason: str) -> None:
        if self._lost is None:
            self._lost = reason
        self._wake_reader()
        self._follow_cts(None)

    def _wake_reader(self) -> None:
        waiter = self._read_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _closed_error(self) -> PortClosed:
        return PortClosed(
            f"the connection to {self.url} ended ({self._lost}): check the RFC 2217 server"
            " and the module behind it"
        )

    # -- data --------------------------------------------------------------------------
    async def read(self, max_bytes: int = 65536) -> bytes:
        """Return received bytes (up to `max_bytes`); PortClosed once the connection dropped."""
        if self._read_waiter is not None:
            raise PortError(f"two tasks read {self.url} at once; only the pipe's owner may read it")
        while not self._buffer:
            if self._serial is None:
                raise PortClosed(f"{self.url} is not open")
            if self._lost is not None:
                raise self._closed_error()
            self._read_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._read_waiter
            finally:
                self._read_waiter = None
            if self._serial is None:
                raise PortClosed(f"{self.url} was closed by larappp")
        data = bytes(self._buffer[:max_bytes])
        del self._buffer[:max_bytes]
        return data

    async def write(self, data: bytes) -> None:
        """Send all of `data` (after any pending DTR/RTS change; with RTS/CTS, while CTS is on);
        PortClosed if disconnected."""
        if not self.rtscts:
            await self._send(bytes(data))
            return
        async with self._write_lock:
            for start in range(0, len(data), CTS_SLICE):
                await self._cts_clear.wait()
                await self._send(bytes(data[start:start + CTS_SLICE]))

    async def _send(self, data: bytes) -> None:
        ser, executor = self._require_open()
        try:
            await asyncio.get_running_loop().run_in_executor(executor, ser.write, data)
        except (serial.SerialException, OSError, AttributeError, TypeError) as exc:
            # pyserial raises AttributeError/TypeError when the socket was torn down under it
            self._lose(str(exc) or type(exc).__name__)
            raise self._closed_error() from exc

    def _require_open(self) -> tuple[Any, concurrent.futures.ThreadPoolExecutor]:
        ser, executor = self._serial, self._executor
        if ser is None or executor is None:
            raise PortClosed(f"{self.url} is not open")
        if self._lost is not None:
            raise self._closed_error()
        return ser, executor

    # -- modem lines -------------------------------------------------------------------
    def set_dtr(self, on: bool) -> None:
        """Queue a DTR change after the writes already queued; `drain()` waits for it."""
        self._queue_control("dtr", on)

    def set_rts(self, on: bool) -> None:
        """Queue an RTS change after the writes already queued; `drain()` waits for it."""
        self._queue_control("rts", on)

    def _queue_control(self, line: str, on: bool) -> None:
        ser, executor = self._require_open()

        def apply() -> None:
            setattr(ser, line, on)  # pyserial waits for the server's acknowledgement

        future = executor.submit(apply)
        self._pending_control.append(future)
        future.add_done_callback(self._control_done(line, on))

    def _control_done(
        self, line: str, on: bool
    ) -> Callable[[concurrent.futures.Future[None]], None]:
        def done(future: concurrent.futures.Future[None]) -> None:
            if not future.cancelled() and future.exception() is not None:
                log.warning(
                    "%s: setting %s %s failed: %s",
                    self.url,
                    line.upper(),
                    "on" if on else "off",
                    future.exception(),
                )

        return done

    async def drain(self) -> None:
        """Wait until queued DTR/RTS changes reached the server; PortError if one failed."""
        pending, self._pending_control = self._pending_control, []
        for future in pending:
            try:
                await asyncio.wrap_future(future)
            except concurrent.futures.CancelledError as exc:
                raise PortClosed(f"{self.url} closed before a line change was sent") from exc
            except (serial.SerialException, OSError, AttributeError, TypeError) as exc:
                raise PortError(
                    f"{self.url} did not confirm a DTR/RTS change ({exc}):"
                    " check the RFC 2217 server supports line control"
                ) from exc

    async def hangup(self, hold_s: float = 1.0) -> None:
        """Drop DTR for `hold_s` seconds once the server confirmed it, then raise it again."""
        self.set_dtr(False)
        try:
            await self.drain()
            await asyncio.sleep(hold_s)
        finally:
            if self.is_open and self._lost is None:
                self.set_dtr(True)
        await self.drain()

    def modem_lines(self) -> ModemLines:
        """CTS/DSR/DCD/RI from the server's last NOTIFY-MODEMSTATE (None before the first)."""
        return self._lines
