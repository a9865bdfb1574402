"""A tiny authoritative DNS responder for the simulated internet (RFC 1035, A and AAAA only).

The message functions (`parse_query`, `build_response`, `respond`) are pure and never
raise on malformed input: anything that is not one well-formed question gets no answer
at all, as a resolver would time out on a lost datagram. `DnsServer` binds UDP sockets
inside the simulator's "internet" namespace (created from a thread switched into it,
so they stay there) and answers from a `DnsZone`.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address

from larappp.errors import NetworkSetupError
from larappp.transport.netns import call_in_netns

__all__ = [
    "CLASS_ANY",
    "CLASS_IN",
    "DNS_PORT",
    "RCODE_NOERROR",
    "RCODE_NOTIMP",
    "RCODE_NXDOMAIN",
    "RCODE_REFUSED",
    "TYPE_A",
    "TYPE_AAAA",
    "TYPE_ANY",
    "DnsQuery",
    "DnsServer",
    "DnsZone",
    "build_response",
    "parse_query",
    "respond",
]

log = logging.getLogger(__name__)

DNS_PORT = 53
TYPE_A = 1  # RFC 1035 §3.2.2
TYPE_AAAA = 28  # RFC 3596 §2.1
TYPE_ANY = 255
CLASS_IN = 1  # RFC 1035 §3.2.4
CLASS_ANY = 255
OPCODE_QUERY = 0
RCODE_NOERROR = 0  # RFC 1035 §4.1.1
RCODE_NOTIMP = 4
RCODE_NXDOMAIN = 3
RCODE_REFUSED = 5

HEADER_LENGTH = 12
MAX_LABEL = 63  # RFC 1035 §2.3.4
MAX_NAME = 255
MAX_UDP_MESSAGE = 512  # RFC 1035 §4.2.1
_FLAG_QR = 0x8000
_FLAG_AA = 0x0400
_FLAG_RD = 0x0100
_FLAG_RA = 0x0080
_POINTER_TO_QUESTION = b"\xc0\x0c"  # RFC 1035 §4.1.4: the question name starts at offset 12

IPAddress = IPv4Address | IPv6Address


@dataclass(frozen=True)
class DnsQuery:
    """One parsed question: the header fields an answer echoes, and the question itself."""

    id: int
    opcode: int
    recursion_desired: bool
    #: the name as its labels (bytes as received, case kept for the echo)
    labels: tuple[bytes, ...]
    qtype: int
    qclass: int
    #: the question section's wire bytes (name, type, class), echoed in the answer
    question: bytes

    @property
    def name(self) -> str:
        """The name in text form, lower case, without the trailing dot ("" for the root)."""
        return b".".join(self.labels).decode("ascii", "replace").lower()


@dataclass(frozen=True)
class DnsZone:
    """Names this responder knows and their addresses; every other name is NXDOMAIN."""

    records: Mapping[str, tuple[IPAddress, ...]] = field(default_factory=dict)
    ttl: int = 60

    @classmethod
    def of(cls, entries: Mapping[str, Iterable[IPAddress]], ttl: int = 60) -> DnsZone:
        """A zone from {name: addresses}; names are matched without case and trailing dot."""
        return cls({_normal(name): tuple(addrs) for name, addrs in entries.items()}, ttl)

    def lookup(self, name: str) -> tuple[IPAddress, ...] | None:
        """The addresses of `name`, or None when the name does not exist."""
        return self.records.get(_normal(name))


def _normal(name: str) -> str:
    return name.rstrip(".").lower()


# --------------------------------------------------------------------------- messages


def parse_query(data: bytes | bytearray | memoryview) -> DnsQuery | None:
    """The single question of a DNS query, or None for anything else (never raises)."""
    data = bytes(data)
    if len(data) < HEADER_LENGTH:
        return None
    query_id, flags, qdcount = struct.unpack_from("!HHH", data)
    if flags & _FLAG_QR or qdcount != 1:
        return None  # a response (never answer those: no loops), or not one question
    labels: list[bytes] = []
    offset = HEADER_LENGTH
    name_length = 1
    while True:
        if offset >= len(data):
            return None
        length = data[offset]
        offset += 1
        if length == 0:
            break
        if length > MAX_LABEL:
            return None  # a compression pointer (0xC0) or a reserved label type: not in a query
        name_length += length + 1
        if name_length > MAX_NAME or offset + length > len(data):
            return None
        labels.append(data[offset : offset + length])
        offset += length
    if offset + 4 > len(data):
        return None
    qtype, qclass = struct.unpack_from("!HH", data, offset)
    return DnsQuery(
        id=query_id,
        opcode=(flags >> 11) & 0x0F,
        recursion_desired=bool(flags & _FLAG_RD),
        labels=tuple(labels),
        qtype=qtype,
        qclass=qclass,
        question=data[HEADER_LENGTH : offset + 4],
    )


def build_response(
    query: DnsQuery, rcode: int, answers: Sequence[IPAddress] = (), ttl: int = 60
) -> bytes:
    """The authoritative answer to `query`: its question echoed, then A/AAAA records."""
    flags = (
        _FLAG_QR
        | (query.opcode << 11)
        | _FLAG_AA
        | (_FLAG_RD if query.recursion_desired else 0)
        | _FLAG_RA  # the network's resolver for a tiny internet: it "recurses" to itself
        | (rcode & 0x0F)
    )
    records = []
    for address in answers:
        rtype = TYPE_A if address.version == 4 else TYPE_AAAA
        records.append(
            _POINTER_TO_QUESTION
            + struct.pack("!HHIH", rtype, CLASS_IN, ttl, len(address.packed))
            + address.packed
        )
    header = struct.pack("!HHHHHH", query.id, flags, 1, len(records), 0, 0)
    return header + query.question + b"".join(records)


def respond(data: bytes | bytearray | memoryview, zone: DnsZone) -> bytes | None:
    """The answer to the datagram `data` from `zone`, or None when it gets none."""
    query = parse_query(data)
    if query is None:
        return None
    if query.opcode != OPCODE_QUERY:
        return build_response(query, RCODE_NOTIMP)
    if query.qclass not in (CLASS_IN, CLASS_ANY):
        return build_response(query, RCODE_REFUSED)  # e.g. CHAOS "version.bind"
    # a label holding a dot is a different name from the dotted one: never in the zone
    addresses = None if any(b"." in label for label in query.labels) else zone.lookup(query.name)
    if addresses is None:
        return build_response(query, RCODE_NXDOMAIN)
    wanted = {TYPE_A: (4,), TYPE_AAAA: (6,), TYPE_ANY: (4, 6)}.get(query.qtype, ())
    answers = [a for a in addresses if a.version in wanted]  # other types: NODATA
    response = build_response(query, RCODE_NOERROR, answers, zone.ttl)
    if len(response) > MAX_UDP_MESSAGE:
        # keep whole records only, as many as fit (the zone is tiny: never in practice)
        fit = (MAX_UDP_MESSAGE - HEADER_LENGTH - len(query.question)) // (12 + 16)
        response = build_response(query, RCODE_NOERROR, answers[:fit], zone.ttl)
    return response


# --------------------------------------------------------------------------- server


def _open_socket(address: IPAddress, port: int) -> socket.socket:
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    sock = socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((str(address), port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _open_sockets(addresses: Sequence[IPAddress], port: int) -> list[socket.socket]:
    sockets: list[socket.socket] = []
    try:
        for address in addresses:
            try:
                sockets.append(_open_socket(address, port))
            except OSError as exc:
                raise NetworkSetupError(
                    f"the simulated DNS server cannot listen on [{address}]:{port} ({exc}): "
                    "put the address on an interface of the namespace first"
                ) from None
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class DnsServer:
    """The simulated network's DNS responder: UDP sockets on the DNS addresses, counters."""

    def __init__(self, zone: DnsZone, sockets: list[socket.socket]) -> None:
        self.zone = zone
        self._sockets = sockets
        self._loop = asyncio.get_running_loop()
        #: datagrams received, answers sent, NXDOMAIN among them, datagrams not answered
        self.queries_received = 0
        self.queries_answered = 0
        self.nxdomain = 0
        self.ignored = 0
        for sock in sockets:
            self._loop.add_reader(sock.fileno(), self._on_readable, sock)

    @classmethod
    async def start(
        cls,
        addresses: Sequence[IPAddress],
        zone: DnsZone,
        *,
        netns: str | None = None,
        port: int = DNS_PORT,
    ) -> DnsServer:
        """Listen on every address (in namespace `netns`, or this process's own when None)."""
        if netns is None:
            sockets = await asyncio.to_thread(_open_sockets, addresses, port)
        else:
            sockets = await asyncio.to_thread(call_in_netns, netns, _open_sockets, addresses, port)
        return cls(zone, sockets)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """(address, port) of each listening socket."""
        return [sock.getsockname()[:2] for sock in self._sockets]

    def _on_readable(self, sock: socket.socket) -> None:
        for _ in range(64):  # bounded: other callbacks get their turn under a flood
            try:
                data, peer = sock.recvfrom(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. ICMP errors reported on the socket
                log.debug("simulated DNS server: recvfrom: %s", exc)
                return
            self.queries_received += 1
            answer = respond(data, self.zone)
            if answer is None:
                self.ignored += 1
                continue
            try:
                sock.sendto(answer, peer)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.ENETUNREACH, errno.EHOSTUNREACH):
                    log.debug("simulated DNS server: sendto %s: %s", peer, exc)
                self.ignored += 1
                continue
            self.queries_answered += 1
            if answer[3] & 0x0F == RCODE_NXDOMAIN:
                self.nxdomain += 1

    def close(self) -> None:
        """Stop answering and close the sockets (idempotent)."""
        sockets, self._sockets = self._sockets, []
        for sock in sockets:
            if not self._loop.is_closed():
                self._loop.remove_reader(sock.fileno())
            sock.close()

    async def stop(self) -> None:
        """Same as close(), for symmetry with start()."""
        self.close()
