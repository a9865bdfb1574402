"""The simulated LARA-R6 module: AT interpreter, NVM and RAM state, data calls (sans-IO).

Time is an input: every entry point takes `now`; `get_timer()` says when to call
`handle_timer(now)` next. Bytes from each port go in with `receive_data(port, ...)`,
bytes for each port come out of `data_to_send(port)`, and what the port servers must do
(ports going away on a reboot, coming back, DCD changes) comes out of `next_event()`.

Behaviour follows the app note (UBX-22001854): PDP contexts and XLAT (§2), PPP dial-up,
teardown and port filtering (§4), the "+++" escape (§9.1.4). Where the app note is
silent the choice made is written next to the code.
"""

from __future__ import annotations

import ipaddress
import json
import random
import zlib
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from larappp.sim.atcmd import (
    Command,
    CommandSyntaxError,
    LineAssembler,
    Param,
    split_commands,
    split_params,
)
from larappp.sim.data import DataCall, DataSession, DataSessionFactory, DiscardDataSession
from larappp.sim.escape import EscapeDetector
from larappp.sim.scenario import PDP_TYPES, ContextAddresses, Scenario, address_plan

COMMAND = "command"
DATA = "data"
ONLINE_COMMAND = "online-command"

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
#: V.250 numeric result codes (ATV0).
NUMERIC_RESULT = {"OK": "0", "CONNECT": "1", "RING": "2", "NO CARRIER": "3", "ERROR": "4"}

#: The CLAT address offered to the DTE when 464XLAT is active (RFC 7335).
CLAT_IPV4 = "192.0.0.2"
#: App note §2.1: at most 5 active primary PDP contexts.
MAX_ACTIVE_CONTEXTS = 5
#: CIDs the module accepts.
CID_RANGE = (0, 11)
IMEI = "352753090000001"
ICCID = "8901260000000000001"

_S_DEFAULTS = {0: 0, 2: 43, 3: 13, 4: 10, 5: 8, 6: 2, 7: 60, 8: 2, 10: 1, 12: 50}
_FAKE_DNS = {
    "www.google.com": "216.239.59.147",
    "www.u-blox.com": "104.18.28.200",
    "lwm2m-fota.services.u-blox.com": "18.185.213.33",
}


# -- events ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PortsClosed:
    """Every port went away (reboot: back at `reopen_at`; vanished: never, `reopen_at` None)."""

    reason: str
    reopen_at: float | None


@dataclass(frozen=True)
class PortsReopened:
    """The module finished booting: the ports exist again."""


@dataclass(frozen=True)
class ModemLinesChanged:
    """The DCE's output lines of one port changed (DCD follows the data call)."""

    port: int
    cts: bool
    dsr: bool
    dcd: bool


@dataclass(frozen=True)
class CallStarted:
    """A port answered CONNECT and entered data mode for `cid`."""

    port: int
    cid: int


@dataclass(frozen=True)
class CallEnded:
    """The data call of a port ended (reason: dtr, ath, escape, hangup, reboot, ...)."""

    port: int
    cid: int
    reason: str


ModuleEvent = PortsClosed | PortsReopened | ModemLinesChanged | CallStarted | CallEnded


# -- state -------------------------------------------------------------------------------------
@dataclass
class PdpDefinition:
    """One AT+CGDCONT definition (kept in NVM)."""

    pdp_type: str
    apn: str


@dataclass
class AuthSetting:
    """One AT+UAUTHREQ setting (kept in NVM)."""

    auth_type: int
    user: str
    password: str


