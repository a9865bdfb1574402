"""Fuzz targets for larappp's parsers, shared by `scripts/fuzz.py` (atheris) and the test suite.

A target takes one byte string and drives one parser with it. The first bytes choose
the mode (options, chunking, which parser, a valid envelope around the rest) so that a
byte-level fuzzer also reaches code behind length fields and checksums. A target may
raise only the exception types its parser documents (`FuzzTarget.allowed`); anything
else, a failed invariant included, is a crash.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Any, get_args

from larappp import config
from larappp.errors import ConfigError, ModemError
from larappp.lara_r6 import parsers
from larappp.proto import hdlc, ip
from larappp.proto.at import core as at
from larappp.proto.ipv6 import ndp
from larappp.proto.ppp import fsm
from larappp.proto.ppp.ipcp import Ipcp, IpcpConfig
from larappp.proto.ppp.ipv6cp import Ipv6cp, Ipv6cpConfig
from larappp.proto.ppp.lcp import Lcp, LcpConfig
from larappp.proto.ppp.options import parse_options


class Draw:
    """Reads structure out of fuzz bytes; past the end every draw is zero or empty."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        self.pos += 1
        return self.data[self.pos - 1]

    def number(self, size: int) -> int:
        return int.from_bytes(self.take(size).ljust(size, b"\0"), "big")

    def pick(self, choices: tuple[Any, ...]) -> Any:
        return choices[self.byte() % len(choices)]

    def take(self, size: int) -> bytes:
        chunk = self.data[self.pos : self.pos + size]
        self.pos += len(chunk)
        return chunk

    def chunk(self) -> bytes:
        """A length byte, then that many bytes."""
        return self.take(self.byte())

    def rest(self) -> bytes:
        return self.take(len(self.data))

    @property
    def exhausted(self) -> bool:
        return self.pos >= len(self.data)


@dataclass(frozen=True)
class FuzzTarget:
    """One parser under fuzzing and the exceptions its contract allows."""

    name: str
    run: Callable[[bytes], None]
    allowed: tuple[type[BaseException], ...] = ()
    #: seed inputs a fuzzer starts from (a valid message in this target's input format)
    seeds: tuple[bytes, ...] = ()

    def check(self, data: bytes) -> None:
        """Run one input; exceptions the contract allows are swallowed."""
        try:
            self.run(data)
        except self.allowed:
            pass


# -- AT line splitter and result codes (larappp.proto.at) ------------------------------------

_AT_COMMANDS = ("AT", "ATE0", "AT+CGDCONT?", "AT+COPS?", "ATD*99***1#", "AT+CEREG?", "AT+UEMBPF?")


def fuzz_at(data: bytes) -> None:
    draw = Draw(data)
    flags = draw.byte()
    client = at.AtClient(
        numeric_results=bool(flags & 1),
        report_lines=bool(flags & 2),
        max_line_bytes=16 + draw.number(2) % 2048,
    )
    now = 0.0
    while not draw.exhausted:
        op = draw.byte() % 8
        if op == 0 and client.pending_command is None and not client.data_mode:
            client.send(draw.pick(_AT_COMMANDS), now=now, timeout=1.0)
        elif op == 1 and client.pending_command is None:
            client.send_escape(now=now, timeout=1.0)
        elif op == 2:
            now += draw.byte() / 64
            client.handle_timer(now)
        elif op == 3:
            client.take_leftover()
            client.resume_command_mode()
        elif op == 4:
            client.cancel_command()
        else:
            chunk = draw.chunk()
            client.receive_data(chunk)
            for line in chunk.split(b"\r"):
                at.parse_final_result(line.decode("latin-1"), numeric=bool(flags & 1))
        while (event := client.next_event()) is not None:
            assert isinstance(event, get_args(at.AtEvent)), event
        timer = client.get_timer()
        assert timer is None or timer >= 0


# -- HDLC deframer (larappp.proto.hdlc) -------------------------------------------------------


def fuzz_hdlc(data: bytes) -> None:
    draw = Draw(data)
    accm = draw.number(4)
    max_frame_length = hdlc.MIN_FRAME_LENGTH + draw.number(2) % 4096
    chunk_size = 1 + draw.byte()
    decoder = hdlc.HdlcDecoder(accm, max_frame_length)
    wire = draw.rest()
    frames: list[bytes] = []
    for offset in range(0, len(wire), chunk_size):
        frames.extend(decoder.receive_data(wire[offset : offset + chunk_size]))
    assert decoder.frames == len(frames)
    for frame in frames:
        assert len(frame) <= max_frame_length - 2
    # every frame found survives a round trip through the encoder
    again = hdlc.HdlcDecoder(hdlc.DEFAULT_ACCM, max_frame_length)
    assert again.receive_data(hdlc.HdlcEncoder().encode_many(frames)) == frames


