"""The RFC 1661 §4 option-negotiation automaton, once, for LCP, IPCP and IPV6CP.

The transition table below is the RFC's own table (states 0-9 across, events down);
`transition()` looks an (state, event) pair up and raises `IllegalTransition` for the
pairs the RFC marks "-". `ControlProtocol` executes the actions (tlu, tld, tls, tlf, irc,
zrc, scr, sca, scn, str, sta, scj, ser), keeps the restart timer with time as an input,
and reads and answers Configure packets through an `OptionTable`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, Generic, Protocol

from larappp.proto.ppp.options import (
    CONFIGURE_ACK,
    CONFIGURE_NAK,
    CONFIGURE_REJECT,
    CONFIGURE_REQUEST,
    OptionTable,
    RequestAnswer,
    S,
)

# RFC 1661 §5 codes shared by every control protocol
TERMINATE_REQUEST = 5
TERMINATE_ACK = 6
CODE_REJECT = 7

# RFC 1661 §4.6 defaults
RESTART_INTERVAL = 3.0
MAX_TERMINATE = 2
MAX_CONFIGURE = 10
MAX_FAILURE = 5


class State(enum.IntEnum):
    """The ten RFC 1661 §4.2 states, numbered as in the RFC's table."""

    INITIAL = 0
    STARTING = 1
    CLOSED = 2
    STOPPED = 3
    CLOSING = 4
    STOPPING = 5
    REQ_SENT = 6
    ACK_RCVD = 7
    ACK_SENT = 8
    OPENED = 9


class Event(enum.Enum):
    """The RFC 1661 §4.3 events, valued by their RFC names."""

    UP = "Up"
    DOWN = "Down"
    OPEN = "Open"
    CLOSE = "Close"
    TO_PLUS = "TO+"
    TO_MINUS = "TO-"
    RCR_PLUS = "RCR+"
    RCR_MINUS = "RCR-"
    RCA = "RCA"
    RCN = "RCN"
    RTR = "RTR"
    RTA = "RTA"
    RUC = "RUC"
    RXJ_PLUS = "RXJ+"
    RXJ_MINUS = "RXJ-"
    RXR = "RXR"


class Action(enum.Enum):
    """The RFC 1661 §4.4 actions, valued by their RFC names."""

    TLU = "tlu"
    TLD = "tld"
    TLS = "tls"
    TLF = "tlf"
    IRC = "irc"
    ZRC = "zrc"
    SCR = "scr"
    SCA = "sca"
    SCN = "scn"
    STR = "str"
    STA = "sta"
    SCJ = "scj"
    SER = "ser"


# RFC 1661 §4.1, both halves side by side. "-" is an impossible event; the suffixes
# r (restart option), p (passive option) and x (crossed connection) only annotate.
_RFC1661_TABLE = """
      Initial Starting  Closed    Stopped       Closing Stopping Req-Sent  Ack-Rcvd  Ack-Sent  Opened
Up    2       irc,scr/6 -         -             -       -        -         -         -         -
Down  -       -         0         tls/1         0       1        1         1         1         tld/1
Open  tls/1   1         irc,scr/6 3r            5r      5r       6         7         8         9r
Close 0       tlf/0     2         2             4       4        irc,str/4 irc,str/4 irc,str/4 tld,irc,str/4
TO+   -       -         -         -             str/4   str/5    scr/6     scr/6     scr/8     -
TO-   -       -         -         -             tlf/2   tlf/3    tlf/3p    tlf/3p    tlf/3p    -
RCR+  -       -         sta/2     irc,scr,sca/8 4       5        sca/8     sca,tlu/9 sca/8     tld,scr,sca/8
RCR-  -       -         sta/2     irc,scr,scn/6 4       5        scn/6     scn/7     scn/6     tld,scr,scn/6
RCA   -       -         sta/2     sta/3         4       5        irc/7     scr/6x    irc,tlu/9 tld,scr/6x
RCN   -       -         sta/2     sta/3         4       5        irc,scr/6 scr/6x    irc,scr/8 tld,scr/6x
RTR   -       -         sta/2     sta/3         sta/4   sta/5    sta/6     sta/6     sta/6     tld,zrc,sta/5
RTA   -       -         2         3             tlf/2   tlf/3    6         6         8         tld,scr/6
RUC   -       -         scj/2     scj/3         scj/4   scj/5    scj/6     scj/7     scj/8     scj/9
RXJ+  -       -         2         3             4       5        6         7         8         9
RXJ-  -       -         tlf/2     tlf/3         tlf/2   tlf/3    tlf/3     tlf/3     tlf/3     tld,irc,str/5
RXR   -       -         2         3             4       5        6         7         8         ser/9
"""

Transition = tuple[tuple[Action, ...], State]


