"""Data call commands of the simulated module: D (dial a PDP context), O (back online), H."""

from __future__ import annotations

from typing import TYPE_CHECKING

from larappp.sim import datamode, packet
from larappp.sim.atcmd import Command
from larappp.sim.commands.base import Failure, Handler, Reply
from larappp.sim.state import DATA, ONLINE_COMMAND, PortState

if TYPE_CHECKING:
    from larappp.sim.module import Module


def hook(m: Module, p: PortState, cmd: Command, now: float) -> Reply:
    # App note §4.2: with AT+CVHU=0 (or 2), ATH in online command mode ends the PPP and
    # deactivates its context; with the default CVHU=1 ATH answers OK and does nothing.
    if p.mode == ONLINE_COMMAND and p.call is not None and p.cvhu in (0, 2):
        datamode.end_call(m, p, "ath", now, result=None, deactivate=True)
    return Reply()


def online(m: Module, p: PortState, cmd: Command, now: float) -> Reply:
    if p.mode != ONLINE_COMMAND or p.call is None:
        raise Failure(final="NO CARRIER")

    def resume() -> None:
        p.mode = DATA
        p.detector.reset(now)

    return Reply(final="CONNECT", after=resume)


def dial(m: Module, p: PortState, cmd: Command, now: float) -> Reply:
    m.counters["dials"] += 1
    if p.mode == ONLINE_COMMAND:
        raise Failure(cme=3)
    cid = parse_dial(cmd.args)
    if cid is None:
        raise Failure(final="NO CARRIER")
    if cid not in m.nvm.contexts:
        raise Failure(final="ERROR")
    if m.ram.cfun != 1 or not m.registered:
        raise Failure(final="NO CARRIER")
    # App note §4.1.3: up to 3 PPP instances at once, one per context.
    if len(m.calls) >= m.scenario.max_ppp:
        m.counters["dials_refused"] += 1
        raise Failure(final="NO CARRIER")
    if any(call.cid == cid for call in m.calls):
        raise Failure(final="NO CARRIER")
    # App note §4: if the PDN connection of the cid is not active, the dial activates it.
    if packet.activate(m, cid, now) is not None:
        raise Failure(final="NO CARRIER")
    ctx = m.ram.contexts[cid]
    return Reply(final="CONNECT", after=lambda: datamode.start_call(m, p, ctx, now))

# == extended commands ===========================================================================


def parse_dial(args: str) -> int | None:
    """The cid of a packet-domain dial string ("*99***1#", "T*99#"); None for anything else."""
    text = args.strip().upper()
    if text[:1] in ("T", "P"):
        text = text[1:]
    if not (text.startswith(("*99", "*98"))) or not text.endswith("#"):
        return None
    fields = text[3:-1].split("*")
    if fields == [""]:
        return 1
    # *99*<called address>*<L2P>*<cid>#
    if len(fields) != 4 or fields[0] != "":
        return None
    cid_text = fields[3]
    if cid_text == "":
        return 1
    if not cid_text.isdigit():
        return None
    return int(cid_text)


HANDLERS: dict[str, Handler] = {
    "H": hook,
    "O": online,
    "D": dial,
}
