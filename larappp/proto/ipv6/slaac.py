"""Stateless address autoconfiguration over the PPP link, sans-IO (RFC 4861, 4862, 8106).

With PPP the module hands the host no global IPv6 address: the host solicits a Router
Advertisement and builds <prefix>/64 + its own interface identifier, which differs from
the module's (app note §4.1.2). `SlaacClient` is the host side; `RouterAdvertiser` is the
network side the simulator plays. Both take packets and time as input and give packets,
a timer deadline and events as output; neither does any IO.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network

from larappp.proto.ip import PROTO_ICMPV6, Buffer, MalformedPacket
from larappp.proto.ipv6.ndp import (
    ICMPV6_ROUTER_ADVERTISEMENT,
    ICMPV6_ROUTER_SOLICITATION,
    INFINITE_LIFETIME,
    LINK_LOCAL,
    PrefixInformation,
    RecursiveDnsServers,
    RouterAdvertisement,
    address_from_prefix,
    build_router_advertisement,
    build_router_solicitation,
    decode_router_advertisement,
    link_local_from_iid,
    parse_router_solicitation,
)

__all__ = [
    "MAX_RTR_SOLICITATIONS",
    "MAX_RTR_SOLICITATION_DELAY",
    "RTR_SOLICITATION_INTERVAL",
    "TWO_HOURS",
    "AddressConfigured",
    "AddressDeprecated",
    "AddressExpired",
    "AddressRefreshed",
    "AdvertisedLifetimes",
    "DefaultRouterLearned",
    "DnsServersExpired",
    "DnsServersLearned",
    "LinkMtuLearned",
    "PrefixIgnored",
    "RaIgnored",
    "RaTimedOut",
    "RouterAdvertiser",
    "RouterLost",
    "SlaacClient",
    "SlaacEvent",
    "SolicitationReceived",
]

MAX_RTR_SOLICITATIONS = 3  # RFC 4861 §10
RTR_SOLICITATION_INTERVAL = 4.0  # RFC 4861 §10, seconds
MAX_RTR_SOLICITATION_DELAY = 1.0  # RFC 4861 §10, seconds
TWO_HOURS = 7200.0  # RFC 4862 §5.5.3 e)
IPV6_MIN_LINK_MTU = 1280  # RFC 8200 §5

MAX_INITIAL_RTR_ADVERTISEMENTS = 3  # RFC 4861 §10
MAX_INITIAL_RTR_ADVERT_INTERVAL = 16.0  # RFC 4861 §10
MIN_DELAY_BETWEEN_RAS = 3.0  # RFC 4861 §10
MAX_RA_DELAY_TIME = 0.5  # RFC 4861 §10


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class AddressConfigured:
    """A new global address <prefix>:<own IID> is usable; times are absolute, None = infinite."""

    address: IPv6Address
    prefix_len: int
    valid_until: float | None
    preferred_until: float | None


@dataclass(frozen=True)
class AddressRefreshed:
    """An RA renewed the lifetimes of an address already configured (RFC 4862 §5.5.3 e)."""

    address: IPv6Address
    prefix_len: int
    valid_until: float | None
    preferred_until: float | None


@dataclass(frozen=True)
class AddressDeprecated:
    """The address's preferred lifetime ran out: keep it, but use it for no new connections."""

    address: IPv6Address


@dataclass(frozen=True)
class AddressExpired:
    """The address's valid lifetime ran out: remove it from the interface."""

    address: IPv6Address


@dataclass(frozen=True)
class PrefixIgnored:
    """An advertised autonomous prefix could not be used; `reason` says why."""

    prefix: IPv6Network
    reason: str


@dataclass(frozen=True)
class DefaultRouterLearned:
    """A router announced itself as default router (or changed the MTU it advertises)."""

    router_ll: IPv6Address
    lifetime: int  # seconds, as advertised
    mtu: int | None


@dataclass(frozen=True)
class RouterLost:
    """A default router withdrew (lifetime 0) or its lifetime ran out: remove its route."""

    router_ll: IPv6Address
    reason: str


