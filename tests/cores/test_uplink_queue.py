"""The uplink bounds of issue 10 without I/O: control frames before IP frames in PppLink,
the engine's queue sizes, the host's token bucket and the split of one radio."""

from __future__ import annotations

import pytest

from larappp.config import parse_config
from larappp.engine.ppp_builtin import MAX_WAIT, QUEUE_TIME, UNPACED_QUEUE_OCTETS, UplinkQueue
from larappp.errors import ConfigError
from larappp.proto.hdlc import HdlcDecoder
from larappp.proto.ppp import frame
from larappp.proto.ppp.link import PppLink
from larappp.transport.shaping import QUEUE_TIME as HOST_QUEUE_TIME
from larappp.transport.shaping import TokenBucket, share_of
from tests.cores.test_ppp_link import opened_pair


def protocols(data: bytes) -> list[int]:
    return [frame.split_protocol(f)[0] for f in HdlcDecoder(0).receive_data(data)]


def ip_packet(size: int) -> bytes:
    return bytes([0x45]) + bytes(size - 1)


def test_control_frames_leave_before_queued_ip_frames() -> None:
    host, _module = opened_pair()
    for _ in range(20):
        assert host.send_packet(4, ip_packet(1000))
    host.close(0.0, "larappp down")  # a Terminate-Request queued behind 20 kB of data
    first = protocols(host.data_to_send(3000))
    assert first[0] == frame.LCP
    assert first[1:] == [frame.IPV4] * (len(first) - 1) and 1 <= len(first) - 1 <= 3


def test_a_data_budget_takes_whole_frames_and_keeps_the_rest() -> None:
    host, _module = opened_pair()
    for _ in range(10):
        host.send_packet(4, ip_packet(1000))
    queued = host.queued_data_octets
    assert queued >= 10 * 1000
    taken = protocols(host.data_to_send(2500))
    assert taken == [frame.IPV4] * 2
    assert host.queued_data_octets < queued
    assert protocols(host.data_to_send(1)) == [frame.IPV4]  # at least one frame, however small the budget
    assert protocols(host.data_to_send()) == [frame.IPV4] * 7  # no budget: everything
    assert host.queued_data_octets == 0
    assert host.data_to_send(1000) == b""


def test_dropping_the_queue_keeps_control_frames_and_counts() -> None:
    host, _module = opened_pair()
    for _ in range(5):
        host.send_packet(6, bytes([0x60]) + bytes(99))
    host.close(0.0, "larappp down")
    assert host.drop_queued_data() == 5
    assert host.stats.queue_dropped == 5
    assert protocols(host.data_to_send()) == [frame.LCP]


def test_engine_queue_is_bounded_in_time_at_the_paced_rate() -> None:
    paced = UplinkQueue.for_rate(5200)
    assert paced.limit == int(5200 * 1000 / 8 * QUEUE_TIME)  # 65 kB: 100 ms at Cat 1
    assert paced.chunk == paced.limit // 4
    slow = UplinkQueue.for_rate(64)
    assert slow.limit >= 2 * 1500 and slow.chunk >= 1500  # never less than whole frames
    assert UplinkQueue.for_rate(0).limit == UNPACED_QUEUE_OCTETS
    # back to back above the rate: a frame or two as the host's tbf allows, not a chunk
    # (16 kB at Cat 1, a small module buffer's worth: bench (d) saw it overflow)
    assert paced.burst == 2 * 1500 + 16 and paced.burst < paced.chunk // 4
    assert UplinkQueue.for_rate(100_000).burst == int(100_000 * 1000 / 8 * 0.004)
    assert MAX_WAIT >= QUEUE_TIME


def test_token_bucket_holds_a_short_queue() -> None:
    bucket = TokenBucket.for_rate(5200, 1500)
    assert bucket.limit == int(5200 * 1000 / 8 * HOST_QUEUE_TIME)
    assert bucket.queue_seconds == pytest.approx(HOST_QUEUE_TIME, rel=0.01)
    assert bucket.burst >= 3000
    slow = TokenBucket.for_rate(100, 1500)
    assert slow.limit >= slow.burst + 3000  # whole packets fit even where the time bound is tiny


def test_one_radio_is_split_in_equal_shares() -> None:
    assert share_of(5200, 1) == 5200
    assert share_of(5200, 3) == 1733
    assert 3 * share_of(5200, 3) <= 5200  # together never above the radio
    assert share_of(0, 3) == 0


def test_uplink_kbit_in_the_config() -> None:
    session = '[[session]]\ncid = 1\napn = "a"\n'
    assert parse_config(session).modem.uplink_kbit == 5200  # LTE Cat 1 by default
    assert parse_config("[modem]\nuplink_kbit = 0\n" + session).modem.uplink_kbit == 0
    assert parse_config("[modem]\nuplink_kbit = 1000\n" + session).modem.uplink_kbit == 1000
    with pytest.raises(ConfigError, match="uplink_kbit"):
        parse_config("[modem]\nuplink_kbit = -5\n" + session)


def test_link_without_budget_sends_all_as_before() -> None:
    link = PppLink("host")
    link.open(0.0)
    assert protocols(link.data_to_send()) == [frame.LCP]
