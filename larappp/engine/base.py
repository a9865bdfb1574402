"""What both PPP engines share: how they are built, when a session counts as up, why it ended."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import time
from collections.abc import Callable

from larappp.engine.options import EngineOptions
from larappp.errors import LarapppError, PPPError
from larappp.hostnet import HostInterface
from larappp.transport.pipe import Pipe


def no_router_advertisement(ifname: str, reason: str) -> PPPError:
    """The error when SLAAC gave up waiting for a Router Advertisement (both engines)."""
    return PPPError(
        f"no Router Advertisement on {ifname} ({reason}): the network gave "
        "no IPv6 prefix; check the PDP type, or use pdp_type = \"IP\""
    )


async def cancel_all(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel `tasks`, wait until each has ended, and empty the list."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    tasks.clear()


class PppEngine(abc.ABC):
    """One session's PPP over a dialled pipe (built-in or pppd): the families it needs, how it ended."""

    #: who holds the pipe while PPP runs
    OWNER = "ppp"

    def __init__(
        self,
        pipe: Pipe,
        options: EngineOptions,
        *,
        leftover: bytes = b"",
        clock: Callable[[], float] = time.monotonic,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        """`leftover`: the bytes that followed CONNECT (the module's first frames)."""
        self.pipe = pipe
        self.options = options
        self._leftover = leftover
        self._clock = clock
        self._note = on_event or (lambda _m: None)
        self.host = HostInterface(
            options.ifname, default_route=options.default_route, metric=options.metric,
            dns_mode=options.dns_mode, dns_dir=options.dns_dir, nat=options.nat, embpf=options.embpf,
            firewall_ipv6=options.firewall_ipv6,
        )
        self.families_up: set[int] = set()
        self.families_expected: set[int] = set(options.families)
        self.terminated = asyncio.Event()
        self.reason = ""
        #: how the link was lost without a Terminate exchange (proto.ppp.events.LOST_CAUSES),
        #: None otherwise: after "left-data-mode" and "looped-back" the module is in command mode
        self.lost: str | None = None
        self._up = asyncio.Event()
        self._failure: LarapppError | None = None
        self._families_dropped: list[str] = []
        self._setup()

    @abc.abstractmethod
    def _setup(self) -> None:
        """The engine's own parts, built from `self.options` (one constructor for both engines)."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Take the pipe and start negotiating."""

    @abc.abstractmethod
    async def terminate(self, timeout: float = 6.0) -> None:
        """End the link with LCP Terminate-Request (app note §4.2)."""

    @abc.abstractmethod
    async def stop(self) -> list[str]:
        """Stop, undo the host configuration, give the pipe back; what could not be undone."""

    @property
    def terminate_acknowledged(self) -> bool:
        """The module answered our LCP Terminate-Request (it leaves data mode on its own);
        pppd does not report it, so it is never assumed there."""
        return False

    @abc.abstractmethod
    def status(self) -> dict[str, object]:
        """What `larappp status` shows about the link."""

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
        ifname = self.options.ifname
        if self.terminated.is_set() and not self._up.is_set():
            raise PPPError(f"PPP on {ifname} ended before it was up: {self.reason}")
        if not done:
            missing = sorted(self.families_expected - self.families_up)
            raise PPPError(
                f"PPP on {ifname} was not up within {timeout:g} s "
                f"(IPv{', IPv'.join(map(str, missing))} not usable yet, {self._progress_text()}): "
                "check the APN and PDP type, or raise the timeout"
            )

    def _family_up(self, family: int) -> None:
        self.families_up.add(family)
        self._check_up()

    def _check_up(self) -> None:
        if self.families_expected and self.families_expected <= self.families_up:
            self._up.set()
        elif not self.families_expected:
            why = "; ".join(self._families_dropped)
            self._fail(PPPError(
                f"PPP on {self.options.ifname}: the network offers none of the configured IP families "
                f"({why}): check the APN and the PDP type"
            ))

    # -- DCD (both engines arm it once they hold the pipe, disarm it in stop()) ----------
    def _watch_carrier(self) -> None:
        """End the session as lost when the port's DCD drops (AT&C1: the module's call ended).

        Where the pipe carries DCD (serial device, RFC 2217); a pty has none, and nothing
        is armed there. The module is then in command mode, as after "left-data-mode".
        """
        if self.pipe.watch_carrier(self._carrier_dropped):
            self._note(f"{self.options.ifname}: watching DCD on {self.pipe.name}")

    def _carrier_dropped(self) -> None:
        if self.terminated.is_set():
            return
        self.lost = "dcd-dropped"
        self._finish(f"DCD dropped on {self.pipe.name}: the module ended the call")

    def _fail(self, error: LarapppError) -> None:
        if self._failure is None:
            self._failure = error
        self._finish(str(error))

    def _finish(self, reason: str) -> None:
        if not self.terminated.is_set():
            self.reason = reason
            self.terminated.set()
