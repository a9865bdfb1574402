"""Runs the sans-IO simulated module on an asyncio loop: clock, timer, fan-out to port servers,
and each port's serial line (larappp.sim.line) between the servers and the module."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from larappp.sim.events import (
    CallEnded,
    CallStarted,
    ModemLinesChanged,
    PortsClosed,
    PortsReopened,
)
from larappp.sim.line import SerialLine
from larappp.sim.module import Module

#: asyncio may run a timer a little early; the module's strict deadlines need "after".
TIMER_SLACK = 0.001
#: a line's bytes reach the module at most this many at a time, CTS checked in between:
#: after the simulator was late (a loaded machine), what arrived meanwhile does not all
#: land at once past the moment the module would have turned CTS off
FEED_SLICE = 256


class PortSink(Protocol):
    """A server publishing one module port (a pty, an RFC 2217 listener)."""

    def write(self, data: bytes) -> None:
        """Bytes from the module for the DTE."""

    def lines_changed(self, lines: ModemLinesChanged) -> None:
        """The module's CTS/DSR/DCD of this port changed."""

    def ports_closed(self, reopen_at: float | None) -> None:
        """The module went away (reboot, or for good when `reopen_at` is None)."""

    def ports_reopened(self) -> None:
        """The module is back after a reboot."""

    def resume_input(self) -> None:
        """The port's line has room again (`ModuleDriver.room`): read the DTE's bytes."""


