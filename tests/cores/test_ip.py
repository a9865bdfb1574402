"""larappp.proto.ip: checksums, header builders/parsers, the UEMBPF port classifier."""

from __future__ import annotations

import random
import struct
from ipaddress import IPv4Address, IPv6Address

import pytest

from larappp.proto import ip

V6_SRC = IPv6Address("2001:db8::1")
V6_DST = IPv6Address("2001:db8::2")


def _reference_sum(data: bytes) -> int:
    """RFC 1071 §4.1 reference loop, per 16-bit word."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


@pytest.mark.parametrize("seed", range(5))
def test_ones_complement_sum_matches_reference(seed: int) -> None:
    rng = random.Random(seed)
    for length in range(80):
        data = bytes(rng.getrandbits(8) for _ in range(length))
        assert ip.ones_complement_sum(data) == _reference_sum(data), data
    for data in (b"", b"\x00", b"\xff\xff", b"\xff\xff" * 7, b"\x00\x00" * 3, b"\xff"):
        assert ip.ones_complement_sum(data) == _reference_sum(data)


def test_rfc1071_example_and_buffer_types() -> None:
    # RFC 1071 §3 numerical example: sum 0xddf2 over these bytes
    data = bytes.fromhex("0001f203f4f5f6f7")
    assert ip.ones_complement_sum(data) == 0xDDF2
    assert ip.internet_checksum(data) == 0x220D
    assert ip.internet_checksum(bytearray(data)) == 0x220D
    assert ip.internet_checksum(memoryview(data)) == 0x220D
    # verifying a buffer that carries its own checksum gives 0
    assert ip.internet_checksum(data + (0x220D).to_bytes(2, "big")) == 0


def test_ipv4_build_parse_round_trip_and_header_checksum() -> None:
    packet = ip.build_ipv4("10.0.0.1", "10.0.0.2", ip.PROTO_UDP, b"abc", ttl=7, identification=9)
    assert ip.internet_checksum(packet[:20]) == 0
    parsed = ip.parse_ipv4(packet)
    assert parsed is not None
    assert (parsed.src, parsed.dst) == (IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2"))
    assert (parsed.protocol, parsed.ttl, parsed.identification) == (ip.PROTO_UDP, 7, 9)
    assert parsed.dont_fragment and not parsed.more_fragments and parsed.payload == b"abc"
    corrupted = bytearray(packet)
    corrupted[8] ^= 1
    assert ip.parse_ipv4(bytes(corrupted)) is None
    assert ip.parse_ipv4(bytes(corrupted), verify_checksum=False) is not None
    with pytest.raises(ip.MalformedPacket, match="checksum"):
        ip.decode_ipv4(bytes(corrupted))


def test_ipv4_with_options_and_link_padding() -> None:
    packet = bytearray(ip.build_ipv4("10.0.0.1", "10.0.0.2", ip.PROTO_TCP, b"xy"))
    # insert 4 bytes of options (NOP NOP NOP EOL), fix IHL, length and checksum
    options = b"\x01\x01\x01\x00"
    packet = bytearray(packet[:20] + options + packet[20:])
    packet[0] = 0x46
    packet[2:4] = len(packet).to_bytes(2, "big")
    packet[10:12] = b"\0\0"
    packet[10:12] = ip.internet_checksum(packet[:24]).to_bytes(2, "big")
    parsed = ip.parse_ipv4(bytes(packet) + b"\0\0\0")  # trailing padding is dropped
    assert parsed is not None and parsed.header_length == 24 and parsed.payload == b"xy"


def test_ipv6_build_parse_round_trip() -> None:
    packet = ip.build_ipv6(
        V6_SRC, V6_DST, ip.PROTO_NONE, b"hello", hop_limit=3, traffic_class=0xB8, flow_label=77
    )
    parsed = ip.parse_ipv6(packet + b"pad")
    assert parsed is not None
    assert (parsed.src, parsed.dst, parsed.next_header) == (V6_SRC, V6_DST, ip.PROTO_NONE)
    assert (parsed.hop_limit, parsed.traffic_class, parsed.flow_label) == (3, 0xB8, 77)
    assert parsed.payload == b"hello"
    assert ip.packet_family(packet) == 6


def test_icmpv6_checksum_matches_scapy() -> None:
    scapy_inet6 = pytest.importorskip("scapy.layers.inet6")
    packet = ip.build_icmpv6("fe80::1", "ff02::1", 128, 0, b"\x12\x34\x00\x01payload")
    reference = scapy_inet6.IPv6(packet)
    recomputed = scapy_inet6.IPv6(bytes(scapy_inet6.IPv6(packet)))  # same bytes back
    assert bytes(recomputed) == packet
    del reference[scapy_inet6.ICMPv6EchoRequest].cksum
    assert bytes(reference) == packet  # scapy recomputes the same checksum
    message = ip.parse_icmpv6(packet)
    assert message is not None and (message.type, message.code) == (128, 0)
    assert message.body == b"\x12\x34\x00\x01payload"


def test_icmpv6_bad_checksum_and_wrong_protocol() -> None:
    packet = bytearray(ip.build_icmpv6("fe80::1", "ff02::1", 128, 0, b"\0\0\0\0"))
    packet[-1] ^= 0xFF
    assert ip.parse_icmpv6(bytes(packet)) is None
    with pytest.raises(ip.MalformedPacket, match="checksum"):
        ip.decode_icmpv6(bytes(packet))
    udp = ip.build_udp(V6_SRC, V6_DST, 1, 2, b"")
    with pytest.raises(ip.MalformedPacket, match="not ICMPv6"):
        ip.decode_icmpv6(udp)


def test_udp_v4_and_v6_round_trip_and_scapy_agreement() -> None:
    scapy_all = pytest.importorskip("scapy.all")
    for src, dst in (("192.0.2.1", "192.0.2.2"), ("2001:db8::1", "2001:db8::2")):
        packet = ip.build_udp(src, dst, 5353, 53, b"query")
        datagram = ip.parse_udp(packet)
        assert datagram is not None
        assert (str(datagram.src), str(datagram.dst)) == (src, dst)
        assert (datagram.src_port, datagram.dst_port, datagram.payload) == (5353, 53, b"query")
        layer = scapy_all.IPv6 if ":" in src else scapy_all.IP
        parsed = layer(packet)
        checksum = parsed[scapy_all.UDP].chksum
        del parsed[scapy_all.UDP].chksum
        assert layer(bytes(parsed))[scapy_all.UDP].chksum == checksum
        corrupted = bytearray(packet)
        corrupted[-1] ^= 1
        assert ip.parse_udp(bytes(corrupted)) is None


def test_udp_zero_checksum_rules() -> None:
    v4 = bytearray(ip.build_udp("192.0.2.1", "192.0.2.2", 1, 2, b"x"))
    v4[26:28] = b"\0\0"  # RFC 768: no checksum, accepted over IPv4
    assert ip.parse_udp(bytes(v4)) is not None
    v6 = bytearray(ip.build_udp(V6_SRC, V6_DST, 1, 2, b"x"))
    v6[46:48] = b"\0\0"  # RFC 8200 §8.1: not allowed over IPv6
    assert ip.parse_udp(bytes(v6)) is None
    with pytest.raises(ValueError, match="mixes"):
        ip.build_udp("192.0.2.1", "2001:db8::1", 1, 2, b"")


def test_echo_reply_both_families() -> None:
    request4 = ip.build_icmpv4("192.0.2.1", "192.0.2.2", 8, 0, b"\x00\x07\x00\x01ping")
    reply4 = ip.echo_reply(request4)
    assert reply4 is not None
    message4 = ip.parse_icmpv4(reply4)
    assert message4 is not None and message4.type == 0 and message4.body == b"\x00\x07\x00\x01ping"
    assert (str(message4.src), str(message4.dst)) == ("192.0.2.2", "192.0.2.1")
    request6 = ip.build_icmpv6(V6_SRC, V6_DST, 128, 0, b"\x00\x07\x00\x01ping")
    reply6 = ip.echo_reply(request6)
    assert reply6 is not None
    message6 = ip.parse_icmpv6(reply6)
    assert message6 is not None and message6.type == 129 and message6.dst == V6_SRC
    assert ip.echo_reply(reply6) is None  # a reply is not answered
    assert ip.echo_reply(ip.build_icmpv6(V6_SRC, "ff02::1", 128, 0, b"1234")) is None
    assert ip.echo_reply(b"") is None


def _tcp_segment(sport: int, dport: int) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, 0, 0, 0x50, 0x02, 1024, 0, 0)


def test_dest_port_tcp_udp_both_families() -> None:
    assert ip.dest_port(ip.build_udp("10.0.0.1", "10.0.0.2", 6176, 5684, b"")) == 5684
    assert ip.dest_port(ip.build_udp(V6_SRC, V6_DST, 5684, 6176, b"")) == 6176
    tcp4 = ip.build_ipv4("10.0.0.1", "10.0.0.2", ip.PROTO_TCP, _tcp_segment(40000, 443))
    assert ip.transport_ports(tcp4) == (ip.PROTO_TCP, 40000, 443)
    tcp6 = ip.build_ipv6(V6_SRC, V6_DST, ip.PROTO_TCP, _tcp_segment(40000, 80))
    assert ip.dest_port(tcp6) == 80
    icmp = ip.build_icmpv6(V6_SRC, V6_DST, 128, 0, b"1234")
    assert ip.dest_port(icmp) is None


def test_dest_port_walks_ipv6_extension_headers() -> None:
    udp_segment = ip.build_udp(V6_SRC, V6_DST, 1000, 6100, b"data")[40:]
    # hop-by-hop (8 bytes: next=60) -> destination options (16 bytes: next=44)
    # -> fragment (offset 0, next=17) -> UDP
    hop_by_hop = bytes([ip.PROTO_DSTOPTS, 0]) + b"\x01\x04\x00\x00\x00\x00"
    dest_opts = bytes([ip.PROTO_FRAGMENT, 1]) + b"\x01\x0c" + bytes(12)
    fragment = bytes([ip.PROTO_UDP, 0]) + struct.pack("!HI", 0x0001, 1234)  # M=1, offset 0
    payload = hop_by_hop + dest_opts + fragment + udp_segment
    packet = ip.build_ipv6(V6_SRC, V6_DST, ip.PROTO_HOPOPTS, payload)
    assert ip.dest_port(packet) == 6100
    later_fragment = bytes([ip.PROTO_UDP, 0]) + struct.pack("!HI", 8 << 3, 1234)
    packet = ip.build_ipv6(V6_SRC, V6_DST, ip.PROTO_FRAGMENT, later_fragment + udp_segment)
    assert ip.dest_port(packet) is None


def test_dest_port_ipv4_non_first_fragment_is_none() -> None:
    packet = bytearray(ip.build_udp("10.0.0.1", "10.0.0.2", 1, 6000, b"x" * 20))
    packet[6:8] = (0x2000 | 3).to_bytes(2, "big")  # MF, offset 24 bytes
    assert ip.dest_port(bytes(packet)) is None
    packet[6:8] = (0x2000).to_bytes(2, "big")  # first fragment keeps the UDP header
    assert ip.dest_port(bytes(packet)) == 6000


def test_packet_family() -> None:
    assert ip.packet_family(b"") is None
    assert ip.packet_family(b"\x45") == 4
    assert ip.packet_family(b"\x60") == 6
    assert ip.packet_family(b"\x50") is None


def _sample_packets() -> list[bytes]:
    tcp6 = ip.build_ipv6(V6_SRC, V6_DST, ip.PROTO_TCP, _tcp_segment(1, 2))
    return [
        ip.build_ipv4("10.0.0.1", "10.0.0.2", ip.PROTO_UDP, b"abc"),
        ip.build_udp("10.0.0.1", "10.0.0.2", 1, 2, b"payload"),
        ip.build_udp(V6_SRC, V6_DST, 1, 2, b"payload"),
        ip.build_icmpv6(V6_SRC, V6_DST, 128, 0, b"1234"),
        ip.build_icmpv4("10.0.0.1", "10.0.0.2", 8, 0, b"1234"),
        tcp6,
    ]


def test_every_truncation_parses_to_none_or_value_never_raises() -> None:
    """Byte by byte: every prefix of every sample packet goes through every parser."""
    parsers = (
        ip.parse_ipv4,
        ip.parse_ipv6,
        ip.parse_icmpv4,
        ip.parse_icmpv6,
        ip.parse_udp,
        ip.echo_reply,
        ip.transport_ports,
        ip.dest_port,
        ip.packet_family,
    )
    for packet in _sample_packets():
        for cut in range(len(packet)):
            prefix = packet[:cut]
            for parser in parsers:
                parser(prefix)  # must not raise
            if cut < len(packet):
                assert ip.parse_udp(prefix) is None
                assert ip.parse_icmpv6(prefix) is None


def test_random_garbage_never_raises() -> None:
    rng = random.Random(7)
    for _ in range(3000):
        data = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 90)))
        if data and rng.random() < 0.5:
            data = bytes([rng.choice((0x45, 0x46, 0x4F, 0x60))]) + data[1:]
        for parser in (
            ip.parse_ipv4,
            ip.parse_ipv6,
            ip.parse_udp,
            ip.parse_icmpv6,
            ip.parse_icmpv4,
            ip.transport_ports,
            ip.echo_reply,
        ):
            parser(data)
    assert ip.dest_port(b"\x60" + bytes(60)) is None  # next header 0 -> walks hop-by-hop


def test_builders_reject_wrong_addresses() -> None:
    with pytest.raises(ValueError):
        ip.build_ipv6("10.0.0.1", V6_DST, ip.PROTO_NONE, b"")
    with pytest.raises(ValueError):
        ip.build_ipv4(b"\x01\x02\x03", "10.0.0.1", ip.PROTO_UDP, b"")
