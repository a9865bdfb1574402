"""The simulated LARA-R6 module: AT interpreter, NVM and RAM state, data calls (sans-IO).

Time is an input: every entry point takes `now`; `get_timer()` says when to call
`handle_timer(now)` next. Bytes from each port go in with `receive_data(port, ...)`,
bytes for each port come out of `data_to_send(port)`, and what the port servers must do
(ports going away on a reboot, coming back, DCD changes) comes out of `next_event()`.

Behaviour follows the app note (UBX-22001854): PDP contexts and XLAT (§2), PPP dial-up,
teardown and port filtering (§4), the "+++" escape (§9.1.4). Where the app note is
silent the choice made is written next to the code.

This file holds the Module's inputs, outputs, timers and command-line execution; the
rest lives by concern: state.py (NVM, RAM, ports), commands/ (one file per AT command
family), packet.py (registration, PDP contexts), datamode.py (calls, "+++"), power.py
(reboot, vanishing), events.py (what the port servers are told).
"""

from __future__ import annotations

import math
import random
from collections import Counter, deque
from collections.abc import Callable

from larappp.sim import datamode, packet, power
from larappp.sim.atcmd import CommandSyntaxError, split_commands
from larappp.sim.commands import dispatch
from larappp.sim.commands.base import Failure, failure_text
from larappp.sim.data import DataSessionFactory, DiscardDataSession
from larappp.sim.events import ModemLinesChanged, ModuleEvent, PortsReopened
from larappp.sim.radio import Radio
from larappp.sim.scenario import Scenario
from larappp.sim.state import DATA, Call, Nvm, PortState, Ram

