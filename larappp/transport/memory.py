"""Two connected in-memory pipes with simulated modem lines, for tests and the simulator.

The pair is wired like a null-modem cable: one end's DTR shows as the other end's DSR
and DCD, RTS as CTS. The end playing the module (DCE) can also drive DCD and RI on its
own with `set_dcd()` / `set_ri()`, as LARA-R6 lowers DCD on NO CARRIER. Each end calls
its `watch_modem_lines()` callback when the other end changes a line it sees.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from larappp.errors import PortClosed, PortError
from larappp.transport.pipe import ModemLines, Pipe


class MemoryPipe(Pipe):
    """One end of an in-memory pipe pair; `close()` makes the peer's reads end in PortClosed."""

    def __init__(self, name: str, *, modem_lines: bool = True, capacity: int | None = None) -> None:
        super().__init__()
        self.name = name
        self.has_modem_lines = modem_lines
        self.capacity = capacity
        self.peer: MemoryPipe | None = None
        self.closed = False
        self._buffer = bytearray()
        self._readable = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._reading = False
        self._write_lock = asyncio.Lock()
        # output lines (what the peer sees); DTR and RTS up as pyserial raises them on open
        self.dtr = True
        self.rts = True
        self._dcd: bool | None = None  # None: follow DTR (null-modem wiring)
        self._ri = False
        #: every modem line state the peer made visible to this end, oldest first
        self.line_history: list[ModemLines] = []

    @property
    def is_open(self) -> bool:
        return not self.closed

    async def open(self) -> None:
        """Memory pipes are born open; reopening a closed one is refused."""
        if self.closed:
            raise PortError(f"{self.name} was closed; make a new pipe_pair() instead of reopening")

    async def close(self) -> None:
        """Close this end: the peer reads what is buffered, then PortClosed; safe twice."""
        if self.closed:
            return
        self.closed = True
        self._readable.set()
        self._drained.set()
        if self.peer is not None:
            self.peer._readable.set()
            self.peer._drained.set()

    # -- data --------------------------------------------------------------------------
    async def read(self, max_bytes: int = 65536) -> bytes:
        """Return buffered bytes (up to `max_bytes`), waiting for at least one."""
        if self._reading:
            raise PortError(
                f"two tasks read {self.name} at once; only the pipe's owner may read it"
            )
        self._reading = True
        try:
            while True:
                if self.closed:
                    raise PortClosed(f"{self.name} was closed")
                if self._buffer:
                    data = bytes(self._buffer[:max_bytes])
                    del self._buffer[:max_bytes]
                    self._drained.set()
                    return data
                if self.peer is None or self.peer.closed:
                    raise PortClosed(f"{self.name}: the other end closed")
                self._readable.clear()
                await self._readable.wait()
        finally:
            self._reading = False

    async def write(self, data: bytes) -> None:
        """Append `data` to the peer's buffer, waiting while it holds `capacity` bytes."""
        async with self._write_lock:
            view = memoryview(data)
            while view:
                peer = self._live_peer()
                room = len(view) if peer.capacity is None else peer.capacity - len(peer._buffer)
                if room <= 0:
                    peer._drained.clear()
                    await peer._drained.wait()
                    continue
                peer._buffer += view[:room]
                view = view[room:]
                peer._readable.set()

    def _live_peer(self) -> MemoryPipe:
        if self.closed:
            raise PortClosed(f"{self.name} was closed")
        if self.peer is None or self.peer.closed:
            raise PortClosed(f"{self.name}: the other end closed")
        return self.peer

    def buffered(self) -> int:
        """Bytes written by the peer and not yet read here."""
        return len(self._buffer)

    # -- modem lines -------------------------------------------------------------------
    def _require_lines(self, line: str) -> None:
        if not self.has_modem_lines:
            raise PortError(
                f"{self.name} simulates a pty, which has no {line} line:"
                " make the pair with modem_lines=True"
            )

    def set_dtr(self, on: bool) -> None:
        """Raise or lower DTR: the peer sees it as DSR (and DCD unless set_dcd() overrides)."""
        self._require_lines("DTR")
        self._change(lambda: setattr(self, "dtr", on))

    def set_rts(self, on: bool) -> None:
        """Raise or lower RTS: the peer sees it as CTS."""
        self._require_lines("RTS")
        self._change(lambda: setattr(self, "rts", on))

    def set_dcd(self, on: bool | None) -> None:
        """Drive the peer's DCD directly (module side); None wires it back to DTR."""
        self._require_lines("DCD")
        self._change(lambda: setattr(self, "_dcd", on))

    def set_ri(self, on: bool) -> None:
        """Drive the peer's RI (module side, e.g. a RING)."""
        self._require_lines("RI")
        self._change(lambda: setattr(self, "_ri", on))

    def _change(self, apply: Callable[[], None]) -> None:
        peer = self.peer
        before = peer.modem_lines() if peer is not None else None
        apply()
        if peer is None:
            return
        after = peer.modem_lines()
        if after != before:
            peer.line_history.append(after)
            peer._notify_modem_lines(after)

    def _lines_shown_to_peer(self) -> ModemLines:
        return ModemLines(
            cts=self.rts,
            dsr=self.dtr,
            dcd=self.dtr if self._dcd is None else self._dcd,
            ri=self._ri,
        )

    def modem_lines(self) -> ModemLines:
        """The lines the other end drives, as this end sees them (all None without lines)."""
        if not self.has_modem_lines or self.peer is None:
            return ModemLines()
        return self.peer._lines_shown_to_peer()


def pipe_pair(
    names: tuple[str, str] = ("host", "module"),
    *,
    modem_lines: bool = True,
    capacity: int | None = None,
) -> tuple[MemoryPipe, MemoryPipe]:
    """Two connected, already open memory pipes: what one writes the other reads.

    `modem_lines=False` makes both ends behave like a pty (set_dtr raises PortError);
    `capacity` bounds each end's receive buffer so that writers wait, like a full UART.
    """
    first = MemoryPipe(names[0], modem_lines=modem_lines, capacity=capacity)
    second = MemoryPipe(names[1], modem_lines=modem_lines, capacity=capacity)
    first.peer = second
    second.peer = first
    return first, second
