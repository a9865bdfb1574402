"""IPV6CP (RFC 5072): the Interface-Identifier option row, for both roles.

Each side proposes an identifier for its own link-local address; a zero or colliding
identifier from the peer is Nak'd with a fresh one. In module role the caller may give
the identifier the host must use (a 3GPP network assigns the UE's), which is then Nak'd
into every different request.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import Any

from larappp.proto.ppp import frame
from larappp.proto.ppp.fsm import ControlProtocol, ControlProtocolOwner
from larappp.proto.ppp.options import (
    ACK,
    OptionRow,
    OptionTable,
    RandomSource,
    Verdict,
    decode_raw,
    encode_raw,
    nak,
    random_bytes,
)

# RFC 5072 §4 option types
INTERFACE_IDENTIFIER = 1
IPV6_COMPRESSION_PROTOCOL = 2

IID_LENGTH = 8
ZERO_IID = bytes(IID_LENGTH)


def random_interface_id(rng: RandomSource, avoid: bytes | None = None) -> bytes:
    """A random non-zero identifier with the "u" bit clear (RFC 5072 §4.1), not `avoid`."""
    while True:
        iid = bytearray(random_bytes(rng, IID_LENGTH))
        iid[0] &= 0xFD  # locally administered
        if any(iid) and bytes(iid) != avoid:
            return bytes(iid)


def link_local_address(iid: bytes) -> IPv6Address:
    """fe80::/64 with `iid` as its interface identifier (RFC 5072 §5)."""
    return IPv6Address(b"\xfe\x80" + bytes(6) + iid)


@dataclass(frozen=True)
class Ipv6cpConfig:
    """IPV6CP identifiers: our own and, in module role, the one the peer must use."""

    #: our identifier (None: a random one; ZERO_IID asks the peer to suggest one)
    interface_id: bytes | None = None
    #: module role: the identifier the peer must use (None: any unique non-zero one)
    peer_interface_id: bytes | None = None

    def __post_init__(self) -> None:
        for value in (self.interface_id, self.peer_interface_id):
            if value is not None and len(value) != IID_LENGTH:
                raise ValueError("an IPv6 interface identifier is 8 octets")


class Ipv6cpNegotiation:
    """IPV6CP's mutable negotiation state."""

    def __init__(self, config: Ipv6cpConfig, rng: RandomSource) -> None:
        self.config = config
        self.rng = rng
        self.iid: bytes | None = None
        self.reset()

    def reset(self) -> None:
        """Back to the configuration (a configured identifier, or a new random one)."""
        configured = self.config.interface_id
        self.iid = configured if configured is not None else random_interface_id(self.rng)

    def fresh_peer_iid(self) -> bytes:
        """An identifier to suggest to the peer: the assigned one, or random and unlike ours."""
        return self.config.peer_interface_id or random_interface_id(self.rng, self.iid)


def _decode_iid(data: bytes) -> bytes:
    if len(data) != IID_LENGTH:
        raise ValueError("Interface-Identifier needs 8 octets")
    return bytes(data)


def _iid_nak(state: Ipv6cpNegotiation, value: bytes) -> None:
    state.iid = value if value != ZERO_IID else random_interface_id(state.rng, state.iid)


def _iid_reject(state: Ipv6cpNegotiation) -> None:
    state.iid = None


def _iid_judge(state: Ipv6cpNegotiation, value: bytes) -> Verdict:
    assigned = state.config.peer_interface_id
    if assigned is not None and value != assigned:
        return nak(assigned)
    if value == ZERO_IID or value == state.iid:
        return nak(state.fresh_peer_iid())  # RFC 5072 §4.1: zero or equal to ours
    return ACK


IPV6CP_OPTIONS: tuple[OptionRow[Ipv6cpNegotiation], ...] = (
    OptionRow(
        INTERFACE_IDENTIFIER,
        "Interface-Identifier",
        _decode_iid,
        encode_raw,
        request=lambda state: state.iid,
        nak_received=_iid_nak,
        reject_received=_iid_reject,
        judge=_iid_judge,
        suggest=lambda state: state.config.peer_interface_id,
    ),
    # we never compress IPv6 headers
    OptionRow(IPV6_COMPRESSION_PROTOCOL, "IPv6-Compression-Protocol", decode_raw, encode_raw),
)


class Ipv6cp(ControlProtocol[Ipv6cpNegotiation]):
    """The IPv6 Control Protocol: IPV6CP option rows on the RFC 1661 automaton."""

    name = "IPV6CP"
    protocol = frame.IPV6CP

    def __init__(
        self,
        owner: ControlProtocolOwner,
        config: Ipv6cpConfig,
        rng: RandomSource,
        **timers: Any,
    ) -> None:
        negotiation = Ipv6cpNegotiation(config, rng)
        super().__init__(owner, OptionTable(IPV6CP_OPTIONS, negotiation), **timers)
        self.config = config
        self.rng = rng

    @property
    def local_iid(self) -> bytes:
        """Our identifier as agreed (the one we proposed if the peer rejected the option)."""
        value = self.options.acked_ours.get(INTERFACE_IDENTIFIER)
        if isinstance(value, bytes):
            return value
        state = self.options.state
        if state.iid is None or state.iid == ZERO_IID:
            state.iid = random_interface_id(self.rng, self.peer_iid)
        return state.iid

    @property
    def peer_iid(self) -> bytes | None:
        """The peer's identifier as agreed, if it proposed one."""
        value = self.options.acked_peer.get(INTERFACE_IDENTIFIER)
        return value if isinstance(value, bytes) else None