def _parse_table(text: str) -> dict[tuple[State, Event], Transition]:
    table: dict[tuple[State, Event], Transition] = {}
    lines = [line.split() for line in text.strip().splitlines()]
    states = list(State)
    if len(lines[0]) != len(states):
        raise AssertionError("the RFC 1661 table needs one column per state")
    for row in lines[1:]:
        event = Event(row[0])
        if len(row) != len(states) + 1:
            raise AssertionError(f"the RFC 1661 table row {event.value} has the wrong width")
        for state, cell in zip(states, row[1:], strict=True):
            if cell == "-":
                continue
            actions_text, _, target = cell.rpartition("/")
            actions = tuple(Action(name) for name in actions_text.split(",") if name)
            table[state, event] = (actions, State(int(target.rstrip("rpx"))))
    return table


TRANSITIONS: dict[tuple[State, Event], Transition] = _parse_table(_RFC1661_TABLE)

# RFC 1661 §4.6: the Restart timer runs in these states only
TIMER_STATES = frozenset(
    {State.CLOSING, State.STOPPING, State.REQ_SENT, State.ACK_RCVD, State.ACK_SENT}
)
_NEGOTIATING = frozenset({State.REQ_SENT, State.ACK_RCVD, State.ACK_SENT})


class IllegalTransition(RuntimeError):
    """An event arrived in a state where RFC 1661 says it cannot happen (a caller bug)."""


def transition(state: State, event: Event) -> Transition:
    """The actions and next state for `event` in `state`; raises IllegalTransition for "-"."""
    try:
        return TRANSITIONS[state, event]
    except KeyError:
        raise IllegalTransition(f"RFC 1661 has no transition for {event.value} in {state.name}")


class LayerSignal(enum.Enum):
    """The This-Layer-* actions, as reported to whoever owns a control protocol."""

    UP = "tlu"
    DOWN = "tld"
    STARTED = "tls"
    FINISHED = "tlf"


class ControlProtocolOwner(Protocol):
    """What a control protocol needs from the link carrying it."""

    def send_control(self, protocol: int, packet: bytes) -> None:
        """Send one control packet (code, identifier, length, data) of `protocol`."""

    def layer_signal(self, source: Any, signal: LayerSignal, now: float) -> None:
        """One of tlu, tld, tls, tlf happened in `source` (its state is already the new one)."""


def control_packet(code: int, identifier: int, data: bytes = b"") -> bytes:
    """Code, Identifier, Length and data (RFC 1661 §5)."""
    return bytes((code, identifier)) + (len(data) + 4).to_bytes(2, "big") + data


def parse_control_packet(packet: bytes) -> tuple[int, int, bytes] | None:
    """(code, identifier, data) of a control packet, padding removed; None if malformed."""
    if len(packet) < 4:
        return None
    length = int.from_bytes(packet[2:4], "big")
    if length < 4 or length > len(packet):
        return None
    return packet[0], packet[1], packet[4:length]


