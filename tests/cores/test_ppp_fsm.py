"""The RFC 1661 automaton: the table cell by cell, then packet-driven behaviour and counters."""

from __future__ import annotations

from typing import Any

import pytest

from larappp.proto.ppp.fsm import (
    TIMER_STATES,
    TRANSITIONS,
    Action,
    ControlProtocol,
    Event,
    IllegalTransition,
    LayerSignal,
    State,
    control_packet,
    parse_control_packet,
    transition,
)
from larappp.proto.ppp.options import (
    ACK,
    REJECT,
    OptionRow,
    OptionTable,
    Verdict,
    decode_empty,
    decode_u16,
    encode_empty,
    encode_u16,
    nak,
)

# A second transcription of RFC 1661 §4.1, per state rather than per event, so that a
# typo in either copy shows up. Order: Initial Starting Closed Stopped Closing Stopping
# Req-Sent Ack-Rcvd Ack-Sent Opened.
RFC_COLUMNS: dict[str, list[str]] = {
    "Up": ["2", "irc,scr/6", "-", "-", "-", "-", "-", "-", "-", "-"],
    "Down": ["-", "-", "0", "tls/1", "0", "1", "1", "1", "1", "tld/1"],
    "Open": ["tls/1", "1", "irc,scr/6", "3", "5", "5", "6", "7", "8", "9"],
    "Close": ["0", "tlf/0", "2", "2", "4", "4", "irc,str/4", "irc,str/4", "irc,str/4",
              "tld,irc,str/4"],
    "TO+": ["-", "-", "-", "-", "str/4", "str/5", "scr/6", "scr/6", "scr/8", "-"],
    "TO-": ["-", "-", "-", "-", "tlf/2", "tlf/3", "tlf/3", "tlf/3", "tlf/3", "-"],
    "RCR+": ["-", "-", "sta/2", "irc,scr,sca/8", "4", "5", "sca/8", "sca,tlu/9", "sca/8",
             "tld,scr,sca/8"],
    "RCR-": ["-", "-", "sta/2", "irc,scr,scn/6", "4", "5", "scn/6", "scn/7", "scn/6",
             "tld,scr,scn/6"],
    "RCA": ["-", "-", "sta/2", "sta/3", "4", "5", "irc/7", "scr/6", "irc,tlu/9", "tld,scr/6"],
    "RCN": ["-", "-", "sta/2", "sta/3", "4", "5", "irc,scr/6", "scr/6", "irc,scr/8",
            "tld,scr/6"],
    "RTR": ["-", "-", "sta/2", "sta/3", "sta/4", "sta/5", "sta/6", "sta/6", "sta/6",
            "tld,zrc,sta/5"],
    "RTA": ["-", "-", "2", "3", "tlf/2", "tlf/3", "6", "6", "8", "tld,scr/6"],
    "RUC": ["-", "-", "scj/2", "scj/3", "scj/4", "scj/5", "scj/6", "scj/7", "scj/8", "scj/9"],
    "RXJ+": ["-", "-", "2", "3", "4", "5", "6", "7", "8", "9"],
    "RXJ-": ["-", "-", "tlf/2", "tlf/3", "tlf/2", "tlf/3", "tlf/3", "tlf/3", "tlf/3",
             "tld,irc,str/5"],
    "RXR": ["-", "-", "2", "3", "4", "5", "6", "7", "8", "ser/9"],
}  # fmt: skip

CELLS = [
    (state, Event(event), RFC_COLUMNS[event][state.value])
    for event in RFC_COLUMNS
    for state in State
]

SEND_CODES = {
    Action.SCR: 1,
    Action.SCA: 2,
    Action.SCN: 4,
    Action.STR: 5,
    Action.STA: 6,
    Action.SCJ: 7,
}
SIGNALS = {
    Action.TLU: LayerSignal.UP,
    Action.TLD: LayerSignal.DOWN,
    Action.TLS: LayerSignal.STARTED,
    Action.TLF: LayerSignal.FINISHED,
}


