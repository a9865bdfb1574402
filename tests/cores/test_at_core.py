"""The sans-IO AT core, host role: transcripts from the app note, fed whole and byte by byte."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from larappp.proto.at.core import (
    AtClient,
    AtEvent,
    AtUsageError,
    CarrierLost,
    CommandTimedOut,
    FinalResult,
    LineReceived,
    LineSplitter,
    ResponseReceived,
    UrcReceived,
    command_label,
    connect_text,
    describe_final,
    hint_for,
    parse_final_result,
    response_prefixes_of,
    urc_name,
)

FEED_MODES = ("whole", "bytewise")

# app note §4.1.3, literal (the second line is one line on the wire).
CGDCONT_1 = '+CGDCONT: 1,"IP","APN1","166.130.71.189",0,0,0,0'
CGDCONT_2 = (
    '+CGDCONT: 2,"IPV4V6","APN2",'
    '"10.117.32.103 38.0.3.128.178.65.129.209.0.0.0.74.87.68.176.1",0,0,0,0'
)
# app note §2.4.1, literal.
UUPINGS = [
    f'+UUPING: {n},32,"www.google.com","216.58.206.68",115,{rtt}'
    for n, rtt in ((1, 62), (2, 53), (3, 53), (4, 53))
]
# The first PPP frame after CONNECT: an LCP Configure-Request, ACCM-stuffed (RFC 1662).
PPP_BYTES = bytes.fromhex("7eff7d23c0217d217d217d207d34")


def feed(client: AtClient, data: bytes, mode: str) -> None:
    if mode == "whole":
        client.receive_data(data)
    else:
        for i in range(len(data)):
            client.receive_data(data[i : i + 1])


def events(client: AtClient) -> list[AtEvent]:
    out: list[AtEvent] = []
    while (event := client.next_event()) is not None:
        out.append(event)
    return out


def urcs(evs: list[AtEvent]) -> list[str]:
    return [e.line for e in evs if isinstance(e, UrcReceived)]


def responses(evs: list[AtEvent]) -> list[ResponseReceived]:
    return [e for e in evs if isinstance(e, ResponseReceived)]


@dataclass(frozen=True)
class Transcript:
    """One command, the module's bytes, and what the core must make of them."""

    id: str
    command: str
    wire: bytes
    lines: tuple[str, ...]
    kind: str
    code: int | None = None
    urcs: tuple[str, ...] = ()
    prefixes: tuple[str, ...] | None = None


def crlf(*lines: str) -> bytes:
    return b"".join(b"\r\n" + line.encode() + b"\r\n" for line in lines)


