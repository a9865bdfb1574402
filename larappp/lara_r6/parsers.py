"""Typed parsers for the LARA-R6 responses and URCs larappp reads.

Each parser takes the response lines as the AT layer delivers them (text without CR LF;
a single string is one line), ignores lines of other commands (echo, OK, blank), and
tolerates spaces around fields. A field that should hold an address but cannot be read
as one (the app note itself prints "10.40.50.500") is reported as None, never guessed.
A line whose structure is wrong raises ModemError.

Standard library only; no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from larappp.errors import ModemError, ValidationError
from larappp.lara_r6.ports import PortRange

__all__ = [
    "REGISTRATION_STAT_TEXT",
    "AtField",
    "CgevEvent",
    "ContextParams",
    "IPAddress",
    "Lines",
    "MergedContextParams",
    "Operator",
    "PdpContext",
    "Registration",
    "merge_context_params",
    "parse_cereg",
    "parse_cgcontrdp",
    "parse_cgdcont",
    "parse_cgev",
    "parse_cops",
    "parse_dotted_address",
    "parse_pdp_address",
    "parse_udconf",
    "parse_uembpf",
    "parse_umnoprof",
    "registration_stat_text",
    "split_fields",
]

Lines = str | Iterable[str]
IPAddress = IPv4Address | IPv6Address

# 3GPP TS 27.007 §10.1.22 <stat> of +CEREG.
REGISTRATION_STAT_TEXT: dict[int, str] = {
    0: "not registered, not searching",
    1: "registered, home network",
    2: "not registered, searching",
    3: "registration denied",
    4: "unknown (e.g. out of coverage)",
    5: "registered, roaming",
    6: "registered for SMS only, home network",
    7: "registered for SMS only, roaming",
    8: "attached for emergency bearer services only",
    9: "registered for CSFB not preferred, home network",
    10: "registered for CSFB not preferred, roaming",
}


def registration_stat_text(stat: int) -> str:
    return REGISTRATION_STAT_TEXT.get(stat, f"unknown registration state {stat}")


# -- low level: lines, fields, addresses -----------------------------------------------------


def _iter_lines(lines: Lines) -> Iterator[str]:
    if isinstance(lines, str):
        yield lines
    else:
        yield from lines


def _payload(line: str, prefix: str) -> str | None:
    """The text after "<prefix>:" when `line` is that response, else None."""
    stripped = line.strip()
    head, colon, rest = stripped.partition(":")
    if not colon or head.strip().upper() != prefix.upper():
        return None
    return rest.strip()


def _payloads(lines: Lines, prefix: str) -> Iterator[tuple[str, str]]:
    for line in _iter_lines(lines):
        payload = _payload(line, prefix)
        if payload is not None:
            yield line, payload


def _first_payload(lines: Lines, prefix: str, command: str) -> tuple[str, str]:
    for found in _payloads(lines, prefix):
        return found
    raise ModemError(
        f"the answer to {command} holds no {prefix}: line; check that the module is a LARA-R6 "
        "and that the command is supported by its firmware"
    )


def _bad_line(line: str, why: str) -> ModemError:
    return ModemError(
        f'the module sent "{line.strip()}", which larappp cannot read ({why}); please report it '
        "with the module's firmware version (AT+CGMR)"
    )


@dataclass(frozen=True)
class AtField:
    """One comma-separated field of an AT response; `quoted` tells "" from nothing."""

    text: str
    quoted: bool

    @property
    def empty(self) -> bool:
        return self.text == "" and not self.quoted


def split_fields(payload: str) -> list[AtField]:
    """Split the text after "+XXX:" at commas outside double quotes.

    Spaces around fields are dropped; quoted text is kept as is. Two quoted strings
    separated only by spaces ("a" "b") are one field "a b", as some firmware writes
    an IPv4 and an IPv6 address.
    """
    fields: list[AtField] = []
    position, end = 0, len(payload)
    while True:
        while position < end and payload[position] in " \t":
            position += 1
        if position < end and payload[position] == '"':
            parts: list[str] = []
            while position < end and payload[position] == '"':
                closing = payload.find('"', position + 1)
                if closing < 0:
                    raise ValueError(f"unterminated quote in {payload!r}")
                parts.append(payload[position + 1 : closing])
                position = closing + 1
                while position < end and payload[position] in " \t":
                    position += 1
            fields.append(AtField(" ".join(parts), quoted=True))
        else:
            comma = payload.find(",", position)
            stop = end if comma < 0 else comma
            fields.append(AtField(payload[position:stop].strip(), quoted=False))
            position = stop
        if position >= end:
            return fields
        if payload[position] != ",":
            raise ValueError(f"text after a quoted field in {payload!r}")
        position += 1


def _fields(line: str, payload: str) -> list[AtField]:
    try:
        return split_fields(payload)
    except ValueError as exc:
        raise _bad_line(line, str(exc)) from None


def _is_int(text: str) -> bool:
    digits = text.removeprefix("-")
    return digits.isascii() and digits.isdigit()


def _int(line: str, field: AtField, name: str) -> int:
    text = field.text.strip()
    if _is_int(text):
        return int(text)
    raise _bad_line(line, f"{name} is not a number")


def _opt_int(line: str, fields: list[AtField], index: int, name: str) -> int | None:
    if index >= len(fields) or fields[index].empty or fields[index].text == "":
        return None
    return _int(line, fields[index], name)


def _opt_text(fields: list[AtField], index: int) -> str | None:
    if index >= len(fields) or fields[index].empty:
        return None
    return fields[index].text


def parse_dotted_address(text: str) -> IPAddress | None:
    """4 dotted numbers -> IPv4, 16 -> IPv6 (3GPP TS 27.007 notation), colon form -> IPv6."""
    text = text.strip()
    if ":" in text:
        try:
            return IPv6Address(text.split("%", 1)[0])
        except ValueError:
            return None
    parts = text.split(".")
    if len(parts) not in (4, 16) or not all(p.isdigit() and p.isascii() for p in parts):
        return None
    numbers = [int(p) for p in parts]
    if any(n > 255 for n in numbers):
        return None
    return IPv4Address(bytes(numbers)) if len(numbers) == 4 else IPv6Address(bytes(numbers))


def _assigned(address: IPAddress | None) -> IPAddress | None:
    """None for "0.0.0.0" / "::" (the module's way to say "no address")."""
    return None if address is None or address.is_unspecified else address


def _addresses(text: str) -> tuple[IPAddress, ...]:
    """Every assigned address in a field that may hold several, separated by spaces."""
    found = (_assigned(parse_dotted_address(token)) for token in text.split())
    return tuple(a for a in found if a is not None)


def parse_pdp_address(text: str) -> tuple[IPv4Address | None, IPv6Address | None]:
    """The +CGDCONT <PDP_addr> field: IPv4, IPv6 (16 dotted numbers or colons), or both."""
    ipv4: IPv4Address | None = None
    ipv6: IPv6Address | None = None
    for address in _addresses(text):
        if isinstance(address, IPv4Address):
            ipv4 = ipv4 or address
        else:
            ipv6 = ipv6 or address
    return ipv4, ipv6


def _address_and_mask(text: str) -> tuple[IPAddress | None, IPAddress | None, int | None]:
    """A <local_addr and subnet_mask> field: (address, mask, prefix length).

    Forms: 8 dotted numbers (IPv4 + mask), 32 (IPv6 + mask), 4 or 16 (address alone),
    "addr mask" separated by a space, or "addr/len" (+CGPIAF notations).
    """
    tokens = text.split()
    if not tokens:
        return None, None, None
    first = tokens[0]
    address: IPAddress | None
    mask: IPAddress | None
    if "/" in first:
        address_text, _, length_text = first.partition("/")
        address = parse_dotted_address(address_text)
        if address is None or not (length_text.isascii() and length_text.isdigit()):
            return None, None, None
        length = int(length_text)
        if length > address.max_prefixlen:
            return address, None, None
        mask = _mask_from_prefix(address, length)
        return address, mask, length
    parts = first.split(".")
    if ":" not in first and len(parts) in (8, 32):
        half = len(parts) // 2
        address = parse_dotted_address(".".join(parts[:half]))
        mask = parse_dotted_address(".".join(parts[half:]))
    else:
        address = parse_dotted_address(first)
        mask = parse_dotted_address(tokens[1]) if len(tokens) > 1 else None
    if address is None:
        return None, None, None
    if mask is not None and mask.version != address.version:
        mask = None
    return address, mask, _prefix_length(mask)


def _mask_from_prefix(address: IPAddress, length: int) -> IPAddress:
    bits = address.max_prefixlen
    value = ((1 << bits) - 1) ^ ((1 << (bits - length)) - 1)
    return IPv4Address(value) if bits == 32 else IPv6Address(value)


def _prefix_length(mask: IPAddress | None) -> int | None:
    """Prefix length of a contiguous mask, None for no mask or a non-contiguous one."""
    if mask is None:
        return None
    bits = mask.max_prefixlen
    value = int(mask)
    ones = value.bit_count()
    return ones if value == ((1 << bits) - 1) ^ ((1 << (bits - ones)) - 1) else None


# -- +CGDCONT --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PdpContext:
    """One +CGDCONT read line: a defined context and the addresses the network gave it."""

    cid: int
    pdp_type: str
    apn: str
    ipv4: IPv4Address | None
    ipv6: IPv6Address | None
    address_text: str = ""


def parse_cgdcont(lines: Lines) -> list[PdpContext]:
    """Read AT+CGDCONT? lines such as
    +CGDCONT: 2,"IPV4V6","APN2","10.117.32.103 38.0.3.128.178.65.129.209.0.0.0.74.87.68.176.1",0,0,0,0
    """
    contexts: list[PdpContext] = []
    for line, payload in _payloads(lines, "+CGDCONT"):
        fields = _fields(line, payload)
        if len(fields) < 3:
            raise _bad_line(line, "fewer than 3 fields")
        cid = _int(line, fields[0], "cid")
        address_text = fields[3].text if len(fields) > 3 else ""
        ipv4, ipv6 = parse_pdp_address(address_text)
        contexts.append(
            PdpContext(
                cid=cid,
                pdp_type=fields[1].text.upper(),
                apn=fields[2].text,
                ipv4=ipv4,
                ipv6=ipv6,
                address_text=address_text,
            )
        )
    return contexts


# -- +CGCONTRDP ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContextParams:
    """One +CGCONTRDP line (3GPP TS 27.007 §10.1.23): one address family of an active context."""

    cid: int
    bearer_id: int | None
    apn: str
    address: IPAddress | None
    subnet_mask: IPAddress | None
    prefix_len: int | None
    gateway: IPAddress | None
    dns: tuple[IPAddress, ...]
    pcscf: tuple[IPAddress, ...] = ()
    im_cn_signalling: int | None = None
    lipa: int | None = None
    ipv4_mtu: int | None = None

    @property
    def version(self) -> int | None:
        return None if self.address is None else self.address.version


def parse_cgcontrdp(lines: Lines) -> list[ContextParams]:
    """Read AT+CGCONTRDP lines (a dual-stack context gives one line per family).

    +CGCONTRDP: <cid>,<bearer_id>,<apn>[,<local_addr and subnet_mask>[,<gw_addr>
    [,<DNS_prim_addr>[,<DNS_sec_addr>[,<P-CSCF_prim_addr>[,<P-CSCF_sec_addr>
    [,<IM_CN_Signalling_Flag>[,<LIPA_indication>[,<IPv4_MTU>]]]]]]]]]
    """
    result: list[ContextParams] = []
    for line, payload in _payloads(lines, "+CGCONTRDP"):
        fields = _fields(line, payload)
        if len(fields) < 3:
            raise _bad_line(line, "fewer than 3 fields")

        texts = [f.text for f in fields] + [""] * (12 - len(fields))
        address, mask, prefix_len = _address_and_mask(texts[3])
        if _assigned(address) is None:
            address, mask, prefix_len = None, None, None
        gateways = _addresses(texts[4])
        result.append(
            ContextParams(
                cid=_int(line, fields[0], "cid"),
                bearer_id=_opt_int(line, fields, 1, "bearer id"),
                apn=texts[2],
                address=address,
                subnet_mask=mask,
                prefix_len=prefix_len,
                gateway=gateways[0] if gateways else None,
                dns=_addresses(texts[5]) + _addresses(texts[6]),
                pcscf=_addresses(texts[7]) + _addresses(texts[8]),
                im_cn_signalling=_opt_int(line, fields, 9, "IM CN signalling flag"),
                lipa=_opt_int(line, fields, 10, "LIPA indication"),
                # 0 is what some firmware writes when the network gave no MTU.
                ipv4_mtu=_opt_int(line, fields, 11, "IPv4 MTU") or None,
            )
        )
    return result


@dataclass(frozen=True)
class MergedContextParams:
    """Everything +CGCONTRDP says about one context, both families joined."""

    cid: int
    bearer_id: int | None
    apn: str
    ipv4: IPv4Address | None = None
    ipv4_prefix_len: int | None = None
    ipv6: IPv6Address | None = None
    ipv6_prefix_len: int | None = None
    gateway_v4: IPv4Address | None = None
    gateway_v6: IPv6Address | None = None
    dns_v4: tuple[IPv4Address, ...] = ()
    dns_v6: tuple[IPv6Address, ...] = ()
    ipv4_mtu: int | None = None


def merge_context_params(params: Iterable[ContextParams]) -> dict[int, MergedContextParams]:
    """Join the per-family +CGCONTRDP lines of each cid (DNS de-duplicated, order kept)."""
    by_cid: dict[int, list[ContextParams]] = {}
    for item in params:
        by_cid.setdefault(item.cid, []).append(item)
    merged: dict[int, MergedContextParams] = {}
    for cid, items in by_cid.items():
        ipv4: IPv4Address | None = None
        ipv6: IPv6Address | None = None
        ipv4_len: int | None = None
        ipv6_len: int | None = None
        gw4: IPv4Address | None = None
        gw6: IPv6Address | None = None
        dns4: list[IPv4Address] = []
        dns6: list[IPv6Address] = []
        mtu_v4_line: int | None = None
        mtu_any_line: int | None = None
        for item in items:
            if isinstance(item.address, IPv4Address) and ipv4 is None:
                ipv4, ipv4_len = item.address, item.prefix_len
            elif isinstance(item.address, IPv6Address) and ipv6 is None:
                ipv6, ipv6_len = item.address, item.prefix_len
            if isinstance(item.gateway, IPv4Address):
                gw4 = gw4 or item.gateway
            elif isinstance(item.gateway, IPv6Address):
                gw6 = gw6 or item.gateway
            for server in item.dns:
                if isinstance(server, IPv4Address) and server not in dns4:
                    dns4.append(server)
                elif isinstance(server, IPv6Address) and server not in dns6:
                    dns6.append(server)
            # <IPv4_MTU> belongs to the IPv4 line; another line's value is only a fallback.
            if isinstance(item.address, IPv4Address):
                mtu_v4_line = mtu_v4_line or item.ipv4_mtu
            mtu_any_line = mtu_any_line or item.ipv4_mtu
        first = items[0]
        merged[cid] = MergedContextParams(
            cid=cid,
            bearer_id=next((i.bearer_id for i in items if i.bearer_id is not None), None),
            apn=first.apn,
            ipv4=ipv4,
            ipv4_prefix_len=ipv4_len,
            ipv6=ipv6,
            ipv6_prefix_len=ipv6_len,
            gateway_v4=gw4,
            gateway_v6=gw6,
            dns_v4=tuple(dns4),
            dns_v6=tuple(dns6),
            ipv4_mtu=mtu_v4_line or mtu_any_line,
        )
    return merged


# -- +COPS -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Operator:
    """The AT+COPS? answer: selection mode and, when registered, the operator and AcT."""

    mode: int
    format: int | None = None
    name: str | None = None
    act: int | None = None

    @property
    def plmn(self) -> str | None:
        """The numeric PLMN ("310260") when the format is numeric (AT+COPS=3,2)."""
        if self.format == 2 and self.name and _is_int(self.name) and len(self.name) in (5, 6):
            return self.name
        return None


def parse_cops(lines: Lines) -> Operator:
    """Read '+COPS: 0,0,"I TIM",7', '+COPS: 0,2,"310260",7' or '+COPS: 2'."""
    line, payload = _first_payload(lines, "+COPS", "AT+COPS?")
    fields = _fields(line, payload)
    return Operator(
        mode=_int(line, fields[0], "mode"),
        format=_opt_int(line, fields, 1, "format"),
        name=_opt_text(fields, 2),
        act=_opt_int(line, fields, 3, "access technology"),
    )


# -- +UMNOPROF, +UEMBPF, +UDCONF -------------------------------------------------------------


def parse_umnoprof(lines: Lines) -> int:
    """Read '+UMNOPROF: 100' (app note §2.3.1)."""
    line, payload = _first_payload(lines, "+UMNOPROF", "AT+UMNOPROF?")
    return _int(line, _fields(line, payload)[0], "MNO profile")


def parse_uembpf(lines: Lines) -> PortRange | None:
    """Read '+UEMBPF: 1,"6000-6200"' (app note §4.3.1) as a range, '+UEMBPF: 0' as None."""
    line, payload = _first_payload(lines, "+UEMBPF", "AT+UEMBPF?")
    fields = _fields(line, payload)
    mode = _int(line, fields[0], "mode")
    if mode == 0:
        return None
    if len(fields) < 2 or fields[1].text == "":
        raise _bad_line(line, "filtering is on but no port range follows")
    try:
        return PortRange.parse(fields[1].text, what="+UEMBPF port range")
    except ValidationError as exc:
        raise _bad_line(line, str(exc)) from None


def parse_udconf(lines: Lines, *, op: int | None = None) -> tuple[int, ...]:
    """Read '+UDCONF: 19,2,0' as (19, 2, 0); with `op`, the first line for that <op_code>."""
    for line, payload in _payloads(lines, "+UDCONF"):
        values = tuple(_int(line, f, "value") for f in _fields(line, payload) if not f.empty)
        if op is None or (values and values[0] == op):
            return values
    raise ModemError(
        f"the answer to AT+UDCONF{'=' + str(op) if op is not None else ''} holds no +UDCONF: "
        "line; check that the module firmware supports it"
    )


# -- +CEREG ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Registration:
    """EPS registration from +CEREG (read answer or URC), 3GPP TS 27.007 §10.1.22."""

    stat: int
    tac: str | None = None
    ci: str | None = None
    act: int | None = None
    n: int | None = None  # the URC mode, present only in the read answer
    cause_type: int | None = None
    reject_cause: int | None = None

    @property
    def registered(self) -> bool:
        return self.stat in (1, 5)

    @property
    def roaming(self) -> bool:
        return self.stat == 5


def parse_cereg(line: str) -> Registration:
    """Read '+CEREG: 2,1,"1A2B","01A2B3C4",7' (read) or '+CEREG: 5,"1A2B","01A2B3C4",7' (URC).

    The read answer starts with <n>,<stat>: two bare numbers; a URC's second field is
    the quoted TAC or empty, so the forms never collide.
    """
    _, payload = _first_payload(line, "+CEREG", "AT+CEREG?")
    fields = _fields(line, payload)
    is_read = len(fields) >= 2 and not fields[1].quoted and _is_int(fields[1].text)
    n = _int(line, fields[0], "mode") if is_read else None
    rest = fields[1:] if is_read else fields
    return Registration(
        stat=_int(line, rest[0], "stat"),
        tac=_opt_text(rest, 1) or None,
        ci=_opt_text(rest, 2) or None,
        act=_opt_int(line, rest, 3, "access technology"),
        n=n,
        cause_type=_opt_int(line, rest, 4, "cause type"),
        reject_cause=_opt_int(line, rest, 5, "reject cause"),
    )


# -- +CGEV -----------------------------------------------------------------------------------

# 3GPP TS 27.007 §10.1.19 event names, longest first so "PDN ACT" wins over "ACT".
_CGEV_EVENT = re.compile(
    r"^(PDN\s+DEACT|PDN\s+ACT|DEACT|ACT|MODIFY|DETACH|CLASS|REACT|REJECT)(?:\s+(.*))?$",
    re.IGNORECASE | re.DOTALL,
)


@dataclass(frozen=True)
class CgevEvent:
    """A +CGEV URC: a context or the attachment changed (3GPP TS 27.007 §10.1.19)."""

    origin: str | None  # "NW", "ME", or None (REJECT)
    event: str  # "PDN ACT", "PDN DEACT", "ACT", "DEACT", "MODIFY", "DETACH", ...
    cid: int | None = None
    primary_cid: int | None = None
    pdp_type: str | None = None
    pdp_address: str | None = None
    params: tuple[str, ...] = ()

    @property
    def deactivation(self) -> bool:
        """A context (or, for DETACH, every context) went down."""
        return self.event in ("PDN DEACT", "DEACT", "DETACH")

    @property
    def activation(self) -> bool:
        return self.event in ("PDN ACT", "ACT")


def parse_cgev(line: str) -> CgevEvent:
    """Read '+CGEV: ME PDN ACT 1', '+CGEV: NW DEACT 1,2,0', '+CGEV: NW DEACT "IP","1.2.3.4",1'."""
    _, payload = _first_payload(line, "+CGEV", "+CGEV")
    words = payload.split(None, 1)
    origin: str | None = None
    rest = payload
    if words and words[0].upper() in ("NW", "ME"):
        origin = words[0].upper()
        rest = words[1] if len(words) > 1 else ""
    match = _CGEV_EVENT.match(rest.strip())
    if match is None:
        raise _bad_line(line, "unknown +CGEV event")
    event = " ".join(match.group(1).upper().split())
    arguments = (match.group(2) or "").strip()
    fields = _fields(line, arguments) if arguments else []
    params = tuple(f.text for f in fields)
    if fields and fields[0].quoted:
        # Old form: <PDP_type>,<PDP_addr>[,<cid>] (REJECT, NW/ME REACT, DEACT).
        return CgevEvent(origin, event, cid=_opt_int(line, fields, 2, "cid"),
                         pdp_type=fields[0].text, pdp_address=_opt_text(fields, 1),
                         params=params)
    if event in ("ACT", "DEACT") and len(fields) >= 2:
        # <p_cid>,<cid>,<event_type>: a secondary context of primary <p_cid>.
        return CgevEvent(origin, event, cid=_opt_int(line, fields, 1, "cid"),
                         primary_cid=_opt_int(line, fields, 0, "primary cid"), params=params)
    if event in ("CLASS", "DETACH"):
        return CgevEvent(origin, event, params=params)
    return CgevEvent(origin, event, cid=_opt_int(line, fields, 0, "cid"), params=params)
