"""AT command channel, host (DTE) role, as a sans-IO core.

Bytes from the module go in with `AtClient.receive_data()`, commands go out as the
bytes `AtClient.send()` returns, and everything the module said comes out of
`AtClient.next_event()`: one `ResponseReceived` per command (its final result code,
CONNECT included), `UrcReceived` for every unsolicited line, `CommandTimedOut` once
`handle_timer(now)` passes a command's deadline. Time is an input; nothing here reads
a clock or touches a port.

How a line is classified (ITU-T V.250 §5.7, 3GPP TS 27.007 §9.2):
  * no command pending: every line is unsolicited (`UrcReceived`); a lone
    "NO CARRIER" becomes `CarrierLost` (a `UrcReceived`), because it ends a data call;
  * command pending: its echo (the line equal to the command) is dropped; "RING" and
    any "+NAME: ..." line whose +NAME is not one of the command's response prefixes
    are unsolicited; a final result code ends the command; any other line belongs to
    the response.
  * CONNECT ends the command like a final result code (the event is `ResponseReceived`
    with `final.kind == "connect"`) and switches the core to data mode: lines are no
    longer parsed, and every byte after the CONNECT line is kept for the PPP engine
    (`take_leftover()`) until `resume_command_mode()` (app note §4: "the module
    switches to the PPP mode just after the CONNECT intermediate result code").
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field

#: A line longer than this without CR or LF is garbage; its bytes are discarded.
MAX_LINE_BYTES = 4096

_CR = 0x0D
_LF = 0x0A
_LINE_END = re.compile(rb"[\r\n]")
# Control characters (NUL, XON/XOFF, stray escape bytes...) never belong in a line.
_DROP_CONTROL = {code: None for code in (*range(0x09), *range(0x0B, 0x20), 0x7F)}

# 3GPP TS 27.007 §9.2: +CME ERROR values (the ones a data-only host meets).
CME_ERRORS: dict[int, str] = {
    0: "phone failure",
    1: "no connection to phone",
    2: "phone-adaptor link reserved",
    3: "operation not allowed",
    4: "operation not supported",
    5: "PH-SIM PIN required",
    10: "SIM not inserted",
    11: "SIM PIN required",
    12: "SIM PUK required",
    13: "SIM failure",
    14: "SIM busy",
    15: "SIM wrong",
    16: "incorrect password",
    17: "SIM PIN2 required",
    18: "SIM PUK2 required",
    20: "memory full",
    21: "invalid index",
    22: "not found",
    23: "memory failure",
    24: "text string too long",
    25: "invalid characters in text string",
    26: "dial string too long",
    27: "invalid characters in dial string",
    30: "no network service",
    31: "network timeout",
    32: "network not allowed - emergency calls only",
    50: "incorrect parameters",
    100: "unknown",
    103: "illegal MS",
    106: "illegal ME",
    107: "GPRS services not allowed",
    111: "PLMN not allowed",
    112: "location area not allowed",
    113: "roaming not allowed in this location area",
    132: "service option not supported",
    133: "requested service option not subscribed",
    134: "service option temporarily out of order",
    148: "unspecified GPRS error",
    149: "PDP authentication failure",
    150: "invalid mobile class",
}

# 3GPP TS 27.005 §3.2.5: +CMS ERROR values.
CMS_ERRORS: dict[int, str] = {
    300: "ME failure",
    301: "SMS service of ME reserved",
    302: "operation not allowed",
    303: "operation not supported",
    304: "invalid PDU mode parameter",
    305: "invalid text mode parameter",
    310: "SIM not inserted",
    311: "SIM PIN required",
    313: "SIM failure",
    314: "SIM busy",
    315: "SIM wrong",
    320: "memory failure",
    321: "invalid memory index",
    322: "memory full",
    330: "SMSC address unknown",
    331: "no network service",
    332: "network timeout",
    500: "unknown error",
}

# What to change, for the +CME ERROR values whose cause is on the user's side.
CME_HINTS: dict[int, str] = {
    10: "insert a SIM card",
    11: "unlock the SIM with its PIN or disable the PIN",
    12: "unblock the SIM with its PUK",
    13: "check or replace the SIM card",
    15: "check or replace the SIM card",
    16: "check the SIM PIN in the configuration",
    30: "check the antenna and the network coverage",
    107: "check that the subscription allows packet data",
    111: "check the operator selection and the subscription",
    133: "check the APN against the subscription",
    149: "check the user name and password for this APN",
}

# ITU-T V.250 §5.7.1: basic result codes, verbose text -> (kind, numeric code).
_BASIC_RESULTS: dict[str, tuple[str, int]] = {
    "OK": ("ok", 0),
    "CONNECT": ("connect", 1),
    "NO CARRIER": ("no_carrier", 3),
    "ERROR": ("error", 4),
    "NO DIALTONE": ("no_dialtone", 6),
    "NO DIAL TONE": ("no_dialtone", 6),
    "BUSY": ("busy", 7),
    "NO ANSWER": ("no_answer", 8),
}
_NUMERIC_RESULTS: dict[str, tuple[str, str]] = {
    "0": ("ok", "OK"),
    "1": ("connect", "CONNECT"),
    "3": ("no_carrier", "NO CARRIER"),
    "4": ("error", "ERROR"),
    "6": ("no_dialtone", "NO DIALTONE"),
    "7": ("busy", "BUSY"),
    "8": ("no_answer", "NO ANSWER"),
}
_RING_NUMERIC = "2"
_EXTENDED_ERROR = re.compile(r"\+(CME|CMS) ERROR:\s*(.*)", re.IGNORECASE)
_URC_NAME = re.compile(r"\+[^:\s]*")
_COMMAND_NAME = re.compile(r"\s*(\+[A-Za-z0-9_]+)")
_COMMAND_LABEL = re.compile(r"[^=?]*")


class AtUsageError(RuntimeError):
    """The caller used `AtClient` out of turn (command already pending, data mode, bad command)."""


@dataclass(frozen=True)
class FinalResult:
    """The result code that ended a command.

    `kind` is one of "ok", "error", "cme_error", "cms_error", "no_carrier", "busy",
    "no_answer", "no_dialtone", "connect"; `text` is the whole line as received;
    `code` is the +CME/+CMS error number, or the V.250 numeric code of a basic result
    (OK 0, CONNECT 1, NO CARRIER 3, ERROR 4, NO DIALTONE 6, BUSY 7, NO ANSWER 8); None
    for a verbose +CME/+CMS text that is not in the tables.
    """

    kind: str
    text: str
    code: int | None = None

    @property
    def ok(self) -> bool:
        return self.kind == "ok"


@dataclass(frozen=True)
class ResponseReceived:
    """A command finished: its response lines (echo and URCs removed) and its final result."""

    command: str
    lines: tuple[str, ...]
    final: FinalResult


@dataclass(frozen=True)
class UrcReceived:
    """An unsolicited line; `name` is its "+NAME" prefix (e.g. "+CEREG") or the bare line."""

    line: str
    name: str


@dataclass(frozen=True)
class CarrierLost(UrcReceived):
    """An unsolicited NO CARRIER: the data call (and so the PPP link) is over."""


@dataclass(frozen=True)
class CommandTimedOut:
    """The module did not finish `command` before its deadline; `partial_lines` came so far."""

    command: str
    partial_lines: tuple[str, ...]


@dataclass(frozen=True)
class LineReceived:
    """One cleaned line as received (echo included); only with `AtClient(report_lines=True)`."""

    line: str


AtEvent = ResponseReceived | UrcReceived | CommandTimedOut | LineReceived


def decode_line(raw: bytes) -> str:
    """One line's bytes -> text: UTF-8 if valid else Latin-1, control characters dropped."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return text.translate(_DROP_CONTROL).strip()


