"""The serial line between the DTE and one port of the simulated module: a UART at `baud`,
8N1 (start bit, 8 data bits, stop bit: 10 bits a byte), one transmitter each way.

A byte reaches the other end once its 10 bits went over the wire, so each direction
carries baud/10 bytes a second however fast the two ends write. What the DTE writes
faster waits in front of the line; the port servers stop reading their pty or socket
while `room()` is 0, so it waits in the DTE's own buffers, as it would in front of a
real UART. With RTS/CTS on, the DTE's transmitter holds while the module's CTS is off
(`hold`): bytes wait, none are lost.

Sans-IO: time is an input (`push(..., now)`, `pull(now)`, `get_timer()`). A baud rate of
0 means no line: bytes pass at once (and still hold while CTS is off).
"""

from __future__ import annotations

from dataclasses import dataclass

#: 8N1: a start bit, eight data bits, a stop bit
BITS_PER_BYTE = 10
#: bytes are handed on in slices of this much line time (one timer per slice, not per byte)
SLICE_S = 0.002
#: what waits in front of a line when the DTE writes faster: this much line time, at least
#: MIN_WINDOW bytes (a UART driver's buffer); with no line, one read's worth
WINDOW_S = 0.05
MIN_WINDOW = 4096
UNLIMITED_WINDOW = 65536
#: the module's transmit buffer toward the DTE: what the radio's downlink brings faster than
#: the line carries waits here, and beyond it whole writes (PPP frames) are dropped
TO_DTE_LIMIT = 32768


@dataclass
class LineCounters:
    """What one direction of a line carried, and how long its transmitter was held."""

    bytes: int = 0
    #: bytes the sender wrote while the line's buffer was full (dropped, counted)
    dropped: int = 0
    held_s: float = 0.0
    holds: int = 0

    def to_json(self) -> dict[str, float | int]:
        return {"bytes": self.bytes, "dropped": self.dropped, "held_s": round(self.held_s, 3), "holds": self.holds}


class LineDirection:
    """One transmitter of a serial line: a FIFO drained at baud/10 bytes a second (0: at once)."""

    def __init__(self, baud: int, *, limit: int | None = None) -> None:
        if baud < 0:
            raise ValueError("a baud rate is >= 0 (0: no line)")
        self.bytes_per_second = baud / BITS_PER_BYTE
        rate = self.bytes_per_second
        #: bytes that may wait in front of the line (the sender stops at this, see `room`)
        self.window = max(MIN_WINDOW, int(rate * WINDOW_S)) if rate else UNLIMITED_WINDOW
        #: beyond this a `push` is dropped whole (None: never)
        self.limit = limit
        self.counters = LineCounters()
        self.held = False
        self._held_since = 0.0
        self._queue = bytearray()
        #: bytes whose last bit went out, not pulled yet
        self._arrived = bytearray()
        #: when the first byte in `_queue` started (or starts) on the wire
        self._start = 0.0
        self._slice = max(1, int(rate * SLICE_S))

    @property
    def queued(self) -> int:
        """Bytes written to the line and not pulled out at the other end yet."""
        return len(self._queue) + len(self._arrived)

    def room(self) -> int:
        """How many more bytes the sender may write before it should wait (0: none)."""
        return max(0, self.window - self.queued)

    def push(self, data: bytes, now: float) -> bool:
        """`data` written at `now`; False (dropped, counted) when beyond the line's limit."""
        self._advance(now)
        if self.limit is not None and self.queued and self.queued + len(data) > self.limit:
            self.counters.dropped += len(data)
            return False
        if not self._queue:
            self._start = max(self._start, now)  # an idle line starts at once, a busy one after its byte
        self._queue += data
        return True

    def pull(self, now: float, max_bytes: int | None = None) -> bytes:
        """The bytes that arrived at the other end by `now` (taken out; at most `max_bytes`,
        the rest stays for the next pull)."""
        self._advance(now)
        if not self._arrived:
            return b""
        if max_bytes is None or max_bytes >= len(self._arrived):
            data = bytes(self._arrived)
            self._arrived.clear()
        else:
            data = bytes(self._arrived[:max_bytes])
            del self._arrived[:max_bytes]
        self.counters.bytes += len(data)
        return data

    def hold(self, held: bool, now: float) -> None:
        """Stop (CTS off) or restart the transmitter at `now`, between two bytes."""
        if held == self.held:
            return
        self._advance(now)
        if held:
            self.counters.holds += 1
            self._held_since = now
        else:
            self.counters.held_s += max(0.0, now - self._held_since)
            self._start = max(self._start, now)
        self.held = held

    def held_for(self, now: float) -> float:
        """Seconds the transmitter has been held in all, counting a hold still going on."""
        return self.counters.held_s + (max(0.0, now - self._held_since) if self.held else 0.0)

    def get_timer(self) -> float | None:
        """When the next slice of bytes has arrived (or now, when some wait to be pulled);
        None while held: what arrived waits for the release too (see ModuleDriver)."""
        if self.held or (not self._queue and not self._arrived):
            return None
        if self._arrived or not self.bytes_per_second:
            return 0.0
        return self._start + min(len(self._queue), self._slice) / self.bytes_per_second

    def clear(self) -> None:
        """Forget what is on the line (the port closed)."""
        self._queue.clear()
        self._arrived.clear()

    def _advance(self, now: float) -> None:
        if not self._queue or self.held:
            return
        if not self.bytes_per_second:
            self._arrived += self._queue
            self._queue.clear()
            return
        # small epsilon: a timer at exactly the computed time must see its bytes
        done = min(len(self._queue), int((now - self._start) * self.bytes_per_second + 1e-6))
        if done <= 0:
            return
        self._arrived += self._queue[:done]
        del self._queue[:done]
        self._start += done / self.bytes_per_second


class SerialLine:
    """Both ways of one port's serial line: DTE to module (`from_dte`), module to DTE (`to_dte`)."""

    def __init__(self, baud: int, *, to_dte_limit: int | None = TO_DTE_LIMIT) -> None:
        self.baud = baud
        self.from_dte = LineDirection(baud)
        self.to_dte = LineDirection(baud, limit=to_dte_limit)

    def get_timer(self) -> float | None:
        deadlines = [t for t in (self.from_dte.get_timer(), self.to_dte.get_timer()) if t is not None]
        return min(deadlines) if deadlines else None

    def to_json(self, now: float) -> dict[str, object]:
        return {
            "baud": self.baud,
            "from_dte": {**self.from_dte.counters.to_json(), "held_s": round(self.from_dte.held_for(now), 3)},
            "to_dte": self.to_dte.counters.to_json(),
        }
