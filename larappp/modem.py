"""The module's lifecycle over its control port: init, MNO profile, UEMBPF, PDP contexts,
registration, XLAT and reboots. Sequencing reads top to bottom; every LARA-R6 command,
parser and rule comes from `larappp.lara_r6`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from larappp import runtime
from larappp.config import ModemConfig, SessionConfig
from larappp.engine.at import AtRunner, UrcSubscription
from larappp.errors import LarapppError, ModemError, ModemTimeout, PortClosed, PortError
from larappp.lara_r6 import commands, identity, parsers, ports, rules, scripts, xlat
from larappp.proto.at.chat import ChatScript
from larappp.proto.at.core import ResponseReceived
from larappp.transport.pipe import Pipe, PipeFactory

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass
class ModemStatus:
    """What bring-up learned about the module and the network."""

    model: str = ""
    firmware: str = ""
    imei: str = ""
    iccid: str = ""
    signal: identity.SignalQuality | None = None
    mno_profile: int | None = None
    plmn: str = ""
    operator: str = ""
    act: int | None = None
    roaming: bool = False
    embpf: str | None = None
    xlat_enabled: bool | None = None
    reboots: int = 0
    contexts: dict[int, parsers.PdpContext] = field(default_factory=dict)
    params: dict[int, list[parsers.ContextParams]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "model": self.model,
            "firmware": self.firmware,
            "imei": self.imei,
            "iccid": self.iccid,
            "mno_profile": self.mno_profile,
            "plmn": self.plmn,
            "operator": self.operator,
            "act": self.act,
            "act_text": identity.act_text(self.act),
            "signal": self.signal.to_json() if self.signal else None,
            "roaming": self.roaming,
            "embpf": self.embpf,
            "xlat_enabled": self.xlat_enabled,
            "reboots": self.reboots,
            "contexts": {
                str(cid): {
                    "pdp_type": c.pdp_type,
                    "apn": c.apn,
                    "ipv4": str(c.ipv4) if c.ipv4 else None,
                    "ipv6": str(c.ipv6) if c.ipv6 else None,
                }
                for cid, c in self.contexts.items()
            },
            "notes": list(self.notes),
        }


class Modem:
    """One LARA-R6 seen through its control (AT) port."""

    def __init__(
        self,
        config: ModemConfig,
        open_pipe: PipeFactory,
        *,
        progress: Progress | None = None,
        trace: Callable[[str], None] | None = None,
        secrets: Sequence[str] = (),
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._open_pipe = open_pipe
        self._progress = progress or (lambda _msg: None)
        self._trace = trace
        self._secrets = list(secrets)
        self._clock = clock
        self._wall_clock = wall_clock
        self.pipe: Pipe | None = None
        self.at: AtRunner | None = None
        self.status = ModemStatus()

    # -- port ----------------------------------------------------------------------
    async def connect(self) -> None:
        """Open the control port and make sure the module answers AT."""
        await self._open_runner()
        await self._sync()

    async def _open_runner(self) -> None:
        self.pipe = await self._open_pipe()
        # Each command gets what its AT manual entry allows (CFUN, COPS, CGACT: minutes).
        self.at = AtRunner(
            self.pipe, clock=self._clock, trace=self._trace, secrets=self._secrets,
            timeouts=rules.command_timeout, default_timeout=self.config.command_timeout,
        )
        await self.at.start()

    async def close(self) -> None:
        """Stop the AT runner and close the control port."""
        if self.at is not None:
            await self.at.stop()
            self.at = None
        if self.pipe is not None:
            await self.pipe.close()
            self.pipe = None

    async def command(self, cmd: str, *, timeout: float | None = None) -> ResponseReceived:
        return await self._runner().command(cmd, timeout=timeout)

    async def _chat(self, script: ChatScript) -> list[ResponseReceived]:
        return await self._runner().run_script(script)

    def _runner(self) -> AtRunner:
        if self.at is None:
            raise PortError("the module's control port is not open")
        return self.at

    def network_events(self) -> UrcSubscription:
        """+CGEV and +CEREG URCs on the control port (a context the network ended, lost
        registration) until the port goes: what the supervisor watches while sessions run."""
        return self._runner().subscribe([rules.URC_CGEV, rules.URC_CEREG])

    async def _sync(self) -> None:
        """A module just opened (or rebooted) may still be booting: try AT a few times."""
        last: LarapppError | None = None
        for _ in range(5):
            try:
                await self.command("AT", timeout=min(2.0, self.config.command_timeout))
                return
            except ModemTimeout as exc:
                last = exc
        raise ModemTimeout(
            f"the module on {self.config.port} does not answer AT: check the port, the baud rate "
            f"({self.config.baud}) and that the module is powered"
        ) from last

    # -- bring-up (app note §2.3) -----------------------------------------------------
    async def bring_up(self, sessions: Sequence[SessionConfig]) -> ModemStatus:
        """Configure the module for `sessions` and wait until it is registered."""
        await self._init_commands()
        await self._apply_nvm_settings()
        await self._define_contexts(sessions)
        await self._register()
        await self._read_network_state(sessions)
        if await self._maybe_switch_xlat():
            # The module rebooted with a new XLAT setting: initialise again (app note §2.5).
            await self._init_commands()
            await self._define_contexts(sessions)
            await self._register()
            await self._read_network_state(sessions)
        await self._activate_on_legacy_rat(sessions)
        return self.status

    async def _init_commands(self) -> None:
        await self._chat(scripts.MODULE_INIT)
        try:
            info = await self.command(commands.cgmm())
            self.status.model = next((ln for ln in info.lines if ln.strip()), "")
        except ModemError:
            self.status.model = ""
        await self._read_identity()

    async def _read_identity(self) -> None:
        """Firmware, IMEI and ICCID for `status`; one the module will not tell stays empty."""
        reads: tuple[tuple[str, str, Callable[[parsers.Lines], str]], ...] = (
            ("firmware", commands.cgmr(), lambda lines: identity.parse_text_answer(lines, "AT+CGMR")),
            ("imei", commands.cgsn(), identity.parse_imei),
            ("iccid", commands.ccid(), identity.parse_ccid),  # no SIM: +CME ERROR
        )
        for name, command, parse in reads:
            try:
                setattr(self.status, name, parse((await self.command(command)).lines))
            except ModemError as exc:
                log.info("%s not read: %s", command, exc)
                setattr(self.status, name, "")

    async def read_signal(self) -> identity.SignalQuality | None:
        """AT+CESQ now, kept in the status; None when the module does not answer it."""
        try:
            self.status.signal = identity.parse_cesq((await self.command(commands.cesq())).lines)
        except ModemError as exc:
            log.info("AT+CESQ not read: %s", exc)
            self.status.signal = None
        return self.status.signal

    async def _apply_nvm_settings(self) -> None:
        cfg = self.config
        if cfg.mno_profile is not None:
            current = parsers.parse_umnoprof((await self.command(commands.umnoprof_read())).lines)
            if current != cfg.mno_profile:
                # The radio must be off while the profile changes; a reboot applies it (app note §2.3.1).
                self._progress(f"setting MNO profile {cfg.mno_profile} (was {current}); the module reboots")
                await self.command(commands.cfun(0))
                await self.command(commands.umnoprof_set(cfg.mno_profile))
                await self.reboot()
                current = parsers.parse_umnoprof((await self.command(commands.umnoprof_read())).lines)
                if current != cfg.mno_profile:
                    raise ModemError(
                        f"the module kept MNO profile {current} after AT+UMNOPROF={cfg.mno_profile} "
                        "and a reboot: check that the profile number is valid for this module"
                    )
            self.status.mno_profile = current

        reboot_needed = False
        wanted_range = ports.PortRange.parse(cfg.embpf) if cfg.embpf else None
        if wanted_range is not None:
            current_range = parsers.parse_uembpf((await self.command(commands.uembpf_read())).lines)
            if current_range != wanted_range:
                # The embedded port filter is applied at the next boot (app note §4.3).
                self._progress(f"setting the embedded port filter to {wanted_range} (was {current_range or 'off'})")
                await self.command(commands.uembpf_set(wanted_range.first, wanted_range.last))
                reboot_needed = True
        if cfg.default_cid is not None:
            udconf19 = parsers.parse_udconf((await self.command(commands.udconf19_read())).lines)
            wanted = (19, cfg.default_cid, cfg.default_ip_type)
            if tuple(udconf19[:3]) != wanted:
                # UDCONF=19 takes effect after a reboot (app note §2.3.1).
                await self.command(commands.udconf19_set(cfg.default_cid, cfg.default_ip_type))
                reboot_needed = True
        if cfg.disable_lwm2m:
            # The embedded LwM2M client answers the host's DNS replies while PPP is up;
            # app note §4.3 advises disabling embedded applications the host does not use.
            try:
                await self.command(commands.ulwm2m_disable())
            except ModemError as exc:
                self.status.notes.append(f"could not disable the LwM2M client: {exc}")
        if reboot_needed:
            await self.reboot()
        if wanted_range is not None:
            applied = parsers.parse_uembpf((await self.command(commands.uembpf_read())).lines)
            if applied != wanted_range:
                raise ModemError(
                    f"the module reports UEMBPF {applied or 'off'} after setting {wanted_range} and rebooting: "
                    "the port filter was not applied; check the firmware supports AT+UEMBPF"
                )
            self.status.embpf = str(applied)

    async def _define_contexts(self, sessions: Sequence[SessionConfig]) -> None:
        # Radio off while the contexts are (re)defined, as in app note §2.3.
        await self.command(commands.cfun(0))
        existing = {c.cid: c for c in parsers.parse_cgdcont((await self.command(commands.cgdcont_read())).lines)}
        for s in sessions:
            have = existing.get(s.cid)
            if have is None or have.apn != s.apn or have.pdp_type != s.pdp_type:
                await self.command(commands.cgdcont_set(s.cid, s.pdp_type, s.apn))
        await self._chat(scripts.NETWORK_REPORTING)

    async def _register(self) -> None:
        await self.command(commands.cfun(1))
        deadline = self._clock() + self.config.registration_timeout
        started = self._clock()
        last_stat = None
        while True:
            answer = (await self.command(commands.cereg_read())).lines
            reg = parsers.parse_cereg(next((ln for ln in answer if ln.startswith("+CEREG")), ""))
            last_stat = reg.stat
            if reg.registered:
                self.status.roaming = reg.roaming
                self.status.act = reg.act
                self._progress(
                    f"registered ({parsers.registration_stat_text(reg.stat)}) after {self._clock() - started:.1f} s"
                )
                return
            if self._clock() >= deadline:
                raise ModemTimeout(
                    f"the module did not register within {self.config.registration_timeout:.0f} s "
                    f"(last +CEREG stat {last_stat}: {parsers.registration_stat_text(last_stat)}): check the SIM, "
                    "the antenna and the MNO profile, or raise modem.registration_timeout"
                )
            self._progress(
                f"waiting for registration: {parsers.registration_stat_text(reg.stat)} ({self._clock() - started:.0f} s)"
            )
            await self._wait_registration_urc(min(1.0, max(0.05, deadline - self._clock())))

    async def _wait_registration_urc(self, timeout: float) -> None:
        assert self.at is not None
        try:
            await self.at.wait_urc(lambda u: u.name in (rules.URC_CEREG, "+CREG", "+CGREG"), timeout=timeout)
        except (TimeoutError, ModemTimeout):
            pass

    async def _read_network_state(self, sessions: Sequence[SessionConfig]) -> None:
        _, operator = await self._chat(scripts.READ_OPERATOR)
        op = parsers.parse_cops(operator.lines)
        self.status.plmn = op.name or ""
        self.status.operator = op.name or ""
        if op.act is not None:
            self.status.act = op.act
        try:
            _, named, _ = await self._chat(scripts.READ_OPERATOR_NAME)
            self.status.operator = parsers.parse_cops(named.lines).name or self.status.plmn
        except ModemError as exc:
            log.info("operator name not read: %s", exc)
        await self.read_signal()
        self.status.contexts = {c.cid: c for c in parsers.parse_cgdcont((await self.command(commands.cgdcont_read())).lines)}
        self.status.params = {}
        for s in sessions:
            try:
                lines = (await self.command(commands.cgcontrdp(s.cid))).lines
            except ModemError:
                continue  # a context not active yet has no dynamic parameters
            self.status.params[s.cid] = parsers.parse_cgcontrdp(lines)

    async def _activate_on_legacy_rat(self, sessions: Sequence[SessionConfig]) -> None:
        # On 2G/3G the host sends CGACT=1 before using a context (app note §2.3).
        if self.status.act is not None and rules.needs_cgact_before_use(self.status.act):
            for s in sessions:
                await self.command(commands.cgact(1, s.cid))

    # -- XLAT (app note §2.5) ---------------------------------------------------------
    def _xlat_history_path(self) -> Path:
        return Path(self.config.state_dir) / "xlat.json"

    def _load_xlat_history(self) -> xlat.XlatHistory:
        text = runtime.read_text(self._xlat_history_path())  # never through a symlink
        if text is None:
            return xlat.XlatHistory()
        try:
            return xlat.XlatHistory.from_json(text)
        except (OSError, ValueError):
            return xlat.XlatHistory()

    def _save_xlat_history(self, history: xlat.XlatHistory) -> None:
        runtime.ensure_dir(self.config.state_dir, key="modem.state_dir")  # ours, not group/world-writable
        runtime.write_atomic(self._xlat_history_path(), history.to_json(), 0o600)

    async def _maybe_switch_xlat(self) -> bool:
        """Switch 464XLAT on or off as app note §2.5 asks; True when the module rebooted."""
        current = parsers.parse_udconf((await self.command(commands.udconf66_read())).lines)
        enabled = len(current) >= 3 and current[2] == 1
        self.status.xlat_enabled = enabled
        if self.config.xlat != "auto":
            return False
        granted = self._granted_type()
        if granted is None:
            return False
        history = self._load_xlat_history()
        decision = xlat.decide_xlat(
            plmn=self.status.plmn, granted_pdp_type=granted, xlat_enabled=enabled,
            history=history, now=self._wall_clock(),
        )
        if decision.action == "none":
            if decision.reason:
                self.status.notes.append(f"XLAT: {decision.reason}")
            return False
        enable = decision.action == "enable"
        self._progress(f"{'enabling' if enable else 'disabling'} 464XLAT: {decision.reason}; the module reboots")
        self._save_xlat_history(history.record(decision.action, self._wall_clock()))
        switch = xlat.xlat_switch_commands(enable)
        for cmd in switch[:-1]:
            await self.command(cmd)
        await self.reboot(switch[-1])
        self.status.xlat_enabled = enable
        self.status.notes.append(f"XLAT {'enabled' if enable else 'disabled'}: {decision.reason}")
        return True

    def _granted_type(self) -> str | None:
        # The PDN the network granted on the default bearer decides XLAT (app note §2.5).
        ctx = self.status.contexts.get(1) or next(iter(self.status.contexts.values()), None)
        if ctx is None:
            return None
        return ctx.pdp_type

    # -- reboot ----------------------------------------------------------------------
    async def reboot(self, command: str | None = None) -> None:
        """Reboot the module (AT+CFUN=16): the port goes away and comes back; NVM survives."""
        command = command or commands.cfun(16)
        self.status.reboots += 1
        try:
            # OK comes before the reset: the minutes the manual allows AT+CFUN are for the
            # radio, and a port that stays silent is handled by the reopen loop below.
            await self.command(command, timeout=self.config.command_timeout)
        except PortClosed:
            pass  # the port may vanish before the OK arrives
        await self.close()
        deadline = self._clock() + self.config.reboot_timeout
        await asyncio.sleep(0.2)
        last: Exception | None = None
        while self._clock() < deadline:
            try:
                await self._open_runner()
            except PortError as exc:
                last = exc
                await asyncio.sleep(0.2)
                continue
            try:
                await self._sync()
                await self._chat(scripts.MODULE_INIT)
                return
            except (ModemTimeout, PortClosed) as exc:
                last = exc
                await self.close()
                await asyncio.sleep(0.2)
        raise ModemTimeout(
            f"the module on {self.config.port} did not come back within {self.config.reboot_timeout:.0f} s "
            f"after a reboot ({last}): power-cycle it, or raise modem.reboot_timeout"
        )
