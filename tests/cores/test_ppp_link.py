"""PppLink on its own: scripted peer packets, odd codes, Protocol-Rejects, config, fuzzing."""

from __future__ import annotations

import random
from dataclasses import replace
from ipaddress import IPv4Address
from typing import get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from larappp.errors import ConfigError
from larappp.proto.hdlc import HdlcDecoder, HdlcEncoder
from larappp.proto.ppp import frame
from larappp.proto.ppp.config import LinkConfig
from larappp.proto.ppp.events import (
    IpcpOpened,
    Ipv6cpOpened,
    LinkEvent,
    LinkTerminated,
    LinkWentDown,
    NetworkProtocolClosed,
    ProtocolRejected,
)
from larappp.proto.ppp.fsm import State, control_packet, parse_control_packet
from larappp.proto.ppp.lcp import ECHO_INTERVAL
from larappp.proto.ppp.link import Phase, PppLink

HOST = LinkConfig(username="alice", password="s3cret-pw")
MODULE = LinkConfig(
    authenticate_peer=("pap",),
    secret_for={"alice": "s3cret-pw"}.get,
    ipv4_address=IPv4Address("10.64.64.1"),
    ipv4_peer_address=IPv4Address("10.64.64.2"),
    dns_servers=(IPv4Address("10.64.0.53"),),
)
ENCODER = HdlcEncoder()  # the default ACCM: decodable whatever was negotiated


def wire(protocol: int, info: bytes) -> bytes:
    return ENCODER.encode(frame.build_frame(protocol, info))


def feed(link: PppLink, data: bytes, byte_by_byte: bool, now: float = 0.0) -> None:
    if byte_by_byte:
        for index in range(len(data)):
            link.receive_data(data[index : index + 1], now)
    else:
        link.receive_data(data, now)


def drain(link: PppLink) -> list[LinkEvent]:
    events = []
    while (event := link.next_event()) is not None:
        events.append(event)
    return events


def sent_frames(link: PppLink) -> list[tuple[int, bytes]]:
    return [frame.split_protocol(f) for f in HdlcDecoder(0).receive_data(link.data_to_send())]


def opened_pair(
    host_config: LinkConfig = HOST, module_config: LinkConfig = MODULE
) -> tuple[PppLink, PppLink]:
    host = PppLink("host", host_config, 0.0, random.Random(1))
    module = PppLink("module", module_config, 0.0, random.Random(2))
    host.open(0.0)
    module.open(0.0)
    for _ in range(50):
        to_module, to_host = host.data_to_send(), module.data_to_send()
        if not to_module and not to_host:
            break
        module.receive_data(to_module)
        host.receive_data(to_host)
    assert host.phase is Phase.NETWORK and module.phase is Phase.NETWORK
    drain(host)
    drain(module)
    return host, module


BOTH = pytest.mark.parametrize("byte_by_byte", [False, True], ids=["whole", "bytewise"])


# -- LCP codes beyond negotiation ------------------------------------------------------


@BOTH
def test_echo_request_is_answered_with_our_magic(byte_by_byte: bool) -> None:
    host, _ = opened_pair()
    feed(host, wire(frame.LCP, control_packet(9, 0x42, b"\x01\x02\x03\x04payload")), byte_by_byte)
    ((protocol, info),) = sent_frames(host)
    assert protocol == frame.LCP
    assert info == control_packet(10, 0x42, host.lcp.magic.to_bytes(4, "big") + b"payload")


@BOTH
def test_discard_identification_and_unknown_codes(byte_by_byte: bool) -> None:
    host, _ = opened_pair()
    for code in (11, 12, 13):  # Discard-Request, Identification, Time-Remaining
        feed(host, wire(frame.LCP, control_packet(code, 1, b"\x00\x00\x00\x00hi")), byte_by_byte)
    assert sent_frames(host) == []
    odd = control_packet(0x30, 9, b"what")
    feed(host, wire(frame.LCP, odd), byte_by_byte)
    ((protocol, info),) = sent_frames(host)
    parsed = parse_control_packet(info)
    assert protocol == frame.LCP and parsed is not None
    assert parsed[0] == 7 and parsed[2] == odd
    assert host.lcp.state is State.OPENED and drain(host) == []