class ControlProtocol(Generic[S]):
    """One RFC 1661 automaton negotiating the options of one protocol (LCP, IPCP, IPV6CP)."""

    name = "CP"
    protocol = 0

    def __init__(
        self,
        owner: ControlProtocolOwner,
        options: OptionTable[S],
        *,
        restart_interval: float = RESTART_INTERVAL,
        max_configure: int = MAX_CONFIGURE,
        max_terminate: int = MAX_TERMINATE,
        max_failure: int = MAX_FAILURE,
    ) -> None:
        self.owner = owner
        self.options = options
        self.restart_interval = restart_interval
        self.max_configure = max_configure
        self.max_terminate = max_terminate
        self.max_failure = max_failure
        #: the peer's MRU: a Code-Reject carries at most this much of the rejected packet
        self.peer_mru = 1500
        self._state = State.INITIAL
        self._restart_counter = 0
        self._deadline: float | None = None
        self._identifier = 0
        self._request_identifier: int | None = None
        self._request_packet = b""
        self._answer_seen = False
        self._naks_sent = 0  # Max-Failure: Naks sent since the last Ack we sent
        self._naks_received = 0  # Naks received in this negotiation
        self._answer: RequestAnswer | None = None
        self._received_identifier = 0
        self._received_packet = b""
        #: why the layer is closing or finished, for the tlf report
        self.reason = ""
        #: the peer answered our Terminate-Request (RTA in Closing): it ends the link as well
        self.terminate_acknowledged = False
        #: every transition taken, for tests and traces: (old state, event, new state)
        self.trace: Callable[[State, Event, State], None] | None = None

    # -- state and time ------------------------------------------------------------
    @property
    def state(self) -> State:
        """The current RFC 1661 state."""
        return self._state

    @property
    def restart_counter(self) -> int:
        """The RFC 1661 §4.6 Restart counter."""
        return self._restart_counter

    def get_timer(self) -> float | None:
        """When `handle_timer` must next be called (None: the Restart timer is off)."""
        return self._deadline

    def handle_timer(self, now: float) -> None:
        """Fire TO+ or TO- if the Restart timer has expired by `now`."""
        if self._deadline is None or now < self._deadline:
            return
        self._deadline = None
        if self._restart_counter > 0:
            self.fire(Event.TO_PLUS, now)
            return
        if self._state in _NEGOTIATING:
            self.reason = (
                f"{self.name}: the peer did not agree to any of {self.max_configure} "
                "Configure-Requests (it was silent or kept refusing)"
            )
        elif self._state is State.CLOSING and not self.reason:
            self.reason = f"{self.name}: the peer did not acknowledge the Terminate-Request"
        self.fire(Event.TO_MINUS, now)

    # -- administrative and lower-layer events ------------------------------------------
    def up(self, now: float) -> None:
        """The lower layer is ready to carry packets (RFC 1661 Up)."""
        self.fire(Event.UP, now)

    def down(self, now: float, reason: str = "") -> None:
        """The lower layer went away (RFC 1661 Down)."""
        if reason:
            self.reason = reason
        self.fire(Event.DOWN, now)

    def open(self, now: float) -> None:
        """The administrator wants the link (RFC 1661 Open)."""
        self.reason = ""
        self.terminate_acknowledged = False
        self.fire(Event.OPEN, now)

    def close(self, now: float, reason: str) -> None:
        """The administrator wants the link closed, for `reason` (RFC 1661 Close)."""
        self.reason = reason
        self.fire(Event.CLOSE, now)

    # -- the automaton ------------------------------------------------------------
    def fire(self, event: Event, now: float) -> None:
        """Take the RFC 1661 transition for `event` and run its actions."""
        actions, target = transition(self._state, event)
        previous = self._state
        self._state = target
        if self.trace is not None:
            self.trace(previous, event, target)
        for action in actions:
            self._run(action, event, previous, actions, now)
        if target not in TIMER_STATES:
            self._deadline = None

    def _run(
        self,
        action: Action,
        event: Event,
        previous: State,
        actions: tuple[Action, ...],
        now: float,
    ) -> None:
        if action is Action.TLU:
            self._naks_received = 0
            self.this_layer_up(now)
        elif action is Action.TLD:
            self.this_layer_down(now)
        elif action is Action.TLS:
            self.this_layer_started(now)
        elif action is Action.TLF:
            self.this_layer_finished(now)
        elif action is Action.IRC:
            terminating = Action.STR in actions
            self._restart_counter = self.max_terminate if terminating else self.max_configure
        elif action is Action.ZRC:
            self._restart_counter = 0
            self._deadline = now + self.restart_interval
        elif action is Action.SCR:
            self._send_configure_request(now, retransmit=event is Event.TO_PLUS, previous=previous)
        elif action is Action.SCA:
            self._send_configure_ack()
        elif action is Action.SCN:
            self._send_configure_nak_or_reject()
        elif action is Action.STR:
            self._send_terminate_request(now)
        elif action is Action.STA:
            self._send(TERMINATE_ACK, self._received_identifier)
        elif action is Action.SCJ:
            self._send(CODE_REJECT, self._next_identifier(), self._received_packet)
        elif action is Action.SER:
            self.send_echo_reply(now)

    # -- hooks for the protocols built on this ---------------------------------------
    def this_layer_up(self, now: float) -> None:
        """tlu: the options are agreed; the owner may use the layer."""
        self.owner.layer_signal(self, LayerSignal.UP, now)

    def this_layer_down(self, now: float) -> None:
        """tld: the layer is leaving Opened."""
        self.owner.layer_signal(self, LayerSignal.DOWN, now)

    def this_layer_started(self, now: float) -> None:
        """tls: the layer needs its lower layer."""
        self.owner.layer_signal(self, LayerSignal.STARTED, now)

    def this_layer_finished(self, now: float) -> None:
        """tlf: the layer no longer needs its lower layer; `reason` says why."""
        self.owner.layer_signal(self, LayerSignal.FINISHED, now)

    def send_echo_reply(self, now: float) -> None:
        """ser: answer the Echo-Request just received (LCP only)."""

    def receive_other_code(
        self, code: int, identifier: int, data: bytes, now: float
    ) -> Event | None:
        """The event for a code beyond 1-7: RUC unless a protocol knows the code (LCP);
        None to discard the packet without an event."""
        return Event.RUC

    def code_reject_is_catastrophic(self, rejected_code: int) -> bool:
        """RXJ-: the peer rejected a code this automaton cannot work without (1-7)."""
        return 1 <= rejected_code <= CODE_REJECT

    # -- sending --------------------------------------------------------------------
    def _next_identifier(self) -> int:
        self._identifier = (self._identifier + 1) & 0xFF
        return self._identifier

    def _send(self, code: int, identifier: int, data: bytes = b"") -> None:
        self.owner.send_control(self.protocol, control_packet(code, identifier, data))

    def _send_configure_request(self, now: float, *, retransmit: bool, previous: State) -> None:
        if not (retransmit and self._request_packet):
            if previous not in _NEGOTIATING:
                # not negotiating before: start again from the configuration (as pppd does)
                self.options.reset()
                self._naks_sent = 0
                self._naks_received = 0
            identifier = self._next_identifier()
            self._request_identifier = identifier
            self._request_packet = control_packet(
                CONFIGURE_REQUEST, identifier, self.options.build_request()
            )
        self._answer_seen = False  # this transmission may be answered (pppd's seen_ack)
        self.owner.send_control(self.protocol, self._request_packet)
        self._restart_counter -= 1
        self._deadline = now + self.restart_interval

    def _send_configure_ack(self) -> None:
        answer = self._answer
        if answer is None:  # only when a test fires RCR+ by hand
            answer = RequestAnswer(CONFIGURE_ACK, b"", {})
        self._send(CONFIGURE_ACK, self._received_identifier, answer.data)
        self.options.commit_peer(answer.values)
        self._naks_sent = 0

    def _send_configure_nak_or_reject(self) -> None:
        answer = self._answer
        if answer is None:
            answer = RequestAnswer(CONFIGURE_REJECT, b"", {})
        if answer.code == CONFIGURE_NAK:
            self._naks_sent += 1
        self._send(answer.code, self._received_identifier, answer.data)

    def _send_terminate_request(self, now: float) -> None:
        self._send(TERMINATE_REQUEST, self._next_identifier(), self.reason.encode()[:200])
        self._restart_counter -= 1
        self._deadline = now + self.restart_interval

    # -- receiving --------------------------------------------------------------------
    def receive_packet(self, packet: bytes, now: float) -> None:
        """Process one received packet of this protocol (information field of a frame)."""
        if self._state in (State.INITIAL, State.STARTING):
            return  # RFC 1661 §4.2: no lower layer yet, so nothing can have been received
        parsed = parse_control_packet(packet)
        if parsed is None:
            return  # RFC 1661 §5: malformed packets are silently discarded
        code, identifier, data = parsed
        self._received_identifier = identifier
        self._received_packet = packet[: min(4 + len(data), self.peer_mru - 4)]
        event = self._classify(code, identifier, data, now)
        if event is not None:
            self.fire(event, now)

    def _classify(self, code: int, identifier: int, data: bytes, now: float) -> Event | None:
        if code == CONFIGURE_REQUEST:
            answer = self.options.judge_request(data, self._naks_sent >= self.max_failure)
            if answer is None:
                return None
            self._answer = answer
            return Event.RCR_PLUS if answer.code == CONFIGURE_ACK else Event.RCR_MINUS
        if code in (CONFIGURE_ACK, CONFIGURE_NAK, CONFIGURE_REJECT):
            if self._state not in _NEGOTIATING and self._state is not State.OPENED:
                # closed states: the table answers with a Terminate-Ack or ignores it
                return Event.RCA if code == CONFIGURE_ACK else Event.RCN
            if identifier != self._request_identifier or self._answer_seen:
                # RFC 1661 §5.2: an answer to no outstanding request is silently discarded;
                # a duplicate Ack of a retransmitted request too (as pppd does)
                return None
            return self._classify_answer(code, data)
        if code == TERMINATE_REQUEST:
            if self._state is State.OPENED:
                text = data.decode("utf-8", "replace").strip()
                self.reason = f"{self.name}: the peer sent Terminate-Request" + (
                    f" ({text})" if text else ""
                )
            return Event.RTR
        if code == TERMINATE_ACK:
            if self._state is State.CLOSING:
                self.terminate_acknowledged = True
            return Event.RTA
        if code == CODE_REJECT:
            rejected = data[0] if data else 0
            if self.code_reject_is_catastrophic(rejected):
                self.reason = f"{self.name}: the peer rejected code {rejected}"
                return Event.RXJ_MINUS
            return Event.RXJ_PLUS
        return self.receive_other_code(code, identifier, data, now)

    def _classify_answer(self, code: int, data: bytes) -> Event | None:
        if code == CONFIGURE_ACK:
            if not self.options.receive_ack(data):
                return None
            self._answer_seen = True
            return Event.RCA
        if code == CONFIGURE_NAK:
            self._naks_received += 1
            treat_as_reject = self._naks_received > self.max_failure
            if not self.options.receive_nak(data, treat_as_reject):
                return None
        elif not self.options.receive_reject(data):
            return None
        self._answer_seen = True
        return Event.RCN
