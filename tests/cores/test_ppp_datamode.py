"""DataModeWatcher: the module's result codes outside PPP frames, never inside them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from larappp.proto.hdlc import HdlcEncoder
from larappp.proto.ppp import frame
from larappp.proto.ppp.datamode import DataModeWatcher

BOTH = pytest.mark.parametrize("byte_by_byte", [False, True], ids=["whole", "bytewise"])
CLEAN = HdlcEncoder(0)  # ACCM 0, as agreed on a clean line: CR and LF travel unescaped


def watch(data: bytes, byte_by_byte: bool, watcher: DataModeWatcher | None = None) -> list[str]:
    watcher = watcher if watcher is not None else DataModeWatcher()
    chunks = [data[i : i + 1] for i in range(len(data))] if byte_by_byte else [data]
    found = [result for chunk in chunks if (result := watcher.receive_data(chunk)) is not None]
    assert watcher.result == (found[0] if found else None)
    return found


def ip_frame(payload: bytes, acfc: bool = True, pfc: bool = True) -> bytes:
    return CLEAN.encode(frame.build_frame(frame.IPV4, payload, acfc, pfc))


FRAMES = ip_frame(b"E\x00hello") + ip_frame(b"E\x00world")


@BOTH
@pytest.mark.parametrize(
    "result", ["NO CARRIER", "ERROR", "OK", "+CME ERROR: 3", "NO ANSWER", "BUSY"]
)
def test_result_code_after_the_last_frame(byte_by_byte: bool, result: str) -> None:
    data = FRAMES + b"\r\n" + result.encode() + b"\r\n"
    assert watch(data, byte_by_byte) == [result]


@BOTH
def test_result_code_between_frames_with_shared_flags(byte_by_byte: bool) -> None:
    # the module's own frames echoed on its command line follow (echo on, command mode)
    data = FRAMES + b"\r\nNO CARRIER\r\n" + FRAMES
    assert watch(data, byte_by_byte) == ["NO CARRIER"]


@BOTH
def test_result_code_instead_of_any_frame(byte_by_byte: bool) -> None:
    # right after CONNECT the call is already gone: no flag ever arrives
    assert watch(b"\r\nNO CARRIER\r\n", byte_by_byte) == ["NO CARRIER"]


@BOTH
def test_result_code_after_inter_frame_fill(byte_by_byte: bool) -> None:
    assert watch(FRAMES + b"\x7e\x7e\x7e\r\nERROR\r\n", byte_by_byte) == ["ERROR"]


@BOTH
def test_only_the_first_result_is_reported(byte_by_byte: bool) -> None:
    watcher = DataModeWatcher()
    assert watch(FRAMES + b"\r\nNO CARRIER\r\n", byte_by_byte, watcher) == ["NO CARRIER"]
    assert watcher.receive_data(b"\r\nOK\r\n") is None
    assert watcher.result == "NO CARRIER"


@BOTH
@pytest.mark.parametrize(
    "outside",
    [
        b"\r\nCONNECT 150000000\r\n",  # a new call's intermediate code: not an end
        b"\r\nRING\r\n",
        b"\r\n+CGEV: NW DEACT 1\r\n",  # unsolicited, not a result code
        b"\r\nNO CARRIER",  # incomplete: no CR LF after it yet
        b"NO CARRIER\r\n",  # no CR LF before it: not V.250 framing
        b"\r\nNO CARRIERS\r\n",
    ],
)
def test_what_is_not_a_final_result(byte_by_byte: bool, outside: bytes) -> None:
    assert watch(FRAMES + outside + FRAMES, byte_by_byte) == []


@BOTH
@pytest.mark.parametrize("acfc,pfc", [(False, False), (True, False), (True, True)])
def test_result_codes_inside_frames_never_count(byte_by_byte: bool, acfc: bool, pfc: bool) -> None:
    payload = b"\r\nNO CARRIER\r\n\r\nOK\r\n\x7e\r\nERROR\r\n"  # 0x7E gets escaped
    data = ip_frame(payload, acfc, pfc) + ip_frame(b"\r\nOK\r\n" * 3, acfc, pfc)
    assert watch(data, byte_by_byte) == []
    # escaped with the default ACCM, CR and LF are 7D 2D / 7D 2A on the line
    data = HdlcEncoder().encode(frame.build_frame(frame.IPV4, payload))
    assert watch(data, byte_by_byte) == []


@BOTH
def test_a_result_split_over_reads_in_any_place(byte_by_byte: bool) -> None:
    data = FRAMES + b"\r\nNO CARRIER\r\n"
    for cut in range(len(data) + 1):
        watcher = DataModeWatcher()
        assert watcher.receive_data(data[:cut]) in (None, "NO CARRIER")
        watcher.receive_data(data[cut:])
        assert watcher.result == "NO CARRIER", cut


def test_long_garbage_outside_frames_is_bounded() -> None:
    watcher = DataModeWatcher()
    for _ in range(200):
        watcher.receive_data(b"\r" + b"x" * 999)
    assert len(watcher._text) <= 1024
    watcher.receive_data(b"\r\nNO CARRIER\r\n")
    assert watcher.result == "NO CARRIER"


PROTOCOLS = [frame.IPV4, frame.IPV6, frame.LCP, frame.IPCP, frame.IPV6CP, frame.PAP]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(PROTOCOLS),
            st.binary(max_size=200)
            | st.lists(
                st.sampled_from([b"\r\n", b"NO CARRIER", b"OK", b"ERROR", b"\x7e", b"\x7d", b"x"])
            ).map(b"".join),
            st.booleans(),
            st.booleans(),
        ),
        max_size=12,
    ),
    st.sampled_from([0, 0xFFFFFFFF, 0x000A0000, 0x00002400]),
    st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=8),
    st.integers(min_value=0, max_value=3),
)
def test_random_frames_never_look_like_a_result(
    frames: list[tuple[int, bytes, bool, bool]], accm: int, cuts: list[int], fill: int
) -> None:
    encoder = HdlcEncoder(accm)
    wire = b"".join(
        b"\x7e" * fill + encoder.encode(frame.build_frame(protocol, info, acfc, pfc))
        for protocol, info, acfc, pfc in frames
    )
    watcher = DataModeWatcher()
    position, index = 0, 0
    while position < len(wire):
        size = cuts[index % len(cuts)]
        watcher.receive_data(wire[position : position + size])
        position, index = position + size, index + 1
    assert watcher.result is None