@BOTH
def test_code_reject_of_echo_stops_the_keepalive(byte_by_byte: bool) -> None:
    host, _ = opened_pair()
    assert host.get_timer() == ECHO_INTERVAL  # the first echo went out at once, answered
    host.handle_timer(ECHO_INTERVAL)
    ((_, echo),) = sent_frames(host)
    assert echo[0] == 9
    feed(host, wire(frame.LCP, control_packet(7, 3, echo)), byte_by_byte, ECHO_INTERVAL + 1)
    assert host.get_timer() is None
    assert host.lcp.state is State.OPENED


@BOTH
def test_protocol_reject_of_ipcp_leaves_an_ipv6_only_link(byte_by_byte: bool) -> None:
    host, _ = opened_pair()
    reject = control_packet(8, 5, frame.IPCP.to_bytes(2, "big") + b"\x01\x01\x00\x04")
    feed(host, wire(frame.LCP, reject), byte_by_byte, 1.0)
    events = drain(host)
    assert events[0] == ProtocolRejected(frame.IPCP, "IPCP")
    assert isinstance(events[1], NetworkProtocolClosed) and events[1].protocol == "IPCP"
    assert not host.is_open(4) and host.is_open(6)
    assert host.phase is Phase.NETWORK
    assert not host.send_packet(4, b"\x45" + bytes(19))
    assert host.send_packet(6, b"\x60" + bytes(39))


@BOTH
def test_protocol_reject_of_every_ncp_closes_the_link(byte_by_byte: bool) -> None:
    host, _ = opened_pair()
    for protocol in (frame.IPCP, frame.IPV6):
        reject = control_packet(8, 5, protocol.to_bytes(2, "big"))
        feed(host, wire(frame.LCP, reject), byte_by_byte, 1.0)
    host.handle_timer(4.0)
    host.handle_timer(7.0)
    events = drain(host)
    terminated = events[-1]
    assert isinstance(terminated, LinkTerminated)
    assert terminated.reason.startswith("no network protocol is left running")


@BOTH
def test_protocol_reject_of_lcp_is_catastrophic(byte_by_byte: bool) -> None:
    host, _ = opened_pair()
    feed(host, wire(frame.LCP, control_packet(8, 5, b"\xc0\x21")), byte_by_byte, 1.0)
    assert host.lcp.state is State.STOPPING
    host.handle_timer(4.0)
    host.handle_timer(7.0)
    assert drain(host)[-1] == LinkTerminated("LCP: the peer rejected LCP itself")


@BOTH
def test_peer_renegotiation_takes_the_network_down_and_up(byte_by_byte: bool) -> None:
    host, module = opened_pair()
    # make the module renegotiate: an empty request in Opened is tld, scr, sca (RFC 1661)
    module.lcp.receive_packet(control_packet(1, 200, b""), 1.0)
    to_host = module.data_to_send()
    feed(host, to_host, byte_by_byte, 1.0)
    for _ in range(50):
        to_module, to_host = host.data_to_send(), module.data_to_send()
        if not to_module and not to_host:
            break
        feed(module, to_module, False, 1.0)
        feed(host, to_host, byte_by_byte, 1.0)
    kinds = [type(e).__name__ for e in drain(host)]
    assert kinds[0] == "LinkWentDown"
    assert kinds.count("NetworkProtocolClosed") == 2
    assert "IpcpOpened" in kinds and "Ipv6cpOpened" in kinds
    assert host.is_open(4) and host.is_open(6)


# -- NCP edge cases ----------------------------------------------------------------------


