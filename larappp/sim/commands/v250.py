"""General V.250 commands of the simulated module: echo, result code format, profile, &D,
S registers, error reporting, hang-up control, and commands accepted without effect."""

from __future__ import annotations

from typing import TYPE_CHECKING

from larappp.sim.atcmd import Command
from larappp.sim.commands.base import (
    Failure,
    Handler,
    Reply,
    basic_value,
    port_setting,
)
from larappp.sim.state import PortState

if TYPE_CHECKING:
    from larappp.sim.module import Module


def echo(m: Module, p: PortState, cmd: Command, now: float) -> Reply:
    p.echo = basic_value(cmd, (0, 1)) == 1
    return Reply()


def verbose(m: Module, p: PortState, cmd: Command, now: float) -> Reply:
    p.verbose = basic_value(cmd, (0, 1)) == 1
    return Reply()


def quiet(m: Module, p: PortState, cmd: Command, now: float) -> Reply:
    p.quiet = basic_value(cmd, (0, 1)) == 1
    return Reply()


def reset_profile(m: Module, p: PortState, cmd: Command, now: float) -> Reply:
    p.reset_profile(m.scenario)
    return Reply()


def ok(m: Module, p: PortState, cmd: Command, now: float) -> Reply:
    return Reply()


def amp_c(m: Module, p: PortState, cmd: Command, now: float) -> Reply:
    """&C0: DCD always on; &C1 (default): DCD on while the port's call is up."""
    p.amp_c = basic_value(cmd, (0, 1))
    m.emit(m.modem_lines(p.index))
    return Reply()


def amp_d(m: Module, p: PortState, cmd: Command, now: float) -> Reply:
    p.amp_d = basic_value(cmd, (0, 1, 2))
    return Reply()


def s_register(m: Module, p: PortState, cmd: Command) -> Reply:
    reg = int(cmd.name[1:])
    if cmd.kind == "read":
        return Reply([f"{p.s_regs.get(reg, 0):03d}"])
    if not cmd.args.isdigit() or int(cmd.args) > 255:
        raise Failure(cme=50)
    p.s_regs[reg] = int(cmd.args)
    if reg == 2:
        p.detector.char = int(cmd.args)
    return Reply()


def accept(m: Module, p: PortState, cmd: Command, now: float) -> Reply:
    """Commands accepted without effect on the simulation (flow control, baud rate...)."""
    if cmd.kind == "read":
        return Reply([f"{cmd.name}: 0"])
    return Reply()


HANDLERS: dict[str, Handler] = {
    "E": echo,
    "V": verbose,
    "Q": quiet,
    "Z": reset_profile,
    "&F": reset_profile,
    "&W": ok,
    "&C": amp_c,
    "&K": ok,
    "&S": ok,
    "X": ok,
    "L": ok,
    "M": ok,
    "&D": amp_d,
    "+CMEE": port_setting("+CMEE", "cmee", 2),
    "+CVHU": port_setting("+CVHU", "cvhu", 2),
    "+IPR": accept,
    "+IFC": accept,
    "+CMER": accept,
    "+CRC": accept,
    "+UPSV": accept,
}