@dataclass(frozen=True)
class LinkMtuLearned:
    """An RA's MTU option set a new link MTU for IPv6 (RFC 4861 §6.3.4)."""

    mtu: int


@dataclass(frozen=True)
class DnsServersLearned:
    """The set of RDNSS servers changed by addition; `servers` is the whole current list."""

    servers: tuple[IPv6Address, ...]
    lifetime: int  # seconds, of the option that added servers; 0xFFFFFFFF = infinite


@dataclass(frozen=True)
class DnsServersExpired:
    """RDNSS servers were withdrawn or timed out; `remaining` is the whole current list."""

    expired: tuple[IPv6Address, ...]
    remaining: tuple[IPv6Address, ...]


@dataclass(frozen=True)
class RaIgnored:
    """A Router Advertisement failed validation (RFC 4861 §6.1.2) and was dropped."""

    reason: str


@dataclass(frozen=True)
class RaTimedOut:
    """All solicitations went unanswered; the client keeps listening for a late RA."""

    reason: str


SlaacEvent = (
    AddressConfigured
    | AddressRefreshed
    | AddressDeprecated
    | AddressExpired
    | PrefixIgnored
    | DefaultRouterLearned
    | RouterLost
    | LinkMtuLearned
    | DnsServersLearned
    | DnsServersExpired
    | RaIgnored
    | RaTimedOut
)


@dataclass
class _Address:
    address: IPv6Address
    prefix_len: int
    valid_until: float | None
    preferred_until: float | None
    deprecated: bool = False


@dataclass
class _Router:
    expires_at: float
    mtu: int | None


def _until(now: float, lifetime: int) -> float | None:
    return None if lifetime == INFINITE_LIFETIME else now + lifetime


def _before(a: float | None, b: float | None) -> bool:
    """a < b where None means infinity."""
    if a is None:
        return False
    return b is None or a < b


def is_router_advertisement(packet: Buffer) -> bool:
    """True for an IPv6 packet carrying an ICMPv6 Router Advertisement (the SLAAC client's input)."""
    return _is_icmpv6_type(packet, ICMPV6_ROUTER_ADVERTISEMENT)


def _is_icmpv6_type(packet: Buffer, icmp_type: int) -> bool:
    return (
        len(packet) > 40
        and packet[0] >> 4 == 6
        and packet[6] == PROTO_ICMPV6
        and packet[40] == icmp_type
    )


# --------------------------------------------------------------------------- host side


