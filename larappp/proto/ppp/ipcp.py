"""IPCP (RFC 1332) with the DNS options of RFC 1877: option rows for both roles.

Host role: request 0.0.0.0 (or a configured address) and primary/secondary DNS 0.0.0.0,
and take what the peer Naks back. Module role: the caller hands over the address to give
the host and the DNS servers (from its pool); a 0.0.0.0 or different request is Nak'd
with them. Van Jacobson compression (option 2) is always rejected.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

from larappp.proto.ppp import frame
from larappp.proto.ppp.fsm import ControlProtocol, ControlProtocolOwner
from larappp.proto.ppp.options import (
    ACK,
    REJECT,
    OptionRow,
    OptionTable,
    Verdict,
    decode_ipv4,
    decode_raw,
    encode_ipv4,
    encode_raw,
    nak,
)

# RFC 1332 §3, RFC 1877 §1 option types
IP_ADDRESSES = 1  # deprecated (RFC 1332 §3.1): rejected like any unknown option
IP_COMPRESSION_PROTOCOL = 2
IP_ADDRESS = 3
PRIMARY_DNS = 129
PRIMARY_NBNS = 130
SECONDARY_DNS = 131
SECONDARY_NBNS = 132

UNSPECIFIED = IPv4Address(0)


@dataclass(frozen=True)
class IpcpConfig:
    """IPCP addresses: what to ask for (host role) or to hand out (module role)."""

    #: our own address: host role requests it (None: 0.0.0.0, "give me one");
    #: module role announces it (None: announce none)
    local_address: IPv4Address | None = None
    #: module role: the address the peer must use (Nak'd into its requests); None: accept
    #: any non-zero address the peer asks for and reject 0.0.0.0
    peer_address: IPv4Address | None = None
    #: module role: the DNS servers handed out (primary, secondary)
    dns_servers: tuple[IPv4Address, ...] = ()
    #: host role: ask for DNS servers (RFC 1877)
    request_dns: bool = True
    #: host role: ask for the address even when none is configured
    request_address: bool = True


class IpcpNegotiation:
    """IPCP's mutable negotiation state."""

    def __init__(self, config: IpcpConfig) -> None:
        self.config = config
        self.address: IPv4Address | None = None
        self.dns: list[IPv4Address | None] = [None, None]
        self.reset()

    def reset(self) -> None:
        """Back to the configuration."""
        config = self.config
        if config.local_address is not None:
            self.address = config.local_address
        elif config.request_address and config.peer_address is None:
            self.address = UNSPECIFIED
        else:
            self.address = None
        ask = UNSPECIFIED if config.request_dns and not config.dns_servers else None
        self.dns = [ask, ask]


def _address_nak(state: IpcpNegotiation, value: IPv4Address) -> None:
    if value != UNSPECIFIED:
        state.address = value


def _address_reject(state: IpcpNegotiation) -> None:
    state.address = None


def _address_judge(state: IpcpNegotiation, value: IPv4Address) -> Verdict:
    assigned = state.config.peer_address
    if assigned is not None:
        return ACK if value == assigned else nak(assigned)
    return REJECT if value == UNSPECIFIED else ACK  # we cannot give the peer an address


def _address_suggest(state: IpcpNegotiation) -> IPv4Address | None:
    return state.config.peer_address


def _dns_row(option_type: int, name: str, index: int) -> OptionRow[IpcpNegotiation]:
    def request(state: IpcpNegotiation) -> IPv4Address | None:
        return state.dns[index]

    def nak_received(state: IpcpNegotiation, value: IPv4Address) -> None:
        if state.dns[index] is not None:
            state.dns[index] = value

    def reject_received(state: IpcpNegotiation) -> None:
        state.dns[index] = None

    def judge(state: IpcpNegotiation, value: IPv4Address) -> Verdict:
        servers = state.config.dns_servers
        if index >= len(servers):
            return REJECT  # nothing to hand out
        return ACK if value == servers[index] else nak(servers[index])

    return OptionRow(
        option_type,
        name,
        decode_ipv4,
        encode_ipv4,
        request=request,
        nak_received=nak_received,
        reject_received=reject_received,
        judge=judge,
    )


IPCP_OPTIONS: tuple[OptionRow[IpcpNegotiation], ...] = (
    # RFC 1332 §3.2: we never compress, so Van Jacobson is refused outright
    OptionRow(IP_COMPRESSION_PROTOCOL, "IP-Compression-Protocol", decode_raw, encode_raw),
    OptionRow(
        IP_ADDRESS,
        "IP-Address",
        decode_ipv4,
        encode_ipv4,
        request=lambda state: state.address,
        nak_received=_address_nak,
        reject_received=_address_reject,
        judge=_address_judge,
        suggest=_address_suggest,
    ),
    _dns_row(PRIMARY_DNS, "Primary-DNS-Server-Address", 0),
    _dns_row(SECONDARY_DNS, "Secondary-DNS-Server-Address", 1),
)


class Ipcp(ControlProtocol[IpcpNegotiation]):
    """The IP Control Protocol: IPCP option rows on the RFC 1661 automaton."""

    name = "IPCP"
    protocol = frame.IPCP

    def __init__(self, owner: ControlProtocolOwner, config: IpcpConfig, **timers: Any) -> None:
        super().__init__(owner, OptionTable(IPCP_OPTIONS, IpcpNegotiation(config)), **timers)
        self.config = config

    @property
    def local_address(self) -> IPv4Address:
        """Our address as agreed (0.0.0.0 if none was)."""
        value = self.options.acked_ours.get(IP_ADDRESS)
        if isinstance(value, IPv4Address):
            return value
        return self.config.local_address or UNSPECIFIED

    @property
    def peer_address(self) -> IPv4Address | None:
        """The peer's address as agreed, if it announced one."""
        value = self.options.acked_peer.get(IP_ADDRESS)
        if isinstance(value, IPv4Address):
            return value
        return self.config.peer_address

    @property
    def dns_servers(self) -> tuple[IPv4Address, ...]:
        """DNS servers the peer gave us (host role), primary first."""
        found = (
            self.options.acked_ours.get(PRIMARY_DNS),
            self.options.acked_ours.get(SECONDARY_DNS),
        )
        return tuple(v for v in found if isinstance(v, IPv4Address) and v != UNSPECIFIED)
