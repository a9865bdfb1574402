"""RFC 1662 framing: FCS-16, stuffing with ACCMs, frame splitting, damaged input."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from larappp.proto.hdlc import (
    DEFAULT_ACCM,
    FCS_GOOD,
    HdlcDecoder,
    HdlcEncoder,
    accm_characters,
    append_fcs,
    fcs16,
)
from larappp.proto.ppp.frame import (
    CCP,
    IPCP,
    IPV4,
    LCP,
    build_frame,
    frame_header,
    protocol_name,
    split_protocol,
)


def reference_fcs(data: bytes, fcs: int = 0xFFFF) -> int:
    """Bit-serial FCS-16 straight from RFC 1662 §C.1 (slow, obviously right)."""
    for octet in data:
        fcs ^= octet
        for _ in range(8):
            fcs = (fcs >> 1) ^ 0x8408 if fcs & 1 else fcs >> 1
    return fcs


def reference_stuff(frame: bytes, accm: int) -> bytes:
    """Per-octet stuffing as RFC 1662 §4.2 describes it."""
    out = bytearray()
    for octet in append_fcs(frame):
        if octet in (0x7D, 0x7E) or (octet < 0x20 and accm >> octet & 1):
            out += bytes((0x7D, octet ^ 0x20))
        else:
            out.append(octet)
    return bytes(out)


def feed(decoder: HdlcDecoder, data: bytes, byte_by_byte: bool) -> list[bytes]:
    if not byte_by_byte:
        return decoder.receive_data(data)
    frames: list[bytes] = []
    for index in range(len(data)):
        frames.extend(decoder.receive_data(data[index : index + 1]))
    return frames


BOTH = pytest.mark.parametrize("byte_by_byte", [False, True], ids=["whole", "bytewise"])


# -- FCS ------------------------------------------------------------------------------


def test_fcs_check_value_and_good_residue() -> None:
    assert fcs16(b"123456789") ^ 0xFFFF == 0x906E  # CRC-16/X-25 check value
    assert reference_fcs(b"123456789") ^ 0xFFFF == 0x906E
    assert fcs16(append_fcs(b"123456789")) == FCS_GOOD == 0xF0B8
    assert append_fcs(b"123456789")[-2:] == b"\x6e\x90"  # least significant octet first


@given(st.binary(max_size=300), st.integers(0, 0xFFFF))
def test_fcs_matches_the_bit_serial_reference(data: bytes, initial: int) -> None:
    assert fcs16(data, initial) == reference_fcs(data, initial)


@given(st.binary(max_size=200), st.binary(max_size=200))
def test_fcs_can_be_continued(first: bytes, second: bytes) -> None:
    assert fcs16(second, fcs16(first)) == fcs16(first + second)


@given(st.binary(min_size=1, max_size=200))
def test_good_residue_over_any_frame(data: bytes) -> None:
    assert fcs16(append_fcs(data)) == FCS_GOOD


# -- encoding -------------------------------------------------------------------------


def test_accm_characters() -> None:
    assert accm_characters(0) == b""
    assert accm_characters(DEFAULT_ACCM) == bytes(range(32))
    assert accm_characters(0x000A0000) == b"\x11\x13"  # XON, XOFF
    with pytest.raises(ValueError):
        accm_characters(1 << 32)


@given(st.binary(max_size=400), st.integers(0, 0xFFFFFFFF))
def test_stuffing_matches_the_per_octet_reference(frame: bytes, accm: int) -> None:
    encoder = HdlcEncoder(accm)
    stuffed = encoder.stuff(frame)
    assert stuffed == reference_stuff(frame, accm)
    assert b"\x7e" not in stuffed
    assert not any(octet < 0x20 and accm >> octet & 1 for octet in stuffed)
    assert encoder.encode(frame) == b"\x7e" + stuffed + b"\x7e"


def test_lcp_configure_request_on_the_wire() -> None:
    # an LCP Configure-Request with ACCM 0 and a Magic-Number, default ACCM: every control
    # character and both specials escaped
    frame = b"\xff\x03\xc0\x21\x01\x01\x00\x0e\x02\x06\x00\x00\x00\x00\x05\x06\x12\x7e\x7d\x01"
    wire = HdlcEncoder().encode(frame)
    assert wire.startswith(b"\x7e\xff\x7d\x23\xc0\x21\x7d\x21\x7d\x21\x7d\x20\x7d\x2e")
    assert b"\x7d\x5e\x7d\x5d\x7d\x21" in wire  # 7E 7D 01 of the magic, escaped
    assert HdlcDecoder().receive_data(wire) == [frame]


def test_encode_many_shares_flags() -> None:
    encoder = HdlcEncoder(0)
    frames = [b"\xff\x03\x00\x21abc", b"\xff\x03\x00\x57defg"]
    wire = encoder.encode_many(frames)
    assert wire.count(b"\x7e") == 3
    assert HdlcDecoder(0).receive_data(wire) == frames
    assert encoder.encode_many([]) == b""


# -- decoding -------------------------------------------------------------------------


@settings(max_examples=150)
@given(
    st.lists(st.binary(min_size=2, max_size=300), min_size=1, max_size=6),
    st.integers(0, 0xFFFFFFFF),
    st.randoms(use_true_random=False),
)
def test_round_trip_random_accm_and_chunking(
    frames: list[bytes], accm: int, rng: random.Random
) -> None:
    encoder = HdlcEncoder(accm)
    wire = b"".join(encoder.encode(frame) for frame in frames)
    # whole
    assert HdlcDecoder(accm).receive_data(wire) == frames
    # random chunks
    decoder = HdlcDecoder(accm)
    got: list[bytes] = []
    offset = 0
    while offset < len(wire):
        size = rng.randint(1, 64)
        got.extend(decoder.receive_data(wire[offset : offset + size]))
        offset += size
    assert got == frames
    # byte by byte
    assert feed(HdlcDecoder(accm), wire, byte_by_byte=True) == frames
    assert decoder.bad_fcs == decoder.too_short == decoder.aborted == 0


@settings(max_examples=300)
@given(st.binary(min_size=2, max_size=300), st.data())
def test_a_sender_may_escape_any_octet(frame: bytes, data: st.DataObject) -> None:
    """RFC 1662 §4.2 lets a sender escape octets beyond its ACCM (0x5D among them, which
    gives 7D 7D; never 0x5E, which would give the flag): whichever are escaped, the frame
    decodes, at ACCM 0 as at any other."""
    fcs_framed = append_fcs(frame)
    escaped = data.draw(st.sets(st.integers(0, len(fcs_framed) - 1)))
    out = bytearray()
    for index, octet in enumerate(fcs_framed):
        if octet in (0x7D, 0x7E) or (index in escaped and octet != 0x5E):
            out += bytes((0x7D, octet ^ 0x20))
        else:
            out.append(octet)
    wire = b"\x7e" + bytes(out) + b"\x7e"
    assert HdlcDecoder(0).receive_data(wire) == [frame]
    assert feed(HdlcDecoder(0), wire, byte_by_byte=True) == [frame]


def test_split_at_every_byte_boundary() -> None:
    encoder = HdlcEncoder(DEFAULT_ACCM)
    frames = [bytes(range(256)), b"\x7e\x7d\x7d\x7e\x11\x13", b"\xff\x03\xc0\x21\x09\x01\x00\x08"]
    wire = encoder.encode_many(frames)
    for cut in range(len(wire) + 1):
        decoder = HdlcDecoder(DEFAULT_ACCM)
        got = decoder.receive_data(wire[:cut]) + decoder.receive_data(wire[cut:])
        assert got == frames, cut


@BOTH
def test_garbage_before_and_between_frames(byte_by_byte: bool) -> None:
    encoder = HdlcEncoder(0)
    one, two = b"\xff\x03\x00\x21" + bytes(40), b"\xff\x03\x00\x57" + bytes(60)
    wire = (
        b"\r\nCONNECT 150000000\r\n"  # what the AT side left behind: before any flag
        + encoder.encode(one)
        + b"line noise\x00\x01"  # between two flags: not a frame
        + encoder.encode(two)
        + b"\x7e\x7e\x7e"  # idle flags
    )
    decoder = HdlcDecoder(0)
    assert feed(decoder, wire, byte_by_byte) == [one, two]
    assert decoder.garbage_bytes == len(b"\r\nCONNECT 150000000\r\n")
    assert decoder.bad_fcs == 1
    assert decoder.frames == 2


@BOTH
def test_bad_fcs_is_counted_and_dropped(byte_by_byte: bool) -> None:
    encoder = HdlcEncoder(0)
    good = b"\xff\x03\x00\x21hello"
    damaged = bytearray(encoder.encode(good))
    damaged[6] ^= 0x01
    decoder = HdlcDecoder(0)
    assert feed(decoder, bytes(damaged) + encoder.encode(good), byte_by_byte) == [good]
    assert decoder.bad_fcs == 1


@BOTH
def test_truncated_frames(byte_by_byte: bool) -> None:
    encoder = HdlcEncoder(0)
    good = b"\xff\x03\x00\x21" + bytes(range(30))
    wire = encoder.encode(good)
    decoder = HdlcDecoder(0)
    stream = wire[:20] + b"\x7e" + b"\x7e\x21\x7e" + wire
    assert feed(decoder, stream, byte_by_byte) == [good]
    assert decoder.bad_fcs == 1  # the first 19 octets of a frame
    assert decoder.too_short == 1  # a lone 0x21


@BOTH
def test_abort_sequence(byte_by_byte: bool) -> None:
    encoder = HdlcEncoder(0)
    good = b"\xff\x03\x00\x21abcdef"
    stream = b"\x7e\xff\x03\x00\x21ab\x7d\x7e" + encoder.encode(good)  # RFC 1662 §4.2 abort
    decoder = HdlcDecoder(0)
    assert feed(decoder, stream, byte_by_byte) == [good]
    assert decoder.aborted == 1


def test_escaped_escape_followed_by_escape() -> None:
    # "7D 7D" is a legal (if unusual) way to send 0x5D; the escape after it must still count
    frame = b"\xff\x03\x00\x21\x5d\x7d\x41"
    stuffed = HdlcEncoder(0).stuff(frame)
    assert stuffed[4:7] == b"\x5d\x7d\x5d"
    body = stuffed[:4] + b"\x7d\x7d" + stuffed[5:]
    decoder = HdlcDecoder(0)
    assert decoder.receive_data(b"\x7e" + body + b"\x7e") == [frame]
    assert decoder.receive_data(b"\x7e\xff\x7d\x7d\x7d\x7e") == []  # ends in a live escape
    assert decoder.aborted == 1


@BOTH
def test_max_frame_length_guard(byte_by_byte: bool) -> None:
    encoder = HdlcEncoder(0)
    good = b"\xff\x03\x00\x21" + bytes(100)
    decoder = HdlcDecoder(0, max_frame_length=200)
    big = encoder.encode(b"\xff\x03\x00\x21" + bytes(300))
    endless = b"\x7e" + b"\x55" * 1000  # no closing flag for a long time
    got = feed(decoder, big + endless + encoder.encode(good), byte_by_byte)
    assert got == [good]
    assert decoder.too_long == 2
    if byte_by_byte:  # the flagless run overflowed the buffer and was thrown away
        assert decoder.garbage_bytes > 0


def test_receive_accm_drops_unescaped_control_characters() -> None:
    # RFC 1662 §7.1: characters in the receive ACCM that arrive unescaped were inserted
    # by the line (XON/XOFF) and are dropped
    frame = b"\xff\x03\x00\x21\x11\x13data"
    wire = HdlcEncoder(DEFAULT_ACCM).encode(frame)
    with_xon = wire[:5] + b"\x11" + wire[5:-1] + b"\x13\x7e"
    assert HdlcDecoder(0x000A0000).receive_data(with_xon) == [frame]
    decoder = HdlcDecoder(0)
    decoder.accm = 0x000A0000
    assert decoder.accm == 0x000A0000
    assert decoder.receive_data(with_xon) == [frame]


def test_frames_in_flight_across_an_accm_switch_still_decode() -> None:
    # LCP just opened: the peer already sends with ACCM 0 (raw control characters) while
    # our decoder still has the default ACCM. The FCS shows those characters are data.
    frame = b"\xff\x03\xc0\x23\x01\x01\x00\x06\x00\x00"
    decoder = HdlcDecoder(DEFAULT_ACCM)
    assert decoder.receive_data(HdlcEncoder(0).encode(frame)) == [frame]
    assert decoder.bad_fcs == 0


def test_decoder_rejects_silly_limits() -> None:
    with pytest.raises(ValueError):
        HdlcDecoder(0, max_frame_length=2)


# -- address/control and protocol fields --------------------------------------------


@pytest.mark.parametrize(
    ("frame", "protocol", "info"),
    [
        (b"\xff\x03\xc0\x21\x01", LCP, b"\x01"),
        (b"\xc0\x21\x01", LCP, b"\x01"),  # ACFC
        (b"\xff\x03\x21E", IPV4, b"E"),  # PFC
        (b"\x21E", IPV4, b"E"),  # ACFC and PFC
        (b"\x00\x21E", IPV4, b"E"),
        (b"\xff\x03\x80\x21", IPCP, b""),
    ],
)
def test_split_protocol_tolerates_compressed_forms(
    frame: bytes, protocol: int, info: bytes
) -> None:
    assert split_protocol(frame) == (protocol, info)


@pytest.mark.parametrize("frame", [b"", b"\xff\x03", b"\xc0", b"\xc0\x20\x01", b"\xff\x03\x00"])
def test_split_protocol_refuses_malformed_fields(frame: bytes) -> None:
    with pytest.raises(ValueError):
        split_protocol(frame)


def test_build_frame() -> None:
    assert build_frame(IPV4, b"E") == b"\xff\x03\x00\x21E"
    assert build_frame(IPV4, b"E", acfc=True, pfc=True) == b"\x21E"
    assert build_frame(IPCP, b"x", acfc=True, pfc=True) == b"\x80\x21x"  # too big for PFC
    assert frame_header(LCP) == b"\xff\x03\xc0\x21"
    for bad in (0, 0x0020, 0x0121, 0x10000):
        with pytest.raises(ValueError):
            frame_header(bad)
    assert protocol_name(CCP) == "CCP"
    assert protocol_name(0x1234 | 1) == "protocol 0x1235"
