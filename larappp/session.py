"""One PDP context: dial -> (PPP) -> supervise -> teardown, on its own module port."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from larappp.config import SessionConfig
from larappp.engine.at import AtCommandError, AtRunner
from larappp.engine.base import PppEngine
from larappp.engine.options import EngineOptions
from larappp.engine.ppp_builtin import BuiltinPppEngine
from larappp.engine.pppd.engine import PppdEngine
from larappp.errors import GaveUp, LarapppError, ModemError
from larappp.lara_r6 import commands, rules, scripts
from larappp.preflight import ppp_backend_choice
from larappp.transport.factory import wait_for_port
from larappp.transport.pipe import Pipe, PipeFactory

log = logging.getLogger(__name__)

#: how long PPP may take from CONNECT until every configured family is usable
PPP_UP_TIMEOUT_S = 40.0
#: silence before "+++": a margin over the module's guard time, so its timer has surely run out
ESCAPE_WAIT_S = rules.ESCAPE_GUARD_S + 0.2

#: how a link was lost (PppEngine.lost) when the module's port is still in online data mode: its
#: PPP fell silent without NO CARRIER, so an "AT" probe would only be data to it
LOST_IN_DATA_MODE = frozenset({"echo-timeout"})

#: the PPP engine of each backend
ENGINES: dict[str, type[PppEngine]] = {"builtin": BuiltinPppEngine, "pppd": PppdEngine}


def engine_options(
    config: SessionConfig, *, families: tuple[int, ...], mru: int, runtime_dir: str, dns_dir: str,
    uplink_kbit: int = 0, embpf: str | None = None,
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
        echo_interval=config.lcp_echo_interval or None,
        echo_failures=config.lcp_echo_failure,
        uplink_kbit=uplink_kbit,
        nat=config.nat,
        embpf=embpf,
        firewall_ipv6=config.firewall_ipv6,
    )


#: what `larappp status` shows per session
CONNECTING = "connecting"  # dialling, or PPP negotiating
CONNECTED = "connected"  # CONNECT, PPP not run (LARAPPP_NO_PPP)
UP = "up"
LOST = "lost"  # the link went away; the host is being cleaned
WAITING = "waiting"  # the hold-off before redial attempt `attempt`, at `next_attempt_at`
GIVEN_UP = "given-up"  # maxfail redials failed in a row, or persist is off
HANGING_UP = "hanging-up"
DOWN = "down"
FAILED = "failed"


@dataclass
class SessionState:
    """What a session reports to `larappp status`."""

    name: str
    cid: int
    apn: str
    port: str
    state: str = DOWN
    connect_text: str = ""
    #: time of the last CONNECT, and since when the session is up (None while not up)
    since: float = 0.0
    up_since: float | None = None
    error: str = ""
    #: links lost, and redials attempted (each redial after a loss counts, failed or not)
    losses: int = 0
    redials: int = 0
    last_loss: float | None = None
    last_loss_cause: str = ""
    #: the redial attempt waited for or under way (1: the first after a loss), and when it starts
    attempt: int = 0
    next_attempt_at: float | None = None
    details: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name, "cid": self.cid, "apn": self.apn, "port": self.port,
            "state": self.state, "connect": self.connect_text, "since": self.since,
            "up_since": self.up_since, "error": self.error, "losses": self.losses,
            "redials": self.redials, "last_loss": self.last_loss, "last_loss_cause": self.last_loss_cause,
            "attempt": self.attempt, "next_attempt_at": self.next_attempt_at, **self.details,
        }


class Session:
    """One CID on one port: dials it, keeps it up (redials a lost link with a growing hold-off,
    as pppd's persist/holdoff/maxfail), ends the call by the configured method (app note §4.2)."""

    def __init__(
        self,
        config: SessionConfig,
        port_name: str,
        open_pipe: PipeFactory,
        *,
        trace: Callable[[str], None] | None = None,
        secrets: Sequence[str] = (),
        command_timeout: float = 10.0,
        port_timeout: float = 60.0,
        ppp: EngineOptions | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        """`port_timeout`: how long a redial waits for a port that went away to come back;
        `on_change`: called whenever the state `larappp status` shows changed."""
        self.config = config
        #: how PPP runs on this session (None: stop at CONNECT)
        self.engine_options = ppp
        self._open_pipe = open_pipe
        self._trace = trace
        self._secrets = list(secrets)
        self._command_timeout = command_timeout
        self._port_timeout = port_timeout
        self._changed = on_change or (lambda: None)
        #: a loss seen outside the engine (the control port's +CGEV, +CEREG), with its cause
        self._lost_outside = asyncio.Event()
        self._lost_outside_cause = ""
        #: the port was still in data mode at the last loss (LOST_IN_DATA_MODE)
        self._lost_in_data_mode = False
        #: when the last loss was seen (monotonic): a bring-up done after it need not run again
        self.lost_at = 0.0
        self.pipe: Pipe | None = None
        self.at: AtRunner | None = None
        self.leftover = b""
        self.engine: PppEngine | None = None
        self.state = SessionState(name=config.name, cid=config.cid, apn=config.apn, port=port_name)

    async def dial(self) -> None:
        """Open the port (or take it back), dial ATD*99***<cid># and stop at CONNECT (app note §4.1)."""
        self._set(CONNECTING)
        if self.pipe is None or self.at is None:
            self.pipe = await self._open_pipe()
            self.at = AtRunner(
                self.pipe, trace=self._trace, secrets=self._secrets,
                timeouts=rules.command_timeout, default_timeout=self._command_timeout,
            )
            await self.at.start()
        else:
            await self.at.resume()
        await self.at.run_script(scripts.DIAL_PORT_SETUP)
        try:
            result = await self.at.dial(commands.dial(self.config.cid))
        except AtCommandError as exc:
            if exc.final.kind != "no_carrier":
                raise
            raise ModemError(refused_call_message(self.config)) from None
        self.leftover = result.leftover
        self.state.state = CONNECTED
        self.state.connect_text = result.text
        self.state.since = time.time()

    async def start_ppp(self, notes: Callable[[str], None] | None = None) -> None:
        """Run PPP over the dialled port until the configured families are usable."""
        assert self.pipe is not None and self.engine_options is not None
        self._set(CONNECTING)
        # "auto": pppd where /dev/ppp works and pppd is installed, else the built-in engine.
        backend = ppp_backend_choice()[0] if self.config.backend == "auto" else self.config.backend
        self.engine = ENGINES[backend](self.pipe, self.engine_options, leftover=self.leftover, on_event=notes)
        self.leftover = b""
        await self.engine.start()
        await self.engine.wait_up(PPP_UP_TIMEOUT_S)
        self.state.up_since = time.time()
        self.state.details = self.engine.status()
        self._set(UP)

    def refresh(self) -> None:
        """Update what `status` shows from the running engine."""
        if self.engine is not None and self.state.state == UP:
            self.state.details = self.engine.status()

    def _set(self, state: str) -> None:
        self.state.state = state
        self._changed()

    # -- keeping it up ---------------------------------------------------------------------
    def lose(self, cause: str) -> None:
        """The link is lost for a reason seen elsewhere (the control port): redial it."""
        if not self._lost_outside.is_set():
            self._lost_outside_cause = cause
            self._lost_outside.set()

    async def keep_up(
        self, bring_up: Callable[[Session], Awaitable[None]], notes: Callable[[str], None] | None = None,
    ) -> None:
        """Until cancelled: when the link is lost, undo it on the host at once, then redial
        after a hold-off that doubles with each failed redial. `bring_up(self)` brings the
        module up again (after the port went away, or a redial failed). Raises GaveUp after
        `maxfail` failed redials in a row, or at the first loss when `persist` is off."""
        note = notes or (lambda _m: None)
        while True:
            cause = await self._wait_for_loss()
            await self._lost(cause)
            note(f"cid {self.config.cid}: lost ({cause}); {self.config.name} is down on the host")
            if not self.config.persist:
                raise self._give_up(f"cid {self.config.cid} was lost ({cause}) and persist = false")
            failures = 0
            while True:
                delay = self.config.holdoff_after(failures)
                self.state.attempt = failures + 1
                self.state.next_attempt_at = time.time() + delay
                self._set(WAITING)
                await asyncio.sleep(delay)
                self.state.next_attempt_at = None
                self.state.redials += 1
                self._set(CONNECTING)  # attempt `attempt` is under way
                try:
                    await self._redial(bring_up, fresh=failures > 0, notes=notes)
                    break
                except LarapppError as exc:
                    failures += 1
                    self.state.error = f"redial {failures} failed: {exc}"
                    note(f"cid {self.config.cid}: {self.state.error}")
                    await self._stop_engine()
                    if self.config.maxfail and failures >= self.config.maxfail:
                        raise self._give_up(
                            f"cid {self.config.cid}: {failures} redials failed in a row (maxfail = "
                            f"{self.config.maxfail}); the last: {exc}"
                        ) from None
            self.state.attempt = 0
            self.state.error = ""
            note(f"cid {self.config.cid}: back up after {failures + 1} redial(s)")
            self._changed()

    async def _wait_for_loss(self) -> str:
        waits = [asyncio.ensure_future(self._lost_outside.wait())]
        if self.engine is not None:
            waits.append(asyncio.ensure_future(self.engine.terminated.wait()))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        if self.engine is not None and self.engine.terminated.is_set():
            self._lost_in_data_mode = self.engine.lost in LOST_IN_DATA_MODE
            return self.engine.reason or "the PPP link ended"
        self._lost_in_data_mode = False
        return self._lost_outside_cause

    async def _lost(self, cause: str) -> None:
        """Mark the loss and undo the session on the host (addresses, routes, DNS) at once."""
        self.lost_at = time.monotonic()
        self.state.losses += 1
        self.state.last_loss = time.time()
        self.state.last_loss_cause = cause
        self.state.up_since = None
        self.state.details = {}
        self._set(LOST)
        if self.engine is not None:
            # Unblocks an engine still running (a loss seen on the control port): nothing may
            # keep routing into a dead link while the call is ended.
            await self._stop_engine()
        self._lost_outside.clear()
        self._changed()

    def _give_up(self, why: str) -> GaveUp:
        self.state.error = why
        self.state.next_attempt_at = None
        self._set(GIVEN_UP)
        return GaveUp(why)

    async def _redial(
        self, bring_up: Callable[[Session], Awaitable[None]], *, fresh: bool, notes: Callable[[str], None] | None,
    ) -> None:
        """One redial: the port back in command mode (or, when it is gone or a redial failed
        already, the port back and the module brought up again), then dial and PPP."""
        back = False
        if not fresh and self.at is not None:
            try:
                await self._back_to_command_mode(in_data_mode=self._lost_in_data_mode)
                back = True
            except LarapppError as exc:
                log.info("cid %d: port %s not in command mode (%s): bringing the module up again",
                         self.config.cid, self.state.port, exc)
        if not back:
            await self.close()  # the control port may be this port: bring-up opens it itself
            await wait_for_port(self.state.port, self._port_timeout)
            await bring_up(self)
        await self.dial()
        if self.engine_options is not None:
            await self.start_ppp(notes)
        else:
            self._set(CONNECTED)

    async def _back_to_command_mode(self, *, in_data_mode: bool = False) -> None:
        """After a loss: the port back in command mode, the call ended.

        Where the state is unknown, AT -> OK first (the call may have ended already). A link
        lost in data mode (`in_data_mode`, LOST_IN_DATA_MODE) skips that probe: it would cost
        its timeout and, being data to the module, restart the escape's guard time. The call
        then ends by a DTR drop where the port has DTR (app note §4.2, no guard time), else
        by "+++" and ATH (§9.1.4)."""
        assert self.at is not None and self.pipe is not None
        await self.at.resume()
        if not in_data_mode:
            try:
                await self._check_command_mode(timeout=min(2.0, self._command_timeout))
                return
            except LarapppError:
                pass
        if self.pipe.has_modem_lines:
            try:
                await self._drop_dtr()
                await self._check_command_mode()
                return
            except LarapppError as exc:
                # DTR may not reach the module (a UART without the line wired, a VM's serial
                # port): AT -> OK if the call ended meanwhile, else "+++" and ATH
                log.info("cid %d: the DTR drop did not end the call (%s)", self.config.cid, exc)
            try:
                await self._check_command_mode(timeout=min(2.0, self._command_timeout))
                return
            except LarapppError:
                pass
        await self.at.escape(guard=ESCAPE_WAIT_S, timeout=self._command_timeout)
        await self.at.command(commands.ath(), timeout=self._command_timeout)
        await self._check_command_mode()

    async def _stop_engine(self) -> None:
        if self.engine is not None:
            failures = await self.engine.stop()
            if failures:
                self.state.error = "; ".join(failures)
            self.engine = None

    async def hang_up(self) -> None:
        """End the call by the configured method; the port is back in command mode after."""
        method = self.config.teardown
        in_call = self.state.state in (CONNECTED, UP) or self.engine is not None
        if self.pipe is None or self.at is None or not in_call:
            await self._stop_engine()
            await self.close()
            return
        self._set(HANGING_UP)
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
                    self._set(DOWN)
                    return
                await self.at.resume()
                await self._expect_no_carrier()
            elif method in ("escape", "ath", "lcp"):
                # "+++" (app note §9.1.4) then ATH, which with AT+CVHU=0 ends the call (§4.2).
                await self._stop_engine()
                await self.at.escape(guard=ESCAPE_WAIT_S, timeout=self._command_timeout)
                await self.at.command(commands.ath())  # up to 40 s: it deactivates the context
            elif method == "dtr":
                await self._stop_engine()
                await self._drop_dtr()
            await self._check_command_mode()
            self._set(DOWN)
        except LarapppError as exc:
            self.state.error = str(exc)
            self._set(FAILED)
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

    async def _check_command_mode(self, timeout: float | None = None) -> None:
        """AT -> OK proves the port is back in command mode; a late NO CARRIER may come first."""
        assert self.at is not None
        timeout = timeout or self._command_timeout
        try:
            await self.at.command("AT", timeout=timeout)
        except AtCommandError as exc:
            if exc.final.kind != "no_carrier":
                raise
            await self.at.command("AT", timeout=timeout)

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
