"""Configuration options as rows: wire form, what we request, how we judge the peer's value.

A control protocol (LCP, IPCP, IPV6CP) is a tuple of `OptionRow`s over one mutable
negotiation state; `OptionTable` applies the RFC 1661 §5.1-§5.4 rules (Configure-Request,
-Ack, -Nak, -Reject) to those rows, so the protocols themselves hold no parsing code.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

# RFC 1661 §5 codes
CONFIGURE_REQUEST = 1
CONFIGURE_ACK = 2
CONFIGURE_NAK = 3
CONFIGURE_REJECT = 4


class RandomSource(Protocol):
    """Where Magic-Numbers and challenges come from (random.SystemRandom, or seeded in tests)."""

    def getrandbits(self, k: int, /) -> int:
        """An integer of `k` random bits."""


def random_bytes(rng: RandomSource, count: int) -> bytes:
    """`count` random octets from `rng`."""
    return rng.getrandbits(8 * count).to_bytes(count, "big")


class NegotiationState(Protocol):
    """The mutable per-protocol state the rows read and change."""

    def reset(self) -> None:
        """Forget every Nak and Reject: the next request is built from the configuration."""


S = TypeVar("S", bound=NegotiationState)


class Judgement(enum.Enum):
    """What we answer to one option of the peer's Configure-Request."""

    ACK = "ack"
    NAK = "nak"
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class Verdict:
    """A judgement on a peer's option; `suggestion` is the value a Nak proposes instead."""

    judgement: Judgement
    suggestion: Any = None


ACK = Verdict(Judgement.ACK)
REJECT = Verdict(Judgement.REJECT)


def nak(suggestion: Any) -> Verdict:
    """Nak the peer's value, proposing `suggestion` (RFC 1661 §5.3)."""
    return Verdict(Judgement.NAK, suggestion)


def _nothing(state: Any) -> None:
    return None


def _reject(state: Any, value: Any) -> Verdict:
    return REJECT


def _ignore_nak(state: Any, value: Any) -> None:
    return None


@dataclass(frozen=True, eq=False)
class OptionRow(Generic[S]):
    """One configuration option: type, codec, and the four negotiation hooks.

    decode raises ValueError for a malformed value (the option is then rejected).
    request gives the value we put in our Configure-Request (None: leave it out).
    nak_received / reject_received change the state after the peer's Nak / Reject.
    judge answers the peer's value; suggest gives a value to Nak into a peer request that
    omitted the option (None: nothing to ask for). nak_forever keeps Naking after
    Max-Failure instead of turning the Nak into a Reject (the Magic-Number, RFC 1661 §6.4).
    """

    type: int
    name: str
    decode: Callable[[bytes], Any]
    encode: Callable[[Any], bytes]
    request: Callable[[S], Any] = _nothing
    nak_received: Callable[[S, Any], None] = _ignore_nak
    reject_received: Callable[[S], None] = _nothing
    judge: Callable[[S, Any], Verdict] = _reject
    suggest: Callable[[S], Any] = _nothing
    nak_forever: bool = False


# -- codecs -----------------------------------------------------------------------------


def decode_empty(data: bytes) -> bool:
    """A boolean option has no value octets (PFC, ACFC)."""
    if data:
        raise ValueError("option takes no value")
    return True


def encode_empty(value: Any) -> bytes:
    """A boolean option is sent with no value octets."""
    return b""


def decode_u16(data: bytes) -> int:
    """A 16-bit unsigned value in network order."""
    if len(data) != 2:
        raise ValueError("option needs 2 octets")
    return int.from_bytes(data, "big")


def encode_u16(value: int) -> bytes:
    """A 16-bit unsigned value in network order."""
    return struct.pack("!H", value)


def decode_u32(data: bytes) -> int:
    """A 32-bit unsigned value in network order."""
    if len(data) != 4:
        raise ValueError("option needs 4 octets")
    return int.from_bytes(data, "big")


def encode_u32(value: int) -> bytes:
    """A 32-bit unsigned value in network order."""
    return struct.pack("!I", value)


def decode_ipv4(data: bytes) -> ipaddress.IPv4Address:
    """An IPv4 address (RFC 1332 §3.3, RFC 1877)."""
    if len(data) != 4:
        raise ValueError("option needs 4 octets")
    return ipaddress.IPv4Address(data)


def encode_ipv4(value: ipaddress.IPv4Address) -> bytes:
    """An IPv4 address (RFC 1332 §3.3, RFC 1877)."""
    return value.packed


def decode_raw(data: bytes) -> bytes:
    """The value octets as they are."""
    return bytes(data)


def encode_raw(value: bytes) -> bytes:
    """The value octets as they are."""
    return value


# -- the option list of a packet ----------------------------------------------------------


def parse_options(data: bytes) -> list[tuple[int, bytes]] | None:
    """Split an options field into (type, value) pairs; None if a length is malformed."""
    options: list[tuple[int, bytes]] = []
    offset = 0
    end = len(data)
    while offset < end:
        if offset + 2 > end:
            return None
        length = data[offset + 1]
        if length < 2 or offset + length > end:
            return None
        options.append((data[offset], data[offset + 2 : offset + length]))
        offset += length
    return options


def encode_option(option_type: int, value: bytes) -> bytes:
    """One option in type-length-value form."""
    if len(value) > 253:
        raise ValueError(f"option {option_type} value is too long ({len(value)} octets)")
    return bytes((option_type, len(value) + 2)) + value