# -- LCP, IPCP and IPV6CP: option tables on the RFC 1661 automaton ------------------------------


class _Owner:
    """The link side a control protocol talks to: it keeps what is sent and signalled."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send_control(self, protocol: int, packet: bytes) -> None:
        assert fsm.parse_control_packet(packet) is not None, packet
        self.sent.append(packet)

    def layer_signal(self, source: Any, signal: fsm.LayerSignal, now: float) -> None:
        pass

    def protocol_rejected(self, protocol: int, now: float) -> None:
        pass

    def echo_timed_out(self, unanswered: int, now: float) -> None:
        pass


def _control_protocols(owner: _Owner, flags: int) -> tuple[fsm.ControlProtocol[Any], ...]:
    rng = random.Random(flags)
    module = bool(flags & 1)
    lcp = Lcp(
        owner,
        LcpConfig(
            mru=1500 if flags & 2 else 1280,
            accm=0xFFFFFFFF if flags & 4 else 0,
            authenticate_peer=("chap", "pap") if module else (),
        ),
        rng,
    )
    ipcp = Ipcp(
        owner,
        IpcpConfig(
            local_address=IPv4Address("10.64.64.1") if module else None,
            peer_address=IPv4Address("10.64.64.2") if module else None,
            dns_servers=(IPv4Address("10.64.0.53"),) if module else (),
            request_dns=not module,
        ),
    )
    ipv6cp = Ipv6cp(owner, Ipv6cpConfig(), rng)
    return lcp, ipcp, ipv6cp


def fuzz_ppp_options(data: bytes) -> None:
    draw = Draw(data)
    flags = draw.byte()
    owner = _Owner()
    protocols = _control_protocols(owner, flags)
    now = 0.0
    for protocol in protocols:
        protocol.up(now)
        protocol.open(now)
    while not draw.exhausted:
        protocol = draw.pick(protocols)
        op = draw.byte() % 8
        options = draw.chunk()
        table = protocol.options
        if op == 0:
            answer = table.judge_request(options, bool(draw.byte() & 1))
            if answer is not None:
                assert parse_options(answer.data) is not None, answer
                if answer.code == 2:
                    table.commit_peer(answer.values)
        elif op == 1:
            table.receive_nak(options, bool(draw.byte() & 1))
        elif op == 2:
            table.receive_reject(options)
        elif op == 3:
            table.receive_ack(options)
        elif op == 4:
            now += draw.byte() / 16
            protocol.handle_timer(now)
        else:
            # a whole packet: code, identifier, then the options as its data
            packet = fsm.control_packet(draw.byte() % 16, draw.byte(), options)
            if op == 5:
                packet = packet[: draw.byte()]
            protocol.receive_packet(packet, now)
        for field in parse_options(table.build_request()) or ():
            assert len(field) == 2
    for protocol in protocols:
        protocol.close(now, "fuzz")
        protocol.down(now)


# -- RA/RS parsers (larappp.proto.ipv6.ndp) -------------------------------------------------

_LINK_LOCAL = IPv6Address("fe80::1")
_ALL_NODES = IPv6Address("ff02::1")
_SOURCES = (_LINK_LOCAL, IPv6Address("::"), IPv6Address("2001:db8::1"))


def fuzz_ndp(data: bytes) -> None:
    draw = Draw(data)
    mode = draw.byte()
    if mode & 1:
        packet = draw.rest()
    else:
        # a valid envelope (checksum, hop limit 255) around fuzzed fixed fields and options
        icmp_type = draw.pick((ndp.ICMPV6_ROUTER_ADVERTISEMENT, ndp.ICMPV6_ROUTER_SOLICITATION))
        source = draw.pick(_SOURCES)
        body = draw.rest()
        packet = ip.build_icmpv6(source, _ALL_NODES, icmp_type, 0, body[:65000], hop_limit=255)
    ra = ndp.parse_router_advertisement(packet)
    rs = ndp.parse_router_solicitation(packet)
    assert ra is None or rs is None
    for decode in (ndp.decode_router_advertisement, ndp.decode_router_solicitation):
        try:
            decode(packet)
        except ip.MalformedPacket:
            pass
    if ra is not None:
        for info in ra.prefixes:
            assert info.prefix.prefixlen <= 128
        for servers in ra.dns:
            assert servers.servers


# -- IP, ICMP and UDP parsers (larappp.proto.ip) -----------------------------------------------


def _parse_everything(packet: bytes) -> None:
    for parse in (
        ip.parse_ipv4,
        ip.parse_ipv6,
        ip.parse_icmpv4,
        ip.parse_icmpv6,
        ip.parse_udp,
        ip.echo_reply,
        ip.packet_family,
        ip.transport_ports,
        ip.dest_port,
    ):
        parse(packet)
    for decode in (ip.decode_ipv4, ip.decode_ipv6, ip.decode_icmpv6):
        try:
            decode(packet)
        except ip.MalformedPacket:
            pass
    reply = ip.echo_reply(packet)
    if reply is not None:
        assert ip.packet_family(reply) == ip.packet_family(packet)


def fuzz_ip(data: bytes) -> None:
    draw = Draw(data)
    mode = draw.byte()
    protocol = draw.pick((ip.PROTO_UDP, ip.PROTO_TCP, ip.PROTO_ICMP, ip.PROTO_ICMPV6, draw.byte()))
    payload = draw.rest()[:65000]
    if mode % 3 == 0:
        packet = payload
    elif mode % 3 == 1:
        packet = ip.build_ipv4("10.0.0.1", "10.0.0.2", protocol, payload)
        if mode & 4 and len(packet) > 20:
            packet = packet[: 20 + packet[20] % (len(packet) - 19)]
    else:
        packet = ip.build_ipv6("2001:db8::1", "2001:db8::2", protocol, payload)
    _parse_everything(packet)
    _parse_everything(bytearray(packet))


# -- LARA-R6 responses and URCs (larappp.lara_r6.parsers) -----------------------------------


def _lines_parser(parse: Callable[[parsers.Lines], Any]) -> Callable[[list[str]], Any]:
    return parse


def _line_parser(parse: Callable[[str], Any]) -> Callable[[list[str]], Any]:
    return lambda lines: [parse(line) for line in lines]


def _merged(lines: list[str]) -> Any:
    return parsers.merge_context_params(parsers.parse_cgcontrdp(lines))


_LARA_PARSERS: tuple[tuple[str, Callable[[list[str]], Any]], ...] = (
    ("+CGDCONT", _lines_parser(parsers.parse_cgdcont)),
    ("+CGCONTRDP", _lines_parser(parsers.parse_cgcontrdp)),
    ("+CGCONTRDP", _merged),
    ("+COPS", _lines_parser(parsers.parse_cops)),
    ("+UMNOPROF", _lines_parser(parsers.parse_umnoprof)),
    ("+UEMBPF", _lines_parser(parsers.parse_uembpf)),
    ("+UDCONF", _lines_parser(parsers.parse_udconf)),
    ("+UDCONF", lambda lines: parsers.parse_udconf(lines, op=66)),
    ("+CEREG", _line_parser(parsers.parse_cereg)),
    ("+CGEV", _line_parser(parsers.parse_cgev)),
    ("", _line_parser(parsers.parse_dotted_address)),
    ("", _line_parser(parsers.parse_pdp_address)),
)


def fuzz_lara_r6(data: bytes) -> None:
    draw = Draw(data)
    mode = draw.byte()
    prefix, parse = draw.pick(_LARA_PARSERS)
    text = draw.rest().decode("utf-8" if mode & 1 else "latin-1", "replace")
    if mode & 4:
        # a line as long as the AT layer passes on (4096 bytes) may hold one very long number
        text = text.replace("~", "9" * 4000, 1)
    lines = text.split("\n")
    if mode & 2 and prefix:
        lines = [f"{prefix}: {line}" for line in lines]
    parse(lines)
    for line in lines:
        try:
            parsers.split_fields(line)
        except ValueError:
            pass


# -- the config loader (larappp.config) --------------------------------------------------------

_CONFIG_KEYS = {
    "modem": (
        "port",
        "baud",
        "rtscts",
        "flow_control",
        "mno_profile",
        "embpf",
        "fix_host_ports",
        "xlat",
        "default_cid",
        "default_ip_type",
        "disable_lwm2m",
        "command_timeout",
        "registration_timeout",
        "reboot_timeout",
        "state_dir",
        "runtime_dir",
        "unknown",
    ),
    "session": (
        "cid",
        "apn",
        "pdp_type",
        "auth",
        "user",
        "password",
        "teardown",
        "backend",
        "port",
        "ifname",
        "mtu",
        "default_route",
        "metric",
        "dns",
        "unknown",
    ),
    "sim": (
        "operator",
        "grant",
        "registration_delay",
        "reboot_time",
        "echo",
        "urc_noise",
        "network",
        "unknown",
    ),
}
_CONFIG_WORDS = (
    "sim",
    "/dev/ttyACM0",
    "rfc2217://127.0.0.1:2217",
    "x",
    "",
    "IP",
    "IPV6",
    "IPV4V6",
    "ipv4",
    "pap",
    "chap",
    "none",
    "lcp",
    "dtr",
    "auto",
    "off",
    "pppd",
    "builtin",
    "ppp0",
    "bad name",
    "1024-65535",
    "61000-65000",
    "0-0",
    "65535-1",
    "10.0.0.1",
    "internet",
    "rtscts",
    "europe",
)
_CONFIG_NUMBERS = (
    "0",
    "1",
    "-1",
    "8",
    "9",
    "255",
    "256",
    "576",
    "1500",
    "115200",
    "3",
    "1e400",
    "-1e400",
    "nan",
    "inf",
    "-inf",
    "0.5",
    "99999999999999999999",
    "-9223372036854775808",
    "1e-400",
    "-" + "9" * 400,  # an integer no float holds
    "1" + "0" * 4400,  # past Python's 4300-digit limit for int()
)


def _toml_value(draw: Draw, depth: int = 0) -> str:
    kind = draw.byte() % 7
    if kind == 0:
        return f'"{draw.pick(_CONFIG_WORDS)}"'
    if kind == 1:
        return draw.pick(_CONFIG_NUMBERS)
    if kind == 2:
        return draw.pick(("true", "false"))
    if kind == 3:
        return str(draw.number(2) - 0x8000)
    if kind == 4 and depth < 2:
        return "[" + ", ".join(_toml_value(draw, depth + 1) for _ in range(draw.byte() % 3)) + "]"
    if kind == 5 and depth < 2:
        return "{ a = " + _toml_value(draw, depth + 1) + " }"
    return repr(draw.chunk().decode("latin-1")).replace("\\x", "\\u00")


def _toml_document(draw: Draw) -> str:
    lines = []
    while not draw.exhausted:
        section = draw.pick(("modem", "session", "session", "sim", "other"))
        lines.append(f"[[{section}]]" if section == "session" else f"[{section}]")
        keys = _CONFIG_KEYS.get(section, ("key",))
        if section == "session" and draw.byte() & 1:
            lines += [f"cid = {1 + draw.byte() % 10}", f'apn = "{draw.pick(_CONFIG_WORDS)}"']
        for _ in range(draw.byte() % 6):
            lines.append(f"{draw.pick(keys)} = {_toml_value(draw)}")
    return "\n".join(lines)


def fuzz_config(data: bytes) -> None:
    draw = Draw(data)
    if draw.byte() & 1:
        text = draw.rest().decode("utf-8", "replace")
    else:
        text = _toml_document(draw)
    loaded = config.parse_config(text, source="fuzz.toml")
    assert loaded.sessions


_AT_SEED = b'\x00\x00\x40\x00\x00\x07\x20AT+CGDCONT?\r\r\n+CGDCONT: 1,"IP","internet"\r\n\r\nOK\r\n'
_HDLC_SEED = b"\xff\xff\xff\xff\x05\xdc\x10" + hdlc.HdlcEncoder().encode(
    b"\xff\x03\xc0\x21\x01\x01\x00\x04"
)
_CONFIG_SEED = b'\x01[modem]\nport = "sim"\n[[session]]\ncid = 1\napn = "internet"\nauth = "pap"\n'

TARGETS: tuple[FuzzTarget, ...] = (
    FuzzTarget("at", fuzz_at, seeds=(_AT_SEED,)),
    FuzzTarget("hdlc", fuzz_hdlc, seeds=(_HDLC_SEED,)),
    FuzzTarget(
        "ppp_options", fuzz_ppp_options, seeds=(b"\x00\x00\x00\x06\x01\x04\x05\xdc\x07\x02",)
    ),
    FuzzTarget(
        "ndp",
        fuzz_ndp,
        seeds=(b"\x00\x00\x00\x40\x00\x07\x08" + bytes(8) + b"\x05\x01\x00\x00\x00\x00\x05\xdc",),
    ),
    FuzzTarget("ip", fuzz_ip, seeds=(b"\x01\x00\x00\x35\x00\x35\x00\x08\x00\x00",)),
    FuzzTarget(
        "lara_r6",
        fuzz_lara_r6,
        (ModemError,),
        seeds=(b'\x02\x00 1,"IP","internet","10.0.0.1",0,0',),
    ),
    FuzzTarget("config", fuzz_config, (ConfigError,), seeds=(_CONFIG_SEED,)),
)
TARGET_BY_NAME = {target.name: target for target in TARGETS}