@BOTH
def test_ncp_packets_before_the_network_phase_are_discarded(byte_by_byte: bool) -> None:
    host = PppLink("host", HOST, 0.0, random.Random(1))
    host.open(0.0)
    host.data_to_send()
    feed(host, wire(frame.IPCP, control_packet(1, 1, b"")), byte_by_byte)
    feed(host, wire(frame.IPV4, b"\x45" + bytes(19)), byte_by_byte)
    feed(host, wire(frame.CCP, control_packet(1, 1, b"")), byte_by_byte)  # not even rejected
    assert host.data_to_send() == b"" and drain(host) == []


@BOTH
def test_ipcp_without_an_address_for_the_host(byte_by_byte: bool) -> None:
    # a peer that acknowledges our 0.0.0.0 instead of giving an address: IPCP closes
    host = PppLink("host", replace(HOST, ipv6=False), 0.0, random.Random(5))
    host.open(0.0)
    lcp_request = next(i for p, i in sent_frames(host) if p == frame.LCP)
    feed(host, wire(frame.LCP, control_packet(2, lcp_request[1], lcp_request[4:])), byte_by_byte)
    feed(host, wire(frame.LCP, control_packet(1, 1, b"")), byte_by_byte)
    frames = sent_frames(host)
    ipcp_request = next(i for p, i in frames if p == frame.IPCP)
    feed(host, wire(frame.IPCP, control_packet(1, 1, b"")), byte_by_byte)
    feed(host, wire(frame.IPCP, control_packet(2, ipcp_request[1], ipcp_request[4:])), byte_by_byte)
    events = drain(host)
    assert not any(isinstance(e, IpcpOpened) for e in events)
    assert host.ipcp is not None and host.ipcp.state is State.CLOSING
    assert host.ipcp.reason == "IPCP: the peer did not give us an IPv4 address"
    # with no other network protocol the link ends, saying why
    for now in (3.0, 6.0, 9.0, 12.0):
        host.handle_timer(now)
    terminated = drain(host)[-1]
    assert isinstance(terminated, LinkTerminated)
    assert "did not give us an IPv4 address" in terminated.reason


@BOTH
def test_ipv4_only_host_protocol_rejects_ipv6cp(byte_by_byte: bool) -> None:
    host, _ = opened_pair(host_config=replace(HOST, ipv6=False))
    before = host.stats.protocol_rejects_sent  # the module's own IPV6CP request, while opening
    feed(
        host,
        wire(frame.IPV6CP, control_packet(1, 1, b"\x01\x0a" + bytes(7) + b"\x01")),
        byte_by_byte,
    )
    ((protocol, info),) = sent_frames(host)
    assert protocol == frame.LCP and info[0] == 8 and info[4:6] == b"\x80\x57"
    assert host.stats.protocol_rejects_sent == before + 1 == 2


@BOTH
def test_damaged_frames_are_counted(byte_by_byte: bool) -> None:
    host, _ = opened_pair()
    good = wire(frame.IPV4, b"\x45" + bytes(19))
    damaged = bytearray(good)
    damaged[8] ^= 0xFF
    malformed = ENCODER.encode(b"\xff\x03\xc0\x20\x01\x02")  # an even protocol field
    feed(host, bytes(damaged) + good + malformed + b"\x7e\xff\x03\x7e", byte_by_byte)
    events = drain(host)
    assert len(events) == 1 and host.stats.packets_received == 1
    assert host.decoder.bad_fcs == 1 and host.decoder.too_short == 1
    assert host.stats.bad_frames == 1


