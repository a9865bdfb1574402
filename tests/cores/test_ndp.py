"""larappp.proto.ipv6.ndp: RS/RA building and strict RFC 4861 §6.1 validation."""

from __future__ import annotations

import random
import struct
from ipaddress import IPv6Address, IPv6Network

import pytest

from larappp.proto import ip
from larappp.proto.ipv6 import ndp

HOST_IID = bytes.fromhex("90a15cfc3cc97301")  # the app note §4.1.2 example IID
ROUTER_LL = IPv6Address("fe80::2a0b:ad40:1:102a")
PREFIX = IPv6Network("2a0b:ad40:1:102a::/64")
DNS1 = IPv6Address("2001:4860:4860::8888")
DNS2 = IPv6Address("2001:4860:4860::8844")


def full_ra(**changes: object) -> ndp.RouterAdvertisement:
    fields: dict[str, object] = {
        "source": ROUTER_LL,
        "cur_hop_limit": 64,
        "managed": False,
        "other": True,
        "router_lifetime": 1800,
        "reachable_time": 30000,
        "retrans_timer": 1000,
        "prefixes": (ndp.PrefixInformation(PREFIX, True, True, 86400, 14400),),
        "mtu": 1430,
        "dns": (ndp.RecursiveDnsServers((DNS1, DNS2), 3600),),
    }
    fields.update(changes)
    return ndp.RouterAdvertisement(**fields)  # type: ignore[arg-type]


def icmp_packet(
    icmp_type: int,
    body: bytes,
    *,
    src: str = str(ROUTER_LL),
    dst: str = "ff02::1",
    hop_limit: int = 255,
    code: int = 0,
) -> bytes:
    return ip.build_icmpv6(src, dst, icmp_type, code, body, hop_limit=hop_limit)


RA_FIXED = struct.pack("!BBHII", 64, 0, 1800, 0, 0)


# --------------------------------------------------------------------------- addresses


def test_link_local_and_global_from_iid() -> None:
    assert ndp.link_local_from_iid(HOST_IID) == IPv6Address("fe80::90a1:5cfc:3cc9:7301")
    # app note §4.1.2: prefix 2A0B:AD40:1:102A, host IID 90A1:5CFC:3CC9:7301
    assert ndp.address_from_prefix(PREFIX, HOST_IID) == IPv6Address(
        "2a0b:ad40:1:102a:90a1:5cfc:3cc9:7301"
    )
    with pytest.raises(ValueError):
        ndp.link_local_from_iid(b"\x01" * 7)
    with pytest.raises(ValueError, match="/64"):
        ndp.address_from_prefix(IPv6Network("2001:db8::/56"), HOST_IID)


# --------------------------------------------------------------------------- RS


def test_router_solicitation_on_ppp_has_no_link_layer_option() -> None:
    packet = ndp.build_router_solicitation(HOST_IID)
    assert len(packet) == 40 + 8  # ICMPv6 header + reserved, nothing else
    header = ip.parse_ipv6(packet)
    assert header is not None
    assert header.hop_limit == 255 and header.dst == ndp.ALL_ROUTERS
    assert header.src == ndp.link_local_from_iid(HOST_IID)
    rs = ndp.parse_router_solicitation(packet)
    assert rs == ndp.RouterSolicitation(header.src, ndp.ALL_ROUTERS, None)


def test_router_solicitation_with_link_layer_and_from_unspecified() -> None:
    packet = ndp.build_router_solicitation(HOST_IID, source_link_layer=b"\x02\0\0\0\0\x01")
    rs = ndp.parse_router_solicitation(packet)
    assert rs is not None and rs.source_link_layer == b"\x02\0\0\0\0\x01"
    anonymous = ndp.build_router_solicitation(ndp.UNSPECIFIED)
    assert ndp.parse_router_solicitation(anonymous) is not None
    with pytest.raises(ValueError):
        ndp.build_router_solicitation(ndp.UNSPECIFIED, source_link_layer=b"\x02" * 6)
    forged = icmp_packet(133, bytes(4) + b"\x01\x01" + b"\x02" * 6, src="::", dst="ff02::2")
    with pytest.raises(ndp.MalformedPacket, match="::"):
        ndp.decode_router_solicitation(forged)


def test_router_solicitation_validation() -> None:
    with pytest.raises(ndp.MalformedPacket, match="hop limit"):
        ndp.decode_router_solicitation(icmp_packet(133, bytes(4), dst="ff02::2", hop_limit=64))
    with pytest.raises(ndp.MalformedPacket, match="code"):
        ndp.decode_router_solicitation(icmp_packet(133, bytes(4), dst="ff02::2", code=1))
    with pytest.raises(ndp.MalformedPacket, match="length"):
        ndp.decode_router_solicitation(icmp_packet(133, b"", dst="ff02::2"))
    with pytest.raises(ndp.MalformedPacket, match="type"):
        ndp.decode_router_solicitation(icmp_packet(134, RA_FIXED))


