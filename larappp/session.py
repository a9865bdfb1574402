"""One PDP context: dial -> (PPP) -> supervise -> teardown, on its own module port."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from larappp.config import SessionConfig
from larappp.engine.at import AtRunner
from larappp.errors import LarapppError
from larappp.transport.pipe import Pipe
from larappp.vendor import lara_r6 as r6

log = logging.getLogger(__name__)

PipeFactory = Callable[[], Awaitable[Pipe]]

# "+++" is only recognised after a silence; the app note's hosts wait 2 s (app note §9.1.4).
ESCAPE_GUARD_S = 2.0


@dataclass
class SessionState:
    """What a session reports to `larappp status`."""

    name: str
    cid: int
    apn: str
    port: str
    state: str = "down"
    connect_text: str = ""
    since: float = 0.0
    error: str = ""
    details: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name, "cid": self.cid, "apn": self.apn, "port": self.port,
            "state": self.state, "connect": self.connect_text, "since": self.since,
            "error": self.error, **self.details,
        }


class Session:
    """Dials one CID on one port and ends the call by the configured method (app note §4.2)."""

    def __init__(
        self,
        config: SessionConfig,
        port_name: str,
        open_pipe: PipeFactory,
        *,
        trace: Callable[[str], None] | None = None,
        secrets: Sequence[str] = (),
        command_timeout: float = 10.0,
        escape_guard: float = ESCAPE_GUARD_S,
    ) -> None:
        self.config = config
        self._open_pipe = open_pipe
        self._trace = trace
        self._secrets = list(secrets)
        self._command_timeout = command_timeout
        self._escape_guard = escape_guard
        self.pipe: Pipe | None = None
        self.at: AtRunner | None = None
        self.leftover = b""
        self.state = SessionState(name=config.name, cid=config.cid, apn=config.apn, port=port_name)

    async def dial(self) -> None:
        """Open the port, dial ATD*99***<cid># and stop at CONNECT (app note §4.1)."""
        self.state.state = "dialing"
        self.pipe = await self._open_pipe()
        self.at = AtRunner(self.pipe, trace=self._trace, secrets=self._secrets)
        await self.at.start()
        await self.at.command("AT", timeout=self._command_timeout)
        result = await self.at.dial(r6.dial(self.config.cid), timeout=max(30.0, self._command_timeout))
        self.leftover = result.leftover
        self.state.state = "connected"
        self.state.connect_text = result.text
        self.state.since = time.time()

    async def hang_up(self) -> None:
        """End the call by the configured method; the port is back in command mode after."""
        method = self.config.teardown
        if self.pipe is None or self.at is None or self.state.state not in ("connected", "up"):
            await self.close()
            return
        self.state.state = "hanging-up"
        try:
            if method in ("escape", "ath", "lcp"):
                # Without a PPP engine an LCP Terminate cannot be sent: fall back to "+++" + ATH.
                await self.at.escape(guard=self._escape_guard, timeout=self._command_timeout)
                await self.at.command(r6.ath(), timeout=self._command_timeout)
            elif method == "dtr":
                await self._drop_dtr()
            await self.at.command("AT", timeout=self._command_timeout)
            self.state.state = "down"
        except LarapppError as exc:
            self.state.state = "failed"
            self.state.error = str(exc)
            raise
        finally:
            await self.close()

    async def _drop_dtr(self) -> None:
        """DTR ON -> OFF ends the call and returns to command mode (app note §4.2).

        A serial device or RFC 2217 port drops the DTR line; a pty has none, so its
        pipe hangs up the way pppd does (speed B0), which the simulator sees as DTR.
        """
        assert self.pipe is not None and self.at is not None
        await self.at.resume()
        hangup = asyncio.create_task(self.pipe.hangup())
        try:
            await self.at.wait_urc(
                lambda u: u.name == "NO CARRIER", timeout=self._command_timeout,
                what="NO CARRIER after the DTR drop",
            )
        finally:
            await hangup

    async def close(self) -> None:
        if self.at is not None:
            await self.at.stop()
            self.at = None
        if self.pipe is not None:
            await self.pipe.close()
            self.pipe = None
