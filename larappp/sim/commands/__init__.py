"""The simulated module's AT commands: one table of handlers, one file per family.

- v250.py: echo, result code format, profile, &D, S registers, +CMEE, +CVHU
- identity.py: I, +CGMM, +CGMR, +CGMI, +CGSN, +CIMI, +CCID, +CPIN
- dial.py: D, O, H (data calls)
- radio.py: +CFUN, +COPS, +CEREG/+CREG/+CGREG, +CGATT, +CSQ, +CSCON
- pdp.py: +CGDCONT, +CGACT, +CGCONTRDP, +CGPADDR, +UAUTHREQ, +CGEREP
- ublox.py: +UMNOPROF, +UDCONF, +UEMBPF, +ULWM2M, +UPING, +UDNSRN

A new command is a handler `(module, port, command, now) -> Reply` in its family's
file and a row in that file's HANDLERS; "=?" answers are rows of TESTS below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from larappp.sim.atcmd import Command
from larappp.sim.commands import dial, identity, pdp, radio, ublox, v250
from larappp.sim.commands.base import Failure, Handler, Reply
from larappp.sim.state import PortState

if TYPE_CHECKING:
    from larappp.sim.module import Module

HANDLERS: dict[str, Handler] = {
    **v250.HANDLERS,
    **identity.HANDLERS,
    **dial.HANDLERS,
    **radio.HANDLERS,
    **pdp.HANDLERS,
    **ublox.HANDLERS,
}

#: Answers to "=?" (test) commands.
TESTS: dict[str, str] = {
    "+CMEE": "+CMEE: (0-2)",
    "+CFUN": "+CFUN: (0,1,4,15,16),(0-1)",
    "+UMNOPROF": "+UMNOPROF: (0-201)",
    "+CGDCONT": '+CGDCONT: (0-11),"IP",,,(0),(0),(0-3),(0-4)',
    "+CGACT": "+CGACT: (0,1)",
    "+CEREG": "+CEREG: (0-5)",
    "+CREG": "+CREG: (0-2)",
    "+CGREG": "+CGREG: (0-2)",
    "+CVHU": "+CVHU: (0-2)",
    "+UEMBPF": '+UEMBPF: (0,1),"1-65535"',
    "+CSCON": "+CSCON: (0-3)",
    "+UAUTHREQ": "+UAUTHREQ: (0-11),(0-3),,",
}


def dispatch(m: Module, p: PortState, cmd: Command, now: float) -> Reply:
    """Run one command; Failure when it fails (unknown commands: +CME ERROR 4)."""
    name = cmd.name
    if name.startswith("S") and name[1:].isdigit():
        return v250.s_register(m, p, cmd)
    handler = HANDLERS.get(name)
    if handler is None:
        raise Failure(cme=4)
    if cmd.kind == "test" and name in TESTS:
        return Reply([TESTS[name]])
    return handler(m, p, cmd, now)
