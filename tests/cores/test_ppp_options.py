"""Option rows of LCP, IPCP and IPV6CP: what we request and how we answer, table by table."""

from __future__ import annotations

import random
from ipaddress import IPv4Address
from typing import Any

import pytest

from larappp.proto.hdlc import DEFAULT_ACCM
from larappp.proto.ppp.ipcp import IPCP_OPTIONS, IpcpConfig, IpcpNegotiation
from larappp.proto.ppp.ipv6cp import (
    IPV6CP_OPTIONS,
    ZERO_IID,
    Ipv6cpConfig,
    Ipv6cpNegotiation,
    link_local_address,
    random_interface_id,
)
from larappp.proto.ppp.lcp import LCP_OPTIONS, LcpConfig, LcpNegotiation
from larappp.proto.ppp.options import (
    CONFIGURE_ACK,
    CONFIGURE_NAK,
    CONFIGURE_REJECT,
    OptionRow,
    OptionTable,
    encode_option,
    parse_options,
)


def lcp_table(seed: int = 1, **config: Any) -> OptionTable[LcpNegotiation]:
    return OptionTable(LCP_OPTIONS, LcpNegotiation(LcpConfig(**config), random.Random(seed)))


def ipcp_table(**config: Any) -> OptionTable[IpcpNegotiation]:
    return OptionTable(IPCP_OPTIONS, IpcpNegotiation(IpcpConfig(**config)))


def ipv6cp_table(seed: int = 1, **config: Any) -> OptionTable[Ipv6cpNegotiation]:
    negotiation = Ipv6cpNegotiation(Ipv6cpConfig(**config), random.Random(seed))
    return OptionTable(IPV6CP_OPTIONS, negotiation)


def answer(table: OptionTable[Any], hex_options: str, exhausted: bool = False) -> tuple[int, str]:
    result = table.judge_request(bytes.fromhex(hex_options), exhausted)
    assert result is not None
    return result.code, result.data.hex()


# -- the option list ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "parsed"),
    [
        (b"", []),
        (b"\x07\x02", [(7, b"")]),
        (b"\x01\x04\x05\xdc\x07\x02", [(1, b"\x05\xdc"), (7, b"")]),
        (b"\x07", None),
        (b"\x07\x01", None),
        (b"\x07\x05ab", None),
    ],
)
def test_parse_options(data: bytes, parsed: list[tuple[int, bytes]] | None) -> None:
    assert parse_options(data) == parsed


def test_encode_option_limits() -> None:
    assert encode_option(3, b"\xc0\x23") == b"\x03\x04\xc0\x23"
    with pytest.raises(ValueError):
        encode_option(1, bytes(254))


def test_rows_must_have_distinct_types() -> None:
    row: OptionRow[Any] = LCP_OPTIONS[0]
    with pytest.raises(ValueError):
        OptionTable((row, row), LcpNegotiation(LcpConfig(), random.Random(1)))


# -- LCP ------------------------------------------------------------------------------


def test_lcp_default_request() -> None:
    table = lcp_table()
    magic = table.state.magic
    assert magic is not None and magic != 0
    request = table.build_request()
    # ACCM 0, Magic-Number, PFC, ACFC; no MRU (1500 is the default), no authentication
    assert request == bytes.fromhex("020600000000") + b"\x05\x06" + magic.to_bytes(4, "big") + (
        b"\x07\x02\x08\x02"
    )


def test_lcp_request_for_an_authenticator_with_a_small_mru() -> None:
    table = lcp_table(mru=1200, authenticate_peer=("chap", "pap"), magic_number=False, pfc=False)
    assert table.build_request().hex() == "010404b00206000000000305c223050802"


@pytest.mark.parametrize(
    ("config", "options", "code", "reply"),
    [
        # an ordinary module request: everything acceptable
        ({}, "010405dc0206000000000506deadbeef07020802", CONFIGURE_ACK, None),
        # authentication we can answer
        ({}, "0304c023", CONFIGURE_ACK, None),
        ({}, "0305c22305", CONFIGURE_ACK, None),
        # MS-CHAP (algorithm 0x81) and EAP: Nak'd with CHAP-MD5
        ({}, "0305c22381", CONFIGURE_NAK, "0305c22305"),
        ({}, "0304c227", CONFIGURE_NAK, "0305c22305"),
        ({"answer_auth": ("pap",)}, "0305c22305", CONFIGURE_NAK, "0304c023"),
        ({"answer_auth": ()}, "0304c023", CONFIGURE_REJECT, "0304c023"),
        # a tiny MRU is Nak'd up to 128; zero magic is illegal
        ({}, "01040040", CONFIGURE_NAK, "01040080"),
        # unknown (Quality-Protocol, Callback, MRRU) and malformed options: rejected
        ({}, "0408c0250000000a0d0306110405dc", CONFIGURE_REJECT, None),
        ({}, "01030505040000", CONFIGURE_REJECT, None),
        # a reject wins over a nak
        ({}, "010400400d0306", CONFIGURE_REJECT, "0d0306"),
    ],
)
def test_lcp_answers(config: dict[str, Any], options: str, code: int, reply: str | None) -> None:
    table = lcp_table(**config)
    assert answer(table, options) == (code, reply if reply is not None else options)