# -- configuration --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"mru": 64}, "mru must be between 128 and 65535"),
        ({"accm": -1}, "accm must be a 32-bit value"),
        ({"answer_auth": ("mschap",)}, "'mschap' is not 'chap' or 'pap'"),
        ({"authenticate_peer": ("pap",)}, "needs secret_for"),
        ({"ipv4": False, "ipv6": False}, "enable at least one"),
        ({"dns_servers": (IPv4Address("1.1.1.1"),) * 3}, "at most 2 DNS servers"),
        ({"ipv6_interface_id": b"\x01"}, "ipv6_interface_id must be 8 octets"),
        ({"restart_interval": 0}, "must be > 0"),
        ({"echo_interval": -1.0}, "echo_interval must be positive"),
    ],
)
def test_config_errors_name_the_setting(kwargs: dict[str, object], text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        LinkConfig(**kwargs)  # type: ignore[arg-type]
    assert text in str(caught.value)
    assert caught.value.exit_code == 2


def test_role_errors() -> None:
    with pytest.raises(ConfigError, match="role must be 'host' or 'module'"):
        PppLink("router", HOST)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="needs ipv4_peer_address"):
        PppLink("module", LinkConfig())
    PppLink("module", LinkConfig(ipv4=False))  # an IPv6-only module needs no pool


def test_secrets_stay_out_of_reprs() -> None:
    config = LinkConfig(username="alice", password="s3cret-pw")
    assert "s3cret" not in repr(config) and "s3cret" not in str(config)
    host, module = opened_pair()
    assert "s3cret" not in repr(host.config)
    assert "s3cret" not in repr(host._auth) + repr(module._auth)


# -- fuzzing ------------------------------------------------------------------------------

PROTOCOLS = [frame.LCP, frame.PAP, frame.CHAP, frame.IPCP, frame.IPV6CP, frame.IPV4, frame.IPV6,
             frame.CCP, frame.VJ_COMPRESSED, 0x8207, 0xC025]  # fmt: skip


def packet_strategy() -> st.SearchStrategy[bytes]:
    control = st.builds(
        lambda code, ident, data, pad, bad_length: (
            bytes((code, ident))
            + ((len(data) + 4 + bad_length) & 0xFFFF).to_bytes(2, "big")
            + data
            + pad
        ),
        st.integers(0, 15),
        st.integers(0, 255),
        st.binary(max_size=80),
        st.binary(max_size=3),
        st.sampled_from([0, 0, 0, 1, -1, 200]),
    )
    return st.one_of(control, st.binary(max_size=40))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.sampled_from(PROTOCOLS), packet_strategy()), max_size=25),
    st.booleans(),
    st.sampled_from(["host", "module"]),
)
def test_fuzzed_frames_never_break_an_opened_link(
    frames: list[tuple[int, bytes]], byte_by_byte: bool, side: str
) -> None:
    host, module = opened_pair()
    link = host if side == "host" else module
    data = b"".join(wire(protocol, packet) for protocol, packet in frames)
    feed(link, data, byte_by_byte, 1.0)
    now = 1.0
    for _ in range(10):
        deadline = link.get_timer()
        if deadline is None:
            break
        now = max(now, deadline)
        link.handle_timer(now)
    HdlcDecoder(0).receive_data(link.data_to_send())
    for event in drain(link):
        assert isinstance(event, get_args(LinkEvent))


@settings(max_examples=80, deadline=None)
@given(st.binary(max_size=600), st.booleans())
def test_random_octets_never_break_a_negotiating_link(data: bytes, byte_by_byte: bool) -> None:
    link = PppLink("host", HOST, 0.0, random.Random(1))
    link.open(0.0)
    feed(link, data, byte_by_byte)
    feed(link, b"\x7e" + data + b"\x7e", False)
    assert link.lcp.state in (State.REQ_SENT, State.ACK_SENT, State.ACK_RCVD)
    drain(link)


def test_event_types_are_frozen_and_past_tense() -> None:
    host, _ = opened_pair()
    event = Ipv6cpOpened(b"\x00" * 8, None)
    with pytest.raises(AttributeError):
        event.local_iid = b"x"  # type: ignore[misc]
    assert LinkWentDown("x").reason == "x"
    assert host.phase is Phase.NETWORK