TRANSCRIPTS = [
    Transcript(
        "cgdcont-read-echo-on",
        "AT+CGDCONT?",
        b"AT+CGDCONT?\r" + crlf(CGDCONT_1, CGDCONT_2, "OK"),
        (CGDCONT_1, CGDCONT_2),
        "ok",
        0,
    ),
    Transcript(
        "cgdcont-read-echo-off-urc-between-lines",
        "AT+CGDCONT?",
        crlf(CGDCONT_1) + crlf("+CEREG: 5") + crlf(CGDCONT_2) + crlf("+CSCON: 1", "OK"),
        (CGDCONT_1, CGDCONT_2),
        "ok",
        0,
        ("+CEREG: 5", "+CSCON: 1"),
    ),
    Transcript(
        "cops-read",  # app note §2.3.1
        "AT+COPS?",
        b"AT+COPS?\r" + crlf('+COPS: 0,0,"I TIM",7', "OK"),
        ('+COPS: 0,0,"I TIM",7',),
        "ok",
        0,
    ),
    Transcript(
        "uping-ok-then-urcs",  # app note §2.4.1
        'AT+UPING="www.google.com"',
        b'AT+UPING="www.google.com"\r' + crlf("OK", *UUPINGS),
        (),
        "ok",
        0,
        tuple(UUPINGS),
    ),
    Transcript(
        "uuping-before-and-inside-the-answer",
        'AT+UDNSRN=0,"www.google.com"',  # app note §2.4.2
        crlf(UUPINGS[0]) + crlf('+UDNSRN: "216.239.59.147"', UUPINGS[1], "OK", UUPINGS[2]),
        ('+UDNSRN: "216.239.59.147"',),
        "ok",
        0,
        (UUPINGS[0], UUPINGS[1], UUPINGS[2]),
    ),
    Transcript(
        "umnoprof-read",  # app note §2.3.1
        "AT+UMNOPROF?",
        crlf("+UMNOPROF: 100", "OK"),
        ("+UMNOPROF: 100",),
        "ok",
        0,
    ),
    Transcript(
        "uembpf-read",  # app note §4.3.1
        "AT+UEMBPF?",
        b"AT+UEMBPF?\r" + crlf('+UEMBPF: 1,"6000-6200"', "OK"),
        ('+UEMBPF: 1,"6000-6200"',),
        "ok",
        0,
    ),
    Transcript(
        "udconf-set",  # app note §2.3.1
        "AT+UDCONF=19,2,0",
        b"AT+UDCONF=19,2,0\r" + crlf("OK"),
        (),
        "ok",
        0,
    ),
    Transcript(
        "cme-error-numeric",
        'AT+CGDCONT=1,"IP","x"',
        b'AT+CGDCONT=1,"IP","x"\r' + crlf("+CME ERROR: 3"),
        (),
        "cme_error",
        3,
    ),
    Transcript(
        "cme-error-verbose",
        'AT+CGDCONT=1,"IP","x"',
        crlf("+CME ERROR: operation not allowed"),
        (),
        "cme_error",
        3,
    ),
    Transcript(
        "cme-error-verbose-unknown",
        'AT+UEMBPF=1,"6000-6200"',
        crlf("+CME ERROR: some vendor text"),
        (),
        "cme_error",
        None,
    ),
    Transcript("cms-error", "AT+CMGS=5", crlf("+CMS ERROR: 500"), (), "cms_error", 500),
    Transcript("plain-error", "AT+FOO", b"AT+FOO\r" + crlf("ERROR"), (), "error", 4),
    Transcript("dial-no-carrier", "ATD*99***1#", crlf("NO CARRIER"), (), "no_carrier", 3),
    Transcript("dial-busy", "ATD*99***1#", crlf("BUSY"), (), "busy", 7),
    Transcript("dial-no-answer", "ATD*99***1#", crlf("NO ANSWER"), (), "no_answer", 8),
    Transcript("dial-no-dialtone", "ATD*99***1#", crlf("NO DIALTONE"), (), "no_dialtone", 6),
    Transcript(
        "ati-free-text-with-ring",
        "ATI",
        b"ATI\r" + crlf("Manufacturer: u-blox", "RING", "Model: LARA-R6001D", "OK"),
        ("Manufacturer: u-blox", "Model: LARA-R6001D"),
        "ok",
        0,
        ("RING",),
    ),
    Transcript(
        "lone-lf-framing",
        "AT+COPS?",
        b'AT+COPS?\n+COPS: 0,0,"I TIM",7\n\n+CEREG: 1\nOK\n',
        ('+COPS: 0,0,"I TIM",7',),
        "ok",
        0,
        ("+CEREG: 1",),
    ),
    Transcript(
        "lone-cr-framing",
        "AT+COPS?",
        b'AT+COPS?\r+COPS: 0,0,"I TIM",7\r\r+CGEV: ME PDN ACT 1\rOK\r',
        ('+COPS: 0,0,"I TIM",7',),
        "ok",
        0,
        ("+CGEV: ME PDN ACT 1",),
    ),
    Transcript(
        "nul-and-non-utf8-garbage",
        "ATI",
        b"\x00\x00AT\x00I\r\r\n\xff\xfeu-blox\x11\r\n\x00\r\n\x13OK\r\n",
        ("\u00ff\u00feu-blox",),
        "ok",
        0,
    ),
    Transcript(
        "echo-case-and-spaces",
        "at+cops?",
        b"  AT+COPS? \r" + crlf('+COPS: 0,0,"I TIM",7', "ok"),
        ('+COPS: 0,0,"I TIM",7',),
        "ok",
        0,
    ),
    Transcript(
        "own-prefix-urc-name-is-a-response",
        "AT+CEREG?",
        crlf("+CREG: 1", "+CEREG: 2,1", "OK"),
        ("+CEREG: 2,1",),
        "ok",
        0,
        ("+CREG: 1",),
    ),
    Transcript(
        "explicit-prefixes",
        'AT+UDNSRN=0,"www.google.com"',
        crlf('+UDNSRN: "216.239.59.147"', "+UUDNSRN: 1", "OK"),
        ('+UDNSRN: "216.239.59.147"', "+UUDNSRN: 1"),
        "ok",
        0,
        (),
        ("+UDNSRN", "+UUDNSRN"),
    ),
    Transcript(
        "concatenated-commands",
        "AT+CGMI;+CGMR",
        crlf("+CGMI: u-blox", "+CGMR: 03.15", "+CIEV: 2,3", "OK"),
        ("+CGMI: u-blox", "+CGMR: 03.15"),
        "ok",
        0,
        ("+CIEV: 2,3",),
    ),
    Transcript(
        "utf8-operator-name",
        "AT+COPS?",
        crlf('+COPS: 0,0,"Télé",7', "OK"),
        ('+COPS: 0,0,"Télé",7',),
        "ok",
        0,
    ),
]


