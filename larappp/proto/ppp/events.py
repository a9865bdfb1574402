"""What a PppLink reports: frozen dataclasses named in the past tense, never carrying secrets."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from larappp.proto.ppp.ipv6cp import link_local_address


@dataclass(frozen=True, slots=True)
class LinkOpened:
    """LCP reached Opened: the link carries packets with these agreed parameters."""

    local_mru: int
    remote_mru: int
    magic: int
    pfc: bool
    acfc: bool
    auth_by_us: str | None
    auth_by_peer: str | None


@dataclass(frozen=True, slots=True)
class AuthSucceeded:
    """One authentication ended well (`as_authenticator`: we checked the peer)."""

    method: str
    username: str
    as_authenticator: bool


@dataclass(frozen=True, slots=True)
class AuthFailed:
    """One authentication failed; the link is being closed."""

    method: str
    username: str
    as_authenticator: bool
    reason: str


@dataclass(frozen=True, slots=True)
class IpcpOpened:
    """IPCP reached Opened: IPv4 packets flow; addresses and DNS as agreed."""

    local: IPv4Address
    peer: IPv4Address | None
    dns: tuple[IPv4Address, ...]


@dataclass(frozen=True, slots=True)
class Ipv6cpOpened:
    """IPV6CP reached Opened: IPv6 packets flow; link-local identifiers as agreed."""

    local_iid: bytes
    peer_iid: bytes | None

    @property
    def local_link_local(self) -> IPv6Address:
        """fe80:: with our identifier."""
        return link_local_address(self.local_iid)

    @property
    def peer_link_local(self) -> IPv6Address | None:
        """fe80:: with the peer's identifier, if it proposed one."""
        return link_local_address(self.peer_iid) if self.peer_iid is not None else None


@dataclass(frozen=True, slots=True)
class NetworkProtocolClosed:
    """An NCP (IPCP, IPV6CP) left Opened or gave up before reaching it.

    While LCP stays up the NCP may open again (the peer renegotiates it): undo that
    family's addresses, routes and DNS at once; the next IpcpOpened or Ipv6cpOpened
    sets them again (an IPV6CP reopening may bring a new interface identifier).
    """

    protocol: str
    reason: str

    @property
    def family(self) -> int:
        """The IP family (4 or 6) this NCP carries."""
        return 6 if self.protocol.upper() == "IPV6CP" else 4


@dataclass(frozen=True, slots=True)
class ProtocolRejected:
    """The peer sent a Protocol-Reject for one of our protocols; we stopped using it."""

    protocol: int
    name: str


@dataclass(frozen=True, slots=True)
class PacketReceived:
    """An IP packet arrived (`family` 4 or 6)."""

    family: int
    packet: bytes

    def __repr__(self) -> str:
        return f"PacketReceived(family={self.family}, {len(self.packet)} octets)"


@dataclass(frozen=True, slots=True)
class EchoTimedOut:
    """The peer answered none of `unanswered` LCP Echo-Requests; the link is being closed."""

    unanswered: int


@dataclass(frozen=True, slots=True)
class LinkLooped:
    """Our own LCP packet came back (RFC 1661 §6.4 magic number): the line is looped back.

    With a cellular module this means it left data mode and echoes our frames on its
    command line: the link is lost, whatever keeps arriving.
    """

    evidence: str


@dataclass(frozen=True, slots=True)
class ModemLeftDataMode:
    """A final result code (NO CARRIER, ERROR, OK...) arrived outside the PPP frames."""

    result: str


@dataclass(frozen=True, slots=True)
class LinkWentDown:
    """LCP left Opened to renegotiate (the peer sent a new Configure-Request)."""

    reason: str


#: LinkTerminated.lost: why a link ended without a Terminate exchange with its peer
LOST_CAUSES = ("looped-back", "left-data-mode", "echo-timeout", "lower-layer-down")


@dataclass(frozen=True, slots=True)
class LinkTerminated:
    """The link is finished (LCP This-Layer-Finished); the line can be hung up.

    `lost` is None when the link ended by negotiation (either side closed it, or it never
    opened) and one of LOST_CAUSES when it was lost: then no Terminate-Request was sent,
    and after "looped-back" and "left-data-mode" the module is already in command mode.
    """

    reason: str
    lost: str | None = None


LinkEvent = (
    LinkOpened
    | AuthSucceeded
    | AuthFailed
    | IpcpOpened
    | Ipv6cpOpened
    | NetworkProtocolClosed
    | ProtocolRejected
    | PacketReceived
    | EchoTimedOut
    | LinkLooped
    | ModemLeftDataMode
    | LinkWentDown
    | LinkTerminated
)


def describe(event: LinkEvent) -> str:
    """One line a person reads in a log or the journal (no Python repr, no user name)."""
    match event:
        case LinkOpened():
            auth = event.auth_by_peer or event.auth_by_us
            return (f"LCP up (MRU {event.local_mru} ours, {event.remote_mru} the peer's"
                    + (f", authentication {auth}" if auth else "") + ")")
        case AuthSucceeded():
            return f"authenticated ({event.method})"
        case AuthFailed():
            return f"authentication ({event.method}) failed"
        case IpcpOpened():
            return f"IPCP up: IPv4 {event.local}"
        case Ipv6cpOpened():
            return f"IPV6CP up: link-local {event.local_link_local}"
        case NetworkProtocolClosed():
            return f"{event.protocol.upper()} closed: {event.reason}"
        case ProtocolRejected():
            return f"the peer rejected protocol {event.name} (0x{event.protocol:04x})"
        case PacketReceived():
            return f"IPv{event.family} packet of {len(event.packet)} octets"
        case EchoTimedOut():
            return f"the peer answered none of {event.unanswered} LCP echo requests"
        case LinkLooped():
            return f"the line is looped back ({event.evidence})"
        case ModemLeftDataMode():
            return f"the module left data mode: {event.result} between the PPP frames"
        case LinkWentDown():
            return f"LCP renegotiating: {event.reason}"
        case LinkTerminated():
            return f"link ended: {event.reason}" + (f" (lost: {event.lost})" if event.lost else "")
    raise TypeError(f"not a link event: {type(event).__name__}")
