"""Module-side detection of the "+++" escape sequence in data mode (sans-IO, time as input).

App note §9.1.4: the sequence counts only as a lone 3-byte frame: silence before it
(the host waits 2 s; the guard is a knob here), at most 500 ms between the characters,
and nothing after it within the guard time. Candidate characters are held back and
released to the data path as soon as the sequence turns out to be data.
"""

from __future__ import annotations

PLUS = 0x2B


class EscapeDetector:
    """Finds "+++" in the DTE's data-mode byte stream; feed bytes, poll the timer."""

    def __init__(self, *, guard: float, max_gap: float, now: float, char: int = PLUS) -> None:
        self.guard = guard
        self.max_gap = max_gap
        #: S2; V.250: a value above 127 disables escape detection.
        self.char = char
        self._last_rx = now
        self._held = 0
        self._last_plus = now

    def reset(self, now: float) -> None:
        """Start over (entering data mode): the guard counts from `now`."""
        self._last_rx = now
        self._held = 0

    @property
    def held(self) -> int:
        """How many escape characters are held back as a possible escape."""
        return self._held

    def feed(self, data: bytes, now: float) -> bytes:
        """Take bytes received at `now`; return those that are data (held ones may come later).

        The caller runs `handle_timer(now)` first, so a due escape is never missed.
        """
        if not data:
            return b""
        char = self.char
        if char > 127:
            self._last_rx = now
            return data
        # Fast path: no candidate pending and this chunk cannot start one.
        if self._held == 0 and (data[0] != char or now - self._last_rx < self.guard):
            self._last_rx = now
            return data
        out = bytearray()
        for byte in data:
            if self._held == 0:
                if byte == char and now - self._last_rx >= self.guard:
                    self._held = 1
                    self._last_plus = now
                else:
                    out.append(byte)
            elif self._held < 3 and byte == char and now - self._last_plus <= self.max_gap:
                self._held += 1
                self._last_plus = now
            else:
                # Anything else (data, a slow "+", a 4th "+") makes the held pluses data.
                out += bytes([char]) * self._held
                self._held = 0
                out.append(byte)
            self._last_rx = now
        return bytes(out)

    def get_timer(self) -> float | None:
        if self._held == 0:
            return None
        if self._held < 3:
            return self._last_plus + self.max_gap
        return self._last_plus + self.guard

    def handle_timer(self, now: float) -> tuple[bytes, bool]:
        """Return (bytes released as data, True when the escape sequence is complete)."""
        if self._held == 0:
            return b"", False
        if self._held < 3:
            if now > self._last_plus + self.max_gap:
                released = bytes([self.char]) * self._held
                self._held = 0
                return released, False
            return b"", False
        if now >= self._last_plus + self.guard:
            self._held = 0
            return b"", True
        return b"", False