@pytest.mark.parametrize("mode", FEED_MODES)
@pytest.mark.parametrize("t", TRANSCRIPTS, ids=[t.id for t in TRANSCRIPTS])
def test_transcript(t: Transcript, mode: str) -> None:
    client = AtClient()
    out = client.send(t.command, now=0.0, timeout=5.0, response_prefixes=t.prefixes)
    assert out == t.command.strip().encode() + b"\r"
    feed(client, t.wire, mode)
    evs = events(client)
    [response] = responses(evs)
    assert response.command == t.command.strip()
    assert response.lines == t.lines
    assert response.final.kind == t.kind
    assert response.final.code == t.code
    assert tuple(urcs(evs)) == t.urcs
    assert client.pending_command is None
    assert client.get_timer() is None
    assert not client.data_mode


@pytest.mark.parametrize("mode", FEED_MODES)
def test_urcs_while_idle_keep_their_names(mode: str) -> None:
    client = AtClient()
    feed(client, crlf('+CEREG: 5,"1A2B","01A2B3C4",7', "RING", UUPINGS[0], "+UUPINGER: 8"), mode)
    evs = events(client)
    assert [(e.line, e.name) for e in evs if isinstance(e, UrcReceived)] == [
        ('+CEREG: 5,"1A2B","01A2B3C4",7', "+CEREG"),
        ("RING", "RING"),
        (UUPINGS[0], "+UUPING"),
        ("+UUPINGER: 8", "+UUPINGER"),
    ]


@pytest.mark.parametrize("mode", FEED_MODES)
def test_unsolicited_no_carrier_is_carrier_lost(mode: str) -> None:
    client = AtClient()
    feed(client, crlf("NO CARRIER"), mode)
    [event] = events(client)
    assert isinstance(event, CarrierLost)
    assert isinstance(event, UrcReceived)
    assert event.name == "NO CARRIER"


@pytest.mark.parametrize("mode", FEED_MODES)
def test_several_commands_in_a_row(mode: str) -> None:
    client = AtClient()
    client.send("AT+CFUN=0", now=0.0, timeout=5.0)
    feed(client, b"AT+CFUN=0\r" + crlf("OK"), mode)
    client.send("AT+UMNOPROF?", now=1.0, timeout=5.0)
    feed(client, b"AT+UMNOPROF?\r" + crlf("+UMNOPROF: 100", "OK"), mode)
    rs = responses(events(client))
    assert [(r.command, r.lines, r.final.kind) for r in rs] == [
        ("AT+CFUN=0", (), "ok"),
        ("AT+UMNOPROF?", ("+UMNOPROF: 100",), "ok"),
    ]


# -- CONNECT and data mode ---------------------------------------------------------


