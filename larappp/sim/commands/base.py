"""What every AT command handler of the simulated module shares: its reply, its failure,
the parameter parsers and the handler signature."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from larappp.sim.atcmd import Command, CommandSyntaxError, Param, split_params
from larappp.sim.state import PortState

if TYPE_CHECKING:
    from larappp.sim.module import Module

#: 3GPP TS 27.007 §9.2 error codes used here, with their verbose texts.
CME_TEXT = {
    3: "operation not allowed",
    4: "operation not supported",
    30: "no network service",
    50: "Incorrect parameters",
    100: "unknown",
    132: "service option not supported",
    148: "unspecified GPRS error",
}


class Failure(Exception):
    """A command failed: `cme` is formatted per AT+CMEE, `final` is sent as is."""

    def __init__(self, cme: int | None = None, final: str | None = None) -> None:
        super().__init__(cme, final)
        self.cme = cme
        self.final = final


@dataclass
class Reply:
    """A command's information lines, its final result code and what runs once it is sent."""

    lines: list[str] = field(default_factory=list)
    final: str = "OK"
    after: Callable[[], None] | None = None


#: One command's handler: (module, the port it came on, the command, now) -> its reply.
Handler = Callable[["Module", PortState, Command, float], Reply]


def failure_text(p: PortState, failure: Failure) -> str:
    """The final result code of a failed command as the port's AT+CMEE asks for it."""
    if failure.final is not None:
        return failure.final
    code = failure.cme if failure.cme is not None else 100
    if p.cmee == 1:
        return f"+CME ERROR: {code}"
    if p.cmee == 2:
        return f"+CME ERROR: {CME_TEXT.get(code, 'unknown')}"
    return "ERROR"


def parse_params(cmd: Command) -> list[Param]:
    try:
        return split_params(cmd.args)
    except CommandSyntaxError:
        raise Failure(cme=50) from None


def int_param(params: list[Param], index: int, lo: int, hi: int, default: int | None = None) -> int:
    if index >= len(params) or params[index].empty:
        if default is None:
            raise Failure(cme=50)
        return default
    param = params[index]
    if param.quoted or not param.text.isdigit():
        raise Failure(cme=50)
    value = int(param.text)
    if not lo <= value <= hi:
        raise Failure(cme=50)
    return value


def str_param(params: list[Param], index: int, default: str | None = None) -> str:
    if index >= len(params) or params[index].empty:
        if default is None:
            raise Failure(cme=50)
        return default
    return params[index].text


def basic_value(cmd: Command, allowed: tuple[int, ...]) -> int:
    """The number of a basic command ("E0", "&D2"); 0 when it has none."""
    value = int(cmd.args) if cmd.args else 0
    if value not in allowed:
        raise Failure(cme=50)
    return value


def port_setting(name: str, attr: str, highest: int, *, status: Callable[[Module], str] | None = None) -> Handler:
    """The handler of a per-port setting `AT<name>=<0..highest>` (default 0) whose read
    form reports it, followed by `status(module)` where the command reports a state too."""

    def handler(m: Module, p: PortState, cmd: Command, now: float) -> Reply:
        if cmd.kind == "read":
            tail = f",{status(m)}" if status is not None else ""
            return Reply([f"{name}: {getattr(p, attr)}{tail}"])
        setattr(p, attr, int_param(parse_params(cmd), 0, 0, highest, default=0))
        return Reply()

    return handler
