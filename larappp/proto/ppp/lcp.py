"""LCP (RFC 1661 §5-§6): option rows, echo keepalive, looped-back links, Protocol-Reject."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from larappp.proto.hdlc import DEFAULT_ACCM
from larappp.proto.ppp import frame
from larappp.proto.ppp.fsm import (
    CODE_REJECT,
    ControlProtocol,
    ControlProtocolOwner,
    Event,
    State,
    control_packet,
)
from larappp.proto.ppp.options import (
    ACK,
    REJECT,
    OptionRow,
    OptionTable,
    RandomSource,
    Verdict,
    decode_empty,
    decode_u16,
    decode_u32,
    encode_empty,
    encode_u16,
    encode_u32,
    nak,
)

# RFC 1661 §5.7-§5.9, RFC 1570 §2-§3: codes only LCP has
PROTOCOL_REJECT = 8
ECHO_REQUEST = 9
ECHO_REPLY = 10
DISCARD_REQUEST = 11
IDENTIFICATION = 12
TIME_REMAINING = 13

# RFC 1661 §6 option types
MRU = 1
ACCM = 2
AUTHENTICATION_PROTOCOL = 3
QUALITY_PROTOCOL = 4
MAGIC_NUMBER = 5
PFC = 7
ACFC = 8

DEFAULT_MRU = 1500  # RFC 1661 §6.1
MIN_MRU = 128  # smallest MRU we agree to (pppd's MINMRU)
MAX_MRU = 65535

# Authentication-Protocol values (RFC 1661 §6.2, RFC 1994 §3: CHAP algorithm 5 is MD5)
CHAP_MD5 = 5
AUTH_METHODS: dict[str, tuple[int, bytes]] = {
    "chap": (frame.CHAP, bytes((CHAP_MD5,))),
    "pap": (frame.PAP, b""),
}
AUTH_NAMES = {value: name for name, value in AUTH_METHODS.items()}

LOOPBACK_LIMIT = 10  # Magic-Number Naks in one negotiation before we call the line looped back

# The LCP keepalive for a cellular module (pppd's lcp-echo-interval / lcp-echo-failure).
# The PPP peer is the module itself, not the network (LTE carries no PPP over the air):
# echoes cost no radio time or battery, and a live module answers within milliseconds.
# What they catch is a module that hung or a line that died without NO CARRIER, so the
# sooner the better: 5 s x 3 finds it in 15 s, where pppd's usual 30 s x 4 takes 2 min.
ECHO_INTERVAL = 5.0
ECHO_FAILURES = 3


@dataclass(frozen=True)
class LcpConfig:
    """What LCP asks for and accepts."""

    mru: int = DEFAULT_MRU
    #: the control characters the peer must escape towards us (0: none, for a clean line)
    accm: int = 0
    magic_number: bool = True
    pfc: bool = True
    acfc: bool = True
    #: methods ("chap", "pap") we require the peer to authenticate with, preferred first
    authenticate_peer: tuple[str, ...] = ()
    #: methods we agree to authenticate ourselves with when the peer asks, preferred first
    answer_auth: tuple[str, ...] = ("chap", "pap")
    loopback_limit: int = LOOPBACK_LIMIT
    #: seconds between LCP Echo-Requests once opened, the first at once (None: no keepalive)
    echo_interval: float | None = ECHO_INTERVAL
    #: Echo-Requests in a row left unanswered for an interval each, after which the peer is
    #: taken for gone: echo_failures x echo_interval after the first unanswered one
    echo_failures: int = ECHO_FAILURES


class LcpNegotiation:
    """LCP's mutable negotiation state: what our next Configure-Request asks for."""

    def __init__(self, config: LcpConfig, rng: RandomSource) -> None:
        self.config = config
        self.rng = rng
        self.loops = 0
        self.mru: int | None = None
        self.accm: int | None = None
        self.magic: int | None = None
        self.pfc = False
        self.acfc = False
        self.auth_candidates: list[tuple[int, bytes]] = []
        self.reset()

    def reset(self) -> None:
        """Back to the configuration: forget Naks and Rejects."""
        config = self.config
        self.mru = config.mru if config.mru != DEFAULT_MRU else None
        self.accm = config.accm if config.accm != DEFAULT_ACCM else None
        self.magic = self.new_magic() if config.magic_number else None
        self.pfc = config.pfc
        self.acfc = config.acfc
        self.auth_candidates = [AUTH_METHODS[name] for name in config.authenticate_peer]
        self.loops = 0

    def new_magic(self) -> int:
        """A fresh non-zero Magic-Number different from ours (RFC 1661 §6.4)."""
        while True:
            magic = self.rng.getrandbits(32)
            if magic and magic != self.magic:
                return magic


