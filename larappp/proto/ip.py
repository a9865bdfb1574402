"""Small pure helpers for IPv4, IPv6, ICMP, ICMPv6 and UDP packets.

Checksums (RFC 1071), pseudo-headers (RFC 768, RFC 8200 §8.1), header builders and
parsers, and the port lookup the simulator's UEMBPF filter needs (app note §4.3).
Parsers never raise on malformed input: they return None, or raise `MalformedPacket`
from the `decode_*` variants when the caller wants the reason.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Literal

__all__ = [
    "IPV6_MIN_MTU",
    "PROTO_ICMP",
    "PROTO_ICMPV6",
    "PROTO_NONE",
    "PROTO_TCP",
    "PROTO_UDP",
    "IPv4Packet",
    "IPv6Packet",
    "IcmpMessage",
    "MalformedPacket",
    "UdpDatagram",
    "build_icmpv4",
    "build_icmpv6",
    "build_ipv4",
    "build_ipv6",
    "build_udp",
    "decode_icmpv6",
    "decode_ipv4",
    "decode_ipv6",
    "dest_port",
    "echo_reply",
    "internet_checksum",
    "ipv4_pseudo_header",
    "ipv6_pseudo_header",
    "ones_complement_sum",
    "packet_family",
    "parse_icmpv4",
    "parse_icmpv6",
    "parse_ipv4",
    "parse_ipv6",
    "parse_udp",
    "transport_ports",
]

# IANA protocol numbers
PROTO_HOPOPTS = 0
PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ROUTING = 43
PROTO_FRAGMENT = 44
PROTO_AH = 51
PROTO_ICMPV6 = 58
PROTO_NONE = 59
PROTO_DSTOPTS = 60

IPV6_MIN_MTU = 1280  # RFC 8200 §5
IPV4_HEADER_LEN = 20
IPV6_HEADER_LEN = 40
UDP_HEADER_LEN = 8

ICMPV4_ECHO_REPLY = 0
ICMPV4_ECHO_REQUEST = 8
ICMPV6_ECHO_REQUEST = 128
ICMPV6_ECHO_REPLY = 129

# IPv6 extension headers dest_port() walks over (RFC 8200 §4); AH has its own length unit.
_IPV6_EXTENSIONS = frozenset({PROTO_HOPOPTS, PROTO_ROUTING, PROTO_DSTOPTS, PROTO_AH})

AddressLike = str | bytes | IPv4Address | IPv6Address
Buffer = bytes | bytearray | memoryview


class MalformedPacket(ValueError):
    """A packet that does not parse; the message says which check failed."""


def _packed(address: AddressLike, size: int) -> bytes:
    if isinstance(address, (bytes, bytearray)):
        packed = bytes(address)
    elif isinstance(address, str):
        packed = (IPv4Address(address) if size == 4 else IPv6Address(address)).packed
    else:
        packed = address.packed
    if len(packed) != size:
        raise ValueError(f"expected an IPv{4 if size == 4 else 6} address, got {address!r}")
    return packed


# --------------------------------------------------------------------------- checksums


def ones_complement_sum(data: Buffer, initial: int = 0) -> int:
    """16-bit one's complement sum of `data` (big-endian words, odd byte padded), plus `initial`.

    Uses the identity 2**16 == 1 (mod 0xFFFF): the folded sum of all 16-bit words is the
    whole buffer read as one big integer modulo 0xFFFF, which CPython computes in C.
    """
    value = int.from_bytes(data, "big")
    if len(data) & 1:
        value <<= 8
    value += initial
    folded = value % 0xFFFF
    if folded == 0 and value != 0:
        return 0xFFFF  # one's complement "negative zero": the sum of non-zero words
    return folded


def internet_checksum(data: Buffer, initial: int = 0) -> int:
    """RFC 1071 checksum of `data` (0 when `data` already carries a correct checksum)."""
    return ~ones_complement_sum(data, initial) & 0xFFFF


def ipv4_pseudo_header(src: AddressLike, dst: AddressLike, protocol: int, length: int) -> bytes:
    """RFC 768 / RFC 793 pseudo-header for TCP and UDP over IPv4."""
    return _packed(src, 4) + _packed(dst, 4) + struct.pack("!BBH", 0, protocol, length)


def ipv6_pseudo_header(src: AddressLike, dst: AddressLike, length: int, next_header: int) -> bytes:
    """RFC 8200 §8.1 pseudo-header for upper-layer checksums over IPv6."""
    return _packed(src, 16) + _packed(dst, 16) + struct.pack("!IxxxB", length, next_header)


# --------------------------------------------------------------------------- IPv4 / IPv6


@dataclass(frozen=True)
class IPv4Packet:
    """A parsed IPv4 packet: the header fields larappp uses and the payload."""

    src: IPv4Address
    dst: IPv4Address
    protocol: int
    ttl: int
    identification: int
    dont_fragment: bool
    more_fragments: bool
    fragment_offset: int  # in bytes
    tos: int
    header_length: int
    payload: bytes


@dataclass(frozen=True)
class IPv6Packet:
    """A parsed IPv6 packet (fixed header only; extension headers stay in the payload)."""

    src: IPv6Address
    dst: IPv6Address
    next_header: int
    hop_limit: int
    traffic_class: int
    flow_label: int
    payload: bytes


def build_ipv4(
    src: AddressLike,
    dst: AddressLike,
    protocol: int,
    payload: Buffer,
    *,
    ttl: int = 64,
    identification: int = 0,
    tos: int = 0,
    dont_fragment: bool = True,
) -> bytes:
    """An IPv4 packet without options, header checksum filled in."""
    total = IPV4_HEADER_LEN + len(payload)
    if total > 0xFFFF:
        raise ValueError(f"IPv4 packet of {total} bytes exceeds 65535")
    flags = 0x4000 if dont_fragment else 0
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        tos,
        total,
        identification & 0xFFFF,
        flags,
        ttl,
        protocol,
        0,
        _packed(src, 4),
        _packed(dst, 4),
    )
    checksum = internet_checksum(header)
    return header[:10] + checksum.to_bytes(2, "big") + header[12:] + bytes(payload)


def decode_ipv4(packet: Buffer, *, verify_checksum: bool = True) -> IPv4Packet:
    """Parse an IPv4 packet; raises MalformedPacket naming the failed check."""
    if len(packet) < IPV4_HEADER_LEN:
        raise MalformedPacket(f"IPv4 packet of {len(packet)} bytes is shorter than a header")
    version_ihl = packet[0]
    if version_ihl >> 4 != 4:
        raise MalformedPacket(f"IP version {version_ihl >> 4} is not 4")
    header_length = (version_ihl & 0x0F) * 4
    if header_length < IPV4_HEADER_LEN:
        raise MalformedPacket(f"IPv4 header length {header_length} is below 20")
    total = int.from_bytes(packet[2:4], "big")
    if total < header_length or total > len(packet):
        raise MalformedPacket(f"IPv4 total length {total} does not fit {len(packet)} bytes")
    if verify_checksum and internet_checksum(packet[:header_length]) != 0:
        raise MalformedPacket("IPv4 header checksum is wrong")
    flags_fragment = int.from_bytes(packet[6:8], "big")
    return IPv4Packet(
        src=IPv4Address(bytes(packet[12:16])),
        dst=IPv4Address(bytes(packet[16:20])),
        protocol=packet[9],
        ttl=packet[8],
        identification=int.from_bytes(packet[4:6], "big"),
        dont_fragment=bool(flags_fragment & 0x4000),
        more_fragments=bool(flags_fragment & 0x2000),
        fragment_offset=(flags_fragment & 0x1FFF) * 8,
        tos=packet[1],
        header_length=header_length,
        payload=bytes(packet[header_length:total]),
    )


def parse_ipv4(packet: Buffer, *, verify_checksum: bool = True) -> IPv4Packet | None:
    """Parse an IPv4 packet, or None when it is malformed."""
    try:
        return decode_ipv4(packet, verify_checksum=verify_checksum)
    except MalformedPacket:
        return None


def build_ipv6(
    src: AddressLike,
    dst: AddressLike,
    next_header: int,
    payload: Buffer,
    *,
    hop_limit: int = 64,
    traffic_class: int = 0,
    flow_label: int = 0,
) -> bytes:
    """An IPv6 packet with the fixed header and `payload` (which may start with extensions)."""
    if len(payload) > 0xFFFF:
        raise ValueError(f"IPv6 payload of {len(payload)} bytes needs a jumbogram")
    first_word = (6 << 28) | ((traffic_class & 0xFF) << 20) | (flow_label & 0xFFFFF)
    header = struct.pack(
        "!IHBB16s16s",
        first_word,
        len(payload),
        next_header,
        hop_limit,
        _packed(src, 16),
        _packed(dst, 16),
    )
    return header + bytes(payload)


def decode_ipv6(packet: Buffer) -> IPv6Packet:
    """Parse an IPv6 packet; raises MalformedPacket naming the failed check.

    Bytes after the payload length (link padding) are dropped, as RFC 8200 §3 implies.
    """
    if len(packet) < IPV6_HEADER_LEN:
        raise MalformedPacket(f"IPv6 packet of {len(packet)} bytes is shorter than a header")
    first_word = int.from_bytes(packet[0:4], "big")
    if first_word >> 28 != 6:
        raise MalformedPacket(f"IP version {first_word >> 28} is not 6")
    payload_length = int.from_bytes(packet[4:6], "big")
    if IPV6_HEADER_LEN + payload_length > len(packet):
        raise MalformedPacket(
            f"IPv6 payload length {payload_length} exceeds the {len(packet) - 40} bytes present"
        )
    return IPv6Packet(
        src=IPv6Address(bytes(packet[8:24])),
        dst=IPv6Address(bytes(packet[24:40])),
        next_header=packet[6],
        hop_limit=packet[7],
        traffic_class=(first_word >> 20) & 0xFF,
        flow_label=first_word & 0xFFFFF,
        payload=bytes(packet[IPV6_HEADER_LEN : IPV6_HEADER_LEN + payload_length]),
    )


def parse_ipv6(packet: Buffer) -> IPv6Packet | None:
    """Parse an IPv6 packet, or None when it is malformed."""
    try:
        return decode_ipv6(packet)
    except MalformedPacket:
        return None


# --------------------------------------------------------------------------- ICMP


@dataclass(frozen=True)
class IcmpMessage:
    """An ICMP or ICMPv6 message with the addresses of the packet that carried it."""

    src: IPv4Address | IPv6Address
    dst: IPv4Address | IPv6Address
    type: int
    code: int
    body: bytes  # everything after the 4-byte type/code/checksum header
    hop_limit: int  # TTL for IPv4


def build_icmpv4(
    src: AddressLike, dst: AddressLike, type_: int, code: int, body: Buffer, *, ttl: int = 64
) -> bytes:
    """An IPv4 packet carrying one ICMP message, both checksums filled in."""
    message = struct.pack("!BBH", type_, code, 0) + bytes(body)
    checksum = internet_checksum(message)
    message = message[:2] + checksum.to_bytes(2, "big") + message[4:]
    return build_ipv4(src, dst, PROTO_ICMP, message, ttl=ttl)


def parse_icmpv4(packet: Buffer) -> IcmpMessage | None:
    """The ICMP message in an IPv4 packet, or None (not ICMP, fragment, bad checksum, short)."""
    ip = parse_ipv4(packet)
    if ip is None or ip.protocol != PROTO_ICMP or ip.more_fragments or ip.fragment_offset:
        return None
    message = ip.payload
    if len(message) < 4 or internet_checksum(message) != 0:
        return None
    return IcmpMessage(ip.src, ip.dst, message[0], message[1], message[4:], ip.ttl)


def build_icmpv6(
    src: AddressLike,
    dst: AddressLike,
    type_: int,
    code: int,
    body: Buffer,
    *,
    hop_limit: int = 64,
) -> bytes:
    """An IPv6 packet carrying one ICMPv6 message, checksum (RFC 4443 §2.3) filled in."""
    message = struct.pack("!BBH", type_, code, 0) + bytes(body)
    pseudo = ipv6_pseudo_header(src, dst, len(message), PROTO_ICMPV6)
    checksum = internet_checksum(pseudo + message)
    message = message[:2] + checksum.to_bytes(2, "big") + message[4:]
    return build_ipv6(src, dst, PROTO_ICMPV6, message, hop_limit=hop_limit)


def decode_icmpv6(packet: Buffer) -> IcmpMessage:
    """The ICMPv6 message directly after the IPv6 header; raises MalformedPacket otherwise.

    Messages behind extension headers are refused: neighbour discovery never uses them.
    """
    ip = decode_ipv6(packet)
    if ip.next_header != PROTO_ICMPV6:
        raise MalformedPacket(f"next header {ip.next_header} is not ICMPv6")
    message = ip.payload
    if len(message) < 4:
        raise MalformedPacket(f"ICMPv6 message of {len(message)} bytes is shorter than 4")
    pseudo = ipv6_pseudo_header(ip.src, ip.dst, len(message), PROTO_ICMPV6)
    if internet_checksum(pseudo + message) != 0:
        raise MalformedPacket("ICMPv6 checksum is wrong")
    return IcmpMessage(ip.src, ip.dst, message[0], message[1], message[4:], ip.hop_limit)


def parse_icmpv6(packet: Buffer) -> IcmpMessage | None:
    """The ICMPv6 message in an IPv6 packet, or None when there is none or it is malformed."""
    try:
        return decode_icmpv6(packet)
    except MalformedPacket:
        return None


def echo_reply(packet: Buffer) -> bytes | None:
    """The reply to an ICMP or ICMPv6 echo request (ping), or None when `packet` is not one."""
    family = packet_family(packet)
    if family == 4:
        icmp4 = parse_icmpv4(packet)
        if icmp4 is None or icmp4.type != ICMPV4_ECHO_REQUEST or icmp4.code != 0:
            return None
        return build_icmpv4(icmp4.dst, icmp4.src, ICMPV4_ECHO_REPLY, 0, icmp4.body)
    if family == 6:
        icmp6 = parse_icmpv6(packet)
        if icmp6 is None or icmp6.type != ICMPV6_ECHO_REQUEST or icmp6.code != 0:
            return None
        if icmp6.dst.is_multicast:
            return None  # a reply needs our own unicast source; the caller knows it, we do not
        return build_icmpv6(icmp6.dst, icmp6.src, ICMPV6_ECHO_REPLY, 0, icmp6.body)
    return None


# --------------------------------------------------------------------------- UDP


@dataclass(frozen=True)
class UdpDatagram:
    """A parsed UDP datagram with the addresses of the packet that carried it."""

    src: IPv4Address | IPv6Address
    dst: IPv4Address | IPv6Address
    src_port: int
    dst_port: int
    payload: bytes


def build_udp(
    src: AddressLike,
    dst: AddressLike,
    src_port: int,
    dst_port: int,
    payload: Buffer,
    *,
    hop_limit: int = 64,
) -> bytes:
    """An IPv4 or IPv6 packet (by the address family) carrying one UDP datagram."""
    src_ip = src if isinstance(src, (IPv4Address, IPv6Address)) else _address(src)
    dst_ip = dst if isinstance(dst, (IPv4Address, IPv6Address)) else _address(dst)
    if src_ip.version != dst_ip.version:
        raise ValueError(f"UDP between {src_ip} and {dst_ip} mixes address families")
    length = UDP_HEADER_LEN + len(payload)
    if length > 0xFFFF:
        raise ValueError(f"UDP datagram of {length} bytes exceeds 65535")
    segment = struct.pack("!HHHH", src_port, dst_port, length, 0) + bytes(payload)
    if src_ip.version == 4:
        pseudo = ipv4_pseudo_header(src_ip, dst_ip, PROTO_UDP, length)
    else:
        pseudo = ipv6_pseudo_header(src_ip, dst_ip, length, PROTO_UDP)
    checksum = internet_checksum(pseudo + segment) or 0xFFFF  # RFC 768: 0 means "none"
    segment = segment[:6] + checksum.to_bytes(2, "big") + segment[8:]
    if src_ip.version == 4:
        return build_ipv4(src_ip, dst_ip, PROTO_UDP, segment, ttl=hop_limit)
    return build_ipv6(src_ip, dst_ip, PROTO_UDP, segment, hop_limit=hop_limit)


def _address(value: str | bytes) -> IPv4Address | IPv6Address:
    if isinstance(value, bytes):
        return IPv4Address(value) if len(value) == 4 else IPv6Address(value)
    return IPv6Address(value) if ":" in value else IPv4Address(value)


def parse_udp(packet: Buffer) -> UdpDatagram | None:
    """The UDP datagram directly in an IPv4/IPv6 packet, checksum verified, or None."""
    family = packet_family(packet)
    src: IPv4Address | IPv6Address
    dst: IPv4Address | IPv6Address
    if family == 4:
        ip4 = parse_ipv4(packet)
        if ip4 is None or ip4.protocol != PROTO_UDP or ip4.more_fragments or ip4.fragment_offset:
            return None
        src, dst, segment = ip4.src, ip4.dst, ip4.payload
    elif family == 6:
        ip6 = parse_ipv6(packet)
        if ip6 is None or ip6.next_header != PROTO_UDP:
            return None
        src, dst, segment = ip6.src, ip6.dst, ip6.payload
    else:
        return None
    if len(segment) < UDP_HEADER_LEN:
        return None
    src_port, dst_port, length, checksum = struct.unpack_from("!HHHH", segment)
    if length < UDP_HEADER_LEN or length > len(segment):
        return None
    segment = segment[:length]
    if checksum == 0:
        if family == 6:
            return None  # RFC 8200 §8.1: a zero UDP checksum is invalid over IPv6
    else:
        if family == 4:
            pseudo = ipv4_pseudo_header(src, dst, PROTO_UDP, length)
        else:
            pseudo = ipv6_pseudo_header(src, dst, length, PROTO_UDP)
        if internet_checksum(pseudo + segment) != 0:
            return None
    return UdpDatagram(src, dst, src_port, dst_port, segment[UDP_HEADER_LEN:])


# --------------------------------------------------------------------------- classification


def packet_family(packet: Buffer) -> Literal[4, 6] | None:
    """4 or 6 from the version nibble, or None for an empty packet or another version."""
    if not packet:
        return None
    version = packet[0] >> 4
    if version == 4:
        return 4
    if version == 6:
        return 6
    return None


def transport_ports(packet: Buffer) -> tuple[int, int, int] | None:
    """(protocol, source port, destination port) of a TCP or UDP packet over IPv4 or IPv6.

    None for other protocols, non-first fragments and truncated packets. IPv6 extension
    headers (hop-by-hop, routing, destination options, AH, fragment) are walked over.
    Checksums are not verified: this is a cheap classifier for the hot path.
    """
    family = packet_family(packet)
    if family == 4:
        if len(packet) < IPV4_HEADER_LEN:
            return None
        offset = (packet[0] & 0x0F) * 4
        if offset < IPV4_HEADER_LEN or int.from_bytes(packet[6:8], "big") & 0x1FFF:
            return None  # bad header length, or a fragment without the transport header
        protocol = packet[9]
    elif family == 6:
        if len(packet) < IPV6_HEADER_LEN:
            return None
        protocol = packet[6]
        offset = IPV6_HEADER_LEN
        while protocol in _IPV6_EXTENSIONS or protocol == PROTO_FRAGMENT:
            if len(packet) < offset + 8:
                return None
            if protocol == PROTO_FRAGMENT:
                if int.from_bytes(packet[offset + 2 : offset + 4], "big") & 0xFFF8:
                    return None  # not the first fragment
                extension_length = 8
            elif protocol == PROTO_AH:
                extension_length = (packet[offset + 1] + 2) * 4  # RFC 4302 §2.2
            else:
                extension_length = (packet[offset + 1] + 1) * 8  # RFC 8200 §4.3
            protocol = packet[offset]
            offset += extension_length
    else:
        return None
    if protocol not in (PROTO_TCP, PROTO_UDP) or len(packet) < offset + 4:
        return None
    return (
        protocol,
        int.from_bytes(packet[offset : offset + 2], "big"),
        int.from_bytes(packet[offset + 2 : offset + 4], "big"),
    )


def dest_port(packet: Buffer) -> int | None:
    """Destination port of a TCP or UDP packet over IPv4/IPv6 (the UEMBPF key, app note §4.3)."""
    ports = transport_ports(packet)
    return None if ports is None else ports[2]