@pytest.mark.parametrize("mode", FEED_MODES)
@pytest.mark.parametrize(
    ("line_end", "connect_line"),
    [(b"\r\n", "CONNECT 150000000"), (b"\r", "CONNECT"), (b"\n", "CONNECT 150000000")],
)
def test_connect_enters_data_mode_and_keeps_ppp_bytes(
    mode: str, line_end: bytes, connect_line: str
) -> None:
    client = AtClient()
    client.send("ATD*99***1#", now=0.0, timeout=60.0)
    wire = (
        b"ATD*99***1#\r\r\n+CGEV: ME PDN ACT 1\r\n\r\n"
        + connect_line.encode()
        + line_end
        + PPP_BYTES
        + b"\r\nOK\r\n"  # line-like bytes after CONNECT are data, not lines
    )
    feed(client, wire, mode)
    evs = events(client)
    assert urcs(evs) == ["+CGEV: ME PDN ACT 1"]
    [response] = responses(evs)
    assert response.final == FinalResult("connect", connect_line, 1)
    assert connect_text(response.final) == connect_line[len("CONNECT") :].strip()
    assert client.data_mode
    assert client.take_leftover() == PPP_BYTES + b"\r\nOK\r\n"
    assert client.take_leftover() == b""
    client.receive_data(b"\x7e\x7e")
    assert client.take_leftover() == b"\x7e\x7e"
    assert client.next_event() is None


def test_cr_at_chunk_end_then_lf_is_not_data() -> None:
    client = AtClient()
    client.send("ATD*99***1#", now=0.0, timeout=60.0)
    client.receive_data(b"\r\nCONNECT 150000000\r")
    client.receive_data(b"\n" + PPP_BYTES)
    assert client.take_leftover() == PPP_BYTES


def test_send_in_data_mode_is_refused_until_resumed() -> None:
    client = AtClient()
    client.send("ATD*99***1#", now=0.0, timeout=60.0)
    client.receive_data(crlf("CONNECT") + PPP_BYTES)
    assert responses(events(client))[0].final.kind == "connect"
    with pytest.raises(AtUsageError, match="data mode"):
        client.send("AT", now=1.0, timeout=1.0)
    client.resume_command_mode()
    assert not client.data_mode
    assert client.take_leftover() == b""
    client.receive_data(crlf("NO CARRIER"))
    assert isinstance(client.next_event(), CarrierLost)
    client.send("AT", now=2.0, timeout=1.0)
    client.receive_data(crlf("OK"))
    [response] = responses(events(client))
    assert response.final.kind == "ok"


# -- timers ------------------------------------------------------------------------


def test_timer_follows_the_pending_command() -> None:
    client = AtClient()
    assert client.get_timer() is None
    client.send("AT+COPS?", now=100.0, timeout=10.0)
    assert client.get_timer() == 110.0
    client.receive_data(crlf('+COPS: 0,0,"I TIM",7'))
    client.handle_timer(109.999)
    assert client.next_event() is None
    assert client.pending_command == "AT+COPS?"
    client.handle_timer(110.0)
    assert events(client) == [CommandTimedOut("AT+COPS?", ('+COPS: 0,0,"I TIM",7',))]
    assert client.get_timer() is None
    # A late answer has no command to go to: it is unsolicited, not the next command's.
    client.receive_data(crlf("OK"))
    assert events(client) == [UrcReceived("OK", "OK")]


def test_handle_timer_without_a_command_does_nothing() -> None:
    client = AtClient()
    client.handle_timer(1e9)
    assert client.next_event() is None


# -- usage errors ------------------------------------------------------------------


def test_second_command_while_one_is_pending_is_refused_without_showing_arguments() -> None:
    client = AtClient()
    client.send('AT+CGAUTH=1,1,"user","s3cret"', now=0.0, timeout=5.0)
    with pytest.raises(AtUsageError) as info:
        client.send("AT+CGDCONT?", now=0.0, timeout=5.0)
    assert "AT+CGAUTH is still waiting" in str(info.value)
    assert "s3cret" not in str(info.value)
    client.cancel_command()
    assert client.pending_command is None
    client.send("AT+CGDCONT?", now=0.0, timeout=5.0)