def test_lcp_zero_or_own_magic_is_nakked_with_a_fresh_one() -> None:
    table = lcp_table()
    own = table.state.magic
    assert own is not None
    for peer in (0, own):
        code, data = answer(table, "0506" + peer.to_bytes(4, "big").hex())
        assert code == CONFIGURE_NAK
        suggested = int(data[4:], 16)
        assert suggested not in (0, own)
    # even after Max-Failure a Magic-Number is Nak'd, never rejected (RFC 1661 §6.4)
    code, _ = answer(table, "0506" + own.to_bytes(4, "big").hex(), exhausted=True)
    assert code == CONFIGURE_NAK
    assert answer(table, "01040040", exhausted=True)[0] == CONFIGURE_REJECT


def test_lcp_naks_and_rejects_of_our_request() -> None:
    table = lcp_table(mru=1400, authenticate_peer=("chap", "pap"))
    table.build_request()
    magic = table.state.magic
    # the peer wants a smaller MRU, more escaping, PAP instead of CHAP, a new magic number
    nak = bytes.fromhex("010405000206000a00000304c023050600000001")
    assert table.receive_nak(nak, treat_as_reject=False)
    state = table.state
    assert (state.mru, state.accm, state.auth_candidates[0]) == (1280, 0x000A0000, (0xC023, b""))
    assert state.magic not in (None, magic, 1)
    assert state.loops == 1
    table.build_request()
    # an MRU bigger than we can take: back to the default
    assert table.receive_nak(bytes.fromhex("01042000"), treat_as_reject=False)
    assert state.mru is None
    request = table.build_request()
    # the peer rejects PFC and ACFC: we stop asking
    assert table.receive_reject(b"\x07\x02\x08\x02")
    assert not state.pfc and not state.acfc
    assert b"\x07\x02" not in table.build_request() and request != table.request_data
    # rejecting authentication leaves us with nothing to authenticate with
    assert table.receive_reject(bytes.fromhex("0304c023"))
    assert state.auth_candidates == []


def test_lcp_auth_nak_for_a_method_we_do_not_allow_drops_to_the_next() -> None:
    table = lcp_table(authenticate_peer=("chap", "pap"))
    table.build_request()
    assert table.receive_nak(bytes.fromhex("0304c227"), treat_as_reject=False)  # EAP
    assert table.state.auth_candidates == [(0xC023, b"")]


def test_lcp_reset_goes_back_to_the_configuration() -> None:
    table = lcp_table(accm=0x000A0000)
    table.state.accm = DEFAULT_ACCM
    table.state.pfc = False
    table.reset()
    assert table.state.accm == 0x000A0000 and table.state.pfc
    assert table.acked_ours == {} and table.acked_peer == {}


# -- IPCP -----------------------------------------------------------------------------


def test_ipcp_host_request_and_the_nakked_answers() -> None:
    table = ipcp_table()
    assert table.build_request().hex() == "030600000000810600000000830600000000"
    nak = bytes.fromhex("03060a000002810608080808830601010101")
    assert table.receive_nak(nak, treat_as_reject=False)
    request = table.build_request()
    assert request == nak
    assert table.receive_ack(request)
    assert table.acked_ours[3] == IPv4Address("10.0.0.2")
    # a secondary DNS the peer does not have is rejected: we stop asking
    table = ipcp_table()
    table.build_request()
    assert table.receive_reject(bytes.fromhex("830600000000"))
    assert table.build_request().hex() == "030600000000810600000000"


def test_ipcp_host_refuses_what_it_cannot_give() -> None:
    table = ipcp_table()
    # the module announces its address: fine; it asks for VJ or for an address: no
    assert answer(table, "03060a400001") == (CONFIGURE_ACK, "03060a400001")
    assert answer(table, "0206002d0f01") == (CONFIGURE_REJECT, "0206002d0f01")
    assert answer(table, "030600000000") == (CONFIGURE_REJECT, "030600000000")
    assert answer(table, "810600000000") == (CONFIGURE_REJECT, "810600000000")