class ModuleDriver:
    """Feeds a Module with loop time and port bytes, and hands its output to the port servers."""

    def __init__(self, module: Module, *, log: Callable[[str], None] | None = None) -> None:
        self.module = module
        self.log = log
        self._loop = asyncio.get_running_loop()
        self._sinks: dict[int, list[PortSink]] = {i: [] for i in range(len(module.ports))}
        self._dtr: dict[int, dict[int, bool]] = {i: {} for i in range(len(module.ports))}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._flush_soon: asyncio.Handle | None = None
        self._busy = False
        self._closed = False
        #: each port's serial line (baud 0: none, bytes pass at once)
        self.lines = [SerialLine(module.scenario.baud) for _ in module.ports]
        #: the servers of a port that asked for hardware flow control (RFC 2217 SET-CONTROL):
        #: the DTE's transmitter then holds while the module's CTS is off
        self._rtscts: dict[int, set[int]] = {i: set() for i in range(len(module.ports))}
        #: ports whose servers stopped reading because the line had no room
        self._full: set[int] = set()
        module.on_output = self._wake

    @property
    def now(self) -> float:
        return self._loop.time()

    def attach(self, port: int, sink: PortSink) -> None:
        self._sinks[port].append(sink)

    def detach(self, port: int, sink: PortSink) -> None:
        if sink in self._sinks[port]:
            self._sinks[port].remove(sink)
        self.set_dtr(port, sink, False)

    def power_on(self) -> None:
        self.module.power_on(self.now)
        self._flush()

    def close(self) -> None:
        """Power the module off and stop the timer."""
        if self._closed:
            return
        self.module.power_off(self.now)
        self._closed = True
        for handle in (self._timer, self._flush_soon):
            if handle is not None:
                handle.cancel()
        self._timer = self._flush_soon = None

    # -- inputs from the servers -------------------------------------------------------------
    def receive(self, port: int, data: bytes) -> None:
        if self._closed:
            return
        line = self.lines[port].from_dte
        if line.bytes_per_second or line.held or line.queued or self._rtscts[port]:
            line.push(data, self.now)  # the line hands it on (`_flush`), in slices under RTS/CTS
        else:
            self._feed(port, data)
        self._flush()

    def room(self, port: int) -> int:
        """Bytes the port's line takes before its servers should stop reading (0: none now;
        `resume_input` tells them when there is room again)."""
        room = self.lines[port].from_dte.room()
        if not room:
            self._full.add(port)
        return room

    def set_rtscts(self, port: int, source: object, on: bool) -> None:
        """Hardware flow control as one server's DTE asked for it (RFC 2217 SET-CONTROL)."""
        if on:
            self._rtscts[port].add(id(source))
        else:
            self._rtscts[port].discard(id(source))
        self._apply_cts(port)
        self._flush()

    def _apply_cts(self, port: int) -> None:
        held = bool(self._rtscts[port]) and not self.module.modem_lines(port).cts
        self.lines[port].from_dte.hold(held, self.now)

    def _feed(self, port: int, data: bytes) -> None:
        self._busy = True
        try:
            self.module.receive_data(port, data, self.now)
        finally:
            self._busy = False

    def set_dtr(self, port: int, source: object, on: bool) -> None:
        """DTR as one server sees it; the module sees it ON while any server has it ON."""
        if self._closed:
            return
        states = self._dtr[port]
        if on:
            states[id(source)] = True
        else:
            states.pop(id(source), None)
        effective = bool(states)
        if effective == self.module.ports[port].dtr:
            return
        self._busy = True
        try:
            self.module.set_dtr(port, effective, self.now)
        finally:
            self._busy = False
        self._flush()

    # -- output --------------------------------------------------------------------------------
    def wake(self) -> None:
        """Flush output produced outside the driver's own calls (e.g. a downlink packet)."""
        self._wake()

    def _wake(self) -> None:
        if self._busy or self._closed or self._flush_soon is not None:
            return
        self._flush_soon = self._loop.call_soon(self._flush)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        if self._closed:
            return
        self._busy = True
        try:
            self.module.handle_timer(self.now)
        finally:
            self._busy = False
        self._flush()

    def _flush(self) -> None:
        if self._flush_soon is not None:
            self._flush_soon.cancel()
            self._flush_soon = None
        if self._closed:
            return
        module, now = self.module, self.now
        for port, line in enumerate(self.lines):
            while not line.from_dte.held and (arrived := line.from_dte.pull(now, FEED_SLICE)):
                self._feed(port, arrived)
                self._apply_cts(port)
        for port, sinks in self._sinks.items():
            data = module.data_to_send(port)
            to_dte = self.lines[port].to_dte
            if to_dte.bytes_per_second:
                if data:
                    to_dte.push(data, now)
                data = to_dte.pull(now)
            if data:
                for sink in list(sinks):
                    sink.write(data)
        while (event := module.next_event()) is not None:
            if isinstance(event, ModemLinesChanged):
                self._apply_cts(event.port)
                for sink in list(self._sinks[event.port]):
                    sink.lines_changed(event)
            elif isinstance(event, PortsClosed):
                for line in self.lines:
                    line.from_dte.clear()
                    line.to_dte.clear()
                self._log(f"module: ports closed ({event.reason})")
                for sinks in self._sinks.values():
                    for sink in list(sinks):
                        sink.ports_closed(event.reopen_at)
            elif isinstance(event, PortsReopened):
                self._log("module: ports back")
                for sinks in self._sinks.values():
                    for sink in list(sinks):
                        sink.ports_reopened()
            elif isinstance(event, CallStarted):
                self._log(f"port {event.port}: CONNECT on cid {event.cid}")
            elif isinstance(event, CallEnded):
                self._log(f"port {event.port}: call on cid {event.cid} ended ({event.reason})")
        for port in [p for p in self._full if self.lines[p].from_dte.room()]:
            self._full.discard(port)
            for sink in list(self._sinks[port]):
                sink.resume_input()
        self._arm_timer()

    def _arm_timer(self) -> None:
        due = min((t for t in (self.module.get_timer(), *(line.get_timer() for line in self.lines))
                   if t is not None), default=None)
        if due == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = due
        if due is not None:
            self._timer = self._loop.call_at(due + TIMER_SLACK, self._on_timer)

    def _log(self, text: str) -> None:
        if self.log is not None:
            self.log(text)