def parse_final_result(line: str, *, numeric: bool = False) -> FinalResult | None:
    """The final result code `line` is (CONNECT included), or None when it is not one."""
    upper = line.strip().upper()
    basic = _BASIC_RESULTS.get(upper)
    if basic is not None:
        return FinalResult(basic[0], line, basic[1])
    if upper.startswith("CONNECT "):
        return FinalResult("connect", line, 1)
    extended = _EXTENDED_ERROR.fullmatch(line.strip())
    if extended is not None:
        family, value = extended.group(1).upper(), extended.group(2).strip()
        table = CME_ERRORS if family == "CME" else CMS_ERRORS
        code: int | None
        if value.isdigit():
            code = int(value)
        else:
            code = next((n for n, text in table.items() if text.lower() == value.lower()), None)
        return FinalResult("cme_error" if family == "CME" else "cms_error", line, code)
    if numeric and upper in _NUMERIC_RESULTS:
        kind, _ = _NUMERIC_RESULTS[upper]
        return FinalResult(kind, line, int(upper))
    return None


def connect_text(final: FinalResult) -> str:
    """The text after CONNECT (e.g. the speed "150000000"); "" for a bare CONNECT."""
    upper = final.text.strip().upper()
    return final.text.strip()[len("CONNECT") :].strip() if upper.startswith("CONNECT") else ""


def describe_final(final: FinalResult) -> str:
    """A final result for humans, e.g. "+CME ERROR: 3 (operation not allowed)"."""
    if final.kind in ("cme_error", "cms_error") and final.code is not None:
        table = CME_ERRORS if final.kind == "cme_error" else CMS_ERRORS
        meaning = table.get(final.code)
        if meaning is not None and meaning.lower() not in final.text.lower():
            return f"{final.text} ({meaning})"
    return final.text