@pytest.mark.parametrize(
    ("command", "timeout", "message"),
    [
        ("+CGDCONT?", 1.0, "not an AT command"),
        ('AT+CGDCONT=1,"IP","a\rATH"', 1.0, "control or non-ASCII"),
        ('AT+CGDCONT=1,"IP","\u00e4"', 1.0, "control or non-ASCII"),
        ("AT", 0.0, "must be positive"),
    ],
)
def test_bad_commands_are_refused(command: str, timeout: float, message: str) -> None:
    client = AtClient()
    with pytest.raises(AtUsageError, match=message):
        client.send(command, now=0.0, timeout=timeout)
    assert client.pending_command is None


# -- numeric result codes (ATV0) -----------------------------------------------------


@pytest.mark.parametrize("mode", FEED_MODES)
@pytest.mark.parametrize(
    ("digit", "kind"), [("0", "ok"), ("4", "error"), ("3", "no_carrier"), ("1", "connect")]
)
def test_numeric_result_codes(mode: str, digit: str, kind: str) -> None:
    client = AtClient(numeric_results=True)
    client.send("ATD*99***1#", now=0.0, timeout=5.0)
    feed(client, b"ATD*99***1#\r2\r" + digit.encode() + b"\r", mode)
    evs = events(client)
    assert urcs(evs) == ["2"]  # RING
    [response] = responses(evs)
    assert (response.final.kind, response.final.code) == (kind, int(digit))


def test_digits_are_response_lines_unless_numeric_mode() -> None:
    client = AtClient()
    client.send("ATS0?", now=0.0, timeout=5.0)
    client.receive_data(crlf("0", "OK"))
    [response] = responses(events(client))
    assert response.lines == ("0",)


# -- lines ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", FEED_MODES)
def test_report_lines_shows_every_line_in_wire_order(mode: str) -> None:
    client = AtClient(report_lines=True)
    client.send("AT+COPS?", now=0.0, timeout=5.0)
    feed(client, b"AT+COPS?\r" + crlf("+CEREG: 1", '+COPS: 0,0,"I TIM",7', "OK"), mode)
    evs = events(client)
    assert [e.line for e in evs if isinstance(e, LineReceived)] == [
        "AT+COPS?",
        "+CEREG: 1",
        '+COPS: 0,0,"I TIM",7',
        "OK",
    ]
    assert isinstance(evs[-1], ResponseReceived)


@pytest.mark.parametrize("mode", FEED_MODES)
def test_overlong_garbage_is_discarded(mode: str) -> None:
    client = AtClient(max_line_bytes=64)
    client.send("AT", now=0.0, timeout=5.0)
    feed(client, b"\xaa" * 500 + b"\r\nOK\r\n", mode)
    assert client.discarded_bytes > 0
    [response] = responses(events(client))
    assert response.final.kind == "ok"
    assert response.lines == ()


@pytest.mark.parametrize("mode", FEED_MODES)
def test_line_splitter(mode: str) -> None:
    splitter = LineSplitter()
    lines: list[str] = []

    def drain() -> None:
        while (line := splitter.next_line()) is not None:
            lines.append(line)

    data = b"a\r\nb\rc\n\r\n\n\rd\x00e\r\n\xe9t\xe9\r\nf"
    if mode == "whole":
        splitter.receive_data(data)
        drain()
    else:
        for i in range(len(data)):
            splitter.receive_data(data[i : i + 1])
            drain()
    assert lines == ["a", "b", "c", "de", "\u00e9t\u00e9"]
    assert splitter.take_remaining() == b"f"


# -- pure helpers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("OK", FinalResult("ok", "OK", 0)),
        ("ERROR", FinalResult("error", "ERROR", 4)),
        ("+CME ERROR: 3", FinalResult("cme_error", "+CME ERROR: 3", 3)),
        (
            "+CME ERROR: SIM not inserted",
            FinalResult("cme_error", "+CME ERROR: SIM not inserted", 10),
        ),
        ("+CMS ERROR: 500", FinalResult("cms_error", "+CMS ERROR: 500", 500)),
        ("NO CARRIER", FinalResult("no_carrier", "NO CARRIER", 3)),
        ("CONNECT 150000000", FinalResult("connect", "CONNECT 150000000", 1)),
        ("CONNECTED", None),
        ("+CGDCONT: 1", None),
        ("0", None),
        ("OKAY", None),
    ],
)
def test_parse_final_result(line: str, expected: FinalResult | None) -> None:
    assert parse_final_result(line) == expected


