"""When a PPP session counts as up, and why it ended: the part both backends share."""

from __future__ import annotations

import asyncio

from larappp.errors import LarapppError, PPPError


class EngineOutcome:
    """Tracks the IP families a PPP session needs and how it ended (built-in and pppd engines)."""

    def __init__(self, ifname: str, families: tuple[int, ...]) -> None:
        self.outcome_ifname = ifname
        self.families_up: set[int] = set()
        self.families_expected: set[int] = set(families)
        self.terminated = asyncio.Event()
        self.reason = ""
        self._up = asyncio.Event()
        self._failure: LarapppError | None = None
        self._families_dropped: list[str] = []

    def _progress_text(self) -> str:
        """Where negotiation stands, for the timeout message (each engine says it its way)."""
        return ""

    async def wait_up(self, timeout: float) -> None:
        """Until every expected family is usable; PPPError with the reason otherwise."""
        up = asyncio.create_task(self._up.wait())
        ended = asyncio.create_task(self.terminated.wait())
        try:
            done, _ = await asyncio.wait({up, ended}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            up.cancel()
            ended.cancel()
        if self._failure is not None:
            raise self._failure
        if self.terminated.is_set() and not self._up.is_set():
            raise PPPError(f"PPP on {self.outcome_ifname} ended before it was up: {self.reason}")
        if not done:
            missing = sorted(self.families_expected - self.families_up)
            raise PPPError(
                f"PPP on {self.outcome_ifname} was not up within {timeout:g} s "
                f"(IPv{', IPv'.join(map(str, missing))} not usable yet, {self._progress_text()}): "
                "check the APN and PDP type, or raise the timeout"
            )

    def _check_up(self) -> None:
        if self.families_expected and self.families_expected <= self.families_up:
            self._up.set()
        elif not self.families_expected:
            why = "; ".join(self._families_dropped)
            self._fail(PPPError(
                f"PPP on {self.outcome_ifname}: the network offers none of the configured IP families "
                f"({why}): check the APN and the PDP type"
            ))

    def _fail(self, error: LarapppError) -> None:
        if self._failure is None:
            self._failure = error
        self._finish(str(error))

    def _finish(self, reason: str) -> None:
        if not self.terminated.is_set():
            self.reason = reason
            self.terminated.set()