def _decode_auth(data: bytes) -> tuple[int, bytes]:
    if len(data) < 2:
        raise ValueError("Authentication-Protocol needs at least 2 octets")
    return int.from_bytes(data[:2], "big"), bytes(data[2:])


def _encode_auth(value: tuple[int, bytes]) -> bytes:
    return value[0].to_bytes(2, "big") + value[1]


def _mru_nak(state: LcpNegotiation, value: int) -> None:
    if MIN_MRU <= value <= max(state.config.mru, DEFAULT_MRU):
        state.mru = value
    else:
        state.mru = None  # cannot receive that much: fall back to the default


def _mru_reject(state: LcpNegotiation) -> None:
    state.mru = None


def _mru_judge(state: LcpNegotiation, value: int) -> Verdict:
    return nak(MIN_MRU) if value < MIN_MRU else ACK


def _accm_nak(state: LcpNegotiation, value: int) -> None:
    state.accm = (state.accm or 0) | value  # escape what both want escaped


def _accm_reject(state: LcpNegotiation) -> None:
    state.accm = None


def _auth_request(state: LcpNegotiation) -> tuple[int, bytes] | None:
    return state.auth_candidates[0] if state.auth_candidates else None


def _auth_nak(state: LcpNegotiation, value: tuple[int, bytes]) -> None:
    if value in state.auth_candidates:  # the peer prefers another method we also accept
        state.auth_candidates.remove(value)
        state.auth_candidates.insert(0, value)
    elif state.auth_candidates:
        state.auth_candidates.pop(0)


def _auth_reject(state: LcpNegotiation) -> None:
    state.auth_candidates = []


def _auth_judge(state: LcpNegotiation, value: tuple[int, bytes]) -> Verdict:
    acceptable = [AUTH_METHODS[name] for name in state.config.answer_auth]
    if value in acceptable:
        return ACK
    return nak(acceptable[0]) if acceptable else REJECT


def _magic_request(state: LcpNegotiation) -> int | None:
    return state.magic


def _magic_nak(state: LcpNegotiation, value: int) -> None:
    # RFC 1661 §6.4: a Nak of our number may be our own Nak come back; count and renew
    state.loops += 1
    state.magic = state.new_magic()


def _magic_reject(state: LcpNegotiation) -> None:
    state.magic = None


def _magic_judge(state: LcpNegotiation, value: int) -> Verdict:
    if value == 0 or (state.magic is not None and value == state.magic):
        return nak(state.new_magic())  # zero is illegal; equal to ours may be a loop
    return ACK


def _flag_row(option_type: int, name: str, attribute: str) -> OptionRow[LcpNegotiation]:
    def request(state: LcpNegotiation) -> bool | None:
        return True if getattr(state, attribute) else None

    def reject(state: LcpNegotiation) -> None:
        setattr(state, attribute, False)

    def judge(state: LcpNegotiation, value: Any) -> Verdict:
        return ACK  # the peer can receive compressed fields; we compress if configured to

    return OptionRow(
        option_type,
        name,
        decode_empty,
        encode_empty,
        request=request,
        reject_received=reject,
        judge=judge,
    )


LCP_OPTIONS: tuple[OptionRow[LcpNegotiation], ...] = (
    OptionRow(
        MRU,
        "Maximum-Receive-Unit",
        decode_u16,
        encode_u16,
        request=lambda state: state.mru,
        nak_received=_mru_nak,
        reject_received=_mru_reject,
        judge=_mru_judge,
    ),
    OptionRow(
        ACCM,
        "Async-Control-Character-Map",
        decode_u32,
        encode_u32,
        request=lambda state: state.accm,
        nak_received=_accm_nak,
        reject_received=_accm_reject,
        judge=lambda state, value: ACK,
    ),
    OptionRow(
        AUTHENTICATION_PROTOCOL,
        "Authentication-Protocol",
        _decode_auth,
        _encode_auth,
        request=_auth_request,
        nak_received=_auth_nak,
        reject_received=_auth_reject,
        judge=_auth_judge,
    ),
    OptionRow(
        MAGIC_NUMBER,
        "Magic-Number",
        decode_u32,
        encode_u32,
        request=_magic_request,
        nak_received=_magic_nak,
        reject_received=_magic_reject,
        judge=_magic_judge,
        nak_forever=True,
    ),
    _flag_row(PFC, "Protocol-Field-Compression", "pfc"),
    _flag_row(ACFC, "Address-and-Control-Field-Compression", "acfc"),
)