class SlaacClient:
    """Host-side router discovery and SLAAC for one PPP link, driven by packets and time."""

    def __init__(
        self,
        iid: bytes,
        now: float,
        rng: random.Random | None = None,
        accept_router: bool = True,
        rs_max: int = MAX_RTR_SOLICITATIONS,
        rs_interval: float = RTR_SOLICITATION_INTERVAL,
        ra_timeout: float | None = None,
        *,
        rs_delay_max: float = 0.0,
        max_mtu: int | None = None,
        two_hour_rule: bool = True,
    ) -> None:
        """`iid`: the host's own 8-byte interface identifier (from IPV6CP), which gives
        both fe80::iid and <prefix>:iid. `ra_timeout`: how long to wait for an RA after
        the last RS before reporting RaTimedOut (default `rs_interval`; RFC 4861 §6.3.7
        says MAX_RTR_SOLICITATION_DELAY, too short for a cellular network's first RA).
        `rs_delay_max`: the random delay before the first RS. RFC 4861 §6.3.7 asks for up
        to MAX_RTR_SOLICITATION_DELAY to spread the solicitations of many hosts starting on
        one link; a PPP link has one host, so by default the first RS goes out at once.
        `max_mtu`: the PPP link MTU; larger RA MTUs are ignored (RFC 4861 §6.3.4).
        `two_hour_rule`: RFC 4862 §5.5.3 e) keeps an address at least two hours whatever
        a later RA says, against forged RAs from other hosts on a shared link. On a PPP
        link only the network can send RAs, so the PPP engine turns it off: a prefix
        withdrawn (valid lifetime 0) or shortened by a renumbering network goes when the
        RA says, as draft-ietf-6man-slaac-renum proposes for every link."""
        if len(iid) != 8:
            raise ValueError(f"an interface identifier is 8 bytes, got {len(iid)}")
        if rs_max < 0:
            raise ValueError("rs_max cannot be negative")
        self.iid = bytes(iid)
        self.link_local = link_local_from_iid(self.iid)
        self.accept_router = accept_router
        self._rng = rng if rng is not None else random.Random()
        self._rs_max = rs_max
        self._rs_interval = rs_interval
        self._ra_timeout = rs_interval if ra_timeout is None else ra_timeout
        self._rs_delay_max = rs_delay_max
        self._max_mtu = max_mtu
        self._two_hour_rule = two_hour_rule
        self._created_at = now
        self._started = False
        self._rs_sent = 0
        self._next_rs_at: float | None = None
        self._give_up_at: float | None = None
        self._ra_received = False
        self._outgoing: list[bytes] = []
        self._events: list[SlaacEvent] = []
        self._addresses: dict[IPv6Network, _Address] = {}
        self._routers: dict[IPv6Address, _Router] = {}
        self._dns: dict[IPv6Address, float | None] = {}
        self.mtu: int | None = None

    # -- inputs ------------------------------------------------------------------
    def start(self, now: float) -> None:
        """Begin router discovery: the first RS goes out after a random delay of up to
        `rs_delay_max` (none by default, see __init__)."""
        if self._started:
            return
        self._started = True
        if self._rs_max == 0:
            return
        delay = self._rng.uniform(0.0, self._rs_delay_max) if self._rs_delay_max > 0 else 0.0
        self._next_rs_at = now + delay

    def receive_packet(self, packet: Buffer, now: float) -> None:
        """Feed one IPv6 packet from the link; anything but an RA is ignored."""
        self._expire(now)
        if not _is_icmpv6_type(packet, ICMPV6_ROUTER_ADVERTISEMENT):
            return
        try:
            ra = decode_router_advertisement(packet)
        except MalformedPacket as exc:
            self._events.append(RaIgnored(str(exc)))
            return
        if ra.source == self.link_local:
            self._events.append(RaIgnored(f"RA from our own address {ra.source}"))
            return
        self._process_ra(ra, now)
        self._expire(now)

    def handle_timer(self, now: float) -> None:
        """Act on every deadline up to `now` (RS retransmission, give-up, lifetimes)."""
        if self._next_rs_at is not None and now >= self._next_rs_at:
            self._outgoing.append(build_router_solicitation(self.link_local))
            self._rs_sent += 1
            if self._rs_sent < self._rs_max:
                self._next_rs_at = now + self._rs_interval
            else:
                self._next_rs_at = None
                self._give_up_at = now + self._ra_timeout
        if self._give_up_at is not None and now >= self._give_up_at:
            self._give_up_at = None
            self._events.append(
                RaTimedOut(f"no Router Advertisement after {self._rs_sent} Router Solicitations")
            )
        self._expire(now)

    # -- outputs -----------------------------------------------------------------
    def packets_to_send(self) -> list[bytes]:
        """IPv6 packets (Router Solicitations) to send on the link, oldest first."""
        packets, self._outgoing = self._outgoing, []
        return packets

    def get_timer(self) -> float | None:
        """The next instant `handle_timer` must be called, or None when nothing is pending."""
        deadlines: list[float] = []
        for moment in (self._next_rs_at, self._give_up_at):
            if moment is not None:
                deadlines.append(moment)
        for record in self._addresses.values():
            if record.preferred_until is not None and not record.deprecated:
                deadlines.append(record.preferred_until)
            if record.valid_until is not None:
                deadlines.append(record.valid_until)
        deadlines.extend(router.expires_at for router in self._routers.values())
        deadlines.extend(t for t in self._dns.values() if t is not None)
        return min(deadlines) if deadlines else None

    def next_event(self) -> SlaacEvent | None:
        """The oldest event not yet taken, or None."""
        return self._events.pop(0) if self._events else None

    # -- state ---------------------------------------------------------------------
    @property
    def addresses(self) -> list[tuple[IPv6Address, int]]:
        """Global addresses configured now, with their prefix length."""
        return [(r.address, r.prefix_len) for r in self._addresses.values()]

    @property
    def default_routers(self) -> list[IPv6Address]:
        """Link-local addresses of the routers currently usable as default."""
        return list(self._routers)

    @property
    def dns_servers(self) -> tuple[IPv6Address, ...]:
        """RDNSS servers currently valid, in the order they were learned."""
        return tuple(self._dns)

    @property
    def solicitations_sent(self) -> int:
        """How many Router Solicitations were handed out so far."""
        return self._rs_sent

    # -- RA processing ---------------------------------------------------------------
    def _process_ra(self, ra: RouterAdvertisement, now: float) -> None:
        if not self._ra_received:
            # Any valid RA answers our solicitations: on PPP the only router is the
            # network behind the module (app note §4.1.2), so stop soliciting (§6.3.7).
            self._ra_received = True
            self._next_rs_at = None
            self._give_up_at = None
        mtu_changed = self._process_mtu(ra.mtu)
        self._process_router(ra, now, mtu_changed)
        for info in ra.prefixes:
            self._process_prefix(info, now)
        for rdnss in ra.dns:
            self._process_rdnss(rdnss, now)

    def _process_mtu(self, mtu: int | None) -> bool:
        if mtu is None or mtu < IPV6_MIN_LINK_MTU:
            return False
        if self._max_mtu is not None and mtu > self._max_mtu:
            return False
        if mtu == self.mtu:
            return False
        self.mtu = mtu
        self._events.append(LinkMtuLearned(mtu))
        return True

    def _process_router(self, ra: RouterAdvertisement, now: float, mtu_changed: bool) -> None:
        if not self.accept_router:
            return
        router = self._routers.get(ra.source)
        if ra.router_lifetime == 0:
            if router is not None:
                del self._routers[ra.source]
                self._events.append(RouterLost(ra.source, "router lifetime 0 advertised"))
            return
        if router is None:
            self._routers[ra.source] = _Router(now + ra.router_lifetime, self.mtu)
            self._events.append(DefaultRouterLearned(ra.source, ra.router_lifetime, self.mtu))
            return
        router.expires_at = now + ra.router_lifetime
        if mtu_changed:
            router.mtu = self.mtu
            self._events.append(DefaultRouterLearned(ra.source, ra.router_lifetime, self.mtu))

    def _process_prefix(self, info: PrefixInformation, now: float) -> None:
        # RFC 4862 §5.5.3
        if not info.autonomous:
            return  # a)
        if info.prefix.network_address in LINK_LOCAL:
            self._events.append(PrefixIgnored(info.prefix, "link-local prefix"))  # b)
            return
        if info.preferred_lifetime > info.valid_lifetime:
            self._events.append(
                PrefixIgnored(info.prefix, "preferred lifetime exceeds valid lifetime")  # c)
            )
            return
        record = self._addresses.get(info.prefix)
        if record is None:
            self._add_prefix(info, now)  # d)
        else:
            self._refresh_prefix(record, info, now)  # e)

    def _add_prefix(self, info: PrefixInformation, now: float) -> None:
        if info.valid_lifetime == 0:
            return
        if info.prefix.prefixlen != 64:
            self._events.append(
                PrefixIgnored(
                    info.prefix,
                    f"a /{info.prefix.prefixlen} prefix leaves no room "
                    "for a 64-bit interface identifier",
                )
            )
            return
        valid_until = _until(now, info.valid_lifetime)
        preferred_until = _until(now, info.preferred_lifetime)
        record = _Address(
            address_from_prefix(info.prefix, self.iid), 64, valid_until, preferred_until
        )
        self._addresses[info.prefix] = record
        self._events.append(
            AddressConfigured(record.address, 64, record.valid_until, record.preferred_until)
        )

    def _refresh_prefix(self, record: _Address, info: PrefixInformation, now: float) -> None:
        advertised = _until(now, info.valid_lifetime)
        remaining = None if record.valid_until is None else record.valid_until - now
        if not self._two_hour_rule:
            if info.valid_lifetime == 0:
                record.valid_until = now  # withdrawn: _expire reports AddressExpired
                return
            record.valid_until = advertised
        elif (
            info.valid_lifetime == INFINITE_LIFETIME
            or info.valid_lifetime > TWO_HOURS
            or (remaining is not None and info.valid_lifetime > remaining)
        ):
            record.valid_until = advertised
        elif remaining is not None and remaining <= TWO_HOURS:
            pass  # ignore the advertised valid lifetime (protects against a spoofed short one)
        else:
            record.valid_until = now + TWO_HOURS
        preferred_until = _until(now, info.preferred_lifetime)
        if _before(record.valid_until, preferred_until):
            preferred_until = record.valid_until
        record.preferred_until = preferred_until
        if record.deprecated and _before(now, preferred_until):
            record.deprecated = False
        self._events.append(
            AddressRefreshed(
                record.address, record.prefix_len, record.valid_until, record.preferred_until
            )
        )

    def _process_rdnss(self, rdnss: RecursiveDnsServers, now: float) -> None:
        added = False
        removed: list[IPv6Address] = []
        for server in rdnss.servers:
            if rdnss.lifetime == 0:
                if server in self._dns:
                    del self._dns[server]
                    removed.append(server)
                continue
            if server not in self._dns:
                added = True
            self._dns[server] = _until(now, rdnss.lifetime)
        if removed:
            self._events.append(DnsServersExpired(tuple(removed), self.dns_servers))
        if added:
            self._events.append(DnsServersLearned(self.dns_servers, rdnss.lifetime))

    # -- lifetimes -------------------------------------------------------------------
    def _expire(self, now: float) -> None:
        for prefix, record in list(self._addresses.items()):
            if (
                not record.deprecated
                and record.preferred_until is not None
                and record.preferred_until <= now
            ):
                record.deprecated = True
                self._events.append(AddressDeprecated(record.address))
            if record.valid_until is not None and record.valid_until <= now:
                del self._addresses[prefix]
                self._events.append(AddressExpired(record.address))
        for router_ll, router in list(self._routers.items()):
            if router.expires_at <= now:
                del self._routers[router_ll]
                self._events.append(RouterLost(router_ll, "router lifetime expired"))
        expired = [s for s, until in self._dns.items() if until is not None and until <= now]
        if expired:
            for server in expired:
                del self._dns[server]
            self._events.append(DnsServersExpired(tuple(expired), self.dns_servers))


