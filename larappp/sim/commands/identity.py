"""Identity commands of the simulated module: model, firmware, manufacturer, IMEI, IMSI,
ICCID, SIM state."""

from __future__ import annotations

from typing import TYPE_CHECKING

from larappp.sim.atcmd import Command
from larappp.sim.commands.base import Failure, Handler, Reply
from larappp.sim.state import PortState

if TYPE_CHECKING:
    from larappp.sim.module import Module

IMEI = "352753090000001"
ICCID = "8901260000000000001"


def info(m: Module, p: PortState, cmd: Command, now: float) -> Reply:
    value = int(cmd.args) if cmd.args else 0
    if value == 0:
        return Reply([m.scenario.model])
    if value == 9:
        return Reply([f"{m.scenario.firmware},A00.01"])
    raise Failure(cme=4)


def model(m: Module, p: PortState, cmd: Command, now: float) -> Reply:
    return Reply([m.scenario.model])


def revision(m: Module, p: PortState, cmd: Command, now: float) -> Reply:
    return Reply([m.scenario.firmware])


def manufacturer(m: Module, p: PortState, cmd: Command, now: float) -> Reply:
    return Reply(["u-blox"])


def imei(m: Module, p: PortState, cmd: Command, now: float) -> Reply:
    return Reply([IMEI])


def imsi(m: Module, p: PortState, cmd: Command, now: float) -> Reply:
    return Reply([f"{m.scenario.network.home_plmn}123456789"[:15]])


def ccid(m: Module, p: PortState, cmd: Command, now: float) -> Reply:
    return Reply([f"+CCID: {ICCID}"])


def cpin(m: Module, p: PortState, cmd: Command, now: float) -> Reply:
    if cmd.kind == "read":
        return Reply(["+CPIN: READY"])
    raise Failure(cme=3)


HANDLERS: dict[str, Handler] = {
    "I": info,
    "+CGMM": model,
    "+GMM": model,
    "+CGMR": revision,
    "+GMR": revision,
    "+CGMI": manufacturer,
    "+GMI": manufacturer,
    "+CGSN": imei,
    "+GSN": imei,
    "+CIMI": imsi,
    "+CCID": ccid,
    "+CPIN": cpin,
}