#: V.250 numeric result codes (ATV0).
NUMERIC_RESULT = {"OK": "0", "CONNECT": "1", "RING": "2", "NO CARRIER": "3", "ERROR": "4"}


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
        #: the one radio its data calls share (the PPP sessions carry packets over it); its
        #: uplink buffer nearly full turns CTS off on the ports in data mode
        self.radio = Radio(scenario.radio)
        #: Called whenever output or an event is queued (the asyncio driver flushes then).
        self.on_output = on_output
        self.nvm = Nvm(mno_profile=scenario.mno_profile)
        self.ram = Ram()
        self.ports = [PortState(i, scenario, now) for i in range(ports)]
        self.state = "off"
        self.counters: Counter[str] = Counter()
        #: (port, command text, final result) of the last commands, for tests and traces.
        self.history: deque[tuple[int, str, str]] = deque(maxlen=256)
        self.rng = random.Random(scenario.seed)
        self._events: deque[ModuleEvent] = deque()
        self.now = now
        self.shutdown_due: float | None = None
        self.shutdown_then = "reboot"
        self.boot_due: float | None = None
        #: Delayed URCs: (when, port, text), kept sorted.
        self.scheduled: list[tuple[float, int, str]] = []
        #: The ports are gone until then (an unplug fault); the module itself runs on.
        self.unplugged_until: float | None = None
        #: URCs held back while a command line runs.
        self._deferred: list[tuple[PortState, str]] | None = None

    # == inputs =====================================================================================
    def power_on(self, now: float) -> None:
        """Boot the module (ports exist from now on)."""
        self.now = now
        power.boot(self, now, announce=False)

    def power_off(self, now: float) -> None:
        """Stop the module for good (the simulator stops): calls end, nothing runs any more."""
        self.now = max(self.now, now)
        for p in self.ports:
            if p.call is not None:
                datamode.end_call(self, p, "power-off", now, result=None, deactivate=False)
            p.out.clear()
        self.state = "off"
        self.shutdown_due = self.boot_due = self.unplugged_until = None
        self.ram.registration_due = None
        self.scheduled.clear()

    def receive_data(self, port: int, data: bytes, now: float) -> None:
        """Bytes the DTE wrote to `port` at `now`."""
        self._advance(now)
        if self.state != "on" or self.unplugged_until is not None:
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
                    self._to_session(p.call, forward, now)
                continue
            cr = p.s_regs[3]
            j = data.find(bytes([cr]), i)
            end = n if j < 0 else j + 1
            segment = data[i:end]
            i = end
            if p.echo:
                self.write(p, segment)
            for byte in segment:
                body = p.assembler.feed_byte(byte, cr=cr, bs=p.s_regs[5])
                if body is not None:
                    self._execute_line(p, body, now)
        self._run_due(now)
        self._check_flow(now)

    def set_dtr(self, port: int, on: bool, now: float) -> None:
        """The DTE's DTR (circuit 108/2) of `port` is now `on`."""
        self._advance(now)
        p = self.ports[port]
        was = p.dtr
        p.dtr = on
        if self.state != "on" or self.unplugged_until is not None or not was or on:
            return
        self.counters["dtr_drops"] += 1
        # App note §4.2: a DTR ON->OFF transition terminates the PPP session. With &D1
        # (default) and &D2 the call ends and the context is deactivated; the port
        # answers NO CARRIER (the choice for the result code: the call is gone) and is
        # back in command mode. &D0 ignores DTR.
        if p.call is not None and p.amp_d != 0:
            datamode.end_call(self, p, "dtr", now, result="NO CARRIER", deactivate=True)

    def handle_timer(self, now: float) -> None:
        """Run everything due at `now` (registration, reboot, URCs, escape, sessions)."""
        self._advance(now)
        self._check_flow(now)

    # == outputs ====================================================================================
    def get_timer(self) -> float | None:
        """When `handle_timer` must run next; None when nothing is pending."""
        times: list[float] = []
        for due in (self.shutdown_due, self.boot_due, self.ram.registration_due, self.unplugged_until):
            if due is not None:
                times.append(due)
        if self.scheduled:
            times.append(self.scheduled[0][0])
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
                if p.call.silent_until is not None and p.call.silent_until != math.inf:
                    times.append(p.call.silent_until)
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
        """The DCE's lines of `port` now: CTS/DSR on while the module runs, DCD during a call
        (&C1) or always (&C0); a `dcd-off` fault holds it off while the call goes on. CTS is
        off in data mode while the radio's uplink buffer is nearly full (flow control)."""
        on = self.state in ("on", "shutting-down") and self.unplugged_until is None
        p = self.ports[port]
        cts = on and not (self.radio.uplink_full and p.call is not None and p.mode == DATA)
        if p.amp_c == 0:
            return ModemLinesChanged(port, cts=cts, dsr=on, dcd=on)
        carrier = p.call is not None and not p.call.dcd_off
        return ModemLinesChanged(port, cts=cts, dsr=on, dcd=on and carrier)

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
        self.now = max(self.now, now)
        self._run_due(now)

    def _run_due(self, now: float) -> None:
        for _ in range(10000):
            if not self._run_one_due(now):
                return
        raise RuntimeError("simulated module timers do not settle")

    def _run_one_due(self, now: float) -> bool:
        if self.shutdown_due is not None and now >= self.shutdown_due:
            self.shutdown_due = None
            power.power_down(self, now)
            return True
        if self.boot_due is not None and now >= self.boot_due:
            self.boot_due = None
            power.boot(self, now, announce=True)
            return True
        if self.state != "on":
            return False
        if self.unplugged_until is not None and now >= self.unplugged_until:
            self.unplugged_until = None
            self.emit(PortsReopened())
            for p in self.ports:
                self.emit(self.modem_lines(p.index))
            return True
        if self.ram.registration_due is not None and now >= self.ram.registration_due:
            self.ram.registration_due = None
            packet.complete_registration(self, now)
            return True
        if self.scheduled and now >= self.scheduled[0][0]:
            _, port, text = self.scheduled.pop(0)
            self.urc(self.ports[port], text)
            return True
        for p in self.ports:
            call = p.call
            if call is None:
                continue
            if call.silent_until is not None and now >= call.silent_until:
                call.silent_until = None
                return True
            if p.mode == DATA:
                t = p.detector.get_timer()
                if t is not None and now >= t:
                    released, escaped = p.detector.handle_timer(now)
                    if released:
                        self._to_session(call, released, now)
                    if escaped:
                        datamode.escape_detected(self, p, now)
                        return True
                    if released or p.detector.get_timer() != t:
                        return True
            t = call.session.get_timer()
            if t is not None and now >= t:
                call.session.handle_timer(now)
                if call.session.get_timer() != t or p.call is not call:
                    return True
        return False

    def schedule_urc(self, when: float, port: PortState, text: str) -> None:
        self.scheduled.append((when, port.index, text))
        self.scheduled.sort(key=lambda item: item[0])

    def _to_session(self, call: Call, data: bytes, now: float) -> None:
        """Data-mode bytes from the DTE for the call's session, unless its peer is silent."""
        if call.silent(now):
            self.counters["bytes_lost_silent"] += len(data)
            return
        call.session.on_data(data)

    def _check_flow(self, now: float) -> None:
        """CTS follows the radio's uplink buffer on the ports carrying a call."""
        if self.radio.check_flow(now):
            for p in self.ports:
                if p.call is not None and p.mode == DATA:
                    self.emit(self.modem_lines(p.index))

    # == internals: output ==========================================================================
    def notify(self) -> None:
        if self.on_output is not None:
            self.on_output()

    def emit(self, event: ModuleEvent) -> None:
        self._events.append(event)
        self.notify()

    def write(self, p: PortState, data: bytes) -> None:
        if self.state not in ("on", "shutting-down") or self.unplugged_until is not None or not data:
            return
        p.out += data
        self.notify()

    def _text(self, p: PortState, text: str) -> bytes:
        cr, lf = chr(p.s_regs[3]), chr(p.s_regs[4])
        if p.verbose:
            return f"{cr}{lf}{text}{cr}{lf}".encode("latin-1", "replace")
        return f"{text}{cr}{lf}".encode("latin-1", "replace")

    def final_bytes(self, p: PortState, final: str) -> bytes:
        if p.quiet:
            return b""
        if not p.verbose and final in NUMERIC_RESULT:
            return f"{NUMERIC_RESULT[final]}{chr(p.s_regs[3])}".encode()
        return self._text(p, final)

    def _reply(self, p: PortState, lines: list[str], final: str) -> None:
        out = bytearray()
        if self.scenario.garbage and self.rng.random() < self.scenario.garbage:
            self.counters["garbage"] += 1
            alphabet = bytes(range(0x80, 0x100)) + b"\x00~#*%"
            out += bytes(self.rng.choice(alphabet) for _ in range(self.rng.randint(1, 8)))
        if lines:
            cr, lf = chr(p.s_regs[3]), chr(p.s_regs[4])
            block = "".join(f"{line}{cr}{lf}" for line in lines)
            out += ((f"{cr}{lf}" if p.verbose else "") + block).encode("latin-1", "replace")
        out += self.final_bytes(p, final)
        self.write(p, bytes(out))
        if self.scenario.urc_noise and p.mode != DATA and self.rng.random() < self.scenario.urc_noise:
            self._noise(p)

    def _noise(self, p: PortState) -> None:
        self.counters["noise_urcs"] += 1
        choice = self.rng.randrange(3)
        if choice == 0:
            text = f"+CEREG: {self.ram.stat}"
        elif choice == 1:
            text = f"+CSCON: {1 if self.ram.rrc_connected else 0}"
        else:
            text = f"+CIEV: 2,{self.rng.randint(1, 5)}"
        self.write(p, self._text(p, text))

    def urc(self, p: PortState, text: str) -> None:
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
        self.write(p, self._text(p, text))

    # == internals: command lines ===================================================================
    def _execute_line(self, p: PortState, body: str, now: float) -> None:
        # URCs raised while a command runs come after its final result code.
        self._deferred = []
        try:
            self._execute_commands(p, body, now)
        finally:
            deferred, self._deferred = self._deferred, None
            for port, text in deferred:
                self.urc(port, text)

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
                final = failure_text(p, Failure(cme=100))
                self.history.append((p.index, cmd.text, final))
                self._reply(p, lines, final)
                return
            try:
                result = dispatch(self, p, cmd, now)
            except Failure as failure:
                final = failure_text(p, failure)
                self.history.append((p.index, cmd.text, final))
                self._reply(p, lines, final)
                if fault == "vanish":
                    power.vanish(self, now)
                return
            lines += result.lines
            last = result.final != "OK" or result.after is not None or fault == "vanish"
            if last or cmd is commands[-1]:
                self.history.append((p.index, cmd.text, result.final))
                self._reply(p, lines, result.final)
                if result.after is not None:
                    result.after()
                if fault == "vanish":
                    power.vanish(self, now)
                return
            self.history.append((p.index, cmd.text, "OK"))
        if not commands:
            self.history.append((p.index, "", "OK"))
            self._reply(p, [], "OK")
