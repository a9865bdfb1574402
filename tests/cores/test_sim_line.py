"""The simulator's serial line (larappp.sim.line) on a fake clock: 8N1 at the baud rate,
the window in front of it, CTS holding the DTE's transmitter; and the radio's CTS
watermarks (larappp.sim.radio)."""

from __future__ import annotations

import pytest

from larappp.sim.line import MIN_WINDOW, LineDirection, SerialLine
from larappp.sim.module import Module
from larappp.sim.radio import Radio, RadioSettings
from larappp.sim.scenario import Scenario


def drain(line: LineDirection, until: float) -> list[tuple[float, bytes]]:
    """Run the line's timer up to `until` as a driver would: what arrived, and when."""
    got = []
    while (due := line.get_timer()) is not None and due <= until:
        data = line.pull(due)
        if data:
            got.append((due, data))
    return got


def test_bytes_arrive_at_a_tenth_of_the_baud_rate() -> None:
    line = LineDirection(9600)  # 960 bytes a second, 8N1
    assert line.push(b"x" * 960, now=0.0)
    assert line.pull(0.0) == b""
    assert len(line.pull(0.5)) == 480
    assert len(line.pull(0.5)) == 0
    got = drain(line, until=10.0)
    assert sum(len(d) for _, d in got) == 480
    assert got[-1][0] == pytest.approx(1.0)  # the last of 960 bytes' 9600 bits
    assert line.get_timer() is None and line.counters.bytes == 960


def test_byte_by_byte_and_whole_give_the_same_timing() -> None:
    whole, single = LineDirection(115200), LineDirection(115200)
    whole.push(bytes(range(256)) * 4, now=1.0)
    for i, byte in enumerate(bytes(range(256)) * 4):
        single.push(bytes([byte]), now=1.0 + i * 1e-6)  # written faster than the line
    a, b = drain(whole, 5.0), drain(single, 5.0)
    assert b"".join(d for _, d in a) == b"".join(d for _, d in b) == bytes(range(256)) * 4
    assert a[-1][0] == pytest.approx(b[-1][0]) == pytest.approx(1.0 + 1024 / 11520)


def test_an_idle_line_starts_when_written_not_before() -> None:
    line = LineDirection(10000)  # 1000 bytes a second
    line.push(b"a" * 100, now=0.0)
    assert len(line.pull(1.0)) == 100
    line.push(b"b" * 100, now=5.0)  # idle since 0.1: no credit for the pause
    assert line.pull(5.05) == b"b" * 50


def test_the_window_tells_the_sender_to_wait() -> None:
    line = LineDirection(9600)
    assert line.room() == MIN_WINDOW
    line.push(b"x" * MIN_WINDOW, now=0.0)
    assert line.room() == 0
    line.pull(0.5)
    assert line.room() == 480
    assert LineDirection(3_000_000).window == 15000  # 50 ms of line time at 3 Mbaud


def test_cts_holds_the_transmitter_and_counts_the_time() -> None:
    line = LineDirection(10000)  # 1000 bytes a second
    line.push(b"x" * 1000, now=0.0)
    line.hold(True, now=0.2)
    assert len(line.pull(0.2)) == 200
    assert line.get_timer() is None
    assert line.pull(3.0) == b""  # nothing moves while CTS is off
    assert line.held_for(1.2) == pytest.approx(1.0)
    line.hold(False, now=3.0)
    assert len(line.pull(3.5)) == 500
    assert (line.counters.holds, line.counters.held_s) == (1, pytest.approx(2.8))


def test_a_pull_takes_at_most_what_is_asked_the_rest_stays() -> None:
    line = LineDirection(10000)
    line.push(b"abcdef" * 100, now=0.0)
    assert line.pull(1.0, max_bytes=256) == (b"abcdef" * 100)[:256]
    assert line.get_timer() == 0.0  # the rest arrived already: due now
    assert len(line.pull(1.0)) == 344 and line.counters.bytes == 600
    line.push(b"x" * 100, now=2.0)
    line.hold(True, now=2.05)
    assert line.get_timer() is None  # held: even what arrived waits for the release


def test_no_line_passes_at_once_but_still_holds() -> None:
    line = LineDirection(0)
    line.push(b"abc", now=0.0)
    assert line.get_timer() == 0.0 and line.pull(0.0) == b"abc"
    line.hold(True, now=1.0)
    line.push(b"def", now=1.0)
    assert line.pull(2.0) == b"" and line.room() == line.window - 3
    line.hold(False, now=2.0)
    assert line.pull(2.0) == b"def"


def test_toward_the_dte_whole_writes_beyond_the_limit_are_dropped() -> None:
    line = SerialLine(9600, to_dte_limit=3000)
    assert line.to_dte.push(b"a" * 1500, now=0.0) and line.to_dte.push(b"b" * 1500, now=0.0)
    assert not line.to_dte.push(b"c" * 1500, now=0.0)
    assert line.to_dte.counters.dropped == 1500
    assert len(line.to_dte.pull(10.0)) == 3000
    assert line.to_dte.push(b"d" * 10_000, now=10.0)  # an idle line takes any one write
    assert line.to_json(10.0)["baud"] == 9600


def test_radio_turns_cts_off_near_full_and_on_once_drained() -> None:
    radio = Radio(RadioSettings(uplink_kbit=80, uplink_buffer=10_000))  # 10 000 bytes a second
    for _ in range(7):
        radio.uplink.offer(1000, lambda: None, now=0.0)
        assert not radio.check_flow(0.0)
    radio.uplink.offer(1000, lambda: None, now=0.0)  # 8000 >= 75 %
    assert radio.check_flow(0.0) and radio.uplink_full
    assert radio.get_timer() == pytest.approx(0.1)  # the first packet leaves first...
    radio.handle_timer(0.25)
    assert not radio.check_flow(0.25)  # 5500 left: still above 50 %
    assert radio.get_timer() == pytest.approx(0.3)  # the moment it drains to 5000
    assert radio.check_flow(0.3) and not radio.uplink_full


def test_radio_without_flow_control_never_turns_cts_off() -> None:
    radio = Radio(RadioSettings(uplink_kbit=80, uplink_buffer=10_000, flow_control=False))
    for _ in range(10):
        radio.uplink.offer(1000, lambda: None, now=0.0)
    assert not radio.check_flow(0.0) and not radio.uplink_full


def test_module_cts_is_off_only_on_ports_in_a_call_while_the_uplink_is_full() -> None:
    module = Module(Scenario(uplink_kbit=80), ports=2)
    module.power_on(0.0)
    assert module.modem_lines(0).cts
    module.radio.uplink_full = True
    assert module.modem_lines(0).cts  # command mode: AT commands still flow


def test_baud_and_cts_flow_are_scenario_knobs() -> None:
    scenario = Scenario.from_dict({"baud": "115200", "cts_flow": "off"})
    assert scenario.baud == 115200 and not scenario.radio.flow_control
    assert Scenario().baud == 0 and Scenario().radio.flow_control
    from larappp.errors import ConfigError

    with pytest.raises(ConfigError, match="baud"):
        Scenario(baud=-1)


def test_sim_section_takes_the_baud_rate() -> None:
    from larappp.config import parse_config

    session = '[[session]]\ncid = 1\napn = "internet"\n'
    assert parse_config(session + "[sim]\nbaud = 115200\n", source="t.toml").sim.baud == 115200
    assert parse_config(session, source="t.toml").sim.baud == 0