class LcpOwner(ControlProtocolOwner, Protocol):
    """What LCP needs from the link beyond what every control protocol needs."""

    def protocol_rejected(self, protocol: int, now: float) -> None:
        """The peer sent a Protocol-Reject for `protocol` (not LCP)."""

    def echo_timed_out(self, unanswered: int, now: float) -> None:
        """`unanswered` Echo-Requests in a row got no reply: the peer is gone."""

    def link_looped(self, evidence: str, now: float) -> None:
        """Our own LCP packet came back (RFC 1661 §6.4): the line is looped back."""


class Lcp(ControlProtocol[LcpNegotiation]):
    """The Link Control Protocol: LCP option rows plus echo, discard and reject handling."""

    name = "LCP"
    protocol = frame.LCP

    def __init__(
        self,
        owner: LcpOwner,
        config: LcpConfig,
        rng: RandomSource,
        **timers: Any,
    ) -> None:
        super().__init__(owner, OptionTable(LCP_OPTIONS, LcpNegotiation(config, rng)), **timers)
        self.lcp_owner = owner
        self.config = config
        self.loopback_detected = False
        self._echo_deadline: float | None = None
        self._echo_unanswered = 0
        self._echo_identifier = 0
        self._echo_enabled = config.echo_interval is not None
        self._echo_request: tuple[int, bytes] | None = None
        #: Echo-Replies received (keepalive statistics)
        self.echo_replies = 0

    # -- what was agreed (valid once opened) --------------------------------------------
    @property
    def magic(self) -> int:
        """Our Magic-Number as acknowledged (0: none negotiated)."""
        value = self.options.acked_ours.get(MAGIC_NUMBER, 0)
        return int(value)

    @property
    def local_mru(self) -> int:
        """The largest packet the peer agreed to send us."""
        return int(self.options.acked_ours.get(MRU, DEFAULT_MRU))

    @property
    def remote_mru(self) -> int:
        """The largest packet the peer can receive."""
        return int(self.options.acked_peer.get(MRU, DEFAULT_MRU))

    @property
    def transmit_accm(self) -> int:
        """The characters we must escape towards the peer."""
        return int(self.options.acked_peer.get(ACCM, DEFAULT_ACCM))

    @property
    def receive_accm(self) -> int:
        """The characters the peer escapes towards us."""
        return int(self.options.acked_ours.get(ACCM, DEFAULT_ACCM))

    @property
    def transmit_pfc(self) -> bool:
        """Whether we may send one-octet protocol fields."""
        return self.config.pfc and PFC in self.options.acked_peer

    @property
    def transmit_acfc(self) -> bool:
        """Whether we may leave out the address and control fields."""
        return self.config.acfc and ACFC in self.options.acked_peer

    @property
    def auth_by_us(self) -> str | None:
        """The method ("chap", "pap") we authenticate the peer with, if agreed."""
        value = self.options.acked_ours.get(AUTHENTICATION_PROTOCOL)
        return AUTH_NAMES.get(value) if value is not None else None

    @property
    def auth_by_peer(self) -> str | None:
        """The method the peer authenticates us with, if agreed."""
        value = self.options.acked_peer.get(AUTHENTICATION_PROTOCOL)
        return AUTH_NAMES.get(value) if value is not None else None

    # -- layer hooks ------------------------------------------------------------------
    def this_layer_up(self, now: float) -> None:
        self.peer_mru = self.remote_mru
        self.options.state.loops = 0
        self._echo_unanswered = 0
        super().this_layer_up(now)
        if self._echo_enabled and self.config.echo_interval is not None:
            # The first Echo-Request at once: a looped-back line shows at the start, and
            # the failure count runs from the first unanswered request. It follows our
            # Configure-Ack on the line, so the peer is Opened when it arrives.
            self._echo_deadline = now
            self._send_echo_request(now, self.config.echo_interval)

    def this_layer_down(self, now: float) -> None:
        self._echo_deadline = None
        super().this_layer_down(now)

    # -- time ----------------------------------------------------------------------------
    def get_timer(self) -> float | None:
        deadlines = [d for d in (super().get_timer(), self._echo_deadline) if d is not None]
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> None:
        super().handle_timer(now)
        if self._echo_deadline is None or now < self._echo_deadline:
            return
        interval = self.config.echo_interval
        if self._state is not State.OPENED or interval is None:
            self._echo_deadline = None
            return
        if self._echo_unanswered >= self.config.echo_failures:
            # the owner ends the link: no Terminate-Request to a peer that is not there
            self._echo_deadline = None
            self.lcp_owner.echo_timed_out(self._echo_unanswered, now)
            return
        self._send_echo_request(now, interval)

    def _send_echo_request(self, now: float, interval: float) -> None:
        self._echo_identifier = (self._echo_identifier + 1) & 0xFF
        self._send(ECHO_REQUEST, self._echo_identifier, self.magic.to_bytes(4, "big"))
        self._echo_unanswered += 1
        self._echo_deadline = now + interval

    # -- receiving --------------------------------------------------------------------
    def receive_packet(self, packet: bytes, now: float) -> None:
        # While negotiating, a Configure-Request carrying our Magic-Number is Nak'd and
        # only a run of them proves a loop (RFC 1661 §6.4): a line may echo a moment
        # before the peer's PPP starts (a tty's echo until pppd sets raw mode).
        super().receive_packet(packet, now)
        state = self.options.state
        if (
            not self.loopback_detected
            and state.loops >= self.config.loopback_limit
            and self._state in (State.REQ_SENT, State.ACK_RCVD, State.ACK_SENT)
        ):
            self._looped(now, f"{state.loops} Magic-Number Naks in a row")

    def _carries_our_magic(self, data: bytes) -> bool:
        magic = self.magic
        return magic != 0 and data[:4] == magic.to_bytes(4, "big")

    def _looped(self, now: float, evidence: str) -> None:
        if self.loopback_detected:
            return
        self.loopback_detected = True
        self.lcp_owner.link_looped(evidence, now)

    def receive_other_code(
        self, code: int, identifier: int, data: bytes, now: float
    ) -> Event | None:
        self._echo_request = None  # RXR covers three codes; only an Echo-Request gets a reply
        if code in (ECHO_REQUEST, ECHO_REPLY) and self._carries_our_magic(data):
            # RFC 1661 §5.8: the peer puts its own Magic-Number in; ours means it is us
            name = "Echo-Request" if code == ECHO_REQUEST else "Echo-Reply"
            self._looped(now, f"an {name} carrying our own Magic-Number {self.magic:#010x}")
            return None
        if code == PROTOCOL_REJECT:
            if len(data) < 2:
                return Event.RXR  # too short to name a protocol: nothing to act on
            rejected = int.from_bytes(data[:2], "big")
            if rejected == frame.LCP:
                self.reason = "LCP: the peer rejected LCP itself"
                return Event.RXJ_MINUS
            if self._state is State.OPENED:
                self.lcp_owner.protocol_rejected(rejected, now)
            return Event.RXJ_PLUS
        if code == ECHO_REQUEST:
            self._echo_request = (identifier, data)
            return Event.RXR
        if code == ECHO_REPLY:
            if self._state is State.OPENED:
                self._echo_unanswered = 0
                self.echo_replies += 1
            return Event.RXR
        if code in (DISCARD_REQUEST, IDENTIFICATION, TIME_REMAINING):
            return Event.RXR
        return Event.RUC

    def code_reject_is_catastrophic(self, rejected_code: int) -> bool:
        if rejected_code in (ECHO_REQUEST, ECHO_REPLY, DISCARD_REQUEST):
            self._echo_enabled = False  # the peer has no echo: stop the keepalive
            self._echo_deadline = None
            return False
        return 1 <= rejected_code <= CODE_REJECT

    def send_echo_reply(self, now: float) -> None:
        if self._echo_request is None:
            return
        identifier, data = self._echo_request
        self._echo_request = None
        self.owner.send_control(
            self.protocol,
            control_packet(ECHO_REPLY, identifier, self.magic.to_bytes(4, "big") + data[4:]),
        )

    # -- sending ------------------------------------------------------------------------
    def send_protocol_reject(self, protocol: int, info: bytes) -> bool:
        """Reject a protocol the peer sent us (RFC 1661 §5.7); only possible when Opened."""
        if self._state is not State.OPENED:
            return False
        data = protocol.to_bytes(2, "big") + info
        self._send(PROTOCOL_REJECT, self._next_identifier(), data[: self.peer_mru - 4])
        return True
