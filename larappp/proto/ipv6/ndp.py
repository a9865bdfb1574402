"""Router Solicitation and Router Advertisement messages (RFC 4861, RFC 8106), as IPv6 packets.

Builders return whole IPv6 packets (hop limit 255, ICMPv6 checksum filled in) ready to
be written to a TUN or framed into PPP. Parsers validate what they receive as RFC 4861
§6.1.1 / §6.1.2 require: malformed input gives None from `parse_*`, or `MalformedPacket`
with the failed check from `decode_*`; they never raise anything else.

On PPP there is no link-layer address, so no Source Link-Layer Address option is sent
(RFC 5072 §5; app note §4.1.2 for the SLAAC procedure over the module's PPP link).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Network

from larappp.proto.ip import Buffer, MalformedPacket, build_icmpv6, decode_icmpv6

__all__ = [
    "ALL_NODES",
    "ALL_ROUTERS",
    "ICMPV6_ROUTER_ADVERTISEMENT",
    "ICMPV6_ROUTER_SOLICITATION",
    "INFINITE_LIFETIME",
    "NDP_HOP_LIMIT",
    "UNSPECIFIED",
    "MalformedPacket",
    "PrefixInformation",
    "RecursiveDnsServers",
    "RouterAdvertisement",
    "RouterSolicitation",
    "address_from_prefix",
    "build_router_advertisement",
    "build_router_solicitation",
    "decode_router_advertisement",
    "decode_router_solicitation",
    "link_local_from_iid",
    "parse_router_advertisement",
    "parse_router_solicitation",
]

ICMPV6_ROUTER_SOLICITATION = 133  # RFC 4861 §4.1
ICMPV6_ROUTER_ADVERTISEMENT = 134  # RFC 4861 §4.2

OPTION_SOURCE_LINK_LAYER = 1  # RFC 4861 §4.6.1
OPTION_PREFIX_INFORMATION = 3  # RFC 4861 §4.6.2
OPTION_MTU = 5  # RFC 4861 §4.6.4
OPTION_RDNSS = 25  # RFC 8106 §5.1

NDP_HOP_LIMIT = 255  # RFC 4861 §6.1: proves the sender is on the link
INFINITE_LIFETIME = 0xFFFFFFFF  # RFC 4861 §4.6.2
ALL_NODES = IPv6Address("ff02::1")
ALL_ROUTERS = IPv6Address("ff02::2")
UNSPECIFIED = IPv6Address("::")
LINK_LOCAL = IPv6Network("fe80::/10")

_PREFIX_FLAG_ON_LINK = 0x80  # L
_PREFIX_FLAG_AUTONOMOUS = 0x40  # A
_RA_FLAG_MANAGED = 0x80  # M
_RA_FLAG_OTHER = 0x40  # O


@dataclass(frozen=True)
class PrefixInformation:
    """RFC 4861 §4.6.2 Prefix Information option; lifetimes in seconds, 0xFFFFFFFF = infinite."""

    prefix: IPv6Network
    on_link: bool = True
    autonomous: bool = True
    valid_lifetime: int = 2592000  # RFC 4861 §6.2.1 AdvValidLifetime default (30 days)
    preferred_lifetime: int = 604800  # AdvPreferredLifetime default (7 days)


@dataclass(frozen=True)
class RecursiveDnsServers:
    """RFC 8106 §5.1 RDNSS option: servers usable for `lifetime` seconds (0 = withdraw)."""

    servers: tuple[IPv6Address, ...]
    lifetime: int


@dataclass(frozen=True)
class RouterSolicitation:
    """A validated RFC 4861 §4.1 Router Solicitation."""

    source: IPv6Address
    destination: IPv6Address = ALL_ROUTERS
    source_link_layer: bytes | None = None


@dataclass(frozen=True)
class RouterAdvertisement:
    """An RFC 4861 §4.2 Router Advertisement: what a router sends and what a host learned."""

    source: IPv6Address
    destination: IPv6Address = ALL_NODES
    cur_hop_limit: int = 64
    managed: bool = False
    other: bool = False
    router_lifetime: int = 1800  # seconds; 0: not a default router (RFC 4861 §4.2)
    reachable_time: int = 0  # milliseconds, 0 = unspecified
    retrans_timer: int = 0  # milliseconds, 0 = unspecified
    prefixes: tuple[PrefixInformation, ...] = ()
    mtu: int | None = None
    dns: tuple[RecursiveDnsServers, ...] = ()
    source_link_layer: bytes | None = None
    #: options the parser skipped (type, reason); never set by a router
    skipped_options: tuple[tuple[int, str], ...] = field(default=(), compare=False)


# --------------------------------------------------------------------------- addresses


def _check_iid(iid: bytes) -> bytes:
    if len(iid) != 8:
        raise ValueError(f"an interface identifier is 8 bytes, got {len(iid)}")
    return bytes(iid)


def link_local_from_iid(iid: bytes) -> IPv6Address:
    """fe80::<iid>, the link-local address PPP hosts derive from the IPV6CP identifier."""
    return IPv6Address(b"\xfe\x80" + bytes(6) + _check_iid(iid))


def address_from_prefix(prefix: IPv6Network, iid: bytes) -> IPv6Address:
    """<prefix>:<iid> for a /64 prefix (RFC 4862 §5.5.3 d)."""
    if prefix.prefixlen != 64:
        raise ValueError(f"SLAAC with a 64-bit identifier needs a /64 prefix, got {prefix}")
    return IPv6Address(prefix.network_address.packed[:8] + _check_iid(iid))


# --------------------------------------------------------------------------- building


def _option(option_type: int, body: bytes) -> bytes:
    length = len(body) + 2
    if length % 8:
        raise ValueError(f"option {option_type} of {length} bytes is not a multiple of 8")
    return bytes((option_type, length // 8)) + body


def _encode_prefix(info: PrefixInformation) -> bytes:
    flags = (_PREFIX_FLAG_ON_LINK if info.on_link else 0) | (
        _PREFIX_FLAG_AUTONOMOUS if info.autonomous else 0
    )
    body = struct.pack(
        "!BBIIxxxx16s",
        info.prefix.prefixlen,
        flags,
        info.valid_lifetime,
        info.preferred_lifetime,
        info.prefix.network_address.packed,
    )
    return _option(OPTION_PREFIX_INFORMATION, body)


def _encode_rdnss(rdnss: RecursiveDnsServers) -> bytes:
    if not rdnss.servers:
        raise ValueError("an RDNSS option needs at least one server (RFC 8106 §5.1)")
    body = struct.pack("!xxI", rdnss.lifetime) + b"".join(s.packed for s in rdnss.servers)
    return _option(OPTION_RDNSS, body)


def _encode_source_link_layer(address: bytes) -> bytes:
    padded = bytes(address) + bytes(-(len(address) + 2) % 8)
    return _option(OPTION_SOURCE_LINK_LAYER, padded)


def build_router_solicitation(
    source: IPv6Address | bytes,
    *,
    destination: IPv6Address = ALL_ROUTERS,
    source_link_layer: bytes | None = None,
) -> bytes:
    """An RS packet from `source` (an address, or an 8-byte IID giving fe80::iid).

    PPP has no link-layer address, so by default no SLLA option is included; it must
    not be included when the source is the unspecified address (RFC 4861 §4.1).
    """
    src = link_local_from_iid(source) if isinstance(source, bytes) else source
    options = b""
    if source_link_layer is not None:
        if src == UNSPECIFIED:
            raise ValueError("an RS from :: must not carry a source link-layer address")
        options = _encode_source_link_layer(source_link_layer)
    return build_icmpv6(
        src,
        destination,
        ICMPV6_ROUTER_SOLICITATION,
        0,
        bytes(4) + options,
        hop_limit=NDP_HOP_LIMIT,
    )


def build_router_advertisement(ra: RouterAdvertisement) -> bytes:
    """The IPv6 packet for `ra` (its source must be link-local, RFC 4861 §4.2)."""
    if ra.source not in LINK_LOCAL:
        raise ValueError(f"a router advertises from its link-local address, not {ra.source}")
    flags = (_RA_FLAG_MANAGED if ra.managed else 0) | (_RA_FLAG_OTHER if ra.other else 0)
    body = struct.pack(
        "!BBHII", ra.cur_hop_limit, flags, ra.router_lifetime, ra.reachable_time, ra.retrans_timer
    )
    options = []
    if ra.source_link_layer is not None:
        options.append(_encode_source_link_layer(ra.source_link_layer))
    if ra.mtu is not None:
        options.append(_option(OPTION_MTU, struct.pack("!xxI", ra.mtu)))
    options.extend(_encode_prefix(p) for p in ra.prefixes)
    options.extend(_encode_rdnss(d) for d in ra.dns)
    return build_icmpv6(
        ra.source,
        ra.destination,
        ICMPV6_ROUTER_ADVERTISEMENT,
        0,
        body + b"".join(options),
        hop_limit=NDP_HOP_LIMIT,
    )


# --------------------------------------------------------------------------- parsing


def _split_options(data: bytes) -> list[tuple[int, bytes]]:
    """(type, whole option bytes) pairs; RFC 4861 §6.1: every option length must be > 0."""
    options = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < 2:
            raise MalformedPacket(f"option header truncated at offset {offset}")
        option_type, length_units = data[offset], data[offset + 1]
        if length_units == 0:
            raise MalformedPacket(f"option {option_type} has length 0")
        end = offset + length_units * 8
        if end > len(data):
            raise MalformedPacket(f"option {option_type} runs past the end of the message")
        options.append((option_type, data[offset:end]))
        offset = end
    return options


def _check_ndp_envelope(
    packet: Buffer, expected_type: int, fixed_length: int
) -> tuple[IPv6Address, IPv6Address, bytes]:
    message = decode_icmpv6(packet)
    if message.type != expected_type:
        raise MalformedPacket(f"ICMPv6 type {message.type} is not {expected_type}")
    if message.hop_limit != NDP_HOP_LIMIT:
        raise MalformedPacket(f"hop limit {message.hop_limit} is not 255 (off-link sender)")
    if message.code != 0:
        raise MalformedPacket(f"ICMPv6 code {message.code} is not 0")
    if len(message.body) + 4 < fixed_length:
        raise MalformedPacket(f"ICMPv6 length {len(message.body) + 4} is below {fixed_length}")
    assert isinstance(message.src, IPv6Address) and isinstance(message.dst, IPv6Address)
    return message.src, message.dst, message.body


def decode_router_solicitation(packet: Buffer) -> RouterSolicitation:
    """Validate an RS per RFC 4861 §6.1.1; raises MalformedPacket naming the failed check."""
    source, destination, body = _check_ndp_envelope(packet, ICMPV6_ROUTER_SOLICITATION, 8)
    source_link_layer = None
    for option_type, option in _split_options(body[4:]):
        if option_type == OPTION_SOURCE_LINK_LAYER:
            source_link_layer = option[2:]
    if source == UNSPECIFIED and source_link_layer is not None:
        raise MalformedPacket("RS from :: carries a source link-layer address")
    return RouterSolicitation(source, destination, source_link_layer)


def parse_router_solicitation(packet: Buffer) -> RouterSolicitation | None:
    """A validated RS, or None when `packet` is not one."""
    try:
        return decode_router_solicitation(packet)
    except MalformedPacket:
        return None


def decode_router_advertisement(packet: Buffer) -> RouterAdvertisement:
    """Validate an RA per RFC 4861 §6.1.2; raises MalformedPacket naming the failed check.

    Options with a wrong length for their type are skipped (listed in `skipped_options`),
    as RFC 8106 §5.3.1 asks for RDNSS; the rest of the RA is still used. Unknown options
    are ignored (RFC 4861 §4.6).
    """
    source, destination, body = _check_ndp_envelope(packet, ICMPV6_ROUTER_ADVERTISEMENT, 16)
    if source not in LINK_LOCAL:
        raise MalformedPacket(f"RA source {source} is not link-local")
    cur_hop_limit, flags, router_lifetime, reachable_time, retrans_timer = struct.unpack_from(
        "!BBHII", body
    )
    prefixes: list[PrefixInformation] = []
    dns: list[RecursiveDnsServers] = []
    skipped: list[tuple[int, str]] = []
    mtu: int | None = None
    source_link_layer: bytes | None = None
    for option_type, option in _split_options(body[12:]):
        if option_type == OPTION_PREFIX_INFORMATION:
            if len(option) != 32:
                skipped.append((option_type, f"length {len(option)} is not 32"))
                continue
            prefix_length, prefix_flags, valid, preferred, raw_prefix = struct.unpack_from(
                "!BBIIxxxx16s", option, 2
            )
            if prefix_length > 128:
                skipped.append((option_type, f"prefix length {prefix_length} exceeds 128"))
                continue
            network = IPv6Network((raw_prefix, prefix_length), strict=False)
            prefixes.append(
                PrefixInformation(
                    prefix=network,
                    on_link=bool(prefix_flags & _PREFIX_FLAG_ON_LINK),
                    autonomous=bool(prefix_flags & _PREFIX_FLAG_AUTONOMOUS),
                    valid_lifetime=valid,
                    preferred_lifetime=preferred,
                )
            )
        elif option_type == OPTION_MTU:
            if len(option) != 8:
                skipped.append((option_type, f"length {len(option)} is not 8"))
                continue
            mtu = int.from_bytes(option[4:8], "big")
        elif option_type == OPTION_RDNSS:
            # RFC 8106 §5.1: length 3 + 2n units (n >= 1 addresses)
            if len(option) < 24 or (len(option) - 8) % 16:
                skipped.append((option_type, f"length {len(option)} is not 8 + 16n"))
                continue
            lifetime = int.from_bytes(option[4:8], "big")
            servers = tuple(
                IPv6Address(bytes(option[i : i + 16])) for i in range(8, len(option), 16)
            )
            dns.append(RecursiveDnsServers(servers, lifetime))
        elif option_type == OPTION_SOURCE_LINK_LAYER:
            source_link_layer = bytes(option[2:])
    return RouterAdvertisement(
        source=source,
        destination=destination,
        cur_hop_limit=cur_hop_limit,
        managed=bool(flags & _RA_FLAG_MANAGED),
        other=bool(flags & _RA_FLAG_OTHER),
        router_lifetime=router_lifetime,
        reachable_time=reachable_time,
        retrans_timer=retrans_timer,
        prefixes=tuple(prefixes),
        mtu=mtu,
        dns=tuple(dns),
        source_link_layer=source_link_layer,
        skipped_options=tuple(skipped),
    )


def parse_router_advertisement(packet: Buffer) -> RouterAdvertisement | None:
    """A validated RA, or None when `packet` is not one."""
    try:
        return decode_router_advertisement(packet)
    except MalformedPacket:
        return None
