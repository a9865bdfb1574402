"""LARA-R6 embedded port filtering (+UEMBPF) and the host-side port rules it implies.

While PPP is up, every packet from the network reaches the host unless its destination
port is inside the +UEMBPF range, in which case the module's embedded applications get
it (app note §4.3). So the host must never use a port of that range: not as an
ephemeral source port (its replies would be lost) and not for a bound service. This
module holds the pure part of that check; reading /proc and psutil is the caller's job.

Standard library only; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from larappp.errors import ValidationError

__all__ = [
    "MAX_PORT",
    "NAT_MIN_OWN_PORTS",
    "NAT_PORT_CLASSES",
    "UEMBPF_MIN_FIRST_PORT",
    "UEMBPF_MIN_PORTS",
    "BoundSocket",
    "NatPortRule",
    "PortCheckReport",
    "PortRange",
    "check_host_ports",
    "check_uembpf_range",
    "compact_ports",
    "format_ranges",
    "format_reserved_ports",
    "merge_ranges",
    "nat_port_plan",
    "parse_reserved_ports",
    "reserved_ports_with",
    "subtract_ranges",
]

MAX_PORT = 65535
# app note §4.3: "use a port range above port 1024", ports below are bound to protocols.
UEMBPF_MIN_FIRST_PORT = 1025
# app note §4.3: "at least 50 ports, e.g. "6000-6050"" for the embedded applications.
UEMBPF_MIN_PORTS = 50


@dataclass(frozen=True, order=True)
class PortRange:
    """An inclusive range of TCP/UDP port numbers, written "6000-6200" (or "6000" for one)."""

    first: int
    last: int

    def __post_init__(self) -> None:
        for port in (self.first, self.last):
            if isinstance(port, bool) or not isinstance(port, int):
                raise ValidationError(
                    f"port {port!r} of range {self.first!r}-{self.last!r} is not a whole number: "
                    "write ports as numbers from 1 to 65535"
                )
            if not 1 <= port <= MAX_PORT:
                raise ValidationError(
                    f"port {port} of range {self.first}-{self.last} is outside 1-{MAX_PORT}: "
                    f"use ports from 1 to {MAX_PORT}"
                )
        if self.first > self.last:
            raise ValidationError(
                f'port range "{self.first}-{self.last}" is reversed: '
                f'write it as "{self.last}-{self.first}" (first port first)'
            )

    @classmethod
    def parse(cls, text: str, *, what: str = "port range") -> PortRange:
        """Read "6000-6200" (or "6000"); `what` names the setting in the error message."""
        cleaned = text.strip()
        first_text, dash, last_text = cleaned.partition("-")
        if not dash:
            last_text = first_text
        first_text, last_text = first_text.strip(), last_text.strip()
        if not (first_text.isdigit() and last_text.isdigit() and first_text.isascii()
                and last_text.isascii()):
            raise ValidationError(
                f'{what} "{text}" is not of the form FIRST-LAST: write it like "6000-6200"'
            )
        return cls(int(first_text), int(last_text))

    @property
    def size(self) -> int:
        """How many ports the range holds."""
        return self.last - self.first + 1

    def __len__(self) -> int:
        return self.size

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.first <= port <= self.last

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"

    def sysctl_text(self) -> str:
        """The kernel's list notation: "6000-6200", or "6000" for a single port."""
        return str(self.first) if self.first == self.last else str(self)

    def overlaps(self, other: PortRange) -> bool:
        return self.first <= other.last and other.first <= self.last

    def intersection(self, other: PortRange) -> PortRange | None:
        first, last = max(self.first, other.first), min(self.last, other.last)
        return PortRange(first, last) if first <= last else None

    def ports(self) -> range:
        return range(self.first, self.last + 1)