# --------------------------------------------------------------------------- network side


@dataclass(frozen=True)
class AdvertisedLifetimes:
    """Lifetimes a RouterAdvertiser puts in its RAs, in seconds (0xFFFFFFFF = infinite)."""

    router: int = 1800  # RFC 4861 §6.2.1 AdvDefaultLifetime (3 x MaxRtrAdvInterval)
    valid: int = 2592000  # AdvValidLifetime
    preferred: int = 604800  # AdvPreferredLifetime
    dns: int = 1800  # RFC 8106 §5.1 (at least MaxRtrAdvInterval)


@dataclass(frozen=True)
class SolicitationReceived:
    """A valid Router Solicitation arrived; an RA answer is scheduled."""

    source: IPv6Address


class RouterAdvertiser:
    """Network-side RA sender (the simulator's router): answers RS and advertises periodically."""

    def __init__(
        self,
        prefix: IPv6Network,
        router_iid: bytes,
        mtu: int | None = None,
        dns: tuple[IPv6Address, ...] | list[IPv6Address] = (),
        lifetimes: AdvertisedLifetimes = AdvertisedLifetimes(),
        *,
        rng: random.Random | None = None,
        max_interval: float = 600.0,
        min_interval: float | None = None,
        response_delay_max: float = MAX_RA_DELAY_TIME,
        min_delay_between_ras: float = MIN_DELAY_BETWEEN_RAS,
        initial_advertisements: int = MAX_INITIAL_RTR_ADVERTISEMENTS,
        cur_hop_limit: int = 64,
    ) -> None:
        """Intervals as in RFC 4861 §6.2.1/§6.2.4/§6.2.6; the simulator may set the delays
        to 0 to answer an RS at once."""
        self.router_ll = link_local_from_iid(router_iid)
        self._rng = rng if rng is not None else random.Random()
        self._max_interval = max_interval
        self._min_interval = 0.33 * max_interval if min_interval is None else min_interval
        self._response_delay_max = response_delay_max
        self._min_delay_between_ras = min_delay_between_ras
        self._initial_left = initial_advertisements
        self.advertisement = RouterAdvertisement(
            source=self.router_ll,
            cur_hop_limit=cur_hop_limit,
            router_lifetime=lifetimes.router,
            prefixes=(PrefixInformation(prefix, True, True, lifetimes.valid, lifetimes.preferred),),
            mtu=mtu,
            dns=(RecursiveDnsServers(tuple(dns), lifetimes.dns),) if dns else (),
        )
        self._next_unsolicited_at: float | None = None
        self._next_response_at: float | None = None
        self._last_sent_at: float | None = None
        self._outgoing: list[bytes] = []
        self._events: list[SolicitationReceived] = []
        self._withdrawn = False

    def start(self, now: float) -> None:
        """Begin advertising: the first unsolicited RA after a short random delay."""
        if self._withdrawn or self._next_unsolicited_at is not None:
            return
        self._next_unsolicited_at = now + self._jitter(self._response_delay_max)

    def receive_packet(self, packet: Buffer, now: float) -> None:
        """Feed one IPv6 packet from the link; a valid RS schedules an answer (§6.2.6)."""
        if self._withdrawn or not _is_icmpv6_type(packet, ICMPV6_ROUTER_SOLICITATION):
            return
        solicitation = parse_router_solicitation(packet)
        if solicitation is None:
            return
        self._events.append(SolicitationReceived(solicitation.source))
        answer_at = now + self._jitter(self._response_delay_max)
        if self._last_sent_at is not None:
            answer_at = max(answer_at, self._last_sent_at + self._min_delay_between_ras)
        if self._next_response_at is None or answer_at < self._next_response_at:
            self._next_response_at = answer_at

    def handle_timer(self, now: float) -> None:
        """Send the RAs that are due at `now`."""
        if self._withdrawn:
            return
        send = False
        if self._next_response_at is not None and now >= self._next_response_at:
            self._next_response_at = None
            send = True
        if self._next_unsolicited_at is not None and now >= self._next_unsolicited_at:
            interval = self._min_interval + self._jitter(self._max_interval - self._min_interval)
            if self._initial_left > 0:
                self._initial_left -= 1
                interval = min(interval, MAX_INITIAL_RTR_ADVERT_INTERVAL)
            self._next_unsolicited_at = now + interval
            send = True
        if send:
            self._outgoing.append(build_router_advertisement(self.advertisement))
            self._last_sent_at = now

    def withdraw(self, now: float) -> None:
        """Send one final RA with router lifetime 0 and stop (RFC 4861 §6.2.5)."""
        if self._withdrawn:
            return
        final = RouterAdvertisement(
            source=self.advertisement.source,
            cur_hop_limit=self.advertisement.cur_hop_limit,
            router_lifetime=0,
            prefixes=self.advertisement.prefixes,
            mtu=self.advertisement.mtu,
            dns=self.advertisement.dns,
        )
        self._outgoing.append(build_router_advertisement(final))
        self._last_sent_at = now
        self._withdrawn = True
        self._next_unsolicited_at = None
        self._next_response_at = None

    def packets_to_send(self) -> list[bytes]:
        """IPv6 packets (Router Advertisements) to send on the link, oldest first."""
        packets, self._outgoing = self._outgoing, []
        return packets

    def get_timer(self) -> float | None:
        """The next instant `handle_timer` must be called, or None."""
        deadlines = [
            t for t in (self._next_response_at, self._next_unsolicited_at) if t is not None
        ]
        return min(deadlines) if deadlines else None

    def next_event(self) -> SolicitationReceived | None:
        """The oldest event not yet taken, or None."""
        return self._events.pop(0) if self._events else None

    def _jitter(self, upper: float) -> float:
        return self._rng.uniform(0.0, upper) if upper > 0 else 0.0
