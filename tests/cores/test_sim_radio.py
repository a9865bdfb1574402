"""The simulated radio (larappp.sim.radio) on a fake clock: rates, latency, the module's
uplink buffer and app note §4's drops."""

from __future__ import annotations

import pytest

from larappp.sim.radio import Bottleneck, Radio, RadioSettings
from larappp.sim.scenario import Scenario


def test_unlimited_direction_delivers_at_once_and_never_drops() -> None:
    way = Bottleneck(kbit=0, buffer=1500, latency=0.0)
    got: list[int] = []
    for n in range(100):
        assert way.offer(1500, lambda n=n: got.append(n), now=0.0)
    for deliver in way.due(0.0):
        deliver()
    assert got == list(range(100))
    assert way.counters.dropped == 0
    assert way.get_timer() is None


def test_packets_leave_at_the_rate_plus_latency() -> None:
    way = Bottleneck(kbit=8, buffer=10_000, latency=0.05)  # 1000 bytes per second
    got: list[str] = []
    assert way.offer(100, lambda: got.append("a"), now=0.0)
    assert way.offer(100, lambda: got.append("b"), now=0.0)
    assert way.get_timer() == pytest.approx(0.15)  # 0.1 s on the air, 50 ms latency
    assert way.due(0.149) == []
    for deliver in way.due(0.1501):
        deliver()
    assert got == ["a"]
    assert way.get_timer() == pytest.approx(0.25)  # behind the first one
    for deliver in way.due(1.0):
        deliver()
    assert got == ["a", "b"]


def test_what_arrives_faster_than_the_uplink_drains_overflows_the_buffer() -> None:
    # 1000 bytes per second, a buffer of 3000: a burst of 10 x 1000 keeps three.
    way = Bottleneck(kbit=8, buffer=3000, latency=0.0)
    accepted = [way.offer(1000, lambda: None, now=0.0) for _ in range(10)]
    assert accepted == [True] * 3 + [False] * 7
    assert (way.counters.packets, way.counters.dropped, way.counters.dropped_bytes) == (3, 7, 7000)
    assert way.counters.peak_backlog == 3000
    # One second later one packet has left: room for exactly one more.
    assert way.backlog(1.0) == 2000
    assert way.offer(1000, lambda: None, now=1.0)
    assert not way.offer(1000, lambda: None, now=1.0)


def test_paced_sender_loses_nothing() -> None:
    # At 90% of the uplink rate the buffer never fills, however long it runs.
    way = Bottleneck(kbit=5200, buffer=16_384, latency=0.0)
    rate = 5200 * 1000 / 8 * 0.9
    now = 0.0
    for _ in range(5000):
        assert way.offer(1400, lambda: None, now)
        now += 1400 / rate
    assert way.counters.dropped == 0
    assert way.counters.peak_backlog <= 2 * 1400


def test_radio_is_shared_and_reports_its_counters() -> None:
    radio = Radio(RadioSettings(uplink_kbit=8, downlink_kbit=16, latency=0.0, uplink_buffer=1000))
    order: list[str] = []
    radio.uplink.offer(500, lambda: order.append("up"), 0.0)
    radio.downlink.offer(500, lambda: order.append("down"), 0.0)
    assert radio.get_timer() == pytest.approx(0.25)  # the downlink is twice as fast
    radio.handle_timer(0.25)
    assert order == ["down"]
    radio.handle_timer(0.5)
    assert order == ["down", "up"]
    assert not radio.uplink.offer(1500, lambda: None, 0.5)
    report = radio.to_json()
    assert report["uplink"] == {"packets": 1, "bytes": 500, "dropped": 1, "dropped_bytes": 1500, "peak_backlog": 500}


def test_scenario_knobs_build_the_radio_and_are_checked() -> None:
    scenario = Scenario.from_dict({"uplink_kbit": "1000", "downlink_kbit": 2000, "latency_ms": 20, "uplink_buffer": 8000})
    assert scenario.radio == RadioSettings(uplink_kbit=1000, downlink_kbit=2000, latency=0.02, uplink_buffer=8000)
    assert Scenario().radio.uplink_kbit == 0  # off unless asked: tests measure larappp, not the radio
    with pytest.raises(Exception, match="uplink_buffer"):
        Scenario(uplink_buffer=100)
    with pytest.raises(Exception, match="negative"):
        Scenario(uplink_kbit=-1)