def test_describe_and_hint() -> None:
    assert describe_final(FinalResult("cme_error", "+CME ERROR: 3", 3)) == (
        "+CME ERROR: 3 (operation not allowed)"
    )
    verbose = FinalResult("cme_error", "+CME ERROR: operation not allowed", 3)
    assert describe_final(verbose) == "+CME ERROR: operation not allowed"
    assert describe_final(FinalResult("cms_error", "+CMS ERROR: 500", 500)) == (
        "+CMS ERROR: 500 (unknown error)"
    )
    assert hint_for(FinalResult("cme_error", "+CME ERROR: 10", 10)) == "insert a SIM card"
    assert hint_for(FinalResult("error", "ERROR", 4)) is None


@pytest.mark.parametrize(
    ("command", "prefixes"),
    [
        ("AT+CGDCONT?", ("+CGDCONT",)),
        ("AT+CGDCONT=?", ("+CGDCONT",)),
        ('at+cgdcont=1,"IP","apn"', ("+CGDCONT",)),
        ("AT+CGMI;+CGMR", ("+CGMI", "+CGMR")),
        ("ATD*99***1#", ()),
        ("ATI", ()),
        ("AT&V", ()),
    ],
)
def test_response_prefixes_of(command: str, prefixes: tuple[str, ...]) -> None:
    assert response_prefixes_of(command) == prefixes


@pytest.mark.parametrize(
    ("line", "name"),
    [
        ("+CEREG: 1", "+CEREG"),
        ("+UUPSDD: 0", "+UUPSDD"),
        ("+cgev: ME PDN ACT 1", "+CGEV"),
        ("RING", "RING"),
        ("+", "+"),
    ],
)
def test_urc_name(line: str, name: str) -> None:
    assert urc_name(line) == name


def test_command_label_hides_arguments() -> None:
    assert command_label('AT+CGAUTH=1,1,"u","p"') == "AT+CGAUTH"
    assert command_label("AT+CGDCONT?") == "AT+CGDCONT"
    assert command_label("ATD*99***1#") == "ATD*99***1#"


# -- properties --------------------------------------------------------------------

URC_POOL = [
    '+CEREG: 5,"1A2B","01A2B3C4",7',
    "+CREG: 1",
    "+CGREG: 0",
    "+CGEV: ME PDN ACT 1",
    *UUPINGS,
    "+UUPINGER: 8",
    "+CSCON: 1",
    "+UUSORD: 0,32",
    "+UUSOCL: 0",
    "+CIEV: 2,3",
    '+UUDNSRN: 0,"216.239.59.147"',
    "RING",
]
COMMANDS = {
    "AT+CGDCONT?": [CGDCONT_1, CGDCONT_2],
    "AT+COPS?": ['+COPS: 0,0,"I TIM",7'],
    'AT+UDNSRN=0,"www.google.com"': ['+UDNSRN: "216.239.59.147"'],
    "ATI": ["Manufacturer: u-blox", "LARA-R6001D"],
    'AT+CGDCONT=1,"IP","x"': [],
}
FINALS = ["OK", "ERROR", "+CME ERROR: 3", "+CME ERROR: operation not allowed", "+CMS ERROR: 500"]
FREE_TEXT = (
    st.text(
        alphabet='abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,."-:=\u00e9',
        min_size=1,
        max_size=30,
    )
    .map(str.strip)
    .filter(lambda s: bool(s) and parse_final_result(s) is None and s.upper() not in ("RING",))
)