def hint_for(final: FinalResult) -> str | None:
    """What the user should change for this final result, when the cause is on their side."""
    if final.kind == "cme_error" and final.code is not None:
        return CME_HINTS.get(final.code)
    return None


def urc_name(line: str) -> str:
    """The name a URC is filed under: its "+NAME" prefix, or the bare line (e.g. "RING")."""
    stripped = line.strip()
    match = _URC_NAME.match(stripped)
    if match is not None:
        return match.group(0).upper()
    return stripped.upper()


def response_prefixes_of(command: str) -> tuple[str, ...]:
    """The "+NAME" prefixes of a command line's answers: "AT+CGDCONT?" -> ("+CGDCONT",)."""
    body = command.strip()[2:] if command.strip().upper().startswith("AT") else command
    names = []
    for part in body.split(";"):
        match = _COMMAND_NAME.match(part)
        if match is not None:
            names.append(match.group(1).upper())
    return tuple(dict.fromkeys(names))


def command_label(command: str) -> str:
    """A command without its arguments ("AT+CGAUTH=1,1,..." -> "AT+CGAUTH"), safe to show."""
    match = _COMMAND_LABEL.match(command.strip())
    return match.group(0) if match is not None and match.group(0) else command.strip()


class LineSplitter:
    """Cuts a byte stream into text lines at CR, LF or CRLF, in any chunking; drops empty lines."""

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._buffer = bytearray()
        self._max_line_bytes = max_line_bytes
        # The last line ended in CR at the end of a chunk: an LF that starts the next
        # chunk belongs to that line end, not to the data.
        self._lf_expected = False
        self._discarding = False
        #: Bytes thrown away because a "line" grew past max_line_bytes.
        self.discarded_bytes = 0

    def receive_data(self, data: bytes) -> None:
        self._buffer += data

    def next_line(self) -> str | None:
        """The next complete non-empty line, or None until more bytes arrive."""
        while True:
            if self._lf_expected and self._buffer:
                if self._buffer[0] == _LF:
                    del self._buffer[0]
                self._lf_expected = False
            end = _LINE_END.search(self._buffer)
            if end is None:
                if len(self._buffer) > self._max_line_bytes:
                    # Drop it, and the rest of this "line" up to the next line end.
                    self.discarded_bytes += len(self._buffer)
                    self._buffer.clear()
                    self._discarding = True
                return None
            position = end.start()
            raw = bytes(self._buffer[:position])
            consumed = position + 1
            if self._buffer[position] == _CR:
                if consumed < len(self._buffer):
                    if self._buffer[consumed] == _LF:
                        consumed += 1
                else:
                    self._lf_expected = True
            del self._buffer[:consumed]
            if self._discarding or len(raw) > self._max_line_bytes:
                self.discarded_bytes += len(raw)
                self._discarding = False
                continue
            line = decode_line(raw)
            if line:
                return line

    def take_remaining(self) -> bytes:
        """Every buffered byte not yet cut into a line (a pending LF after CR is skipped)."""
        remaining = bytes(self._buffer)
        self._buffer.clear()
        return remaining

    @property
    def lf_expected(self) -> bool:
        """True when the last line ended in a CR that may still be followed by its LF."""
        return self._lf_expected


@dataclass
class _PendingCommand:
    command: str
    echo: str
    prefixes: frozenset[str]
    deadline: float
    lines: list[str] = field(default_factory=list)
    echo_seen: bool = False


