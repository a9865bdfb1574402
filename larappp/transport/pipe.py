"""The one byte-channel type ("pipe") every module port is seen through.

A serial device, a pty, an RFC 2217 URL, an in-memory pair and (later) a CMUX channel
are all pipes. Exactly one owner holds a pipe at a time: the AT runner holds it until
CONNECT, then hands it to the PPP engine, which gives it back at hang-up.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from larappp.errors import PortClosed, PortError


@dataclass(frozen=True)
class ModemLines:
    """State of the DCE's output lines as the DTE sees them (None: the pipe cannot tell)."""

    cts: bool | None = None
    dsr: bool | None = None
    dcd: bool | None = None
    ri: bool | None = None


class Pipe(abc.ABC):
    """An open, asynchronous byte channel to one port of the module."""

    name: str = "pipe"
    #: True when DTR/RTS can be set and CTS/DCD read (serial device, RFC 2217), False on a pty.
    has_modem_lines: bool = False

    def __init__(self) -> None:
        self._owner: str | None = None
        self._lines_callback: Callable[[ModemLines], None] | None = None
        self._carrier_lost: Callable[[], None] | None = None
        self._carrier_seen_on = False
        self._read_task: asyncio.Task[None] | None = None

    # -- ownership -------------------------------------------------------------
    @property
    def owner(self) -> str | None:
        return self._owner

    def attach(self, owner: str) -> None:
        """Take the pipe for `owner`; refuses while another owner holds it."""
        if self._owner is not None and self._owner != owner:
            raise PortError(f"{self.name} is held by {self._owner}; release it before {owner} uses it")
        self._owner = owner

    def release(self, owner: str) -> None:
        """Give the pipe back; only its current owner may."""
        if self._owner != owner:
            raise PortError(f"{owner} released {self.name}, which it does not hold")
        self._owner = None

    # -- data ------------------------------------------------------------------
    @abc.abstractmethod
    async def open(self) -> None:
        """Open the port; raises PortError naming the port when it cannot."""

    @abc.abstractmethod
    async def read(self, max_bytes: int = 65536) -> bytes:
        """Wait for and return at least one byte; raises PortClosed when the port went away."""

    def start_reading(self, on_data: Callable[[bytes], None], on_closed: Callable[[PortClosed], None]) -> None:
        """Deliver what arrives to `on_data` from the event loop until `stop_reading()`.

        The data path's way to read: no task switch or future per chunk where the pipe can
        avoid them (SerialPipe calls back straight from the loop's reader). `on_closed` is
        called once when the port goes away; neither is called after `stop_reading()`.
        This generic form is a task looping over `read()`.
        """
        if self._read_task is not None:
            raise PortError(f"{self.name} is already being read")

        async def pump() -> None:
            while True:
                try:
                    data = await self.read()
                except PortClosed as exc:
                    on_closed(exc)
                    return
                on_data(data)

        self._read_task = asyncio.create_task(pump(), name=f"read {self.name}")

    async def stop_reading(self) -> None:
        """Stop the deliveries `start_reading()` began; safe to call when not reading."""
        task, self._read_task = self._read_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def pause_reading(self) -> bool:
        """Hold the deliveries of `start_reading()` (what arrives waits in the port) until
        `resume_reading()`; False where this pipe cannot (it keeps delivering)."""
        return False

    def resume_reading(self) -> None:
        """Deliver again after `pause_reading()`; safe when not paused."""

    def deliver_waiting(self) -> None:
        """Hand what the port holds now to the `start_reading()` callback at once, paused
        or not, without waiting for the loop (nothing where this pipe cannot)."""

    @abc.abstractmethod
    async def write(self, data: bytes) -> None:
        """Write all of `data` (waiting while flow control holds it); PortClosed if gone."""

    def try_write(self, data: bytes | memoryview) -> int | None:
        """Write what the port takes at once, without waiting: the octets written (0 while
        its buffer is full or a `write()` is under way); PortClosed if gone. None where this
        pipe writes only by awaiting `write()`."""
        return None

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the port; safe to call twice."""

    def tty_fd(self) -> int | None:
        """The open tty under this pipe, for a program that takes the device itself (pppd);
        None where the bytes pass through larappp (RFC 2217, an in-memory pair, CMUX)."""
        return None

    # -- modem lines -------------------------------------------------------------
    def set_dtr(self, on: bool) -> None:
        raise PortError(f"{self.name} has no DTR line (a pty has none): use an RFC 2217 URL or a serial device")

    def set_rts(self, on: bool) -> None:
        raise PortError(f"{self.name} has no RTS line (a pty has none): use an RFC 2217 URL or a serial device")

    def modem_lines(self) -> ModemLines:
        return ModemLines()

    def flow_counters(self) -> dict[str, float | int]:
        """How the module's flow control held this pipe's writes, where the pipe can tell
        (RFC 2217 with RTS/CTS: seconds and times CTS was off); empty otherwise."""
        return {}

    async def hangup(self, hold_s: float = 1.0) -> None:
        """Drop DTR for `hold_s` seconds, then raise it again (ends a data call, app note §4.2).

        PortError where the pipe has no DTR; SerialPipe drops DTR with speed B0 instead,
        which also works on a pty.
        """
        self.set_dtr(False)
        try:
            await asyncio.sleep(hold_s)
        finally:
            self.set_dtr(True)

    def watch_modem_lines(self, callback: Callable[[ModemLines], None] | None) -> None:
        """Call `callback` in the event loop whenever this pipe notices its modem lines change.

        Pipes that cannot notice changes (a serial device, a pty) never call it: poll
        `modem_lines()` there. None removes the callback.
        """
        self._lines_callback = callback

    def _notify_modem_lines(self, lines: ModemLines) -> None:
        self._check_carrier(lines)
        if self._lines_callback is not None:
            self._lines_callback(lines)

    # -- carrier -------------------------------------------------------------------
    def watch_carrier(self, on_dropped: Callable[[], None]) -> bool:
        """Call `on_dropped` once, in the event loop, when DCD goes from on to off.

        Only a DCD seen on (now or later) can drop: a module under AT&C1 asserts DCD while
        its call is up, and a DCD never seen on during the call carries no information.
        False when nothing was armed because the pipe has no DCD (a pty). This form relies
        on the pipe noticing line changes itself (RFC 2217 NOTIFY-MODEMSTATE, an in-memory
        pair); SerialPipe polls. Independent of `watch_modem_lines()`.
        """
        if not self.has_modem_lines:
            return False
        self._carrier_lost = on_dropped
        self._carrier_seen_on = False
        self._check_carrier(self.modem_lines())
        return True

    def unwatch_carrier(self) -> None:
        """Disarm `watch_carrier()`; safe to call when nothing is armed."""
        self._carrier_lost = None

    def _check_carrier(self, lines: ModemLines) -> None:
        if self._carrier_lost is None:
            return
        if lines.dcd:
            self._carrier_seen_on = True
        elif lines.dcd is False and self._carrier_seen_on:
            on_dropped, self._carrier_lost = self._carrier_lost, None
            on_dropped()


#: opens one module port as a fresh Pipe (each session and the modem keep one to reopen)
PipeFactory = Callable[[], Awaitable[Pipe]]
