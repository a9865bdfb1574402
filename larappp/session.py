"""One PDP context: dial -> (PPP) -> supervise -> teardown, on its own module port."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from larappp.config import SessionConfig
from larappp.engine.at import AtCommandError, AtRunner
from larappp.engine.base import PppEngine
from larappp.engine.options import EngineOptions
from larappp.engine.ppp_builtin import BuiltinPppEngine
from larappp.engine.pppd.engine import PppdEngine
from larappp.errors import LarapppError, ModemError
from larappp.lara_r6 import commands, rules, scripts
from larappp.preflight import ppp_backend_choice
from larappp.transport.pipe import Pipe, PipeFactory

log = logging.getLogger(__name__)

#: how long PPP may take from CONNECT until every configured family is usable
PPP_UP_TIMEOUT_S = 40.0
#: silence before "+++": a margin over the module's guard time, so its timer has surely run out
ESCAPE_WAIT_S = rules.ESCAPE_GUARD_S + 0.2

#: the PPP engine of each backend
ENGINES: dict[str, type[PppEngine]] = {"builtin": BuiltinPppEngine, "pppd": PppdEngine}


def engine_options(
    config: SessionConfig, *, families: tuple[int, ...], mru: int, runtime_dir: str, dns_dir: str,
) -> EngineOptions:
    """The session's PPP settings: its config plus what bring-up learned (families, MRU)."""
    return EngineOptions(
        ifname=config.name,
        families=families,
        username=config.user,
        password=config.password,
        auth=config.auth,
        mru=mru,
        default_route=config.default_route,
        metric=config.metric,
        dns_mode=config.dns,
        dns_dir=dns_dir,
        runtime_dir=runtime_dir,
    )


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
        ppp: EngineOptions | None = None,
    ) -> None:
        self.config = config
        #: how PPP runs on this session (None: stop at CONNECT)
        self.engine_options = ppp
        self._open_pipe = open_pipe
        self._trace = trace
        self._secrets = list(secrets)
        self._command_timeout = command_timeout
        self.pipe: Pipe | None = None
        self.at: AtRunner | None = None
        self.leftover = b""
        self.engine: PppEngine | None = None
        self.state = SessionState(name=config.name, cid=config.cid, apn=config.apn, port=port_name)

    async def dial(self) -> None:
        """Open the port, dial ATD*99***<cid># and stop at CONNECT (app note §4.1)."""
        self.state.state = "dialing"
        self.pipe = await self._open_pipe()
        self.at = AtRunner(
            self.pipe, trace=self._trace, secrets=self._secrets,
            timeouts=rules.command_timeout, default_timeout=self._command_timeout,
        )
        await self.at.start()
        await self.at.run_script(scripts.DIAL_PORT_SETUP)
        try:
            result = await self.at.dial(commands.dial(self.config.cid))
        except AtCommandError as exc:
            if exc.final.kind != "no_carrier":
                raise
            raise ModemError(refused_call_message(self.config)) from None
        self.leftover = result.leftover
        self.state.state = "connected"
        self.state.connect_text = result.text
        self.state.since = time.time()

    async def start_ppp(self, notes: Callable[[str], None] | None = None) -> None:
        """Run PPP over the dialled port until the configured families are usable."""
        assert self.pipe is not None and self.engine_options is not None
        self.state.state = "negotiating"
        # "auto": pppd where /dev/ppp works and pppd is installed, else the built-in engine.
        backend = ppp_backend_choice()[0] if self.config.backend == "auto" else self.config.backend
        self.engine = ENGINES[backend](self.pipe, self.engine_options, leftover=self.leftover, on_event=notes)
        self.leftover = b""
        await self.engine.start()
        await self.engine.wait_up(PPP_UP_TIMEOUT_S)
        self.state.state = "up"
        self.state.details = self.engine.status()

    def refresh(self) -> None:
        """Update what `status` shows from the running engine."""
        if self.engine is not None:
            self.state.details = self.engine.status()
            if self.engine.terminated.is_set() and self.state.state == "up":
                self.state.state = "failed"
                self.state.error = f"PPP ended: {self.engine.reason}"

    async def _stop_engine(self) -> None:
        if self.engine is not None:
            failures = await self.engine.stop()
            if failures:
                self.state.error = "; ".join(failures)
            self.engine = None

    async def hang_up(self) -> None:
        """End the call by the configured method; the port is back in command mode after."""
        method = self.config.teardown
        if self.pipe is None or self.at is None or self.state.state not in ("connected", "negotiating", "up", "failed"):
            await self._stop_engine()
            await self.close()
            return
        self.state.state = "hanging-up"
        try:
            if method == "lcp" and self.engine is not None and not self.engine.terminated.is_set():
                # LCP Terminate-Request ends PPP; the module answers NO CARRIER (app note §4.2).
                await self.engine.terminate()
                acknowledged = self.engine.terminate_acknowledged
                await self._stop_engine()
                if acknowledged:
                    # The module answered: its PPP ends the call after its own Restart period
                    # (RFC 1661 §4.2, Stopping: 3 s) and it says NO CARRIER then; waiting for
                    # that made `down` take 3-5 s. The next user of the port syncs with AT.
                    self.state.state = "down"
                    return
                await self.at.resume()
                await self._expect_no_carrier()
            elif method in ("escape", "ath", "lcp"):
                # "+++" (app note §9.1.4) then ATH, which with AT+CVHU=0 ends the call (§4.2).
                await self._stop_engine()
                await self.at.escape(guard=ESCAPE_WAIT_S, timeout=self._command_timeout)
                await self.at.command(commands.ath(), timeout=self._command_timeout)
            elif method == "dtr":
                await self._stop_engine()
                await self._drop_dtr()
            await self._check_command_mode()
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

    async def _check_command_mode(self) -> None:
        """AT -> OK proves the port is back in command mode; a late NO CARRIER may come first."""
        assert self.at is not None
        try:
            await self.at.command("AT", timeout=self._command_timeout)
        except AtCommandError as exc:
            if exc.final.kind != "no_carrier":
                raise
            await self.at.command("AT", timeout=self._command_timeout)

    async def _expect_no_carrier(self) -> None:
        assert self.at is not None
        try:
            # The peer that acked our Terminate-Request waits one Restart period (3 s,
            # RFC 1661 §4.2 state Stopping) before it finishes and the module says NO CARRIER.
            await self.at.wait_urc(lambda u: u.name == "NO CARRIER", timeout=5.0, what="NO CARRIER after LCP Terminate")
        except LarapppError:
            pass  # the engine may have read it already; "AT" -> OK below proves command mode

    async def close(self) -> None:
        await self._stop_engine()
        if self.at is not None:
            await self.at.stop()
            self.at = None
        if self.pipe is not None:
            await self.pipe.close()
            self.pipe = None


def refused_call_message(config: SessionConfig) -> str:
    """NO CARRIER to the dial: the network refused the context. A single-family pdp_type the
    network does not offer is the usual cause (it rejects the PDN type), else the APN."""
    call = f'cid {config.cid} (APN "{config.apn}", pdp_type = "{config.pdp_type}")'
    if config.pdp_type != "IPV4V6":
        return (
            f"the network refused the call on {call} with NO CARRIER: it may not offer {config.pdp_type} "
            'on this APN; set pdp_type = "IPV4V6" (the network then grants what it has), else check the APN'
        )
    return f"the network refused the call on {call} with NO CARRIER: check the APN (and the user and password if it needs them)"
