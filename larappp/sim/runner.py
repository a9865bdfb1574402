"""Runs the sans-IO simulated module on an asyncio loop: clock, timer, fan-out to port servers."""

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
from larappp.sim.module import Module

#: asyncio may run a timer a little early; the module's strict deadlines need "after".
TIMER_SLACK = 0.001


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
        self._busy = True
        try:
            self.module.receive_data(port, data, self.now)
        finally:
            self._busy = False
        self._flush()

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
        module = self.module
        for port, sinks in self._sinks.items():
            data = module.data_to_send(port)
            if data:
                for sink in list(sinks):
                    sink.write(data)
        while (event := module.next_event()) is not None:
            if isinstance(event, ModemLinesChanged):
                for sink in list(self._sinks[event.port]):
                    sink.lines_changed(event)
            elif isinstance(event, PortsClosed):
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
        self._arm_timer()

    def _arm_timer(self) -> None:
        due = self.module.get_timer()
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