class AtClient:
    """Host side of an AT channel: one command at a time, URCs kept apart, CONNECT -> data mode."""

    def __init__(
        self,
        *,
        numeric_results: bool = False,
        report_lines: bool = False,
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        # numeric_results: also take the V.250 digits of ATV0 ("0", "4", ...) as final
        # result codes; off by default because a bare digit can be a response line.
        self._numeric = numeric_results
        self._report_lines = report_lines
        self._max_line_bytes = max_line_bytes
        self._splitter = LineSplitter(max_line_bytes)
        self._events: deque[AtEvent] = deque()
        self._pending: _PendingCommand | None = None
        self._data_mode = False
        self._leftover = bytearray()
        self._leftover_lf_expected = False

    # -- state -------------------------------------------------------------------
    @property
    def pending_command(self) -> str | None:
        return self._pending.command if self._pending is not None else None

    @property
    def data_mode(self) -> bool:
        return self._data_mode

    @property
    def discarded_bytes(self) -> int:
        return self._splitter.discarded_bytes

    # -- commands ----------------------------------------------------------------
    def send(
        self,
        command: str,
        *,
        now: float,
        timeout: float,
        response_prefixes: tuple[str, ...] | None = None,
    ) -> bytes:
        """Start `command` (no CR); returns the bytes to write. Its answer ends in one event."""
        if self._data_mode:
            raise AtUsageError(
                f"cannot send {command_label(command)}: the channel is in data mode after CONNECT;"
                " call resume_command_mode() once the call is over"
            )
        if self._pending is not None:
            raise AtUsageError(
                f"cannot send {command_label(command)}: {command_label(self._pending.command)}"
                " is still waiting for its answer"
            )
        text = command.strip()
        if not text[:2].upper() == "AT":
            raise AtUsageError(
                f"{command_label(command)!r} is not an AT command (it must start with AT)"
            )
        if any(ord(ch) < 0x20 or ord(ch) > 0x7E for ch in text):
            raise AtUsageError(
                f"{command_label(command)} contains a control or non-ASCII character;"
                " remove it from the arguments"
            )
        if not timeout > 0:
            raise AtUsageError(
                f"the timeout of {command_label(command)} must be positive, not {timeout}"
            )
        prefixes = response_prefixes_of(text) if response_prefixes is None else response_prefixes
        self._pending = _PendingCommand(
            command=text,
            echo=text.upper(),
            prefixes=frozenset(p.strip().upper() for p in prefixes),
            deadline=now + timeout,
        )
        return text.encode("ascii") + b"\r"

    def send_escape(self, *, now: float, timeout: float, sequence: str = "+++") -> bytes:
        """Start the escape from online data mode; returns the bytes to write (no CR).

        The module answers OK and is then in online command mode. The caller keeps the
        guard silence before and after (app note §9.1.4): timing is not the core's business.
        """
        if self._pending is not None:
            raise AtUsageError(
                f"cannot send the escape sequence: {command_label(self._pending.command)}"
                " is still waiting for its answer"
            )
        if not timeout > 0:
            raise AtUsageError(f"the timeout of the escape sequence must be positive, not {timeout}")
        self._data_mode = False
        self._pending = _PendingCommand(
            command=sequence, echo=sequence, prefixes=frozenset(), deadline=now + timeout
        )
        return sequence.encode("ascii")

    def cancel_command(self) -> None:
        """Forget the pending command (its caller gave up); its late lines become URCs."""
        self._pending = None

    # -- input -------------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the module, in any chunking."""
        if self._data_mode:
            self._keep_for_data_mode(data)
            return
        self._splitter.receive_data(data)
        while not self._data_mode:
            line = self._splitter.next_line()
            if line is None:
                break
            self._handle_line(line)
        if self._data_mode:
            self._leftover_lf_expected = self._splitter.lf_expected
            self._keep_for_data_mode(self._splitter.take_remaining())

    def handle_timer(self, now: float) -> None:
        """Tell the core the time; a pending command past its deadline times out."""
        pending = self._pending
        if pending is not None and now >= pending.deadline:
            self._pending = None
            self._events.append(CommandTimedOut(pending.command, tuple(pending.lines)))

    # -- output ------------------------------------------------------------------
    def next_event(self) -> AtEvent | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        """When `handle_timer` must be called next (the pending command's deadline), or None."""
        return self._pending.deadline if self._pending is not None else None

    # -- data mode ---------------------------------------------------------------
    def take_leftover(self) -> bytes:
        """The bytes received after CONNECT (the first PPP frames), handed over once."""
        leftover = bytes(self._leftover)
        self._leftover.clear()
        return leftover

    def resume_command_mode(self) -> None:
        """Parse lines again (after hang-up); bytes kept for data mode are dropped."""
        self._data_mode = False
        self._leftover.clear()
        self._leftover_lf_expected = False
        self._splitter = LineSplitter(self._max_line_bytes)

    # -- internals ---------------------------------------------------------------
    def _keep_for_data_mode(self, data: bytes) -> None:
        if self._leftover_lf_expected and data:
            if data[:1] == b"\n":
                data = data[1:]
            self._leftover_lf_expected = False
        self._leftover += data

    def _handle_line(self, line: str) -> None:
        if self._report_lines:
            self._events.append(LineReceived(line))
        pending = self._pending
        upper = line.upper()
        if pending is None:
            if upper == "NO CARRIER" or (self._numeric and upper == "3"):
                self._events.append(CarrierLost(line, "NO CARRIER"))
            else:
                self._events.append(UrcReceived(line, urc_name(line)))
            return
        if not pending.echo_seen and upper == pending.echo:
            pending.echo_seen = True
            return
        if upper == "RING" or (self._numeric and upper == _RING_NUMERIC):
            self._events.append(UrcReceived(line, "RING"))
            return
        final = parse_final_result(line, numeric=self._numeric)
        if final is not None:
            self._pending = None
            self._events.append(ResponseReceived(pending.command, tuple(pending.lines), final))
            if final.kind == "connect":
                self._data_mode = True
            return
        if line.startswith("+"):
            name = urc_name(line)
            if name not in pending.prefixes:
                self._events.append(UrcReceived(line, name))
                return
        pending.lines.append(line)