def check_uembpf_range(port_range: PortRange) -> PortRange:
    """Refuse a +UEMBPF range the app note advises against; returns it unchanged."""
    if port_range.first < UEMBPF_MIN_FIRST_PORT:
        raise ValidationError(
            f'UEMBPF port range "{port_range}" starts at or below port 1024, which the app note '
            "§4.3 advises against because those ports belong to well-known protocols: "
            "start it above 1024"
        )
    if port_range.size < UEMBPF_MIN_PORTS:
        start = min(port_range.first, MAX_PORT - UEMBPF_MIN_PORTS + 1)
        suggestion = PortRange(start, start + UEMBPF_MIN_PORTS - 1)
        raise ValidationError(
            f'UEMBPF port range "{port_range}" holds only {port_range.size} ports, fewer than the '
            f'{UEMBPF_MIN_PORTS} the app note §4.3 recommends: widen it (e.g. "{suggestion}")'
        )
    return port_range


# -- range arithmetic -------------------------------------------------------------------


def merge_ranges(ranges: Iterable[PortRange]) -> tuple[PortRange, ...]:
    """Sorted ranges with overlapping and adjacent ones joined (the kernel's own output form)."""
    merged: list[PortRange] = []
    for current in sorted(ranges):
        if merged and current.first <= merged[-1].last + 1:
            if current.last > merged[-1].last:
                merged[-1] = PortRange(merged[-1].first, current.last)
        else:
            merged.append(current)
    return tuple(merged)


def subtract_ranges(
    ranges: Iterable[PortRange], removed: Iterable[PortRange]
) -> tuple[PortRange, ...]:
    """The ports of `ranges` that are not in `removed`, as merged ranges."""
    result = list(merge_ranges(ranges))
    for cut in merge_ranges(removed):
        next_result: list[PortRange] = []
        for piece in result:
            if not piece.overlaps(cut):
                next_result.append(piece)
                continue
            if piece.first < cut.first:
                next_result.append(PortRange(piece.first, cut.first - 1))
            if piece.last > cut.last:
                next_result.append(PortRange(cut.last + 1, piece.last))
        result = next_result
    return tuple(result)


def compact_ports(ports: Iterable[int | PortRange]) -> tuple[PortRange, ...]:
    """Single ports and ranges as the fewest merged ranges."""
    return merge_ranges(p if isinstance(p, PortRange) else PortRange(p, p) for p in ports)


def format_ranges(ranges: Iterable[PortRange]) -> str:
    """Ranges in the kernel's list notation: "1000-1005,6000-6200,8080"."""
    return ",".join(r.sysctl_text() for r in ranges)


# -- the two sysctls ----------------------------------------------------------------------


def parse_reserved_ports(text: str) -> tuple[PortRange, ...]:
    """Read /proc/sys/net/ipv4/ip_local_reserved_ports ("1000-1005,6000-6200", or "")."""
    items = [item.strip() for item in text.strip().split(",")]
    return merge_ranges(
        PortRange.parse(item, what="ip_local_reserved_ports entry") for item in items if item
    )


def format_reserved_ports(ranges: Iterable[PortRange]) -> str:
    """The value to write to ip_local_reserved_ports, merged, sorted, without duplicates."""
    return format_ranges(merge_ranges(ranges))


def reserved_ports_with(current: str, embpf: PortRange) -> str:
    """`current` reserved ports plus the module's range; ip_local_port_range is left alone.

    Reserving (rather than narrowing the ephemeral range) keeps every other port usable
    and is what the kernel offers for exactly this: ports no socket gets automatically.
    """
    return format_reserved_ports((*parse_reserved_ports(current), embpf))


# -- the host check -----------------------------------------------------------------------


@dataclass(frozen=True)
class BoundSocket:
    """A host socket bound to a local port (from psutil.net_connections), for the port check."""

    proto: str
    port: int
    pid: int | None = None
    process_name: str | None = None
    address: str = ""

    def describe(self) -> str:
        where = f" on {self.address}" if self.address else ""
        if self.pid is None:
            owner = "an unknown process"
        elif self.process_name:
            owner = f"pid {self.pid} ({self.process_name})"
        else:
            owner = f"pid {self.pid}"
        return f"{self.proto} port {self.port}{where} is bound by {owner}"