class Recorder:
    """A link stand-in that records what a control protocol sends and signals."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.signals: list[LayerSignal] = []

    def send_control(self, protocol: int, packet: bytes) -> None:
        self.sent.append(packet)

    def layer_signal(self, source: Any, signal: LayerSignal, now: float) -> None:
        self.signals.append(signal)

    def codes(self) -> list[int]:
        return [packet[0] for packet in self.sent]

    def take(self) -> list[bytes]:
        sent, self.sent = self.sent, []
        return sent


class ToyState:
    """Negotiation state of a toy protocol: one number (the peer wants even ones), one flag."""

    def __init__(self, number: int = 2) -> None:
        self.configured = number
        self.number: int | None = number
        self.flag = True

    def reset(self) -> None:
        self.number = self.configured
        self.flag = True


def _judge_number(state: ToyState, value: int) -> Verdict:
    return ACK if value % 2 == 0 else nak(value + 1)


def _nak_number(state: ToyState, value: int) -> None:
    state.number = value


def _drop_number(state: ToyState) -> None:
    state.number = None


def _drop_flag(state: ToyState) -> None:
    state.flag = False


TOY_ROWS: tuple[OptionRow[ToyState], ...] = (
    OptionRow(
        1,
        "Number",
        decode_u16,
        encode_u16,
        request=lambda state: state.number,
        nak_received=_nak_number,
        reject_received=_drop_number,
        judge=_judge_number,
    ),
    OptionRow(
        2,
        "Flag",
        decode_empty,
        encode_empty,
        request=lambda state: True if state.flag else None,
        reject_received=_drop_flag,
        judge=lambda state, value: REJECT,
    ),
)


class Toy(ControlProtocol[ToyState]):
    """A minimal control protocol on the shared automaton."""

    name = "TOY"
    protocol = 0x8001


def state_of(toy: Toy) -> State:
    """The state, read through a call so that mypy does not pin it after an assert."""
    return toy.state


def make(number: int = 2) -> tuple[Toy, Recorder]:
    recorder = Recorder()
    return Toy(recorder, OptionTable(TOY_ROWS, ToyState(number))), recorder


def opened() -> tuple[Toy, Recorder]:
    """A toy protocol taken to Opened by packets."""
    toy, recorder = make()
    toy.open(0.0)
    toy.up(0.0)
    request = parse_control_packet(recorder.take()[0])
    assert request is not None
    toy.receive_packet(control_packet(2, request[1], request[2]), 0.1)
    toy.receive_packet(control_packet(1, 7, b"\x01\x04\x00\x08"), 0.2)
    assert state_of(toy) is State.OPENED
    recorder.take()
    recorder.signals.clear()
    return toy, recorder


# -- the table ----------------------------------------------------------------------------


@pytest.mark.parametrize(("state", "event", "cell"), CELLS)
def test_table_matches_the_rfc(state: State, event: Event, cell: str) -> None:
    if cell == "-":
        with pytest.raises(IllegalTransition):
            transition(state, event)
        assert (state, event) not in TRANSITIONS
        return
    text, _, target = cell.rpartition("/")
    actions, next_state = transition(state, event)
    assert next_state == State(int(target))
    assert [a.value for a in actions] == [name for name in text.split(",") if name]


@pytest.mark.parametrize(("state", "event", "cell"), CELLS)
def test_every_event_in_every_state(state: State, event: Event, cell: str) -> None:
    """Fire each RFC event in each state and check state, packets, signals and timer."""
    toy, recorder = make()
    toy._state = state  # put the automaton in the state under test
    if state in TIMER_STATES:
        toy._deadline = 5.0
    if cell == "-":
        with pytest.raises(IllegalTransition):
            toy.fire(event, 1.0)
        assert state_of(toy) is state
        assert recorder.sent == [] and recorder.signals == []
        return
    actions, target = TRANSITIONS[state, event]
    toy.fire(event, 1.0)
    assert state_of(toy) is target
    assert recorder.codes() == [SEND_CODES[a] for a in actions if a in SEND_CODES]
    assert recorder.signals == [SIGNALS[a] for a in actions if a in SIGNALS]
    if target in TIMER_STATES:
        expect_running = (
            Action.SCR in actions
            or Action.STR in actions
            or Action.ZRC in actions
            or state in TIMER_STATES
        )
        assert (toy.get_timer() is not None) == expect_running
    else:
        assert toy.get_timer() is None
    if Action.ZRC in actions:
        assert toy.restart_counter == 0
        assert toy.get_timer() == 1.0 + toy.restart_interval
    elif Action.IRC in actions:
        sends = sum(a in (Action.SCR, Action.STR) for a in actions)
        start = toy.max_terminate if Action.STR in actions else toy.max_configure
        assert toy.restart_counter == start - sends


def test_transition_trace_hook() -> None:
    toy, _ = make()
    seen: list[tuple[State, Event, State]] = []
    toy.trace = lambda old, event, new: seen.append((old, event, new))
    toy.open(0.0)
    toy.up(0.0)
    assert seen == [
        (State.INITIAL, Event.OPEN, State.STARTING),
        (State.STARTING, Event.UP, State.REQ_SENT),
    ]


# -- driven by packets --------------------------------------------------------------------


def test_negotiation_by_packets_opens() -> None:
    toy, recorder = make()
    toy.open(0.0)
    assert recorder.signals == [LayerSignal.STARTED]
    toy.up(0.0)
    (request,) = recorder.take()
    assert request == control_packet(1, 1, b"\x01\x04\x00\x02\x02\x02")
    assert toy.get_timer() == 3.0
    toy.receive_packet(control_packet(2, 1, b"\x01\x04\x00\x02\x02\x02"), 0.5)
    assert state_of(toy) is State.ACK_RCVD
    toy.receive_packet(control_packet(1, 9, b"\x01\x04\x00\x06"), 0.6)
    assert state_of(toy) is State.OPENED
    assert recorder.take() == [control_packet(2, 9, b"\x01\x04\x00\x06")]
    assert recorder.signals[-1] is LayerSignal.UP
    assert toy.options.acked_ours == {1: 2, 2: True}
    assert toy.options.acked_peer == {1: 6}
    assert toy.get_timer() is None


def test_peer_request_nak_then_reject() -> None:
    toy, recorder = make()
    toy.open(0.0)
    toy.up(0.0)
    recorder.take()
    toy.receive_packet(control_packet(1, 3, b"\x01\x04\x00\x05"), 0.1)  # odd: Nak with 6
    assert recorder.take() == [control_packet(3, 3, b"\x01\x04\x00\x06")]
    toy.receive_packet(control_packet(1, 4, b"\x01\x04\x00\x05\x02\x02\x63\x03x"), 0.2)
    # the Flag and an unknown option are rejected; a reject wins over a nak
    assert recorder.take() == [control_packet(4, 4, b"\x02\x02\x63\x03x")]
    assert state_of(toy) is State.REQ_SENT


def test_max_failure_turns_naks_into_rejects() -> None:
    toy, recorder = make()
    toy.open(0.0)
    toy.up(0.0)
    recorder.take()
    for identifier in range(toy.max_failure):
        toy.receive_packet(control_packet(1, identifier, b"\x01\x04\x00\x05"), 0.1)
        assert recorder.take()[0][0] == 3
    toy.receive_packet(control_packet(1, 99, b"\x01\x04\x00\x05"), 0.1)
    assert recorder.take() == [control_packet(4, 99, b"\x01\x04\x00\x05")]


def test_naks_and_rejects_of_our_request() -> None:
    toy, recorder = make()
    toy.open(0.0)
    toy.up(0.0)
    recorder.take()
    toy.receive_packet(control_packet(3, 1, b"\x01\x04\x00\x0c"), 0.1)  # Nak: use 12
    (request,) = recorder.take()
    assert request == control_packet(1, 2, b"\x01\x04\x00\x0c\x02\x02")
    toy.receive_packet(control_packet(4, 2, b"\x02\x02"), 0.2)  # Reject the flag
    (request,) = recorder.take()
    assert request == control_packet(1, 3, b"\x01\x04\x00\x0c")
    # a Reject of an option we did not send is malformed: silently discarded
    toy.receive_packet(control_packet(4, 3, b"\x02\x02"), 0.3)
    assert recorder.take() == []
    # an answer with a stale identifier too
    toy.receive_packet(control_packet(2, 2, b"\x01\x04\x00\x0c"), 0.3)
    assert recorder.take() == [] and state_of(toy) is State.REQ_SENT
    # and an Ack that does not repeat the request
    toy.receive_packet(control_packet(2, 3, b"\x01\x04\x00\x0d"), 0.3)
    assert state_of(toy) is State.REQ_SENT
    toy.receive_packet(control_packet(2, 3, b"\x01\x04\x00\x0c"), 0.3)
    assert state_of(toy) is State.ACK_RCVD
    # a duplicate Ack (answer to a retransmission) is ignored, not a crossed connection
    toy.receive_packet(control_packet(2, 3, b"\x01\x04\x00\x0c"), 0.3)
    assert state_of(toy) is State.ACK_RCVD and recorder.take() == []


def test_naks_that_change_nothing_are_discarded() -> None:
    toy, recorder = make()
    toy.open(0.0)
    toy.up(0.0)
    recorder.take()
    toy.receive_packet(control_packet(3, 1, b"\x01\x04\x00\x02"), 0.1)  # our own value
    assert recorder.take() == []
    toy.receive_packet(control_packet(3, 1, b"\x09\x02"), 0.1)  # an option we do not know
    assert recorder.take() == []


def test_too_many_naks_received_are_treated_as_rejects() -> None:
    toy, recorder = make()
    toy.open(0.0)
    toy.up(0.0)
    identifier = recorder.take()[0][1]
    for round_ in range(toy.max_failure):
        toy.receive_packet(control_packet(3, identifier, b"\x01\x04" + bytes((0, 20 + round_))), 1)
        identifier = recorder.take()[0][1]
    toy.receive_packet(control_packet(3, identifier, b"\x01\x04\x00\x63"), 1)
    (request,) = recorder.take()
    assert request[4:] == b"\x02\x02"  # the number is no longer requested
    # now the request cannot shrink through Naks any more: further Naks are discarded
    toy.receive_packet(control_packet(3, request[1], b"\x01\x04\x00\x07"), 1)
    assert recorder.take() == []


def test_max_configure_then_tlf_with_a_reason() -> None:
    toy, recorder = make()
    toy.open(0.0)
    toy.up(0.0)
    now = 0.0
    while toy.get_timer() is not None:
        now = toy.get_timer() or now
        toy.handle_timer(now)
    assert recorder.codes() == [1] * 10  # Max-Configure requests, then TO-
    assert state_of(toy) is State.STOPPED
    assert recorder.signals[-1] is LayerSignal.FINISHED
    assert "10 Configure-Requests" in toy.reason
    assert now == pytest.approx(30.0)


def test_retransmission_keeps_identifier_and_contents() -> None:
    toy, recorder = make()
    toy.open(0.0)
    toy.up(0.0)
    toy.handle_timer(2.9)  # not yet
    toy.handle_timer(3.0)
    first, second = recorder.take()
    assert first == second


def test_close_sends_max_terminate_requests() -> None:
    toy, recorder = opened()
    toy.close(10.0, "bye")
    assert recorder.signals == [LayerSignal.DOWN]
    toy.handle_timer(13.0)
    toy.handle_timer(16.0)
    assert recorder.codes() == [5, 5]
    assert recorder.sent[0][4:] == b"bye"
    assert state_of(toy) is State.CLOSED
    assert recorder.signals[-1] is LayerSignal.FINISHED


def test_terminate_ack_ends_closing() -> None:
    toy, recorder = opened()
    toy.close(10.0, "bye")
    identifier = recorder.take()[0][1]
    assert not toy.terminate_acknowledged
    toy.receive_packet(control_packet(6, identifier), 10.1)
    assert state_of(toy) is State.CLOSED
    assert toy.reason == "bye"
    assert toy.terminate_acknowledged  # the peer ends the link too: no need to wait for it


def test_a_terminate_that_times_out_is_not_acknowledged() -> None:
    toy, recorder = opened()
    toy.close(10.0, "bye")
    toy.handle_timer(13.0)
    toy.handle_timer(16.0)
    assert recorder.codes() == [5, 5]  # two Terminate-Requests, no answer
    assert state_of(toy) is State.CLOSED and not toy.terminate_acknowledged
    toy.open(20.0)
    assert not toy.terminate_acknowledged


def test_peer_terminate_request_waits_one_restart_interval() -> None:
    toy, recorder = opened()
    toy.receive_packet(control_packet(5, 42, b"going away"), 10.0)
    assert recorder.take() == [control_packet(6, 42)]
    assert state_of(toy) is State.STOPPING
    assert toy.get_timer() == 13.0
    toy.handle_timer(13.0)
    assert state_of(toy) is State.STOPPED
    assert toy.reason == "TOY: the peer sent Terminate-Request (going away)"


def test_unknown_code_is_code_rejected_and_catastrophic_code_reject() -> None:
    toy, recorder = opened()
    toy.receive_packet(control_packet(0x55, 1, b"junk"), 1.0)
    (reject,) = recorder.take()
    assert reject[0] == 7 and reject[4:] == control_packet(0x55, 1, b"junk")
    assert state_of(toy) is State.OPENED
    toy.receive_packet(control_packet(7, 2, control_packet(0x66, 1)), 1.0)  # RXJ+
    assert state_of(toy) is State.OPENED
    toy.receive_packet(control_packet(7, 3, control_packet(1, 1)), 1.0)  # RXJ-
    assert state_of(toy) is State.STOPPING
    assert "rejected code 1" in toy.reason


def test_code_reject_is_truncated_to_the_peer_mru() -> None:
    toy, recorder = opened()
    toy.peer_mru = 64
    toy.receive_packet(control_packet(0x55, 1, bytes(200)), 1.0)
    (reject,) = recorder.take()
    assert len(reject) == 64


def test_renegotiation_from_opened() -> None:
    toy, recorder = opened()
    toy.receive_packet(control_packet(1, 50, b"\x01\x04\x00\x08"), 5.0)
    assert state_of(toy) is State.ACK_SENT
    assert recorder.signals == [LayerSignal.DOWN]
    assert recorder.codes() == [1, 2]


@pytest.mark.parametrize(
    "packet",
    [b"", b"\x01\x01\x00", b"\x01\x01\x00\x03", b"\x01\x01\x00\x09abc", b"\x01\x01\x00\x06\x01"],
)
def test_malformed_packets_are_discarded(packet: bytes) -> None:
    toy, recorder = opened()
    toy.receive_packet(packet, 1.0)
    assert state_of(toy) is State.OPENED and recorder.sent == []


def test_packets_before_the_lower_layer_is_up_are_ignored() -> None:
    toy, recorder = make()
    toy.receive_packet(control_packet(1, 1, b""), 0.0)
    toy.open(0.0)
    toy.receive_packet(control_packet(1, 1, b""), 0.0)
    assert state_of(toy) is State.STARTING and recorder.sent == []


def test_padding_after_the_length_is_ignored() -> None:
    toy, recorder = make()
    toy.open(0.0)
    toy.up(0.0)
    recorder.take()
    toy.receive_packet(control_packet(1, 5, b"\x01\x04\x00\x04") + b"\x00\x00pad", 0.1)
    assert recorder.take() == [control_packet(2, 5, b"\x01\x04\x00\x04")]
