"""The simulated module's radio: one uplink and one downlink shared by all data calls,
each a buffer drained at the radio's rate, then the network's latency.

App note §4: the module drops what the radio cannot send, even with hardware flow
control. Here a packet that arrives while the uplink buffer is too full to hold it is
dropped and counted, which is where a host that does not pace its uplink loses data.

With `flow_control`, the module also says so on its UARTs: CTS goes off while the uplink
buffer is nearly full (CTS_OFF_FILL) and on again once it drained (CTS_ON_FILL), which
stops a DTE honouring RTS/CTS before the buffer overflows (§4 warns that a real module
may drop even so: the simulator's knob `cts_flow` turns this off).

Sans-IO: time is an input (`offer(..., now)`, `due(now)`, `get_timer()`). A rate of 0
means no limit; with no limit and no latency a packet is due at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

#: LTE Cat 1 peak rates (3GPP TS 36.306 Table 4.1-1: 10296 and 5160 bit per TTI of 1 ms)
CAT1_DOWNLINK_KBIT = 10300
CAT1_UPLINK_KBIT = 5200
#: the module's uplink buffer when none is given: small, as §4's warning implies
DEFAULT_UPLINK_BUFFER = 16 * 1024
#: the network's downlink queue for one UE (the eNodeB buffers more than the module)
DEFAULT_DOWNLINK_BUFFER = 128 * 1024

#: CTS goes off when the uplink buffer is this full, on again when it drained to CTS_ON_FILL;
#: the quarter above the mark holds what is on its way when CTS drops (a frame or two)
CTS_OFF_FILL = 0.75
CTS_ON_FILL = 0.5

Delivery = Callable[[], None]


@dataclass
class DirectionCounters:
    """What one direction of the radio carried and dropped."""

    packets: int = 0
    bytes: int = 0
    dropped: int = 0
    dropped_bytes: int = 0
    #: the most bytes that waited in the buffer at once
    peak_backlog: int = 0

    def to_json(self) -> dict[str, int]:
        return {
            "packets": self.packets, "bytes": self.bytes, "dropped": self.dropped,
            "dropped_bytes": self.dropped_bytes, "peak_backlog": self.peak_backlog,
        }


class Bottleneck:
    """One direction of the radio: a FIFO buffer of `buffer` bytes drained at `kbit`
    kbit/s (0: at once), each packet due `latency` seconds after it left the buffer."""

    def __init__(self, kbit: int, buffer: int, latency: float) -> None:
        if kbit < 0 or buffer <= 0 or latency < 0:
            raise ValueError("a radio rate and latency are >= 0 and its buffer > 0")
        self.bytes_per_second = kbit * 1000 / 8
        self.buffer = buffer
        self.latency = latency
        self.counters = DirectionCounters()
        #: when the transmitter will have sent everything accepted so far
        self._free_at = 0.0
        self._queue: deque[tuple[float, Delivery]] = deque()

    def backlog(self, now: float) -> int:
        """Bytes accepted and not yet sent over the air at `now`."""
        if not self.bytes_per_second:
            return 0
        return int(max(0.0, self._free_at - now) * self.bytes_per_second)

    def drained_to(self, level: int) -> float:
        """When the backlog will have fallen to `level` bytes, if nothing more comes."""
        if not self.bytes_per_second:
            return 0.0
        return self._free_at - level / self.bytes_per_second

    def offer(self, size: int, deliver: Delivery, now: float) -> bool:
        """A packet of `size` bytes to carry; `deliver` runs once it is due (see `due`).
        False when the buffer cannot hold it: the packet is dropped and counted."""
        backlog = self.backlog(now)
        if self.bytes_per_second and backlog + size > self.buffer:
            self.counters.dropped += 1
            self.counters.dropped_bytes += size
            return False
        self.counters.packets += 1
        self.counters.bytes += size
        self.counters.peak_backlog = max(self.counters.peak_backlog, backlog + size)
        sent = max(now, self._free_at)
        if self.bytes_per_second:
            sent += size / self.bytes_per_second
        self._free_at = sent
        self._queue.append((sent + self.latency, deliver))
        return True

    def due(self, now: float) -> list[Delivery]:
        """The deliveries whose time has come, oldest first (taken out of the queue)."""
        ready = []
        while self._queue and self._queue[0][0] <= now:
            ready.append(self._queue.popleft()[1])
        return ready

    def get_timer(self) -> float | None:
        return self._queue[0][0] if self._queue else None

    def clear(self) -> None:
        """Forget what is in flight (the module reboots)."""
        self._queue.clear()
        self._free_at = 0.0


@dataclass(frozen=True)
class RadioSettings:
    """The radio's rates (kbit/s, 0: no limit), one-way latency and buffers."""

    uplink_kbit: int = 0
    downlink_kbit: int = 0
    latency: float = 0.0
    uplink_buffer: int = DEFAULT_UPLINK_BUFFER
    downlink_buffer: int = DEFAULT_DOWNLINK_BUFFER
    #: CTS off while the uplink buffer is nearly full (see the module docstring)
    flow_control: bool = True


class Radio:
    """The module's one radio, shared by all its data calls (one uplink, one downlink)."""

    def __init__(self, settings: RadioSettings = RadioSettings()) -> None:
        self.settings = settings
        self.uplink = Bottleneck(settings.uplink_kbit, settings.uplink_buffer, settings.latency)
        self.downlink = Bottleneck(settings.downlink_kbit, settings.downlink_buffer, settings.latency)
        #: the uplink buffer is nearly full: the module's UARTs have CTS off (`check_flow`)
        self.uplink_full = False
        self.cts_off_at = int(settings.uplink_buffer * CTS_OFF_FILL)
        self.cts_on_at = int(settings.uplink_buffer * CTS_ON_FILL)

    def check_flow(self, now: float) -> bool:
        """Update `uplink_full` from the uplink's backlog at `now`; True when it changed."""
        if not self.settings.flow_control:
            return False
        backlog = self.uplink.backlog(now)
        full = backlog >= self.cts_off_at if not self.uplink_full else backlog > self.cts_on_at
        changed, self.uplink_full = full != self.uplink_full, full
        return changed

    def get_timer(self) -> float | None:
        """The next delivery, or while the uplink is full the moment it has drained enough."""
        deadlines = [t for t in (self.uplink.get_timer(), self.downlink.get_timer()) if t is not None]
        if self.uplink_full:
            deadlines.append(self.uplink.drained_to(self.cts_on_at))
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> None:
        """Deliver every packet that is due, uplink first."""
        for deliver in self.uplink.due(now) + self.downlink.due(now):
            deliver()

    def to_json(self) -> dict[str, object]:
        s = self.settings
        return {
            "uplink_kbit": s.uplink_kbit, "downlink_kbit": s.downlink_kbit, "latency": s.latency,
            "uplink_buffer": s.uplink_buffer, "downlink_buffer": s.downlink_buffer,
            "flow_control": s.flow_control, "uplink_full": self.uplink_full,
            "uplink": self.uplink.counters.to_json(), "downlink": self.downlink.counters.to_json(),
        }