@dataclass(frozen=True)
class PortCheckReport:
    """Which ports of the module's +UEMBPF range the host could still use, and why."""

    embpf: PortRange
    ephemeral: PortRange
    #: Ports of the module range the kernel may hand out as ephemeral source ports.
    pickable: tuple[PortRange, ...]
    #: Host sockets already bound to a port of the module range.
    bound: tuple[BoundSocket, ...]

    @property
    def ok(self) -> bool:
        return not self.pickable and not self.bound

    def describe(self) -> tuple[str, ...]:
        """One sentence per finding (or one saying all is well)."""
        if self.ok:
            all_well = (
                f"no host socket can use the module's port range {self.embpf} (+UEMBPF): "
                "it is outside the ephemeral range or reserved, and nothing is bound in it"
            )
            return (all_well,)
        lines: list[str] = []
        if self.pickable:
            lines.append(
                f"the host may pick ports {format_ranges(self.pickable)} of the module's range "
                f"{self.embpf} as ephemeral source ports (ip_local_port_range {self.ephemeral}), "
                "and replies to them would go to the module, not the host (app note §4.3): "
                f"add {self.embpf.sysctl_text()} to net.ipv4.ip_local_reserved_ports"
            )
        for sock in self.bound:
            lines.append(
                f"{sock.describe()} inside the module's range {self.embpf}, so packets to it go "
                "to the module, not the host (app note §4.3): move that service or choose "
                "another +UEMBPF range"
            )
        return tuple(lines)


def check_host_ports(
    embpf: PortRange,
    ephemeral: PortRange,
    reserved: Iterable[int | PortRange],
    bound: Sequence[BoundSocket],
) -> PortCheckReport:
    """Compare the module's range with the host's ephemeral range, reservations and sockets."""
    in_ephemeral = embpf.intersection(ephemeral)
    pickable = (
        subtract_ranges([in_ephemeral], compact_ports(reserved)) if in_ephemeral else ()
    )
    in_range = tuple(
        sorted(
            (sock for sock in bound if sock.port in embpf),
            key=lambda s: (s.port, s.proto, s.address, s.pid or 0),
        )
    )
    return PortCheckReport(embpf=embpf, ephemeral=ephemeral, pickable=pickable, bound=in_range)


# -- NAT in router mode -----------------------------------------------------------------------

#: Linux NAT keeps a translated source port in the class of the original one: below 1024
#: stays below 1024 (net/netfilter/nf_nat_proto.c, nf_nat_l4proto_unique_tuple).
NAT_PORT_CLASSES = (PortRange(1, 1023), PortRange(1024, MAX_PORT))
#: A free range narrower than this does not take its own flows: two LAN clients using
#: the same port towards one server would soon find no free port in it.
NAT_MIN_OWN_PORTS = 1024


@dataclass(frozen=True)
class NatPortRule:
    """NAT for flows whose own source port is in `sources`: translate into `translated`."""

    sources: PortRange
    translated: PortRange


def nat_port_plan(embpf: PortRange) -> tuple[NatPortRule, ...]:
    """Source-port rules for NAT on the link such that no translated port is in `embpf`.

    ip_local_reserved_ports does not bind NAT: a LAN client's port inside the module's range
    would go out unchanged and its replies reach the module (app note §4.3, figure 5). One
    NAT statement takes one port range, so the flows are split by their own source port:
    a free range (a port class minus `embpf`) maps onto itself, and Linux keeps a port
    that is in the given range and unused, so most flows keep their port; flows from
    inside `embpf` (or from a free range narrower than NAT_MIN_OWN_PORTS) go to the
    largest free range of their class. The rules cover every port from 1 to 65535 once.
    """
    rules: list[NatPortRule] = []
    all_free = subtract_ranges(NAT_PORT_CLASSES, [embpf])
    if not all_free:
        raise ValidationError(
            f'UEMBPF range "{embpf}" covers every port, so NAT has none left: narrow it'
        )
    for port_class in NAT_PORT_CLASSES:
        free = subtract_ranges([port_class], [embpf])
        largest = max(free or all_free, key=lambda r: (r.size, -r.first))
        for piece in free:
            own = piece == largest or piece.size >= NAT_MIN_OWN_PORTS
            rules.append(NatPortRule(piece, piece if own else largest))
        inside = port_class.intersection(embpf)
        if inside is not None:
            rules.append(NatPortRule(inside, largest))
    return tuple(sorted(rules, key=lambda rule: rule.sources))