@st.composite
def transcripts(draw: st.DrawFn) -> tuple[str, bytes, list[str], list[str], str]:
    command = draw(st.sampled_from(sorted(COMMANDS)))
    response = list(COMMANDS[command])
    if command == "ATI":
        response += draw(st.lists(FREE_TEXT.filter(lambda s: s.upper() != "ATI"), max_size=3))
    final = draw(st.sampled_from(FINALS))
    wire_lines = ([command] if draw(st.booleans()) else []) + response + [final]
    urc_lines = draw(st.lists(st.sampled_from(URC_POOL), max_size=6))
    # Each URC goes between two whole lines (a module never cuts a line for a URC),
    # also before the echo and after the final result.
    merged = list(wire_lines)
    for urc in urc_lines:
        merged.insert(draw(st.integers(0, len(merged))), urc)
    # URCs keep their relative order whatever the insertion points were.
    merged_urcs = [line for line in merged if line in URC_POOL]
    end = draw(st.sampled_from([b"\r\n", b"\n", b"\r"]))
    wire = b""
    for line in merged:
        wire += draw(st.sampled_from([b"", b"\r\n", end])) + line.encode() + end
    return command, wire, response, merged_urcs, final


@settings(max_examples=300, deadline=None)
@given(transcripts(), st.data())
def test_urcs_are_never_lost_and_the_response_stays_intact(
    transcript: tuple[str, bytes, list[str], list[str], str], data: st.DataObject
) -> None:
    command, wire, response, expected_urcs, final = transcript
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=12)))
    client = AtClient()
    client.send(command, now=0.0, timeout=5.0)
    start = 0
    for cut in [*cuts, len(wire)]:
        client.receive_data(wire[start:cut])
        start = cut
    evs = events(client)
    assert urcs(evs) == expected_urcs
    [answer] = responses(evs)
    assert list(answer.lines) == response
    assert answer.final.text == final


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=40),
            st.sampled_from(
                [b"\r\nOK\r\n", b"\r\nCONNECT 1\r\n", b"\r\nNO CARRIER\r\n", b"\x00\xff\r", b"+CME"]
            ),
            st.just(b"SEND"),
            st.just(b"TICK"),
            st.just(b"RESUME"),
        ),
        max_size=30,
    ),
    st.booleans(),
)
def test_random_input_never_crashes_and_answers_each_command_once(
    chunks: list[bytes], numeric: bool
) -> None:
    client = AtClient(numeric_results=numeric, max_line_bytes=128)
    now = 0.0
    sent = 0
    for chunk in chunks:
        if chunk == b"SEND":
            if client.pending_command is None and not client.data_mode:
                client.send("AT+CGDCONT?", now=now, timeout=1.0)
                sent += 1
        elif chunk == b"TICK":
            now += 0.6
            client.handle_timer(now)
        elif chunk == b"RESUME":
            client.resume_command_mode()
        else:
            client.receive_data(chunk)
        timer = client.get_timer()
        assert timer is None or timer > now
    evs = events(client)
    finished = [e for e in evs if isinstance(e, ResponseReceived | CommandTimedOut)]
    outstanding = 1 if client.pending_command is not None else 0
    assert len(finished) + outstanding == sent
    for event in evs:
        if isinstance(event, UrcReceived):
            assert event.line and event.line == event.line.strip()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(URC_POOL), max_size=4),
    st.booleans(),
    st.sampled_from([b"\r\n", b"\n", b"\r"]),
    st.binary(min_size=0, max_size=64),
    st.data(),
)
def test_connect_hands_over_exactly_the_bytes_after_it(
    urc_lines: list[str], echo: bool, end: bytes, ppp_tail: bytes, data: st.DataObject
) -> None:
    payload = PPP_BYTES + ppp_tail
    wire = b"ATD*99***1#\r" if echo else b""
    for urc in urc_lines:
        wire += b"\r\n" + urc.encode() + b"\r\n"
    wire += b"\r\nCONNECT 150000000" + end + payload
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=8)))
    client = AtClient()
    client.send("ATD*99***1#", now=0.0, timeout=60.0)
    start = 0
    for cut in [*cuts, len(wire)]:
        client.receive_data(wire[start:cut])
        start = cut
    evs = events(client)
    assert urcs(evs) == urc_lines
    [answer] = responses(evs)
    assert answer.final.kind == "connect"
    assert client.take_leftover() == payload
