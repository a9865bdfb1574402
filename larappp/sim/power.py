"""The simulated module's power: the reboot that AT+CFUN=16 asks for (ports go away and
come back after `reboot_time`, RAM reset, NVM applied), and vanishing for good.

Functions over a Module. A shutdown is announced by the command's final result code and
takes `shutdown_delay`; then every call ends and the ports close.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from larappp.sim import datamode, packet
from larappp.sim.events import PortsClosed, PortsReopened
from larappp.sim.state import COMMAND, Ram

if TYPE_CHECKING:
    from larappp.sim.module import Module


def start_shutdown(m: Module, now: float, then: str) -> None:
    """Begin shutting down; `then` is "reboot" or "vanish" (the ports never come back)."""
    if m.state == "shutting-down":
        if then == "vanish":
            m.shutdown_then = then  # a pending reboot turns into vanishing
        return
    if m.state != "on":
        return
    m.state = "shutting-down"
    m.shutdown_then = then
    m.shutdown_due = now + m.scenario.shutdown_delay
    m.ram.registration_due = None
    m.scheduled.clear()


def vanish(m: Module, now: float) -> None:
    """Shut down and never come back (a vanishing command fault)."""
    m.counters["vanished"] += 1
    start_shutdown(m, now, "vanish")


def power_down(m: Module, now: float, *, down_for: float | None = None) -> None:
    """The shutdown is over: calls end, the ports close, a reboot is scheduled (after
    `down_for`, default the scenario's reboot time)."""
    for p in m.ports:
        if p.call is not None:
            datamode.end_call(m, p, "reboot" if m.shutdown_then == "reboot" else "vanished",
                           now, result=None, deactivate=False)
        p.out.clear()
    if m.shutdown_then == "reboot":
        m.counters["reboots"] += 1
        m.state = "rebooting"
        m.boot_due = now + (m.scenario.reboot_time if down_for is None else down_for)
        m.emit(PortsClosed("reboot", m.boot_due))
    else:
        m.state = "vanished"
        m.emit(PortsClosed("vanished", None))
    for p in m.ports:
        m.emit(m.modem_lines(p.index))


def boot(m: Module, now: float, *, announce: bool) -> None:
    """Boot: RAM from NVM, ports in their power-on profile, registration starts."""
    m.ram = Ram(
        applied_range=m.nvm.embpf,
        applied_xlat=m.nvm.xlat == 1,
        applied_default_context=m.nvm.default_context,
    )
    m.scheduled.clear()
    m.unplugged_until = None
    for p in m.ports:
        p.mode = COMMAND
        p.call = None
        p.out.clear()
        p.assembler.clear()
        p.reset_profile(m.scenario)
    m.state = "on"
    m.counters["boots"] += 1
    if announce:
        m.emit(PortsReopened())
        for p in m.ports:
            m.emit(m.modem_lines(p.index))
    packet.start_registration(m, now)
