"""The simulated network's DNS responder: pure message functions, then the UDP server.

Answers are cross-checked with scapy's independent DNS decoder. Malformed input is fed
whole, truncated at every byte, and fuzzed: the responder never raises and never answers
a message that is not one complete question.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.dns import DNS, DNSQR, DNSRROPT

from larappp.errors import NetworkSetupError
from larappp.sim.addressing import AddressPlan
from larappp.sim.dnsserver import (
    RCODE_NOERROR,
    RCODE_NOTIMP,
    RCODE_NXDOMAIN,
    RCODE_REFUSED,
    TYPE_A,
    TYPE_AAAA,
    DnsServer,
    DnsZone,
    parse_query,
    respond,
)

ZONE = AddressPlan().zone()
SERVER_V4 = IPv4Address("198.51.100.1")
SERVER_V6 = IPv6Address("2001:db8:ffff::1")


def query(name: str, qtype: int = TYPE_A, *, query_id: int = 0x1234, flags: int = 0x0100) -> bytes:
    """A query built by hand (RFC 1035 §4.1): header, one question."""
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".") if p)
    return (
        struct.pack("!HHHHHH", query_id, flags, 1, 0, 0, 0)
        + labels
        + b"\0"
        + struct.pack("!HH", qtype, 1)
    )


def answers(response: bytes) -> tuple[int, list[str]]:
    """(rcode, answer addresses) as scapy decodes the response."""
    message = DNS(response)
    assert message.qr == 1 and message.aa == 1
    return message.rcode, [str(ip_address(rr.rdata)) for rr in (message.an or [])]


# -- message functions ----------------------------------------------------------------------
def test_a_and_aaaa_answers_for_the_server() -> None:
    response = respond(query("server.larappp.test", TYPE_A), ZONE)
    assert response is not None
    assert answers(response) == (RCODE_NOERROR, ["198.51.100.1"])
    response = respond(query("server.larappp.test", TYPE_AAAA), ZONE)
    assert response is not None
    assert answers(response) == (RCODE_NOERROR, ["2001:db8:ffff::1"])
    response = respond(query("dns.larappp.test", TYPE_A), ZONE)
    assert response is not None
    assert answers(response) == (RCODE_NOERROR, ["198.51.100.53"])


def test_answer_echoes_id_question_case_and_recursion_flag() -> None:
    request = query("SeRvEr.LARAPPP.test.", TYPE_A, query_id=0xBEEF)
    response = respond(request, ZONE)
    assert response is not None
    message = DNS(response)
    assert message.id == 0xBEEF and message.rd == 1 and message.ra == 1
    assert message.qd[0].qname == b"SeRvEr.LARAPPP.test."
    assert message.qdcount == 1 and message.ancount == 1 and message.an[0].ttl == ZONE.ttl
    assert response[12 : 12 + len(request) - 12] == request[12:]  # question verbatim
    no_rd = respond(query("server.larappp.test", flags=0), ZONE)
    assert no_rd is not None and DNS(no_rd).rd == 0


def test_unknown_names_are_nxdomain_and_other_types_nodata() -> None:
    for name in ("nothing.larappp.test", "example.com", "larappp.test", ""):
        response = respond(query(name), ZONE)
        assert response is not None
        assert answers(response) == (RCODE_NXDOMAIN, []), name
    mx = respond(query("server.larappp.test", 15), ZONE)
    assert mx is not None and answers(mx) == (RCODE_NOERROR, [])
    both = respond(query("server.larappp.test", 255), ZONE)
    assert both is not None and answers(both) == (
        RCODE_NOERROR,
        ["198.51.100.1", "2001:db8:ffff::1"],
    )
    # one label "server.larappp" is not the two labels server, larappp
    dotted = (
        struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\x0eserver.larappp\x04test\x00\x00\x01\x00\x01"
    )
    response = respond(dotted, DnsZone.of({"server.larappp.test": [SERVER_V4]}))
    assert response is not None and answers(response)[0] == RCODE_NXDOMAIN


def test_other_opcodes_and_classes_are_refused_not_ignored() -> None:
    status = respond(query("server.larappp.test", flags=2 << 11), ZONE)
    assert status is not None and DNS(status).rcode == RCODE_NOTIMP and DNS(status).opcode == 2
    chaos = query("version.bind", 16)[:-2] + b"\x00\x03"
    refused = respond(chaos, ZONE)
    assert refused is not None and DNS(refused).rcode == RCODE_REFUSED


def test_edns_query_from_scapy_is_answered_without_opt() -> None:
    request = bytes(
        DNS(id=7, rd=1, qd=DNSQR(qname="server.larappp.test", qtype="AAAA"), ar=DNSRROPT())
    )
    response = respond(request, ZONE)
    assert response is not None
    assert answers(response) == (RCODE_NOERROR, ["2001:db8:ffff::1"])
    assert DNS(response).arcount == 0


def test_responses_and_odd_messages_get_no_answer() -> None:
    good = query("server.larappp.test")
    assert respond(good[:2] + b"\x81\x00" + good[4:], ZONE) is None  # QR set: a response
    assert respond(good[:4] + b"\x00\x02" + good[6:], ZONE) is None  # two questions
    assert respond(good[:4] + b"\x00\x00" + good[6:], ZONE) is None  # none
    pointer = good[:12] + b"\xc0\x0c\x00\x01\x00\x01"  # compression in a question
    assert respond(pointer, ZONE) is None
    long_label = good[:12] + b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01"
    assert respond(long_label, ZONE) is None
    long_name = good[:12] + (b"\x3f" + b"a" * 63) * 4 + b"\x00\x00\x01\x00\x01"  # 257 octets
    assert respond(long_name, ZONE) is None
    longest = good[:12] + (b"\x3f" + b"a" * 63) * 3 + b"\x3d" + b"a" * 61 + b"\x00\x00\x01\x00\x01"
    assert respond(longest, ZONE) is not None  # 255 octets: still a name


def test_every_truncation_of_a_query_is_ignored_without_raising() -> None:
    whole = query("server.larappp.test", TYPE_AAAA)
    for end in range(len(whole)):
        assert parse_query(whole[:end]) is None, end
        assert respond(whole[:end], ZONE) is None, end
    assert respond(whole, ZONE) is not None
    parsed = parse_query(memoryview(whole))
    assert parsed is not None and parsed.name == "server.larappp.test" and parsed.qtype == TYPE_AAAA


def test_every_truncation_of_an_edns_query_still_answers_once_the_question_is_whole() -> None:
    whole = bytes(DNS(id=9, qd=DNSQR(qname="dns.larappp.test"), ar=DNSRROPT()))
    question_end = 12 + len(b"\x03dns\x07larappp\x04test\x00") + 4
    for end in range(len(whole) + 1):
        response = respond(whole[:end], ZONE)
        assert (response is not None) == (end >= question_end), end


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=80))
def test_random_bytes_never_raise(data: bytes) -> None:
    respond(data, ZONE)
    respond(query("server.larappp.test")[:12] + data, ZONE)


def test_zone_matching_ignores_case_and_trailing_dot() -> None:
    zone = DnsZone.of({"Host.Example.": [IPv4Address("192.0.2.1")]})
    assert zone.lookup("host.example") == (IPv4Address("192.0.2.1"),)
    assert zone.lookup("HOST.EXAMPLE.") == (IPv4Address("192.0.2.1"),)
    assert zone.lookup("other.example") is None


# -- the server on this namespace's loopback --------------------------------------------------
def test_server_answers_on_loopback_and_counts() -> None:
    async def scenario() -> tuple[list[bytes], DnsServer]:
        server = await DnsServer.start([IPv4Address("127.0.0.1"), IPv6Address("::1")], ZONE, port=0)
        loop = asyncio.get_running_loop()
        replies = []
        try:
            for host, port in server.addresses:
                family = socket.AF_INET6 if ":" in host else socket.AF_INET
                with socket.socket(family, socket.SOCK_DGRAM) as client:
                    client.setblocking(False)
                    await loop.sock_connect(client, (host, port))
                    await loop.sock_sendall(client, b"\x00garbage")  # ignored, counted
                    await loop.sock_sendall(client, query("nope.test"))
                    await loop.sock_sendall(client, query("server.larappp.test", TYPE_AAAA))
                    for _ in range(2):
                        replies.append(await asyncio.wait_for(loop.sock_recv(client, 4096), 5))
        finally:
            server.close()
            server.close()  # idempotent
        return replies, server

    replies, server = asyncio.run(scenario())
    decoded = [answers(reply) for reply in replies]
    assert decoded == [(RCODE_NXDOMAIN, []), (RCODE_NOERROR, ["2001:db8:ffff::1"])] * 2
    assert server.queries_received == 6
    assert server.queries_answered == 4 and server.nxdomain == 2 and server.ignored == 2


def test_server_names_the_address_it_cannot_bind() -> None:
    async def scenario() -> None:
        await DnsServer.start([IPv4Address("192.0.2.77")], ZONE, port=0)

    with pytest.raises(NetworkSetupError, match=r"\[192\.0\.2\.77\]:0 .*put the address"):
        asyncio.run(scenario())
