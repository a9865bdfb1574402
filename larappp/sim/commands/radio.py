"""Registration and radio commands of the simulated module: +CFUN, +COPS, +CEREG/+CREG/
+CGREG, +CGATT, +CSQ, +CESQ, +CSCON."""

from __future__ import annotations

from typing import TYPE_CHECKING

from larappp.sim import packet, power
from larappp.sim.atcmd import Command
from larappp.sim.commands.base import (
    Failure,
    Handler,
    Reply,
    int_param,
    parse_params,
    port_setting,
    str_param,
)
from larappp.sim.state import PortState

if TYPE_CHECKING:
    from larappp.sim.module import Module


def csq(m: Module, p: PortState, cmd: Command, now: float) -> Reply:
    return Reply(["+CSQ: 22,99" if m.registered else "+CSQ: 99,99"])


# A fair LTE cell (RSRQ -10 dB, RSRP -96 dBm); nothing is known while not registered.
CESQ_REGISTERED = "+CESQ: 99,99,255,255,20,45"
CESQ_UNKNOWN = "+CESQ: 99,99,255,255,255,255"


def cesq(m: Module, p: PortState, cmd: Command, now: float) -> Reply:
    if cmd.kind not in ("action", "test"):
        raise Failure(cme=50)
    if cmd.kind == "test":
        return Reply(["+CESQ: (0-63,99),(0-7,99),(0-96,255),(0-49,255),(0-34,255),(0-97,255)"])
    return Reply([CESQ_REGISTERED if m.registered else CESQ_UNKNOWN])


def cfun(m: Module, p: PortState, cmd: Command, now: float) -> Reply:
    if cmd.kind == "read":
        return Reply([f"+CFUN: {m.ram.cfun}"])
    if cmd.kind != "set":
        raise Failure(cme=50)
    params = parse_params(cmd)
    fun = int_param(params, 0, 0, 19)
    rst = int_param(params, 1, 0, 1, default=0)
    if fun in (15, 16) or (fun == 1 and rst == 1):
        # App note §2.3.1: the reboot that makes NVM settings effective.
        power.start_shutdown(m, now, "reboot")
        return Reply()
    if fun in (0, 4):
        m.ram.cfun = fun
        packet.deregister(m, now, "cfun")
        return Reply()
    if fun == 1:
        m.ram.cfun = 1
        if m.ram.cops_mode != 2:
            packet.start_registration(m, now)
        return Reply()
    raise Failure(cme=50)


def cops(m: Module, p: PortState, cmd: Command, now: float) -> Reply:
    net = m.scenario.network
    if cmd.kind == "read":
        if m.registered:
            name = (net.long_name, net.short_name, net.plmn)[m.ram.cops_format]
            return Reply([f'+COPS: {m.ram.cops_mode},{m.ram.cops_format},"{name}",7'])
        return Reply([f"+COPS: {m.ram.cops_mode}"])
    if cmd.kind == "test":
        return Reply([f'+COPS: (2,"{net.long_name}","{net.short_name}","{net.plmn}",7),,(0-4),(0-2)'])
    params = parse_params(cmd)
    mode = int_param(params, 0, 0, 4)
    if mode == 3:
        m.ram.cops_format = int_param(params, 1, 0, 2)
        return Reply()
    if mode == 2:
        m.ram.cops_mode = 2
        packet.deregister(m, now, "cops")
        return Reply()
    if mode == 1:
        wanted = str_param(params, 2)
        if wanted not in (net.plmn, net.long_name, net.short_name):
            raise Failure(cme=30)
    m.ram.cops_mode = 1 if mode == 1 else 0
    if m.ram.cfun == 1:
        packet.start_registration(m, now)
    return Reply()


def reg(m: Module, p: PortState, cmd: Command, now: float) -> Reply:
    if cmd.kind == "read":
        n = p.reg_urc[cmd.name]
        return Reply([packet.registration_text(m, cmd.name, m.ram.stat, n, read=True)])
    p.reg_urc[cmd.name] = int_param(parse_params(cmd), 0, 0, 5, default=0)
    return Reply()


def cgatt(m: Module, p: PortState, cmd: Command, now: float) -> Reply:
    if cmd.kind == "read":
        return Reply([f"+CGATT: {1 if m.registered else 0}"])
    if int_param(parse_params(cmd), 0, 0, 1) == 1:
        if m.ram.cfun != 1:
            raise Failure(cme=3)
        packet.start_registration(m, now)
    else:
        packet.deregister(m, now, "cgatt")
    return Reply()


def _rrc_state(m: Module) -> str:
    """+CSCON's <mode>: 1 while the RRC connection is up (3GPP TS 27.007 §10.1.30)."""
    return "1" if m.ram.rrc_connected else "0"


HANDLERS: dict[str, Handler] = {
    "+CSQ": csq,
    "+CESQ": cesq,
    "+CFUN": cfun,
    "+COPS": cops,
    "+CEREG": reg,
    "+CREG": reg,
    "+CGREG": reg,
    "+CGATT": cgatt,
    "+CSCON": port_setting("+CSCON", "cscon", 3, status=_rrc_state),
}