def test_router_solicitation_matches_scapy() -> None:
    inet6 = pytest.importorskip("scapy.layers.inet6")
    reference = (
        inet6.IPv6(src=str(ndp.link_local_from_iid(HOST_IID)), dst="ff02::2", hlim=255)
        / inet6.ICMPv6ND_RS()
    )
    assert bytes(reference) == ndp.build_router_solicitation(HOST_IID)


# --------------------------------------------------------------------------- RA


def test_router_advertisement_round_trip() -> None:
    ra = full_ra()
    packet = ndp.build_router_advertisement(ra)
    header = ip.parse_ipv6(packet)
    assert header is not None and header.hop_limit == 255 and header.dst == ndp.ALL_NODES
    assert ndp.parse_router_advertisement(packet) == ra
    unicast = full_ra(destination=ndp.link_local_from_iid(HOST_IID), managed=True, mtu=None)
    assert ndp.parse_router_advertisement(ndp.build_router_advertisement(unicast)) == unicast


def test_router_advertisement_agrees_with_scapy_both_ways() -> None:
    inet6 = pytest.importorskip("scapy.layers.inet6")
    ours = ndp.build_router_advertisement(full_ra())
    seen = inet6.IPv6(ours)
    assert seen.hlim == 255
    assert seen[inet6.ICMPv6ND_RA].routerlifetime == 1800 and seen[inet6.ICMPv6ND_RA].O == 1
    prefix = seen[inet6.ICMPv6NDOptPrefixInfo]
    assert (prefix.prefix, prefix.prefixlen, prefix.L, prefix.A) == ("2a0b:ad40:1:102a::", 64, 1, 1)
    assert (prefix.validlifetime, prefix.preferredlifetime) == (86400, 14400)
    assert seen[inet6.ICMPv6NDOptMTU].mtu == 1430
    assert seen[inet6.ICMPv6NDOptRDNSS].dns == [str(DNS1), str(DNS2)]
    assert seen[inet6.ICMPv6NDOptRDNSS].lifetime == 3600
    # and a scapy-built RA (different option order, with an SLLA) parses here
    theirs = (
        inet6.IPv6(src=str(ROUTER_LL), dst="ff02::1", hlim=255)
        / inet6.ICMPv6ND_RA(routerlifetime=600, M=1)
        / inet6.ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:01")
        / inet6.ICMPv6NDOptRDNSS(dns=[str(DNS1)], lifetime=1200)
        / inet6.ICMPv6NDOptPrefixInfo(
            prefix=str(PREFIX.network_address),
            prefixlen=64,
            validlifetime=7200,
            preferredlifetime=3600,
        )
        / inet6.ICMPv6NDOptMTU(mtu=1500)
    )
    ra = ndp.parse_router_advertisement(bytes(theirs))
    assert ra is not None
    assert ra.managed and ra.router_lifetime == 600 and ra.mtu == 1500
    assert ra.source_link_layer == b"\x02\0\0\0\0\x01"
    assert ra.dns == (ndp.RecursiveDnsServers((DNS1,), 1200),)
    assert ra.prefixes == (ndp.PrefixInformation(PREFIX, True, True, 7200, 3600),)


@pytest.mark.parametrize(
    ("packet", "reason"),
    [
        (icmp_packet(134, RA_FIXED, hop_limit=254), "hop limit"),
        (icmp_packet(134, RA_FIXED, src="2001:db8::1"), "link-local"),
        (icmp_packet(134, RA_FIXED, code=1), "code"),
        (icmp_packet(134, RA_FIXED[:11]), "length"),
        (icmp_packet(134, RA_FIXED + b"\x05\x00" + bytes(6)), "length 0"),
        (icmp_packet(134, RA_FIXED + b"\x05\x02" + bytes(6)), "past the end"),
        (icmp_packet(134, RA_FIXED + b"\x05"), "truncated"),
        (icmp_packet(135, bytes(20)), "type"),
        (ip.build_udp(str(ROUTER_LL), "ff02::1", 547, 546, b""), "ICMPv6"),
    ],
)
def test_router_advertisement_rejected(packet: bytes, reason: str) -> None:
    assert ndp.parse_router_advertisement(packet) is None
    with pytest.raises(ndp.MalformedPacket, match=reason):
        ndp.decode_router_advertisement(packet)


def test_router_advertisement_bad_checksum_rejected() -> None:
    packet = bytearray(ndp.build_router_advertisement(full_ra()))
    packet[45] ^= 0x01  # router lifetime byte: checksum no longer matches
    with pytest.raises(ndp.MalformedPacket, match="checksum"):
        ndp.decode_router_advertisement(bytes(packet))


