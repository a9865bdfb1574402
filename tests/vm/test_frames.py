"""The VM tests' own PPP framing helpers, checked against RFC values and larappp's codec."""

from __future__ import annotations

import ipaddress

from larappp.proto.hdlc import HdlcEncoder
from tests.vm.frames import (
    PROTO_IP,
    PROTO_LCP,
    ControlPacket,
    Deframer,
    Frame,
    encode_frame,
    fcs16,
    icmp_echo_request,
    option,
    parse_icmp,
)

# pppd's first Configure-Request as it arrives from the VM (asyncmap 0, magic, pcomp, accomp)
PPPD_CONF_REQ = bytes.fromhex(
    "7e ff 7d 23 c0 21 7d 21 7d 21 7d 20 7d 34 7d 22 7d 26 7d 20 7d 20 7d 20 7d 20"
    " 7d 25 7d 26 ad 21 d7 c2 7d 27 7d 22 7d 28 7d 22 5b 2e 7e"
)


def _feed(data: bytes, byte_by_byte: bool) -> tuple[list[Frame], Deframer]:
    deframer = Deframer()
    if not byte_by_byte:
        return deframer.feed(data), deframer
    frames: list[Frame] = []
    for index in range(len(data)):
        frames += deframer.feed(data[index : index + 1])
    return frames, deframer


def test_fcs16_check_value() -> None:
    assert fcs16(b"123456789") ^ 0xFFFF == 0x906E  # RFC 1662 §C.2 check value


def test_deframer_reads_a_real_pppd_frame_whole_and_byte_by_byte() -> None:
    for byte_by_byte in (False, True):
        frames, deframer = _feed(PPPD_CONF_REQ * 2, byte_by_byte)
        assert deframer.bad_fcs == 0 and len(frames) == 2
        packet = ControlPacket.parse(frames[0].payload)
        assert frames[0].protocol == PROTO_LCP and packet.code == 1
        assert packet.options() == {2: bytes(4), 5: bytes.fromhex("ad21d7c2"), 7: b"", 8: b""}


def test_encoder_agrees_with_larappp_hdlc_and_survives_damage() -> None:
    packet = ControlPacket(1, 7, option(2, bytes(4)) + option(5, b"\x7d\x7e\x11\x13")).encode()
    ours = encode_frame(PROTO_LCP, packet)
    assert ours == HdlcEncoder(0xFFFFFFFF).encode(b"\xff\x03\xc0\x21" + packet)
    damaged = bytearray(ours)
    damaged[10] ^= 0x01
    for byte_by_byte in (False, True):
        frames, deframer = _feed(bytes(damaged) + ours, byte_by_byte)
        assert [f.payload for f in frames] == [packet] and deframer.bad_fcs == 1


def test_deframer_undoes_address_and_protocol_compression() -> None:
    ip = icmp_echo_request(bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), 1, 1, b"x")
    body = b"\x21" + ip  # ACFC and PFC: no ff 03, one-octet protocol
    wire = encode_frame(PROTO_IP, ip)
    (full,) = Deframer().feed(wire)
    stuffed = HdlcEncoder(0).encode(body)
    for byte_by_byte in (False, True):
        (compressed,), _ = _feed(stuffed, byte_by_byte)
        assert compressed == full == Frame(PROTO_IP, ip)


def test_icmp_echo_builder_and_parser_round_trip() -> None:
    source, destination = (ipaddress.IPv4Address(a).packed for a in ("10.64.0.2", "10.64.0.1"))
    packet = icmp_echo_request(source, destination, 0x4C50, 3, b"payload")
    echo = parse_icmp(packet)
    assert echo is not None
    assert (echo.icmp_type, echo.ident, echo.seq, echo.data) == (8, 0x4C50, 3, b"payload")
    assert parse_icmp(packet[:-1] + b"\x00") is None  # bad ICMP checksum
