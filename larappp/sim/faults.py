"""Faults the network or the hardware inflicts on the simulated module while it runs (sans-IO).

Functions over a Module, each with the time as an input, like the AT commands. What
each does on the wire is written in `larappp.sim.control`, which calls these on a
running simulator; tests of the module model call them directly.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from larappp.sim import datamode, packet, power
from larappp.sim.events import PortsClosed
from larappp.sim.state import Call, PortState

if TYPE_CHECKING:
    from larappp.sim.module import Module

#: The +CGEV forms of a context deactivation (3GPP TS 27.007 §10.1.19).
DEACTIVATION_URCS = ("NW PDN DEACT", "NW DEACT", "ME PDN DEACT")


class FaultError(Exception):
    """The fault cannot be applied now (no such call, the module is not running...)."""


def call_port(m: Module, *, cid: int | None = None, port: int | None = None) -> PortState:
    """The port whose call is on `cid` (or the port `port`, which must have a call)."""
    if port is not None:
        if not 0 <= port < len(m.ports):
            raise FaultError(f"port {port} does not exist: the module has ports 0-{len(m.ports) - 1}")
        if m.ports[port].call is None:
            raise FaultError(f"port {port} has no data call")
        return m.ports[port]
    for p in m.ports:
        if p.call is not None and (cid is None or p.call.cid == cid):
            return p
    raise FaultError("no data call is up" if cid is None else f"no data call is up on cid {cid}")


def _running(m: Module) -> None:
    if m.state != "on":
        raise FaultError(f"the module is not running now (it is {m.state})")
    if m.unplugged_until is not None:
        raise FaultError("the module's ports are unplugged now")


def drop_call(m: Module, now: float, *, cid: int | None = None, port: int | None = None) -> Call:
    """The network drops the call: NO CARRIER on its port, command mode, no LCP Terminate.

    The PDN connection stays (a dropped radio link does not end it): the host may dial again.
    """
    _running(m)
    p = call_port(m, cid=cid, port=port)
    call = p.call
    assert call is not None
    datamode.end_call(m, p, "network-drop", now, result="NO CARRIER", deactivate=False)
    return call


def deactivate_context(m: Module, now: float, cid: int, *, urc: str = "NW PDN DEACT") -> None:
    """The network deactivates `cid`: +CGEV where reported, NO CARRIER on a call on it."""
    _running(m)
    if urc not in DEACTIVATION_URCS:
        raise FaultError(f"+CGEV form {urc!r} is unknown: use one of {', '.join(DEACTIVATION_URCS)}")
    if cid not in m.ram.contexts:
        raise FaultError(f"cid {cid} is not active")
    packet.deactivate(m, cid, now, "network-deact", urc=urc)


def silence(m: Module, now: float, *, cid: int | None = None, port: int | None = None,
            seconds: float | None = None, on: bool = True) -> Call:
    """The call's PPP peer falls silent: nothing passes between the port and the session
    (no LCP Echo-Reply, no packets either way) for `seconds` (None: until switched off)."""
    _running(m)
    p = call_port(m, cid=cid, port=port)
    call = p.call
    assert call is not None
    if not on:
        call.silent_until = None
    else:
        call.silent_until = math.inf if seconds is None else now + seconds
    m.notify()
    return call


def dcd_off(m: Module, now: float, *, cid: int | None = None, port: int | None = None) -> Call:
    """DCD goes off on the call's port while the call itself goes on (no NO CARRIER, PPP
    still answered): what a host sees when only the carrier line tells it."""
    _running(m)
    p = call_port(m, cid=cid, port=port)
    call = p.call
    assert call is not None
    call.dcd_off = True
    m.emit(m.modem_lines(p.index))
    return call


def reboot(m: Module, now: float, *, down_for: float | None = None) -> None:
    """The module resets at once: calls end without a word, the ports vanish, and after
    `down_for` (default: the scenario's reboot time) it boots unregistered, ports back."""
    _running(m)
    m.counters["faults_reboot"] += 1
    m.shutdown_then = "reboot"
    power.power_down(m, now, down_for=down_for)


def unplug(m: Module, now: float, seconds: float) -> None:
    """The ports vanish for `seconds` (USB re-enumeration) and come back under the same
    names; the module keeps running (registered, contexts kept) but its calls end as
    on a DTR drop."""
    _running(m)
    if seconds <= 0:
        raise FaultError("the ports must vanish for more than 0 s")
    m.counters["faults_unplug"] += 1
    m.unplugged_until = now + seconds
    for p in m.ports:
        if p.call is not None:
            datamode.end_call(m, p, "unplugged", now, result=None, deactivate=True)
        p.out.clear()
    m.emit(PortsClosed("unplugged", m.unplugged_until))
    for p in m.ports:
        m.emit(m.modem_lines(p.index))


def radio_off(m: Module, now: float) -> None:
    """The radio goes off as with AT+CFUN=0 from another port: +CEREG: 0 where reported,
    every context deactivated (NO CARRIER on the calls)."""
    _running(m)
    m.ram.cfun = 0
    packet.deregister(m, now, "radio-off")


def radio_on(m: Module, now: float) -> None:
    """The radio comes back as with AT+CFUN=1: registration starts again."""
    _running(m)
    m.ram.cfun = 1
    if m.ram.cops_mode != 2:
        packet.start_registration(m, now)
