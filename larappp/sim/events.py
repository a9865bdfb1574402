"""What the simulated module tells its port servers (sans-IO events out of `Module.next_event`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PortsClosed:
    """Every port went away (reboot, unplugged: back at `reopen_at`; vanished: never, None)."""

    reason: str
    reopen_at: float | None


@dataclass(frozen=True)
class PortsReopened:
    """The ports exist again (the module finished booting, or they were plugged back in)."""


@dataclass(frozen=True)
class ModemLinesChanged:
    """The DCE's output lines of one port changed (DCD follows the data call)."""

    port: int
    cts: bool
    dsr: bool
    dcd: bool


@dataclass(frozen=True)
class CallStarted:
    """A port answered CONNECT and entered data mode for `cid`."""

    port: int
    cid: int


@dataclass(frozen=True)
class CallEnded:
    """The data call of a port ended (reason: dtr, ath, escape, hangup, reboot, ...)."""

    port: int
    cid: int
    reason: str


ModuleEvent = PortsClosed | PortsReopened | ModemLinesChanged | CallStarted | CallEnded