@dataclass
class Nvm:
    """What survives AT+CFUN=16: profile, contexts, UDCONF, UEMBPF, LwM2M."""

    mno_profile: int
    contexts: dict[int, PdpDefinition] = field(default_factory=lambda: {1: PdpDefinition("IPV4V6", "")})
    auth: dict[int, AuthSetting] = field(default_factory=dict)
    #: AT+UEMBPF range as configured (applied at the next boot, app note §4.3.1).
    embpf: tuple[int, int] | None = None
    #: AT+UDCONF=19: default context and preferred IP type (effective after reboot, §2.3.1).
    default_context: tuple[int, int] = (1, 0)
    #: AT+UDCONF=66,4: 464XLAT (effective after reboot, only on T-Mobile US, §2.5).
    xlat: int = 0
    #: AT+ULWM2M: 0 LwM2M client enabled, 1 disabled.
    lwm2m: int = 0
    udconf: dict[int, str] = field(default_factory=dict)

    def to_json(self) -> str:
        """The NVM as JSON, so a simulator restart (a power cycle) keeps it."""
        return json.dumps(
            {
                "mno_profile": self.mno_profile,
                "contexts": {str(c): [d.pdp_type, d.apn] for c, d in self.contexts.items()},
                "auth": {str(c): [a.auth_type, a.user, a.password] for c, a in self.auth.items()},
                "embpf": list(self.embpf) if self.embpf else None,
                "default_context": list(self.default_context),
                "xlat": self.xlat,
                "lwm2m": self.lwm2m,
                "udconf": {str(k): v for k, v in self.udconf.items()},
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Nvm:
        data = json.loads(text)
        embpf = data.get("embpf")
        default_context = data.get("default_context", [1, 0])
        return cls(
            mno_profile=int(data["mno_profile"]),
            contexts={int(c): PdpDefinition(t, a) for c, (t, a) in data.get("contexts", {}).items()},
            auth={int(c): AuthSetting(int(t), u, p) for c, (t, u, p) in data.get("auth", {}).items()},
            embpf=(int(embpf[0]), int(embpf[1])) if embpf else None,
            default_context=(int(default_context[0]), int(default_context[1])),
            xlat=int(data.get("xlat", 0)),
            lwm2m=int(data.get("lwm2m", 0)),
            udconf={int(k): str(v) for k, v in data.get("udconf", {}).items()},
        )


@dataclass
class ActiveContext:
    """An active PDP context with what the network granted."""

    cid: int
    pdp_type: str
    apn: str
    bearer_id: int
    addresses: ContextAddresses
    mtu: int


@dataclass
class Ram:
    """What AT+CFUN=16 resets."""

    cfun: int = 1
    stat: int = 0
    cops_mode: int = 0
    cops_format: int = 0
    rrc_connected: bool = False
    contexts: dict[int, ActiveContext] = field(default_factory=dict)
    #: Settings read from NVM at boot.
    applied_range: tuple[int, int] | None = None
    applied_xlat: bool = False
    applied_default_context: tuple[int, int] = (1, 0)
    registration_due: float | None = None


@dataclass
class Call:
    """A data call on one port: the dialled cid and the data session serving it."""

    port: int
    cid: int
    session: DataSession
    started_at: float


class PortState:
    """One AT interface of the module (each USB CDC-ACM port is one), with its own settings."""

    def __init__(self, index: int, scenario: Scenario, now: float) -> None:
        self.index = index
        self.assembler = LineAssembler()
        self.out = bytearray()
        self.dtr = False
        self.call: Call | None = None
        self.mode = COMMAND
        self.detector = EscapeDetector(guard=scenario.escape_guard, max_gap=scenario.escape_max_gap, now=now)
        self.reset_profile(scenario)

    def reset_profile(self, scenario: Scenario) -> None:
        """Power-on (and ATZ) values of the per-interface settings."""
        self.echo = scenario.echo
        self.verbose = True
        self.quiet = False
        self.cmee = 0
        self.cvhu = 1
        self.amp_d = 1
        self.s_regs = dict(_S_DEFAULTS)
        self.reg_urc = {"+CEREG": 0, "+CREG": 0, "+CGREG": 0}
        self.cscon = 0
        self.cgerep = 0
        self.detector.char = self.s_regs[2]

    @property
    def in_call(self) -> bool:
        return self.call is not None


class _Failure(Exception):
    """A command failed: `cme` is formatted per AT+CMEE, `final` is sent as is."""

    def __init__(self, cme: int | None = None, final: str | None = None) -> None:
        super().__init__(cme, final)
        self.cme = cme
        self.final = final


@dataclass
class _Reply:
    lines: list[str] = field(default_factory=list)
    final: str = "OK"
    after: Callable[[], None] | None = None


def dotted_ipv6(address: str) -> str:
    """"2001:db8::1" as the 16 dotted decimals LARA-R6 prints (app note §4.1.3)."""
    return ".".join(str(b) for b in ipaddress.IPv6Address(address).packed)


def dotted_ipv6_mask(prefix_len: int) -> str:
    return dotted_ipv6(str(ipaddress.IPv6Network(f"::/{prefix_len}").netmask))


def grant_type(requested: str, network: str) -> str | None:
    """The PDP type the network grants for a request; None when it rejects it."""
    if requested == "IPV4V6":
        return network
    if requested == "IP":
        return "IP" if network in ("IP", "IPV4V6") else None
    return "IPV6" if network in ("IPV6", "IPV4V6") else None


class Module:
    """The simulated LARA-R6: several AT ports sharing one NVM/RAM state; sans-IO."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        ports: int = 3,
        session_factory: DataSessionFactory = DiscardDataSession,
        on_output: Callable[[], None] | None = None,
        now: float = 0.0,
    ) -> None:
        if ports < 1:
            raise ValueError("a module has at least one port")
        self.scenario = scenario
        self.session_factory = session_factory
        #: Called whenever output or an event is queued (the asyncio driver flushes then).
        self.on_output = on_output
        self.nvm = Nvm(mno_profile=scenario.mno_profile)
        self.ram = Ram()
        self.ports = [PortState(i, scenario, now) for i in range(ports)]
        self.state = "off"
        self.counters: Counter[str] = Counter()
        #: (port, command text, final result) of the last commands, for tests and traces.
        self.history: deque[tuple[int, str, str]] = deque(maxlen=256)
        self._rng = random.Random(scenario.seed)
        self._events: deque[ModuleEvent] = deque()
        self._now = now
        self._shutdown_due: float | None = None
        self._shutdown_then = "reboot"
        self._boot_due: float | None = None
        #: Delayed URCs: (when, port, text), kept sorted.
        self._scheduled: list[tuple[float, int, str]] = []
        #: URCs held back while a command line runs.
        self._deferred: list[tuple[PortState, str]] | None = None

    # == inputs =====================================================================================
    def power_on(self, now: float) -> None:
        """Boot the module (ports exist from now on)."""
        self._now = now
        self._boot(now, announce=False)

    def power_off(self, now: float) -> None:
        """Stop the module for good (the simulator stops): calls end, nothing runs any more."""
        self._now = max(self._now, now)
        for p in self.ports:
            if p.call is not None:
                self._end_call(p, "power-off", now, result=None, deactivate=False)
            p.out.clear()
        self.state = "off"
        self._shutdown_due = self._boot_due = None
        self.ram.registration_due = None
        self._scheduled.clear()

    def receive_data(self, port: int, data: bytes, now: float) -> None:
        """Bytes the DTE wrote to `port` at `now`."""
        self._advance(now)
        if self.state != "on":
            self.counters["bytes_ignored"] += len(data)
            return
        p = self.ports[port]
        i = 0
        n = len(data)
        while i < n and self.state == "on":
            if p.mode == DATA:
                chunk = data[i:]
                i = n
                self.counters["bytes_from_dte"] += len(chunk)
                forward = p.detector.feed(chunk, now)
                if forward and p.call is not None:
                    p.call.session.on_data(forward)
                continue
            cr = p.s_regs[3]
            j = data.find(bytes([cr]), i)
            end = n if j < 0 else j + 1
            segment = data[i:end]
            i = end
            if p.echo:
                self._write(p, segment)
            for byte in segment:
                body = p.assembler.feed_byte(byte, cr=cr, bs=p.s_regs[5])
                if body is not None:
                    self._execute_line(p, body, now)
        self._run_due(now)

    def set_dtr(self, port: int, on: bool, now: float) -> None:
        """The DTE's DTR (circuit 108/2) of `port` is now `on`."""
        self._advance(now)
        p = self.ports[port]
        was = p.dtr
        p.dtr = on
        if self.state != "on" or not was or on:
            return
        self.counters["dtr_drops"] += 1
        # App note §4.2: a DTR ON->OFF transition terminates the PPP session. With &D1
        # (default) and &D2 the call ends and the context is deactivated; the port
        # answers NO CARRIER (the choice for the result code: the call is gone) and is
        # back in command mode. &D0 ignores DTR.
        if p.call is not None and p.amp_d != 0:
            self._end_call(p, "dtr", now, result="NO CARRIER", deactivate=True)

    def handle_timer(self, now: float) -> None:
        """Run everything due at `now` (registration, reboot, URCs, escape, sessions)."""
        self._advance(now)

    # == outputs ====================================================================================
    def get_timer(self) -> float | None:
        """When `handle_timer` must run next; None when nothing is pending."""
        times: list[float] = []
        for due in (self._shutdown_due, self._boot_due, self.ram.registration_due):
            if due is not None:
                times.append(due)
        if self._scheduled:
            times.append(self._scheduled[0][0])
        if self.state == "on":
            for p in self.ports:
                if p.call is None:
                    continue
                if p.mode == DATA:
                    t = p.detector.get_timer()
                    if t is not None:
                        times.append(t)
                t = p.call.session.get_timer()
                if t is not None:
                    times.append(t)
        return min(times) if times else None

    def data_to_send(self, port: int) -> bytes:
        """Bytes for the DTE of `port` (taken out of the module)."""
        p = self.ports[port]
        if not p.out:
            return b""
        data = bytes(p.out)
        p.out.clear()
        return data

    def next_event(self) -> ModuleEvent | None:
        return self._events.popleft() if self._events else None

    def modem_lines(self, port: int) -> ModemLinesChanged:
        """The DCE's lines of `port` now: CTS/DSR on while the module runs, DCD during a call."""
        on = self.state in ("on", "shutting-down")
        p = self.ports[port]
        return ModemLinesChanged(port, cts=on, dsr=on, dcd=on and p.call is not None)

    # == inspection =================================================================================
    @property
    def registered(self) -> bool:
        return self.ram.stat in (1, 5)

    @property
    def xlat_active(self) -> bool:
        """464XLAT runs: enabled at the last boot and registered at home on T-Mobile US (§2.5)."""
        return self.ram.applied_xlat and self.ram.stat == 1 and self.scenario.network.is_tmobile_us_home

    @property
    def applied_range(self) -> tuple[int, int] | None:
        """The +UEMBPF range in force (read from NVM at the last boot)."""
        return self.ram.applied_range

    @property
    def calls(self) -> list[Call]:
        return [p.call for p in self.ports if p.call is not None]

    # == internals: time ============================================================================
    def _advance(self, now: float) -> None:
        self._now = max(self._now, now)
        self._run_due(now)

    def _run_due(self, now: float) -> None:
        for _ in range(10000):
            if not self._run_one_due(now):
                return
        raise RuntimeError("simulated module timers do not settle")

    def _run_one_due(self, now: float) -> bool:
        if self._shutdown_due is not None and now >= self._shutdown_due:
            self._shutdown_due = None
            self._power_down(now)
            return True
        if self._boot_due is not None and now >= self._boot_due:
            self._boot_due = None
            self._boot(now, announce=True)
            return True
        if self.state != "on":
            return False
        if self.ram.registration_due is not None and now >= self.ram.registration_due:
            self.ram.registration_due = None
            self._complete_registration(now)
            return True
        if self._scheduled and now >= self._scheduled[0][0]:
            _, port, text = self._scheduled.pop(0)
            self._urc(self.ports[port], text)
            return True
        for p in self.ports:
            call = p.call
            if call is None:
                continue
            if p.mode == DATA:
                t = p.detector.get_timer()
                if t is not None and now >= t:
                    released, escaped = p.detector.handle_timer(now)
                    if released:
                        call.session.on_data(released)
                    if escaped:
                        self._escape_detected(p, now)
                        return True
                    if released or p.detector.get_timer() != t:
                        return True
            t = call.session.get_timer()
            if t is not None and now >= t:
                call.session.handle_timer(now)
                if call.session.get_timer() != t or p.call is not call:
                    return True
        return False

    def _schedule_urc(self, when: float, port: PortState, text: str) -> None:
        self._scheduled.append((when, port.index, text))
        self._scheduled.sort(key=lambda item: item[0])

    # == internals: output ==========================================================================
    def _notify(self) -> None:
        if self.on_output is not None:
            self.on_output()

    def _emit(self, event: ModuleEvent) -> None:
        self._events.append(event)
        self._notify()

    def _write(self, p: PortState, data: bytes) -> None:
        if self.state not in ("on", "shutting-down") or not data:
            return
        p.out += data
        self._notify()

    def _text(self, p: PortState, text: str) -> bytes:
        cr, lf = chr(p.s_regs[3]), chr(p.s_regs[4])
        if p.verbose:
            return f"{cr}{lf}{text}{cr}{lf}".encode("latin-1", "replace")
        return f"{text}{cr}{lf}".encode("latin-1", "replace")

    def _final_bytes(self, p: PortState, final: str) -> bytes:
        if p.quiet:
            return b""
        if not p.verbose and final in NUMERIC_RESULT:
            return f"{NUMERIC_RESULT[final]}{chr(p.s_regs[3])}".encode()
        return self._text(p, final)

    def _reply(self, p: PortState, lines: list[str], final: str) -> None:
        out = bytearray()
        if self.scenario.garbage and self._rng.random() < self.scenario.garbage:
            self.counters["garbage"] += 1
            alphabet = bytes(range(0x80, 0x100)) + b"\x00~#*%"
            out += bytes(self._rng.choice(alphabet) for _ in range(self._rng.randint(1, 8)))
        if lines:
            cr, lf = chr(p.s_regs[3]), chr(p.s_regs[4])
            block = "".join(f"{line}{cr}{lf}" for line in lines)
            out += ((f"{cr}{lf}" if p.verbose else "") + block).encode("latin-1", "replace")
        out += self._final_bytes(p, final)
        self._write(p, bytes(out))
        if self.scenario.urc_noise and p.mode != DATA and self._rng.random() < self.scenario.urc_noise:
            self._noise(p)

    def _noise(self, p: PortState) -> None:
        self.counters["noise_urcs"] += 1
        choice = self._rng.randrange(3)
        if choice == 0:
            text = f"+CEREG: {self.ram.stat}"
        elif choice == 1:
            text = f"+CSCON: {1 if self.ram.rrc_connected else 0}"
        else:
            text = f"+CIEV: 2,{self._rng.randint(1, 5)}"
        self._write(p, self._text(p, text))

    def _urc(self, p: PortState, text: str) -> None:
        """An unsolicited result: dropped while the port is in data mode."""
        if self.state != "on":
            return
        if self._deferred is not None:
            self._deferred.append((p, text))
            return
        if p.mode == DATA:
            self.counters["urcs_dropped"] += 1
            return
        self.counters["urcs"] += 1
        self._write(p, self._text(p, text))

    def _failure_text(self, p: PortState, failure: _Failure) -> str:
        if failure.final is not None:
            return failure.final
        code = failure.cme if failure.cme is not None else 100
        if p.cmee == 1:
            return f"+CME ERROR: {code}"
        if p.cmee == 2:
            return f"+CME ERROR: {CME_TEXT.get(code, 'unknown')}"
        return "ERROR"

    # == internals: command lines ===================================================================
    def _execute_line(self, p: PortState, body: str, now: float) -> None:
        # URCs raised while a command runs come after its final result code.
        self._deferred = []
        try:
            self._execute_commands(p, body, now)
        finally:
            deferred, self._deferred = self._deferred, None
            for port, text in deferred:
                self._urc(port, text)

    def _execute_commands(self, p: PortState, body: str, now: float) -> None:
        self.counters["lines"] += 1
        if body == "\0":
            self._reply(p, [], "ERROR")
            return
        try:
            commands = split_commands(body)
        except CommandSyntaxError:
            self.history.append((p.index, body, "ERROR"))
            self._reply(p, [], "ERROR")
            return
        lines: list[str] = []
        for cmd in commands:
            self.counters["commands"] += 1
            fault = self.scenario.fault_for(cmd.text)
            if fault == "silent":
                self.counters["faults_silent"] += 1
                self.history.append((p.index, cmd.text, ""))
                return
            if fault == "error":
                self.counters["faults_error"] += 1
                final = self._failure_text(p, _Failure(cme=100))
                self.history.append((p.index, cmd.text, final))
                self._reply(p, lines, final)
                return
            try:
                result = self._dispatch(p, cmd, now)
            except _Failure as failure:
                final = self._failure_text(p, failure)
                self.history.append((p.index, cmd.text, final))
                self._reply(p, lines, final)
                if fault == "vanish":
                    self._vanish(now)
                return
            lines += result.lines
            last = result.final != "OK" or result.after is not None or fault == "vanish"
            if last or cmd is commands[-1]:
                self.history.append((p.index, cmd.text, result.final))
                self._reply(p, lines, result.final)
                if result.after is not None:
                    result.after()
                if fault == "vanish":
                    self._vanish(now)
                return
            self.history.append((p.index, cmd.text, "OK"))
        if not commands:
            self.history.append((p.index, "", "OK"))
            self._reply(p, [], "OK")

    def _dispatch(self, p: PortState, cmd: Command, now: float) -> _Reply:
        name = cmd.name
        if name.startswith("S") and name[1:].isdigit():
            return self._cmd_s_register(p, cmd)
        handler = _HANDLERS.get(name)
        if handler is None:
            raise _Failure(cme=4)
        if cmd.kind == "test" and name in _TESTS:
            return _Reply([_TESTS[name]])
        return handler(self, p, cmd, now)

    # -- parameter helpers ------------------------------------------------------------------------
    @staticmethod
    def _params(cmd: Command) -> list[Param]:
        try:
            return split_params(cmd.args)
        except CommandSyntaxError:
            raise _Failure(cme=50) from None

    @staticmethod
    def _int(params: list[Param], index: int, lo: int, hi: int, default: int | None = None) -> int:
        if index >= len(params) or params[index].empty:
            if default is None:
                raise _Failure(cme=50)
            return default
        param = params[index]
        if param.quoted or not param.text.isdigit():
            raise _Failure(cme=50)
        value = int(param.text)
        if not lo <= value <= hi:
            raise _Failure(cme=50)
        return value

    @staticmethod
    def _str(params: list[Param], index: int, default: str | None = None) -> str:
        if index >= len(params) or params[index].empty:
            if default is None:
                raise _Failure(cme=50)
            return default
        return params[index].text

    @staticmethod
    def _basic_value(cmd: Command, allowed: tuple[int, ...]) -> int:
        value = int(cmd.args) if cmd.args else 0
        if value not in allowed:
            raise _Failure(cme=50)
        return value

    # == basic commands ==============================================================================
    def _cmd_echo(self, p: PortState, cmd: Command, now: float) -> _Reply:
        p.echo = self._basic_value(cmd, (0, 1)) == 1
        return _Reply()

    def _cmd_verbose(self, p: PortState, cmd: Command, now: float) -> _Reply:
        p.verbose = self._basic_value(cmd, (0, 1)) == 1
        return _Reply()

    def _cmd_quiet(self, p: PortState, cmd: Command, now: float) -> _Reply:
        p.quiet = self._basic_value(cmd, (0, 1)) == 1
        return _Reply()

    def _cmd_reset_profile(self, p: PortState, cmd: Command, now: float) -> _Reply:
        p.reset_profile(self.scenario)
        return _Reply()

    def _cmd_ok(self, p: PortState, cmd: Command, now: float) -> _Reply:
        return _Reply()

    def _cmd_amp_d(self, p: PortState, cmd: Command, now: float) -> _Reply:
        p.amp_d = self._basic_value(cmd, (0, 1, 2))
        return _Reply()

    def _cmd_info(self, p: PortState, cmd: Command, now: float) -> _Reply:
        value = int(cmd.args) if cmd.args else 0
        if value == 0:
            return _Reply([self.scenario.model])
        if value == 9:
            return _Reply([f"{self.scenario.firmware},A00.01"])
        raise _Failure(cme=4)

    def _cmd_s_register(self, p: PortState, cmd: Command) -> _Reply:
        reg = int(cmd.name[1:])
        if cmd.kind == "read":
            return _Reply([f"{p.s_regs.get(reg, 0):03d}"])
        if not cmd.args.isdigit() or int(cmd.args) > 255:
            raise _Failure(cme=50)
        p.s_regs[reg] = int(cmd.args)
        if reg == 2:
            p.detector.char = int(cmd.args)
        return _Reply()

    def _cmd_hook(self, p: PortState, cmd: Command, now: float) -> _Reply:
        # App note §4.2: with AT+CVHU=0 (or 2), ATH in online command mode ends the PPP and
        # deactivates its context; with the default CVHU=1 ATH answers OK and does nothing.
        if p.mode == ONLINE_COMMAND and p.call is not None and p.cvhu in (0, 2):
            self._end_call(p, "ath", now, result=None, deactivate=True)
        return _Reply()

    def _cmd_online(self, p: PortState, cmd: Command, now: float) -> _Reply:
        if p.mode != ONLINE_COMMAND or p.call is None:
            raise _Failure(final="NO CARRIER")

        def resume() -> None:
            p.mode = DATA
            p.detector.reset(now)

        return _Reply(final="CONNECT", after=resume)

    def _cmd_dial(self, p: PortState, cmd: Command, now: float) -> _Reply:
        self.counters["dials"] += 1
        if p.mode == ONLINE_COMMAND:
            raise _Failure(cme=3)
        cid = _parse_dial(cmd.args)
        if cid is None:
            raise _Failure(final="NO CARRIER")
        if cid not in self.nvm.contexts:
            raise _Failure(final="ERROR")
        if self.ram.cfun != 1 or not self.registered:
            raise _Failure(final="NO CARRIER")
        # App note §4.1.3: up to 3 PPP instances at once, one per context.
        if len(self.calls) >= self.scenario.max_ppp:
            self.counters["dials_refused"] += 1
            raise _Failure(final="NO CARRIER")
        if any(call.cid == cid for call in self.calls):
            raise _Failure(final="NO CARRIER")
        # App note §4: if the PDN connection of the cid is not active, the dial activates it.
        if self._activate(cid, now) is not None:
            raise _Failure(final="NO CARRIER")
        ctx = self.ram.contexts[cid]
        return _Reply(final="CONNECT", after=lambda: self._start_call(p, ctx, now))

    # == extended commands ===========================================================================
    def _cmd_cmee(self, p: PortState, cmd: Command, now: float) -> _Reply:
        if cmd.kind == "read":
            return _Reply([f"+CMEE: {p.cmee}"])
        p.cmee = self._int(self._params(cmd), 0, 0, 2, default=0)
        return _Reply()

    def _cmd_model(self, p: PortState, cmd: Command, now: float) -> _Reply:
        return _Reply([self.scenario.model])

    def _cmd_revision(self, p: PortState, cmd: Command, now: float) -> _Reply:
        return _Reply([self.scenario.firmware])

    def _cmd_manufacturer(self, p: PortState, cmd: Command, now: float) -> _Reply:
        return _Reply(["u-blox"])

    def _cmd_imei(self, p: PortState, cmd: Command, now: float) -> _Reply:
        return _Reply([IMEI])

    def _cmd_imsi(self, p: PortState, cmd: Command, now: float) -> _Reply:
        return _Reply([f"{self.scenario.network.home_plmn}123456789"[:15]])

    def _cmd_ccid(self, p: PortState, cmd: Command, now: float) -> _Reply:
        return _Reply([f"+CCID: {ICCID}"])

    def _cmd_cpin(self, p: PortState, cmd: Command, now: float) -> _Reply:
        if cmd.kind == "read":
            return _Reply(["+CPIN: READY"])
        raise _Failure(cme=3)

    def _cmd_csq(self, p: PortState, cmd: Command, now: float) -> _Reply:
        return _Reply(["+CSQ: 22,99" if self.registered else "+CSQ: 99,99"])

    def _cmd_cfun(self, p: PortState, cmd: Command, now: float) -> _Reply:
        if cmd.kind == "read":
            return _Reply([f"+CFUN: {self.ram.cfun}"])
        if cmd.kind != "set":
            raise _Failure(cme=50)
        params = self._params(cmd)
        fun = self._int(params, 0, 0, 19)
        rst = self._int(params, 1, 0, 1, default=0)
        if fun in (15, 16) or (fun == 1 and rst == 1):
            # App note §2.3.1: the reboot that makes NVM settings effective.
            self._start_shutdown(now, "reboot")
            return _Reply()
        if fun in (0, 4):
            self.ram.cfun = fun
            self._deregister(now, "cfun")
            return _Reply()
        if fun == 1:
            self.ram.cfun = 1
            if self.ram.cops_mode != 2:
                self._start_registration(now)
            return _Reply()
        raise _Failure(cme=50)

    def _cmd_umnoprof(self, p: PortState, cmd: Command, now: float) -> _Reply:
        if cmd.kind == "read":
            return _Reply([f"+UMNOPROF: {self.nvm.mno_profile}"])
        profile = self._int(self._params(cmd), 0, 0, 255)
        # App note §2.3: the radio must be off while the MNO profile is set.
        if self.ram.cfun not in (0, 4):
            raise _Failure(cme=3)
        self.nvm.mno_profile = profile
        return _Reply()

    def _cmd_cgdcont(self, p: PortState, cmd: Command, now: float) -> _Reply:
        if cmd.kind == "read":
            lines = []
            for cid in sorted(self.nvm.contexts):
                definition = self.nvm.contexts[cid]
                ctx = self.ram.contexts.get(cid)
                pdp_type = ctx.pdp_type if ctx else definition.pdp_type
                address = self._context_address_text(ctx) if ctx else ""
                lines.append(f'+CGDCONT: {cid},"{pdp_type}","{definition.apn}","{address}",0,0,0,0')
            return _Reply(lines)
        if cmd.kind != "set":
            raise _Failure(cme=50)
        params = self._params(cmd)
        cid = self._int(params, 0, *CID_RANGE)
        if cid in self.ram.contexts:
            raise _Failure(cme=3)
        if len(params) == 1:
            self.nvm.contexts.pop(cid, None)
            return _Reply()
        pdp_type = self._str(params, 1).upper()
        if pdp_type not in PDP_TYPES:
            raise _Failure(cme=50)
        apn = self._str(params, 2, default="")
        if len(apn) > 99:
            raise _Failure(cme=50)
        self.nvm.contexts[cid] = PdpDefinition(pdp_type, apn)
        return _Reply()

    def _cmd_cgact(self, p: PortState, cmd: Command, now: float) -> _Reply:
        if cmd.kind == "read":
            return _Reply([f"+CGACT: {cid},{1 if cid in self.ram.contexts else 0}" for cid in sorted(self.nvm.contexts)])
        if cmd.kind != "set":
            raise _Failure(cme=50)
        params = self._params(cmd)
        state = self._int(params, 0, 0, 1)
        cids = [self._int(params, i, *CID_RANGE) for i in range(1, len(params))]
        if not cids:
            cids = sorted(self.nvm.contexts)
        for cid in cids:
            if cid not in self.nvm.contexts:
                raise _Failure(cme=50)
            if state == 1:
                error = self._activate(cid, now)
                if error is not None:
                    raise _Failure(cme=error)
            else:
                self._deactivate(cid, now, "cgact")
        return _Reply()

    def _cmd_cgcontrdp(self, p: PortState, cmd: Command, now: float) -> _Reply:
        params = self._params(cmd) if cmd.kind == "set" else []
        if params:
            cid = self._int(params, 0, *CID_RANGE)
            contexts = [self.ram.contexts[cid]] if cid in self.ram.contexts else []
        else:
            contexts = [self.ram.contexts[c] for c in sorted(self.ram.contexts)]
        lines = []
        for ctx in contexts:
            a = ctx.addresses
            head = f'+CGCONTRDP: {ctx.cid},{ctx.bearer_id},"{ctx.apn}"'
            tail = f',"","",0,0,{ctx.mtu}'
            if ctx.pdp_type in ("IP", "IPV4V6"):
                lines.append(
                    f'{head},"{a.ipv4}.{a.ipv4_mask}","{a.ipv4_gateway}",'
                    f'"{a.ipv4_dns[0]}","{a.ipv4_dns[1]}"{tail}'
                )
            if ctx.pdp_type in ("IPV6", "IPV4V6"):
                lines.append(
                    f'{head},"{dotted_ipv6(a.ipv6)}.{dotted_ipv6_mask(a.ipv6_prefix_len)}","",'
                    f'"{dotted_ipv6(a.ipv6_dns[0])}","{dotted_ipv6(a.ipv6_dns[1])}"{tail}'
                )
        return _Reply(lines)

    def _cmd_cgpaddr(self, p: PortState, cmd: Command, now: float) -> _Reply:
        params = self._params(cmd) if cmd.kind == "set" else []
        cids = [self._int(params, i, *CID_RANGE) for i in range(len(params))] or sorted(self.nvm.contexts)
        lines = []
        for cid in cids:
            ctx = self.ram.contexts.get(cid)
            if ctx is None:
                lines.append(f"+CGPADDR: {cid}")
                continue
            parts = []
            if ctx.pdp_type in ("IP", "IPV4V6"):
                parts.append(f'"{ctx.addresses.ipv4}"')
            if ctx.pdp_type in ("IPV6", "IPV4V6"):
                parts.append(f'"{dotted_ipv6(ctx.addresses.ipv6)}"')
            lines.append(f"+CGPADDR: {cid}," + ",".join(parts))
        return _Reply(lines)

    def _cmd_cops(self, p: PortState, cmd: Command, now: float) -> _Reply:
        net = self.scenario.network
        if cmd.kind == "read":
            if self.registered:
                name = (net.long_name, net.short_name, net.plmn)[self.ram.cops_format]
                return _Reply([f'+COPS: {self.ram.cops_mode},{self.ram.cops_format},"{name}",7'])
            return _Reply([f"+COPS: {self.ram.cops_mode}"])
        if cmd.kind == "test":
            return _Reply([f'+COPS: (2,"{net.long_name}","{net.short_name}","{net.plmn}",7),,(0-4),(0-2)'])
        params = self._params(cmd)
        mode = self._int(params, 0, 0, 4)
        if mode == 3:
            self.ram.cops_format = self._int(params, 1, 0, 2)
            return _Reply()
        if mode == 2:
            self.ram.cops_mode = 2
            self._deregister(now, "cops")
            return _Reply()
        if mode == 1:
            wanted = self._str(params, 2)
            if wanted not in (net.plmn, net.long_name, net.short_name):
                raise _Failure(cme=30)
        self.ram.cops_mode = 1 if mode == 1 else 0
        if self.ram.cfun == 1:
            self._start_registration(now)
        return _Reply()

    def _cmd_reg(self, p: PortState, cmd: Command, now: float) -> _Reply:
        if cmd.kind == "read":
            n = p.reg_urc[cmd.name]
            return _Reply([self._registration_text(cmd.name, self.ram.stat, n, read=True)])
        p.reg_urc[cmd.name] = self._int(self._params(cmd), 0, 0, 5, default=0)
        return _Reply()

    def _cmd_cgatt(self, p: PortState, cmd: Command, now: float) -> _Reply:
        if cmd.kind == "read":
            return _Reply([f"+CGATT: {1 if self.registered else 0}"])
        if self._int(self._params(cmd), 0, 0, 1) == 1:
            if self.ram.cfun != 1:
                raise _Failure(cme=3)
            self._start_registration(now)
        else:
            self._deregister(now, "cgatt")
        return _Reply()

    def _cmd_cvhu(self, p: PortState, cmd: Command, now: float) -> _Reply:
        if cmd.kind == "read":
            return _Reply([f"+CVHU: {p.cvhu}"])
        p.cvhu = self._int(self._params(cmd), 0, 0, 2, default=0)
        return _Reply()

    def _cmd_udconf(self, p: PortState, cmd: Command, now: float) -> _Reply:
        if cmd.kind != "set":
            raise _Failure(cme=50)
        params = self._params(cmd)
        op = self._int(params, 0, 0, 255)
        if op == 19:
            # App note §2.3.1: default context and preferred IP type, NVM, effective after reboot.
            if len(params) == 1:
                cid, ip_type = self.nvm.default_context
                return _Reply([f"+UDCONF: 19,{cid},{ip_type}"])
            self.nvm.default_context = (self._int(params, 1, *CID_RANGE), self._int(params, 2, 0, 2))
            return _Reply()
        if op == 66:
            # App note §2.5: AT+UDCONF=66,4,1 enables 464XLAT from the next boot.
            if len(params) >= 2:
                self._int(params, 1, 4, 4)
            if len(params) <= 2:
                return _Reply([f"+UDCONF: 66,4,{self.nvm.xlat}"])
            self.nvm.xlat = self._int(params, 2, 0, 1)
            return _Reply()
        if len(params) == 1:
            return _Reply([f"+UDCONF: {op},{self.nvm.udconf.get(op, '0')}"])
        self.nvm.udconf[op] = cmd.args.split(",", 1)[1]
        return _Reply()

    def _cmd_uembpf(self, p: PortState, cmd: Command, now: float) -> _Reply:
        if cmd.kind == "read":
            # The configured range (app note §4.3.1 reads it after the reboot that applies it).
            if self.nvm.embpf is None:
                return _Reply(["+UEMBPF: 0"])
            first, last = self.nvm.embpf
            return _Reply([f'+UEMBPF: 1,"{first}-{last}"'])
        params = self._params(cmd)
        mode = self._int(params, 0, 0, 1)
        if mode == 0:
            self.nvm.embpf = None
            return _Reply()
        text = self._str(params, 1)
        first_text, sep, last_text = text.partition("-")
        if not sep or not first_text.isdigit() or not last_text.isdigit():
            raise _Failure(cme=50)
        first, last = int(first_text), int(last_text)
        if not 1 <= first <= last <= 65535:
            raise _Failure(cme=50)
        self.nvm.embpf = (first, last)
        return _Reply()

    def _cmd_ulwm2m(self, p: PortState, cmd: Command, now: float) -> _Reply:
        if cmd.kind == "read":
            return _Reply([f"+ULWM2M: {self.nvm.lwm2m}"])
        self.nvm.lwm2m = self._int(self._params(cmd), 0, 0, 1)
        return _Reply()

    def _default_ipv4_context(self) -> ActiveContext:
        """Embedded clients use CID 1 (app note §2.3.1); they need IPv4 (or XLAT)."""
        if not self.registered:
            raise _Failure(cme=30)
        ctx = self.ram.contexts.get(1)
        if ctx is None:
            raise _Failure(cme=30)
        if ctx.pdp_type == "IPV6" and not self.xlat_active:
            # App note §2.4.1: +UPING is not supported in a context of IPv6 type.
            raise _Failure(cme=3)
        return ctx

    def _cmd_uping(self, p: PortState, cmd: Command, now: float) -> _Reply:
        params = self._params(cmd)
        host = self._str(params, 0)
        count = self._int(params, 1, 1, 64, default=4)
        size = self._int(params, 2, 4, 1460, default=32)
        self._int(params, 3, 10, 60000, default=5000)
        self._int(params, 4, 1, 255, default=32)
        self._default_ipv4_context()
        address = _resolve(host)
        for i in range(1, count + 1):
            rtt = self._rng.randint(40, 70)
            text = f'+UUPING: {i},{size},"{host}","{address}",55,{rtt}'
            self._schedule_urc(now + i * self.scenario.ping_interval, p, text)
        return _Reply()

    def _cmd_udnsrn(self, p: PortState, cmd: Command, now: float) -> _Reply:
        params = self._params(cmd)
        mode = self._int(params, 0, 0, 1)
        query = self._str(params, 1)
        self._default_ipv4_context()
        if mode == 0:
            return _Reply([f'+UDNSRN: "{_resolve(query)}"'])
        try:
            ipaddress.ip_address(query)
        except ValueError:
            raise _Failure(cme=50) from None
        names = [name for name, addr in _FAKE_DNS.items() if addr == query]
        return _Reply([f'+UDNSRN: "{names[0] if names else "host.example.net"}"'])

    def _cmd_uauthreq(self, p: PortState, cmd: Command, now: float) -> _Reply:
        if cmd.kind == "read":
            return _Reply([f'+UAUTHREQ: {cid},{a.auth_type},"{a.user}"' for cid, a in sorted(self.nvm.auth.items())])
        params = self._params(cmd)
        cid = self._int(params, 0, *CID_RANGE)
        auth_type = self._int(params, 1, 0, 3)
        user = self._str(params, 2, default="")
        password = self._str(params, 3, default="")
        self.nvm.auth[cid] = AuthSetting(auth_type, user, password)
        return _Reply()

    def _cmd_cscon(self, p: PortState, cmd: Command, now: float) -> _Reply:
        if cmd.kind == "read":
            return _Reply([f"+CSCON: {p.cscon},{1 if self.ram.rrc_connected else 0}"])
        p.cscon = self._int(self._params(cmd), 0, 0, 3, default=0)
        return _Reply()

    def _cmd_cgerep(self, p: PortState, cmd: Command, now: float) -> _Reply:
        if cmd.kind == "read":
            return _Reply([f"+CGEREP: {p.cgerep},0"])
        p.cgerep = self._int(self._params(cmd), 0, 0, 2, default=0)
        return _Reply()

    def _cmd_accept(self, p: PortState, cmd: Command, now: float) -> _Reply:
        """Commands accepted without effect on the simulation (flow control, baud rate...)."""
        if cmd.kind == "read":
            return _Reply([f"{cmd.name}: 0"])
        return _Reply()

    # == registration, contexts, calls ===============================================================
    def _registration_text(self, name: str, stat: int, n: int, *, read: bool) -> str:
        net = self.scenario.network
        head = f"{name}: {n},{stat}" if read else f"{name}: {stat}"
        if n >= 2 and stat in (1, 5):
            return f'{head},"{net.tac}","{net.cell_id}",7'
        return head

    def _set_stat(self, stat: int) -> None:
        if stat == self.ram.stat:
            return
        self.ram.stat = stat
        for p in self.ports:
            for name, n in p.reg_urc.items():
                if n:
                    self._urc(p, self._registration_text(name, stat, n, read=False))

    def _set_rrc(self, connected: bool) -> None:
        if connected == self.ram.rrc_connected:
            return
        self.ram.rrc_connected = connected
        for p in self.ports:
            if p.cscon:
                self._urc(p, f"+CSCON: {1 if connected else 0}")

    def _start_registration(self, now: float) -> None:
        if self.registered or self.ram.cfun != 1:
            return
        self._set_stat(2)
        if not self.scenario.never_register and self.ram.registration_due is None:
            self.ram.registration_due = now + self.scenario.registration_delay

    def _complete_registration(self, now: float) -> None:
        self._set_stat(5 if self.scenario.network.roaming else 1)
        self._set_rrc(True)
        # App note §2.1: CID 1 is the initial default EPS bearer, set up by the LTE attach.
        if 1 in self.nvm.contexts:
            self._activate(1, now)

    def _deregister(self, now: float, reason: str) -> None:
        self.ram.registration_due = None
        for cid in list(self.ram.contexts):
            self._deactivate(cid, now, reason)
        self._set_stat(0)
        self._set_rrc(False)

    def _activate(self, cid: int, now: float) -> int | None:
        """Activate `cid`; None on success, else the +CME ERROR code."""
        if cid in self.ram.contexts:
            return None
        if self.ram.cfun != 1 or not self.registered:
            return 30
        definition = self.nvm.contexts.get(cid)
        if definition is None:
            return 50
        granted = grant_type(definition.pdp_type, self.scenario.grant)
        if granted is None:
            return 132
        # App note §4.1.3: a different and unique APN is required per PDP context.
        if any(ctx.apn.lower() == definition.apn.lower() for ctx in self.ram.contexts.values()):
            self.counters["activation_same_apn"] += 1
            return 148
        if len(self.ram.contexts) >= MAX_ACTIVE_CONTEXTS:
            return 148
        self.ram.contexts[cid] = ActiveContext(
            cid=cid,
            pdp_type=granted,
            apn=definition.apn,
            bearer_id=4 + cid if cid else 15,
            addresses=address_plan(cid),
            mtu=self.scenario.mtu,
        )
        self.counters["activations"] += 1
        for p in self.ports:
            if p.cgerep:
                self._urc(p, f"+CGEV: ME PDN ACT {cid}")
        return None

    def _deactivate(self, cid: int, now: float, reason: str) -> None:
        if self.ram.contexts.pop(cid, None) is None:
            return
        self.counters["deactivations"] += 1
        for p in self.ports:
            if p.call is not None and p.call.cid == cid:
                self._end_call(p, reason, now, result="NO CARRIER", deactivate=False)
        for p in self.ports:
            if p.cgerep:
                self._urc(p, f"+CGEV: ME PDN DEACT {cid}")

    def _context_address_text(self, ctx: ActiveContext) -> str:
        a = ctx.addresses
        if ctx.pdp_type == "IP":
            return a.ipv4
        if ctx.pdp_type == "IPV6":
            return dotted_ipv6(a.ipv6)
        # App note §4.1.3: "10.117.32.103 38.0.3.128...": IPv4, a space, the dotted IPv6.
        return f"{a.ipv4} {dotted_ipv6(a.ipv6)}"

    def _start_call(self, p: PortState, ctx: ActiveContext, now: float) -> None:
        auth = self.nvm.auth.get(ctx.cid, AuthSetting(0, "", ""))
        call_info = DataCall(
            port=p.index,
            cid=ctx.cid,
            apn=ctx.apn,
            pdp_type=ctx.pdp_type,
            addresses=ctx.addresses,
            mtu=ctx.mtu,
            auth_type=auth.auth_type,
            user=auth.user,
            password=auth.password,
            xlat_ipv4=CLAT_IPV4 if self.xlat_active and ctx.pdp_type == "IPV6" else None,
            embedded_port_range=self.ram.applied_range,
        )
        holder: list[Call] = []

        def send(data: bytes) -> None:
            if holder and p.call is holder[0]:
                if p.mode == DATA:
                    self.counters["bytes_to_dte"] += len(data)
                    self._write(p, data)
                else:
                    self.counters["bytes_dropped_in_command_mode"] += len(data)

        def hangup(reason: str = "hangup") -> None:
            if holder and p.call is holder[0]:
                self._end_call(p, reason, self._now, result="NO CARRIER", deactivate=True)

        p.mode = DATA
        p.detector.reset(now)
        p.assembler.clear()
        session = self.session_factory(call_info, send, hangup)
        call = Call(p.index, ctx.cid, session, now)
        holder.append(call)
        p.call = call
        self.counters["connects"] += 1
        self._set_rrc(True)
        self._emit(CallStarted(p.index, ctx.cid))
        self._emit(self.modem_lines(p.index))

    def _end_call(self, p: PortState, reason: str, now: float, *, result: str | None, deactivate: bool) -> None:
        call = p.call
        if call is None:
            return
        p.call = None
        p.mode = COMMAND
        p.assembler.clear()
        self.counters[f"calls_ended_{reason}"] += 1
        call.session.close(reason)
        self._emit(CallEnded(p.index, call.cid, reason))
        self._emit(self.modem_lines(p.index))
        if result is not None:
            self._write(p, self._final_bytes(p, result))
        # App note §4.1.3: ending the PPP deactivates the context it dialled, except CID 1,
        # the default EPS bearer, which stays up while attached (§2.1; "if possible", §4.2).
        if deactivate and call.cid != 1:
            self._deactivate(call.cid, now, reason)

    def _escape_detected(self, p: PortState, now: float) -> None:
        self.counters["escapes"] += 1
        if p.amp_d == 1:
            # App note §9.1.4 and &D1 (default): online command mode; ATO resumes the call.
            p.mode = ONLINE_COMMAND
            p.assembler.clear()
            self._write(p, self._final_bytes(p, "OK"))
            return
        # With &D0/&D2, "+++" during a PPP call deactivates the context (u-blox &D notes).
        self._end_call(p, "escape", now, result="NO CARRIER", deactivate=True)

    # == power =====================================================================================
    def _start_shutdown(self, now: float, then: str) -> None:
        if self.state == "shutting-down":
            if then == "vanish":
                self._shutdown_then = then  # a pending reboot turns into vanishing
            return
        if self.state != "on":
            return
        self.state = "shutting-down"
        self._shutdown_then = then
        self._shutdown_due = now + self.scenario.shutdown_delay
        self.ram.registration_due = None
        self._scheduled.clear()

    def _vanish(self, now: float) -> None:
        self.counters["vanished"] += 1
        self._start_shutdown(now, "vanish")

    def _power_down(self, now: float) -> None:
        for p in self.ports:
            if p.call is not None:
                self._end_call(p, "reboot" if self._shutdown_then == "reboot" else "vanished",
                               now, result=None, deactivate=False)
            p.out.clear()
        if self._shutdown_then == "reboot":
            self.counters["reboots"] += 1
            self.state = "rebooting"
            self._boot_due = now + self.scenario.reboot_time
            self._emit(PortsClosed("reboot", self._boot_due))
        else:
            self.state = "vanished"
            self._emit(PortsClosed("vanished", None))
        for p in self.ports:
            self._emit(self.modem_lines(p.index))

    def _boot(self, now: float, *, announce: bool) -> None:
        self.ram = Ram(
            applied_range=self.nvm.embpf,
            applied_xlat=self.nvm.xlat == 1,
            applied_default_context=self.nvm.default_context,
        )
        self._scheduled.clear()
        for p in self.ports:
            p.mode = COMMAND
            p.call = None
            p.out.clear()
            p.assembler.clear()
            p.reset_profile(self.scenario)
        self.state = "on"
        self.counters["boots"] += 1
        if announce:
            self._emit(PortsReopened())
            for p in self.ports:
                self._emit(self.modem_lines(p.index))
        self._start_registration(now)


def _parse_dial(args: str) -> int | None:
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


def _resolve(host: str) -> str:
    """The simulated network's DNS: a few known names, else a stable TEST-NET-3 address."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if host.lower() in _FAKE_DNS:
        return _FAKE_DNS[host.lower()]
    return f"203.0.113.{1 + zlib.crc32(host.lower().encode()) % 254}"


_Handler = Callable[[Module, PortState, Command, float], _Reply]

_HANDLERS: dict[str, _Handler] = {
    "E": Module._cmd_echo,
    "V": Module._cmd_verbose,
    "Q": Module._cmd_quiet,
    "Z": Module._cmd_reset_profile,
    "&F": Module._cmd_reset_profile,
    "&W": Module._cmd_ok,
    "&C": Module._cmd_ok,
    "&K": Module._cmd_ok,
    "&S": Module._cmd_ok,
    "X": Module._cmd_ok,
    "L": Module._cmd_ok,
    "M": Module._cmd_ok,
    "&D": Module._cmd_amp_d,
    "I": Module._cmd_info,
    "H": Module._cmd_hook,
    "O": Module._cmd_online,
    "D": Module._cmd_dial,
    "+CMEE": Module._cmd_cmee,
    "+CGMM": Module._cmd_model,
    "+GMM": Module._cmd_model,
    "+CGMR": Module._cmd_revision,
    "+GMR": Module._cmd_revision,
    "+CGMI": Module._cmd_manufacturer,
    "+GMI": Module._cmd_manufacturer,
    "+CGSN": Module._cmd_imei,
    "+GSN": Module._cmd_imei,
    "+CIMI": Module._cmd_imsi,
    "+CCID": Module._cmd_ccid,
    "+CPIN": Module._cmd_cpin,
    "+CSQ": Module._cmd_csq,
    "+CFUN": Module._cmd_cfun,
    "+UMNOPROF": Module._cmd_umnoprof,
    "+CGDCONT": Module._cmd_cgdcont,
    "+CGACT": Module._cmd_cgact,
    "+CGCONTRDP": Module._cmd_cgcontrdp,
    "+CGPADDR": Module._cmd_cgpaddr,
    "+COPS": Module._cmd_cops,
    "+CEREG": Module._cmd_reg,
    "+CREG": Module._cmd_reg,
    "+CGREG": Module._cmd_reg,
    "+CGATT": Module._cmd_cgatt,
    "+CVHU": Module._cmd_cvhu,
    "+UDCONF": Module._cmd_udconf,
    "+UEMBPF": Module._cmd_uembpf,
    "+ULWM2M": Module._cmd_ulwm2m,
    "+UPING": Module._cmd_uping,
    "+UDNSRN": Module._cmd_udnsrn,
    "+UAUTHREQ": Module._cmd_uauthreq,
    "+CSCON": Module._cmd_cscon,
    "+CGEREP": Module._cmd_cgerep,
    "+IPR": Module._cmd_accept,
    "+IFC": Module._cmd_accept,
    "+CMER": Module._cmd_accept,
    "+CRC": Module._cmd_accept,
    "+UPSV": Module._cmd_accept,
}

#: Answers to "=?" (test) commands.
_TESTS: dict[str, str] = {
    "+CMEE": "+CMEE: (0-2)",
    "+CFUN": "+CFUN: (0,1,4,15,16),(0-1)",
    "+UMNOPROF": "+UMNOPROF: (0-201)",
    "+CGDCONT": '+CGDCONT: (0-11),"IP",,,(0),(0),(0-3),(0-4)',
    "+CGACT": "+CGACT: (0,1)",
    "+CEREG": "+CEREG: (0-5)",
    "+CREG": "+CREG: (0-2)",
    "+CGREG": "+CGREG: (0-2)",
    "+CVHU": "+CVHU: (0-2)",
    "+UEMBPF": '+UEMBPF: (0,1),"1-65535"',
    "+CSCON": "+CSCON: (0-3)",
    "+UAUTHREQ": "+UAUTHREQ: (0-11),(0-3),,",
}