def test_options_with_wrong_length_are_skipped_not_fatal() -> None:
    bad_prefix = b"\x03\x03" + bytes(22)  # prefix information must be 4 units
    bad_mtu = b"\x05\x02" + bytes(14)  # MTU must be 1 unit
    bad_rdnss = b"\x19\x02" + bytes(14)  # RDNSS needs 3 + 2n units
    even_rdnss = b"\x19\x04" + bytes(30)
    unknown = b"\x99\x01" + bytes(6)
    good_mtu = b"\x05\x01\x00\x00" + (1400).to_bytes(4, "big")
    body = RA_FIXED + bad_prefix + bad_mtu + bad_rdnss + even_rdnss + unknown + good_mtu
    ra = ndp.decode_router_advertisement(icmp_packet(134, body))
    assert ra.mtu == 1400 and ra.prefixes == () and ra.dns == ()
    assert [t for t, _ in ra.skipped_options] == [3, 5, 25, 25]


def test_prefix_with_host_bits_and_overlong_length() -> None:
    prefix = struct.pack(
        "!BBBBIIxxxx16s", 3, 4, 64, 0xC0, 100, 50, IPv6Address("2001:db8:1:2:ffff::1").packed
    )
    huge = struct.pack("!BBBBIIxxxx16s", 3, 4, 129, 0xC0, 100, 50, bytes(16))
    ra = ndp.decode_router_advertisement(icmp_packet(134, RA_FIXED + prefix + huge))
    assert ra.prefixes[0].prefix == IPv6Network("2001:db8:1:2::/64")
    assert ra.skipped_options == ((3, "prefix length 129 exceeds 128"),)


def test_build_refuses_unbuildable_advertisements() -> None:
    with pytest.raises(ValueError, match="link-local"):
        ndp.build_router_advertisement(full_ra(source=IPv6Address("2001:db8::1")))
    with pytest.raises(ValueError, match="at least one"):
        ndp.build_router_advertisement(full_ra(dns=(ndp.RecursiveDnsServers((), 10),)))


# --------------------------------------------------------------------------- robustness


def _all_packets() -> list[bytes]:
    return [
        ndp.build_router_advertisement(full_ra()),
        ndp.build_router_advertisement(full_ra(source_link_layer=b"\x02" * 6, mtu=None)),
        ndp.build_router_solicitation(HOST_IID),
        ndp.build_router_solicitation(HOST_IID, source_link_layer=b"\x02" * 6),
    ]


def test_every_truncation_is_rejected_never_crashes() -> None:
    """Byte by byte: every strict prefix of each RA/RS is None, the whole packet parses."""
    for packet in _all_packets():
        parse = (
            ndp.parse_router_advertisement if packet[40] == 134 else ndp.parse_router_solicitation
        )
        assert parse(packet) is not None
        for cut in range(len(packet)):
            assert ndp.parse_router_advertisement(packet[:cut]) is None
            assert ndp.parse_router_solicitation(packet[:cut]) is None


def _refresh_checksum(packet: bytearray) -> bytes:
    """Recompute the ICMPv6 checksum so corruption reaches the option parser."""
    packet[42:44] = b"\0\0"
    length = len(packet) - 40
    pseudo = ip.ipv6_pseudo_header(bytes(packet[8:24]), bytes(packet[24:40]), length, 58)
    packet[42:44] = ip.internet_checksum(pseudo + packet[40:]).to_bytes(2, "big")
    return bytes(packet)


def test_every_single_byte_corruption_never_crashes() -> None:
    ra_packet = ndp.build_router_advertisement(full_ra(source_link_layer=b"\x02" * 6))
    outcomes = set()
    for position in range(len(ra_packet)):
        for value in (0x00, 0x01, 0x7F, 0xFF):
            corrupted = bytearray(ra_packet)
            corrupted[position] = value
            for candidate in (bytes(corrupted), _refresh_checksum(bytearray(corrupted))):
                result = ndp.parse_router_advertisement(candidate)
                ndp.parse_router_solicitation(candidate)
                outcomes.add(result is None)
    assert outcomes == {True, False}  # some corruptions are caught, some are harmless


def test_random_options_never_crash() -> None:
    rng = random.Random(1)
    for _ in range(2000):
        options = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 64)))
        if options and rng.random() < 0.7:
            # steer towards known option types with plausible lengths
            options = bytes([rng.choice((1, 3, 5, 25)), rng.randrange(0, 6)]) + options[2:]
        packet = icmp_packet(134, RA_FIXED + options)
        try:
            ra = ndp.decode_router_advertisement(packet)
        except ndp.MalformedPacket:
            continue
        for rdnss in ra.dns:
            assert rdnss.servers