@dataclass(frozen=True, slots=True)
class RequestAnswer:
    """Our answer to a peer's Configure-Request: code, options field, decoded peer values."""

    code: int
    data: bytes
    values: dict[int, Any]


class OptionTable(Generic[S]):
    """The rows of one control protocol bound to its negotiation state."""

    def __init__(self, rows: Sequence[OptionRow[S]], state: S) -> None:
        self.rows = tuple(rows)
        self.state = state
        self._by_type = {row.type: row for row in self.rows}
        if len(self._by_type) != len(self.rows):
            raise ValueError("two rows share an option type")
        self._requested: dict[int, Any] = {}
        self._request_data = b""
        #: values of our last Configure-Request the peer acknowledged
        self.acked_ours: dict[int, Any] = {}
        #: values of the peer's last Configure-Request we acknowledged
        self.acked_peer: dict[int, Any] = {}

    def row(self, option_type: int) -> OptionRow[S] | None:
        """The row for an option type, if the protocol knows it."""
        return self._by_type.get(option_type)

    def reset(self) -> None:
        """Start a new negotiation: configuration values again, nothing acknowledged."""
        self.state.reset()
        self.acked_ours = {}
        self.acked_peer = {}

    def build_request(self) -> bytes:
        """The options field of our next Configure-Request (and remember what it asks)."""
        self._requested = {}
        parts = []
        for row in self.rows:
            value = row.request(self.state)
            if value is not None:
                self._requested[row.type] = value
                parts.append(encode_option(row.type, row.encode(value)))
        self._request_data = b"".join(parts)
        return self._request_data

    @property
    def request_data(self) -> bytes:
        """The options field of the last Configure-Request built."""
        return self._request_data

    def _preview_request(self) -> bytes:
        parts = []
        for row in self.rows:
            value = row.request(self.state)
            if value is not None:
                parts.append(encode_option(row.type, row.encode(value)))
        return b"".join(parts)

    def receive_ack(self, data: bytes) -> bool:
        """A Configure-Ack must repeat our request exactly (RFC 1661 §5.2)."""
        if data != self._request_data:
            return False
        self.acked_ours = dict(self._requested)
        return True

    def receive_nak(self, data: bytes, treat_as_reject: bool) -> bool:
        """Apply a Configure-Nak; False (discard it) when it is malformed or changes nothing.

        With `treat_as_reject` (too many Naks in a row) the Nak'd options are dropped
        instead of changed, and suggestions for options we did not ask for are ignored, so
        the request can only shrink and a peer cannot keep us negotiating forever.
        """
        options = parse_options(data)
        if options is None:
            return False
        for option_type, raw in options:
            row = self._by_type.get(option_type)
            if row is None:
                continue
            requested = option_type in self._requested
            if not requested and treat_as_reject:
                continue
            try:
                value = row.decode(raw)
            except ValueError:
                continue
            if requested and treat_as_reject and not row.nak_forever:
                row.reject_received(self.state)
            else:
                row.nak_received(self.state, value)
        return self._preview_request() != self._request_data

    def receive_reject(self, data: bytes) -> bool:
        """Apply a Configure-Reject; False when it names an option we did not send (§5.4)."""
        options = parse_options(data)
        if options is None or not options:
            return False
        sent = parse_options(self._request_data) or []
        if any(option not in sent for option in options):
            return False
        for option_type, _raw in options:
            row = self._by_type.get(option_type)
            if row is not None:
                row.reject_received(self.state)
        return True

    def judge_request(self, data: bytes, reject_disagreements: bool) -> RequestAnswer | None:
        """Our answer to the peer's Configure-Request options; None if they are malformed.

        Unknown, malformed and duplicated options are rejected; if nothing is rejected the
        disagreements are Nak'd (or rejected once `reject_disagreements`, RFC 1661 Max-Failure)
        together with suggestions for options the peer left out; otherwise everything is
        acknowledged as received.
        """
        options = parse_options(data)
        if options is None:
            return None
        rejected: list[bytes] = []
        naked: list[bytes] = []
        values: dict[int, Any] = {}
        for option_type, raw in options:
            row = self._by_type.get(option_type)
            if row is None or option_type in values:
                rejected.append(encode_option(option_type, raw))
                continue
            try:
                value = row.decode(raw)
            except ValueError:
                rejected.append(encode_option(option_type, raw))
                continue
            values[option_type] = value
            verdict = row.judge(self.state, value)
            if verdict.judgement is Judgement.NAK and reject_disagreements and not row.nak_forever:
                verdict = REJECT
            if verdict.judgement is Judgement.REJECT:
                rejected.append(encode_option(option_type, raw))
            elif verdict.judgement is Judgement.NAK:
                naked.append(encode_option(option_type, row.encode(verdict.suggestion)))
        if rejected:
            return RequestAnswer(CONFIGURE_REJECT, b"".join(rejected), values)
        if not reject_disagreements:
            for row in self.rows:
                if row.type not in values:
                    suggestion = row.suggest(self.state)
                    if suggestion is not None:
                        naked.append(encode_option(row.type, row.encode(suggestion)))
        if naked:
            return RequestAnswer(CONFIGURE_NAK, b"".join(naked), values)
        return RequestAnswer(CONFIGURE_ACK, bytes(data), values)

    def commit_peer(self, values: dict[int, Any]) -> None:
        """We acknowledged the peer's request: its values are in force."""
        self.acked_peer = dict(values)
