"""LARA-R6 AT sequences as chat scripts: constant data that the AT runner executes.

Each step is a command and, where the answer matters, what it must contain; its timeout
is the one the AT commands manual allows for that command (`rules.command_timeout`), or
None for a command that answers at once (the runner then uses the configured
modem.command_timeout). The steps that depend on a decision (what to change in NVM,
which contexts to define, when to reboot) stay in `larappp.modem`, which runs these
scripts between its decisions, top to bottom (STYLE.md §2, §5).

Standard library only; no I/O.
"""

from __future__ import annotations

from larappp.lara_r6 import commands, rules
from larappp.proto.at.chat import ChatScript, ChatStep

__all__ = ["DIAL_PORT_SETUP", "MODULE_INIT", "NETWORK_REPORTING", "READ_OPERATOR", "READ_OPERATOR_NAME", "step"]


def step(command: str, expect: str | None = None) -> ChatStep:
    """A chat step with the timeout the AT commands manual allows for `command`."""
    return ChatStep(command, expect=expect, timeout=rules.command_timeout(command))


# AT&D2: a DTR ON-to-OFF transition clears the call (ITU-T V.250 §6.2.9): the module ends
# PPP, deactivates the context and is back in command mode with NO CARRIER, which is what
# larappp's DTR teardown waits for (app note §4.2). The factory setting &D1 would only
# switch to online command mode and leave the call up. With &D2 "+++" during a PPP call
# also ends the call (u-blox AT manual, &D), so neither fallback leaves a call behind.
# &D is a per-port setting: every port that dials sets it too (DIAL_PORT_SETUP).
_DTR_CLEARS_THE_CALL = step(commands.amp_d(2))

#: Right after the port answers AT (at start and after every reboot).
MODULE_INIT = ChatScript(
    "module init",
    (
        # Verbose +CME ERROR texts: errors tell the user what to change.
        step(commands.cmee(2)),
        _DTR_CLEARS_THE_CALL,
    ),
)

#: After the contexts are defined, before the radio goes on (app note §2.3).
NETWORK_REPORTING = ChatScript(
    "network reporting",
    (
        # ATH in online command mode ends PPP and deactivates the context (app note §4.2).
        step(commands.cvhu(0)),
        # +CEREG URCs with TAC, cell and AcT: registration changes reach the control port.
        step(commands.cereg_set(2)),
        # +CGEV URCs (the network deactivated a context, detached): kept while the port
        # is in data mode and delivered after it (3GPP TS 27.007 §10.1.19 mode 2).
        step(commands.cgerep(2)),
    ),
)

#: The registered operator as a numeric PLMN ("310260"), for the XLAT decision (§2.5).
READ_OPERATOR = ChatScript(
    "operator",
    (
        step(commands.cops_format_numeric()),
        step(commands.cops_read(), expect=r"^\+COPS:"),
    ),
)

#: The operator's long name ("Vodafone IT") for people, then back to the numeric format.
READ_OPERATOR_NAME = ChatScript(
    "operator name",
    (
        step(commands.cops_format_long()),
        step(commands.cops_read(), expect=r"^\+COPS:"),
        step(commands.cops_format_numeric()),
    ),
)

#: On a session's own port before it dials: AT+CVHU and AT&D are per port.
DIAL_PORT_SETUP = ChatScript(
    "dial port setup",
    (
        step("AT"),
        # ATH in online command mode must end this port's call (app note §4.2).
        step(commands.cvhu(0)),
        _DTR_CLEARS_THE_CALL,
        # AT&C1: DCD is on while this port's call is up and drops when the module ends it
        # (ITU-T V.250 §6.2.8), so a serial or RFC 2217 port tells larappp of a lost call
        # within CARRIER_POLL_S or one NOTIFY-MODEMSTATE. &C1 is the factory setting, but a
        # profile stored with &C0 (DCD always on) would leave DCD meaning nothing.
        step(commands.amp_c(1)),
    ),
)
