"""Chat scripts: AT sequences as constant data, and the pure check of one step's answer.

A script is a tuple of steps (command, what the answer must contain, timeout), a set of
abort matches that fail it at once, and optionally a timeout for the whole script. A
runner (`larappp.engine.at.AtRunner.run_script`) sends each step, collects the answer
with `AtClient`, and asks `check_step()` whether to go on. Dialling is not a chat step:
it hands the port over to PPP (`AtRunner.dial`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from larappp.proto.at.core import FinalResult, describe_final, hint_for

#: Answers that end a script at once (matched as prefixes of the final or response lines).
DEFAULT_ABORTS: tuple[str, ...] = (
    "ERROR",
    "+CME ERROR",
    "+CMS ERROR",
    "NO CARRIER",
    "BUSY",
    "NO ANSWER",
    "NO DIALTONE",
)


@dataclass(frozen=True)
class ChatStep:
    """One command of a chat script and what its answer must contain.

    `expect` is a regular expression searched in every response line and in the final
    line; None means the final result must be OK. `timeout` None leaves it to the runner
    (its table of per-command timeouts). `prefixes` overrides the response prefixes (see
    `AtClient.send`).
    """

    command: str
    expect: str | None = None
    timeout: float | None = None
    prefixes: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not self.command.strip().upper().startswith("AT"):
            raise ValueError(
                f"chat step {self.command!r} is not an AT command (it must start with AT)"
            )
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError(
                f"chat step {self.command!r} needs a positive timeout, not {self.timeout}"
            )
        if self.expect is not None:
            try:
                re.compile(self.expect)
            except re.error as exc:
                raise ValueError(
                    f"chat step {self.command!r}: expect {self.expect!r} is not a valid"
                    f" regular expression ({exc}); fix the pattern"
                ) from exc


@dataclass(frozen=True)
class ChatScript:
    """An AT sequence as data: steps in order, abort matches, and a timeout for the whole."""

    name: str
    steps: tuple[ChatStep, ...]
    aborts: tuple[str, ...] = DEFAULT_ABORTS
    total_timeout: float | None = None

    def __post_init__(self) -> None:
        if self.total_timeout is not None and not self.total_timeout > 0:
            raise ValueError(
                f"{self.name} needs a positive total_timeout, not {self.total_timeout}"
            )
        if isinstance(self.steps, list):
            # Accept a list for convenience, but keep the script immutable.
            object.__setattr__(self, "steps", tuple(self.steps))


@dataclass(frozen=True)
class StepCheck:
    """Whether a step's answer lets the script go on; `reason` says why not, `matched` what hit."""

    passed: bool
    reason: str = ""
    matched: str | None = None


def find_abort(lines: Sequence[str], final: FinalResult, aborts: Sequence[str]) -> str | None:
    """The first response or final line that starts with an abort match, or None."""
    for line in (*lines, final.text):
        upper = line.strip().upper()
        for abort in aborts:
            if abort and upper.startswith(abort.upper()):
                return line
    return None


def check_step(
    step: ChatStep,
    lines: Sequence[str],
    final: FinalResult,
    aborts: Sequence[str] = DEFAULT_ABORTS,
) -> StepCheck:
    """Judge one step's answer: aborts first, then the final result, then `expect`."""
    aborted_on = find_abort(lines, final, aborts)
    if aborted_on is not None:
        described = describe_final(final) if aborted_on == final.text else aborted_on
        hint = hint_for(final) if aborted_on == final.text else None
        return StepCheck(False, f"{described}: {hint}" if hint else described)
    if final.kind not in ("ok", "connect"):
        return StepCheck(False, describe_final(final))
    if step.expect is None:
        if final.kind != "ok":
            return StepCheck(False, f"{final.text} where OK was expected")
        return StepCheck(True)
    pattern = re.compile(step.expect)
    for line in (*lines, final.text):
        if pattern.search(line):
            return StepCheck(True, matched=line)
    return StepCheck(False, f"the answer did not match {step.expect!r}")