@pytest.mark.parametrize(
    ("request_hex", "code", "reply"),
    [
        # the host asks for everything: Nak'd with the assignment
        (
            "030600000000810600000000830600000000",
            CONFIGURE_NAK,
            "03060a40400281060a40003583060a400036",
        ),
        # the host wants another address: Nak'd too
        ("0306c0a80001", CONFIGURE_NAK, "03060a404002"),
        # the assignment itself: Ack
        (
            "03060a40400281060a40003583060a400036",
            CONFIGURE_ACK,
            "03060a40400281060a40003583060a400036",
        ),
        # no address option at all: we suggest one
        ("810600000000", CONFIGURE_NAK, "81060a40003503060a404002"),
        # Van Jacobson compression and NBNS are refused
        ("0206002d0f01", CONFIGURE_REJECT, "0206002d0f01"),
        ("820600000000", CONFIGURE_REJECT, "820600000000"),
    ],
)
def test_ipcp_module_assigns_from_its_pool(request_hex: str, code: int, reply: str) -> None:
    table = ipcp_table(
        local_address=IPv4Address("10.64.64.1"),
        peer_address=IPv4Address("10.64.64.2"),
        dns_servers=(IPv4Address("10.64.0.53"), IPv4Address("10.64.0.54")),
        request_dns=False,
        request_address=False,
    )
    assert table.build_request().hex() == "03060a404001"
    assert answer(table, request_hex) == (code, reply)


def test_ipcp_module_with_one_dns_server_rejects_the_secondary() -> None:
    table = ipcp_table(peer_address=IPv4Address("10.0.0.2"), dns_servers=(IPv4Address("9.9.9.9"),))
    code, data = answer(table, "03060a000002810600000000830600000000")
    assert (code, data) == (CONFIGURE_REJECT, "830600000000")


# -- IPV6CP -----------------------------------------------------------------------------


def test_ipv6cp_identifiers() -> None:
    table = ipv6cp_table()
    own = table.state.iid
    assert own is not None and own != ZERO_IID and not own[0] & 0x02
    assert table.build_request() == b"\x01\x0a" + own
    peer = bytes.fromhex("1122334455667788")
    assert answer(table, "010a" + peer.hex()) == (CONFIGURE_ACK, "010a" + peer.hex())
    for bad in (ZERO_IID, own):
        code, data = answer(table, "010a" + bad.hex())
        assert code == CONFIGURE_NAK
        suggested = bytes.fromhex(data[4:])
        assert suggested not in (ZERO_IID, own)
    assert answer(table, "0204004f")[0] == CONFIGURE_REJECT  # header compression


def test_ipv6cp_module_hands_out_the_assigned_identifier() -> None:
    assigned = bytes.fromhex("90a15cfc3cc97301")
    table = ipv6cp_table(peer_interface_id=assigned)
    for asked in (ZERO_IID, bytes.fromhex("1122334455667788")):
        assert answer(table, "010a" + asked.hex()) == (CONFIGURE_NAK, "010a" + assigned.hex())
    assert answer(table, "010a" + assigned.hex())[0] == CONFIGURE_ACK
    assert answer(table, "") == (CONFIGURE_NAK, "010a" + assigned.hex())


def test_ipv6cp_host_takes_the_nakked_identifier() -> None:
    table = ipv6cp_table(interface_id=ZERO_IID)
    assert table.build_request() == b"\x01\x0a" + ZERO_IID
    assert table.receive_nak(bytes.fromhex("010a90a15cfc3cc97301"), treat_as_reject=False)
    assert table.state.iid == bytes.fromhex("90a15cfc3cc97301")
    # a Nak proposing zero gets us a random identifier of our own
    table.build_request()
    assert table.receive_nak(b"\x01\x0a" + ZERO_IID, treat_as_reject=False)
    assert table.state.iid not in (ZERO_IID, bytes.fromhex("90a15cfc3cc97301"))


def test_ipv6cp_helpers() -> None:
    rng = random.Random(3)
    avoid = random_interface_id(random.Random(3))
    assert random_interface_id(rng, avoid) != avoid
    assert str(link_local_address(bytes.fromhex("0000000000000001"))) == "fe80::1"
    with pytest.raises(ValueError):
        Ipv6cpConfig(interface_id=b"short")
