"""Runs the whole job of `larappp up`: the simulator when configured, the module's
bring-up, up to three sessions, the state file `larappp status` reads, and teardown."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from larappp import runtime
from larappp.config import FAMILIES_OF_PDP_TYPE, Config, SessionConfig
from larappp.engine.base import cancel_all
from larappp.engine.options import EngineOptions
from larappp.errors import GaveUp, LarapppError
from larappp.hooks import HookDispatcher
from larappp.lara_r6 import parsers, rules
from larappp.modem import Modem
from larappp.session import UP, Session, engine_options
from larappp.transport import open_pipe, wait_for_port
from larappp.transport.pipe import Pipe, PipeFactory
from larappp.transport.shaping import share_of

log = logging.getLogger(__name__)

#: set on a log record whose message also went out as a progress line
PROGRESS_LINE = "larappp_progress_line"

EXIT_BUG = 70  # EX_SOFTWARE, as the CLI reports a bug
SIGNAL_REFRESH_INTERVAL = 30.0  # s between AT+CESQ reads on the idle control port


class Supervisor:
    """Owns everything `larappp up` started, and stops it all on `larappp down`."""

    def __init__(
        self,
        config: Config,
        *,
        progress: Callable[[str], None] | None = None,
        trace: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.progress = progress or (lambda _m: None)
        self.trace = trace
        self.simulator: Any = None
        self.sim_network: Any = None
        self.modem: Modem | None = None
        self.sessions: list[Session] = []
        self.state = "starting"
        self.error = ""
        self._stop = asyncio.Event()
        self._ports: list[str] = []
        #: the process's exit status once `run_until_stopped` returns (GaveUp's when a session gave up)
        self.exit_code = 0
        self._keepers: list[asyncio.Task[None]] = []
        self._bring_up_lock = asyncio.Lock()
        #: when the module was last brought up (monotonic)
        self._brought_up_at = 0.0
        #: the control port stays open while sessions run when no session dials on it: its
        #: +CGEV and +CEREG URCs tell a session it is lost
        self._watcher: asyncio.Task[None] | None = None
        #: PPP runs after CONNECT (the built-in engine); off only for AT-level tests.
        self.run_ppp = os.environ.get("LARAPPP_NO_PPP") != "1"
        self.hooks = HookDispatcher(config.modem.hooks_dir, config.modem.hooks_timeout)

    # -- ports ------------------------------------------------------------------------
    async def _start_simulator(self) -> None:
        from larappp.sim import Simulator
        from larappp.sim.scenario import Scenario

        sim_cfg = self.config.sim
        scenario = Scenario.from_dict(
            {
                "operator": sim_cfg.operator,
                "grant": sim_cfg.grant,
                "registration_delay": sim_cfg.registration_delay,
                "reboot_time": sim_cfg.reboot_time,
                "echo": sim_cfg.echo,
                "urc_noise": sim_cfg.urc_noise,
                "downlink_kbit": sim_cfg.downlink_kbit,
                "uplink_kbit": sim_cfg.uplink_kbit,
                "latency_ms": sim_cfg.latency_ms,
                "uplink_buffer": sim_cfg.uplink_buffer,
                "baud": sim_cfg.baud,
            }
        )
        pty_dir = Path(self.config.modem.runtime_dir) / "sim"
        Path(self.config.modem.state_dir).mkdir(parents=True, exist_ok=True)
        if sim_cfg.network:
            from larappp.sim.network import SimNetwork

            # An existing namespace is used as it is: under `ip netns exec` a namespace this
            # process created would live in that command's private mount namespace only.
            exists = os.path.exists(f"/run/netns/{sim_cfg.network}")
            self.sim_network = await SimNetwork.start(sim_cfg.network, create=not exists)
        self.simulator = Simulator(
            scenario, pty_dir=str(pty_dir), ports=max(3, len(self.config.sessions)), network=self.sim_network,
            nvm_path=str(Path(self.config.modem.state_dir) / "sim-nvm.json"),
        )
        await self.simulator.start()
        self._ports = list(self.simulator.pty_paths)
        self.progress(f"simulator: LARA-R6 on {', '.join(self._ports)}")

    def control_port(self) -> str:
        return self._ports[0] if self.config.uses_simulator else self.config.modem.port

    def session_port(self, index: int) -> str:
        if self.config.uses_simulator:
            return self._ports[index]
        return self.config.sessions[index].port or self.config.modem.port

    def _pipe_factory(self, spec: str) -> PipeFactory:
        modem = self.config.modem

        async def factory() -> Pipe:
            pipe = open_pipe(spec, baud=modem.baud, rtscts=modem.rtscts)
            await pipe.open()
            return pipe

        return factory

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Bring the module and every session up; raises LarapppError on the first failure."""
        if self.config.uses_simulator:
            await self._start_simulator()
        self.modem = Modem(
            self.config.modem,
            self._pipe_factory(self.control_port()),
            progress=self.progress,
            trace=self.trace,
            secrets=self.config.secrets(),
        )
        self.state = "bringing-up"
        self.write_state()
        await self.modem.connect()
        await self.modem.bring_up(self.config.sessions)
        self._brought_up_at = time.monotonic()
        if not self._control_port_is_watched():
            # The control port is also a session's port: hand it over.
            await self.modem.close()
        for index, scfg in enumerate(self.config.sessions):
            port = self.session_port(index)
            session = Session(
                scfg, port, self._pipe_factory(port), trace=self.trace,
                secrets=self.config.secrets(), command_timeout=self.config.modem.command_timeout,
                port_timeout=self.config.modem.reboot_timeout,
                ppp=self._engine_options(scfg) if self.run_ppp else None, on_change=self.write_state,
            )
            self.sessions.append(session)
            self.progress(f"dialing cid {scfg.cid} ({scfg.apn}) on {port}")
            await session.dial()
            self.progress(f"cid {scfg.cid}: {('CONNECT ' + session.state.connect_text).strip()}")
            if self.run_ppp:
                await session.start_ppp(notes=self.progress)
                d = session.state.details
                self.progress(
                    f"cid {scfg.cid}: {d.get('ifname')} up, IPv4 {d.get('ipv4') or '-'}, "
                    f"IPv6 {', '.join(d.get('ipv6_global') or []) or '-'}"  # type: ignore[arg-type]
                )
            self.write_state()
        self.state = "up"
        self.write_state()

    def _engine_options(self, scfg: SessionConfig) -> EngineOptions:
        """Families the network granted on this cid (app note §2.5: it may narrow them),
        and the MRU: the session's own, else the network's IPv4 MTU from +CGCONTRDP."""
        assert self.modem is not None
        status = self.modem.status
        families = scfg.families
        granted = status.contexts.get(scfg.cid)
        if granted is not None and granted.pdp_type in FAMILIES_OF_PDP_TYPE:
            offered = FAMILIES_OF_PDP_TYPE[granted.pdp_type]
            narrowed = tuple(f for f in families if f in offered)
            if narrowed:
                families = narrowed
        merged = parsers.merge_context_params(status.params.get(scfg.cid, []))
        network_mtu = merged[scfg.cid].ipv4_mtu if scfg.cid in merged else None
        mru = scfg.mtu or network_mtu or 1500
        return engine_options(
            scfg, families=families, mru=max(576, min(mru, 1500)), runtime_dir=self.config.modem.runtime_dir,
            dns_dir=str(runtime.RuntimePaths.of(self.config).dns_dir),
            # one radio for all sessions: each paces to its share (larappp.transport.shaping)
            uplink_kbit=share_of(self.config.modem.uplink_kbit, len(self.config.sessions)),
            embpf=self.config.modem.embpf,
        )

    def _control_port_is_watched(self) -> bool:
        control = self.control_port()
        return self.run_ppp and all(self.session_port(i) != control for i in range(len(self.config.sessions)))

    def _start_watching(self) -> None:
        if self._control_port_is_watched() and self.modem is not None and self.modem.at is not None:
            self._watcher = asyncio.create_task(self._watch_control_port(self.modem), name="watch the control port")

    async def _watch_control_port(self, modem: Modem) -> None:
        refresher = asyncio.create_task(self._refresh_signal(modem), name="refresh +CESQ")
        try:
            await self._watch_network(modem)
        finally:
            await cancel_all([refresher])

    async def _refresh_signal(self, modem: Modem) -> None:
        """AT+CESQ every SIGNAL_REFRESH_INTERVAL on the idle control port, for `status` and metrics."""
        while True:
            await asyncio.sleep(SIGNAL_REFRESH_INTERVAL)
            try:
                await modem.read_signal()
            except LarapppError as exc:  # the port went: the network watcher ends too
                log.info("signal refresh stopped: %s", exc)
                return

    async def _stop_watching(self) -> None:
        if self._watcher is not None:
            await cancel_all([self._watcher])
            self._watcher = None

    async def _watch_network(self, modem: Modem) -> None:
        """+CGEV and +CEREG on the control port: a context the network ended, registration
        lost (radio off, out of coverage). Ends when the port goes (the sessions see theirs go)."""
        events = modem.network_events()
        try:
            async for urc in events:
                self._network_event(urc.name, urc.line)
        finally:
            events.close()

    def _network_event(self, name: str, line: str) -> None:
        up = [s for s in self.sessions if s.state.state == UP]
        try:
            if name == rules.URC_CGEV:
                event = parsers.parse_cgev(line)
                if event.deactivation and event.event == "DETACH":
                    lost = up
                elif event.deactivation and event.cid is not None:
                    lost = [s for s in up if s.config.cid == event.cid]
                else:
                    return
            elif name == rules.URC_CEREG:
                if parsers.parse_cereg(line).registered:
                    return
                lost = up
            else:
                return
        except (LarapppError, ValueError) as exc:
            log.warning("control port: %s: %s", line, exc)
            return
        for session in lost:
            session.lose(f'the control port said "{line}"')

    async def _bring_up_again(self, caller: Session) -> None:
        """Bring the module up again for a session that lost its port or failed to redial
        (idempotent: bring-up reboots only for a setting that changed). Once for all the
        sessions that lost their link at the same time; skipped while another session's call
        holds the control port (the module answers there, so it is up)."""
        assert self.modem is not None
        async with self._bring_up_lock:
            if self._brought_up_at > caller.lost_at:
                return
            control = self.control_port()
            if any(s is not caller and s.state.port == control and s.pipe is not None for s in self.sessions):
                log.info("bring-up skipped: a session's call holds the control port %s", control)
                return
            self.progress(f"bringing the module up again for cid {caller.config.cid}")
            await self._stop_watching()
            await self.modem.close()
            await wait_for_port(control, self.config.modem.reboot_timeout)
            try:
                await self.modem.connect()
                await self.modem.bring_up(self.config.sessions)
            except BaseException:
                await self.modem.close()
                raise
            self._brought_up_at = time.monotonic()
            if self._control_port_is_watched():
                self._start_watching()
            else:
                await self.modem.close()
            self.write_state()

    def _recovery_note(self, message: str) -> None:
        # The daemon's log keeps every loss and redial; where the progress lines go to the
        # same stream as the log (`up --foreground`, under systemd), the log leaves it out.
        log.warning("%s", message, extra={PROGRESS_LINE: True})
        self.progress(message)

    async def _keep_up(self, session: Session) -> None:
        try:
            await session.keep_up(self._bring_up_again, notes=self._recovery_note)
        except GaveUp as exc:
            log.error("%s", exc)
            if not self.error:
                self.error, self.exit_code = str(exc), exc.exit_code
            self.request_stop()
        except Exception as exc:  # a bug: stop everything rather than leave a session unwatched
            log.exception("keeping cid %d up failed", session.config.cid)
            if not self.error:
                self.error, self.exit_code = f"internal error: {type(exc).__name__}: {exc}", EXIT_BUG
            self.request_stop()

    def refresh(self) -> None:
        for session in self.sessions:
            session.refresh()
        self.write_state()

    async def stop(self) -> None:
        """Tear every session down by its method, then release the module and the simulator."""
        self.state = "stopping"
        self.write_state()
        await self._stop_watching()
        await cancel_all(self._keepers)
        errors: list[str] = []
        for session in reversed(self.sessions):
            try:
                await session.hang_up()
            except LarapppError as exc:
                errors.append(f"cid {session.config.cid}: {exc}")
        if self.modem is not None:
            await self.modem.close()
        if self.simulator is not None:
            await self.simulator.stop()
            self.simulator = None
        if self.sim_network is not None:
            await self.sim_network.stop()
            self.sim_network = None
        self.state = "down" if not self.exit_code else "given-up"
        if errors:
            self.error = "; ".join(([self.error] if self.error else []) + errors)
        self.write_state()
        await self.hooks.drain()

    def request_stop(self) -> None:
        self._stop.set()

    async def run_until_stopped(self) -> None:
        """Keep every session up until `larappp down` (or a signal), or until one gives up
        (then `exit_code` is GaveUp's)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        self._keepers = [
            asyncio.create_task(self._keep_up(session), name=f"keep cid {session.config.cid} up")
            for session in self.sessions
        ]
        self._start_watching()
        while not self._stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=2.0)
            self.refresh()

    # -- state file ------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "state": self.state,
            "error": self.error,
            "updated": time.time(),
            "config": self.config.source,
            "port": self.control_port() if (self._ports or not self.config.uses_simulator) else "sim",
            "simulator": self.config.uses_simulator,
            "modem": self.modem.status.to_json() if self.modem else {},
            "sessions": [s.state.to_json() for s in self.sessions],
            # the built-in simulator's radio: radio.uplink.dropped is what the module dropped (§4)
            **({"radio": self.simulator.radio.to_json()} if self.simulator is not None else {}),
            # ...and its ports' serial lines ([sim] baud): bytes each way, time held by CTS
            **({"sim_lines": self.simulator.control.status()["lines"]} if self.simulator is not None else {}),
        }

    def write_state(self) -> None:
        self.hooks.observe((s.state.to_json() for s in self.sessions), stopping=self.state == "stopping")
        runtime.write_atomic(runtime.RuntimePaths.of(self.config).state, json.dumps(self.snapshot(), indent=2))
