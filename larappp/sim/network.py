"""The simulated internet behind the simulated LARA-R6: PDP addressing, routing, SLAAC, UEMBPF.

`SimNetwork` owns a network namespace that plays "the internet": a TUN (`pdn0`) whose
routes carry the DTE address pools, the internet hosts' addresses on its loopback (a
server and two DNS servers, all in documentation ranges), forwarding on, and a tiny
DNS responder. The namespace's own kernel answers pings and serves sockets, so a DTE
on the far side of the simulated PPP link talks to a real IP stack.

Each PDP context attaches as a `SessionPort`. Uplink packets (what the DTE sent over
PPP) are checked against the session's addresses and written into the TUN; packets for
the module itself stay on the link: Router Solicitations are answered by the session's
`RouterAdvertiser` (app note §4.1.2: the network hands out a /64 prefix, the DTE builds
its address from its own interface identifier, the module keeps another one in the same
prefix) and echo requests to the module's addresses are answered. Downlink packets read
from the TUN go to the session owning the destination, except TCP/UDP packets whose
destination port lies in the +UEMBPF range: those belong to the module's embedded
applications and never reach the DTE (app note §4.3).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any, Literal, Self, TypeVar

from larappp.errors import ConfigError, NetworkSetupError
from larappp.proto.ip import echo_reply, transport_ports
from larappp.proto.ipv6.ndp import (
    ALL_ROUTERS,
    ICMPV6_ROUTER_SOLICITATION,
    address_from_prefix,
    link_local_from_iid,
)
from larappp.proto.ipv6.slaac import AdvertisedLifetimes, RouterAdvertiser
from larappp.sim.dnsserver import DNS_PORT, DnsServer, DnsZone
from larappp.sim.scenario import ContextAddresses
from larappp.transport.netlink import Netlink
from larappp.transport.netns import call_in_netns, create_netns, delete_netns
from larappp.transport.sysctl import Sysctl
from larappp.transport.tun import Tun

__all__ = [
    "DEFAULT_NETNS",
    "DTE_IID",
    "GRANTS",
    "MODULE_IID",
    "TUN_NAME",
    "AddressPlan",
    "Grant",
    "RouterSettings",
    "SessionPort",
    "SimNetwork",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
Grant = Literal["IPV4V6", "IPV6", "IP"]
GRANTS: tuple[Grant, ...] = ("IPV4V6", "IPV6", "IP")
SendDownlink = Callable[[int, bytes], None]

DEFAULT_NETNS = "larappp-inet"
TUN_NAME = "pdn0"
#: The interface identifiers of the app note's example (§4.1.2): the module keeps
#: 2A0B:AD40:1:102A, the DTE gets 90A1:5CFC:3CC9:7301, both in the same /64.
MODULE_IID = bytes.fromhex("2a0bad400001102a")
DTE_IID = bytes.fromhex("90a15cfc3cc97301")
#: asyncio may run a timer a little early; the advertisers' deadlines need "at or after".
TIMER_SLACK = 0.001
#: TUN packets handled per wake-up before other callbacks get their turn.
READ_BURST = 256

# Documentation and shared address space only (RFC 5737, RFC 3849, RFC 6598): all of it
# lives inside namespaces.
DEFAULT_IPV4_POOL = IPv4Network("100.64.0.0/10")
DEFAULT_IPV6_POOL = IPv6Network("2001:db8::/48")
DEFAULT_SERVER_V4 = IPv4Address("198.51.100.1")
DEFAULT_SERVER_V6 = IPv6Address("2001:db8:ffff::1")
DEFAULT_DNS_V4 = (IPv4Address("198.51.100.53"), IPv4Address("198.51.100.54"))
DEFAULT_DNS_V6 = (IPv6Address("2001:db8:ffff::53"), IPv6Address("2001:db8:ffff::54"))
DEFAULT_LIFETIMES = AdvertisedLifetimes()

_IPV4_HEADER = 20
_IPV6_HEADER = 40
_PROTO_ICMPV6 = 58
_ALL_ROUTERS = ALL_ROUTERS.packed


def _is_link_local(address: bytes) -> bool:
    return address[0] == 0xFE and address[1] & 0xC0 == 0x80  # fe80::/10


@dataclass(frozen=True)
class AddressPlan:
    """How the simulated network numbers PDP contexts, and where its internet hosts live."""

    #: DTE IPv4 addresses: <pool>.<cid>.2, the module's (IPCP peer) side <pool>.<cid>.1
    ipv4_pool: IPv4Network = DEFAULT_IPV4_POOL
    #: per-context /64 prefixes <pool>:<cid>::/64 come from here
    ipv6_pool: IPv6Network = DEFAULT_IPV6_POOL
    server_v4: IPv4Address = DEFAULT_SERVER_V4
    server_v6: IPv6Address = DEFAULT_SERVER_V6
    dns_v4: tuple[IPv4Address, ...] = DEFAULT_DNS_V4
    dns_v6: tuple[IPv6Address, ...] = DEFAULT_DNS_V6
    module_iid: bytes = MODULE_IID
    dte_iid: bytes = DTE_IID
    #: the MTU the network grants (PCO; app note §2 MTU); also the TUN's MTU
    mtu: int = 1500
    #: the link MTU advertised in RAs (RFC 4861 §4.6.4)
    ra_mtu: int = 1430
    lifetimes: AdvertisedLifetimes = DEFAULT_LIFETIMES
    server_name: str = "server.larappp.test"
    dns_name: str = "dns.larappp.test"

    def __post_init__(self) -> None:
        for name in ("module_iid", "dte_iid"):
            if len(getattr(self, name)) != 8:
                raise ConfigError(f"simulated network {name} must be 8 bytes (an IPv6 IID)")
        if self.module_iid == self.dte_iid:
            raise ConfigError(
                "simulated network module_iid and dte_iid are equal: the DTE must get its own "
                "interface identifier (app note §4.1.2)"
            )
        if not 1 <= len(self.dns_v4) <= 2 or not 1 <= len(self.dns_v6) <= 2:
            raise ConfigError("simulated network needs one or two DNS servers per family")
        if self.ipv6_pool.prefixlen > 56:
            raise ConfigError(
                f"simulated network ipv6_pool {self.ipv6_pool} is too small: use a /56 or larger"
            )
        if self.ipv4_pool.prefixlen > 16:
            raise ConfigError(
                f"simulated network ipv4_pool {self.ipv4_pool} is too small: use a /16 or larger"
            )
        if not 576 <= self.mtu <= 9000 or not 1280 <= self.ra_mtu <= self.mtu:
            raise ConfigError(
                "simulated network mtu must be 576 to 9000 and ra_mtu 1280 to mtu (RFC 8200 §5)"
            )
        for host in self.internet_addresses:
            if host in (self.ipv4_pool if host.version == 4 else self.ipv6_pool):
                raise ConfigError(
                    f"simulated internet host {host} lies in a DTE address pool: move it out"
                )

    # -- per context ---------------------------------------------------------------------
    @staticmethod
    def _check_cid(cid: int) -> None:
        if not 0 <= cid <= 255:
            raise ConfigError(f"PDP context id {cid} is out of range: use 0 to 255")

    def ipv4_address(self, cid: int) -> IPv4Address:
        """The DTE's IPv4 address for context `cid` (what IPCP hands out)."""
        self._check_cid(cid)
        return self.ipv4_pool.network_address + (cid << 8) + 2

    def ipv4_peer(self, cid: int) -> IPv4Address:
        """The module's side of the IPv4 point-to-point link for context `cid`."""
        self._check_cid(cid)
        return self.ipv4_pool.network_address + (cid << 8) + 1

    def ipv6_prefix(self, cid: int) -> IPv6Network:
        """The /64 prefix context `cid` advertises for SLAAC (app note §4.1.2)."""
        self._check_cid(cid)
        return IPv6Network((int(self.ipv6_pool.network_address) + (cid << 64), 64))

    def module_ipv6(self, cid: int) -> IPv6Address:
        """The module's own global address: the prefix with the module's IID."""
        return address_from_prefix(self.ipv6_prefix(cid), self.module_iid)

    def dte_ipv6(self, cid: int) -> IPv6Address:
        """The address a DTE using the IID given over IPV6CP forms from the prefix."""
        return address_from_prefix(self.ipv6_prefix(cid), self.dte_iid)

    def context_addresses(self, cid: int) -> ContextAddresses:
        """The same plan in the AT model's form (what +CGCONTRDP should report)."""
        prefix = self.ipv6_prefix(cid)
        return ContextAddresses(
            ipv4=str(self.ipv4_address(cid)),
            ipv4_mask="255.255.255.0",
            ipv4_gateway=str(self.ipv4_peer(cid)),
            ipv4_dns=(str(self.dns_v4[0]), str(self.dns_v4[-1])),
            ipv6_prefix=str(prefix.network_address),
            ipv6_prefix_len=64,
            ipv6=str(self.module_ipv6(cid)),
            ipv6_dns=(str(self.dns_v6[0]), str(self.dns_v6[-1])),
            ipv6_gateway=str(link_local_from_iid(self.module_iid)),
        )

    # -- the internet ----------------------------------------------------------------------
    @property
    def internet_addresses(self) -> tuple[IPv4Address | IPv6Address, ...]:
        """Every host address of the simulated internet (on the namespace's loopback)."""
        return (self.server_v4, *self.dns_v4, self.server_v6, *self.dns_v6)

    @property
    def dns_addresses(self) -> tuple[IPv4Address | IPv6Address, ...]:
        return (*self.dns_v4, *self.dns_v6)

    def zone(self) -> DnsZone:
        """The names the simulated DNS answers: the server and the DNS server itself."""
        return DnsZone.of(
            {
                self.server_name: (self.server_v4, self.server_v6),
                self.dns_name: (self.dns_v4[0], self.dns_v6[0]),
            }
        )


@dataclass(frozen=True)
class RouterSettings:
    """How each session's router advertiser times its RAs (defaults: answer an RS at once)."""

    #: RFC 4861 §6.2.6 MAX_RA_DELAY_TIME is 0.5 s; a simulator need not make hosts wait
    response_delay: float = 0.0
    #: RFC 4861 §10 MIN_DELAY_BETWEEN_RAS is 3 s; 0 answers every RS
    min_delay_between_ras: float = 0.0
    #: unsolicited RAs (after `SessionPort.start_advertising`) every max_interval/3..max
    max_interval: float = 600.0
    seed: int | None = None


class SessionPort:
    """One PDP context attached to the simulated network: addresses, both packet paths, counters.

    `uplink()` takes what the DTE sent over PPP; packets for the DTE go to `send_downlink`.
    Counters: `uplink_*` count everything given to uplink(), `downlink_*` everything handed
    to send_downlink (RAs and echo replies included), `routed_packets` uplink packets
    written into the internet, and the drops by reason.
    """

    def __init__(
        self,
        cid: int,
        grant: Grant,
        plan: AddressPlan,
        send_downlink: SendDownlink,
        to_internet: Callable[[bytes], bool],
        *,
        clock: Callable[[], float],
        router: RouterSettings = RouterSettings(),
        timer_changed: Callable[[], None] = lambda: None,
        on_detach: Callable[[SessionPort], None] = lambda port: None,
        embpf_range: tuple[int, int] | None = None,
    ) -> None:
        if grant not in GRANTS:
            raise ConfigError(f"PDP grant {grant!r} is unknown: use one of {', '.join(GRANTS)}")
        self.cid = cid
        self.grant: Grant = grant
        self.plan = plan
        self.has_ipv4 = grant in ("IP", "IPV4V6")
        self.has_ipv6 = grant in ("IPV6", "IPV4V6")
        self.ipv4_address = plan.ipv4_address(cid) if self.has_ipv4 else None
        self.ipv4_peer = plan.ipv4_peer(cid) if self.has_ipv4 else None
        self.dns_v4: tuple[IPv4Address, ...] = plan.dns_v4 if self.has_ipv4 else ()
        self.ipv6_prefix = plan.ipv6_prefix(cid) if self.has_ipv6 else None
        self.dte_iid = plan.dte_iid
        self.module_iid = plan.module_iid
        self.module_ipv6 = plan.module_ipv6(cid) if self.has_ipv6 else None
        self.module_link_local = link_local_from_iid(plan.module_iid)
        self.dns_v6: tuple[IPv6Address, ...] = plan.dns_v6 if self.has_ipv6 else ()
        self.mtu = plan.mtu
        self.ra_mtu = plan.ra_mtu
        #: the applied +UEMBPF range (app note §4.3); SimNetwork keeps it in step
        self.embpf_range = embpf_range
        self.advertiser: RouterAdvertiser | None = None
        if self.ipv6_prefix is not None:
            self.advertiser = RouterAdvertiser(
                self.ipv6_prefix,
                plan.module_iid,
                mtu=plan.ra_mtu,
                dns=plan.dns_v6,
                lifetimes=plan.lifetimes,
                rng=random.Random(router.seed if router.seed is not None else cid),
                max_interval=router.max_interval,
                response_delay_max=router.response_delay,
                min_delay_between_ras=router.min_delay_between_ras,
            )
        self._send_downlink = send_downlink
        self._to_internet = to_internet
        self._clock = clock
        self._timer_changed = timer_changed
        self._on_detach = on_detach
        self._attached = True
        # raw forms for the per-packet checks
        self._ipv4 = self.ipv4_address.packed if self.ipv4_address else None
        self._ipv4_peer = self.ipv4_peer.packed if self.ipv4_peer else None
        self._prefix8 = self.ipv6_prefix.network_address.packed[:8] if self.ipv6_prefix else None
        self._module_global = self.module_ipv6.packed if self.module_ipv6 else None
        self._module_ll = self.module_link_local.packed
        # counters
        self.uplink_packets = 0
        self.uplink_bytes = 0
        self.downlink_packets = 0
        self.downlink_bytes = 0
        self.routed_packets = 0
        self.dropped_spoofed = 0
        self.dropped_malformed = 0
        #: for the module itself (or the link) and not answered: MLD, other multicast...
        self.dropped_local = 0
        #: the internet could not take the packet (TUN gone or full)
        self.dropped_internet = 0
        self.filtered_embpf = 0
        self.router_solicitations = 0
        self.router_advertisements = 0
        self.echo_replies = 0

    # -- properties ----------------------------------------------------------------------
    @property
    def attached(self) -> bool:
        return self._attached

    @property
    def dte_ipv6(self) -> IPv6Address | None:
        """The address the DTE forms with the IID it got over IPV6CP (it may pick others)."""
        return (
            None
            if self.ipv6_prefix is None
            else address_from_prefix(self.ipv6_prefix, self.dte_iid)
        )

    def __repr__(self) -> str:
        return f"SessionPort(cid={self.cid}, grant={self.grant}, attached={self._attached})"

    # -- uplink: DTE -> network -------------------------------------------------------------
    def uplink(self, family: int, packet: bytes) -> None:
        """One packet the DTE sent over PPP (`family` from the PPP protocol: 4 or 6)."""
        if not self._attached:
            return
        self.uplink_packets += 1
        self.uplink_bytes += len(packet)
        version = packet[0] >> 4 if packet else 0
        if version != family or family not in (4, 6):
            self.dropped_malformed += 1
        elif family == 4:
            self._uplink_ipv4(packet)
        else:
            self._uplink_ipv6(packet)

    def _uplink_ipv4(self, packet: bytes) -> None:
        if len(packet) < _IPV4_HEADER or packet[0] & 0x0F < 5:
            self.dropped_malformed += 1
            return
        source, destination = packet[12:16], packet[16:20]
        if self._ipv4 is None or source != self._ipv4:
            self.dropped_spoofed += 1
        elif destination == self._ipv4_peer:
            self._answer_echo(4, packet)
        elif destination[0] >= 224 or destination == b"\xff\xff\xff\xff":
            self.dropped_local += 1  # multicast, broadcast: nothing beyond the module
        else:
            self._route(packet)

    def _uplink_ipv6(self, packet: bytes) -> None:
        if len(packet) < _IPV6_HEADER:
            self.dropped_malformed += 1
            return
        if self._prefix8 is None:
            self.dropped_spoofed += 1  # no IPv6 granted: no address of ours can send this
            return
        source, destination = packet[8:24], packet[24:40]
        if destination[0] == 0xFF or _is_link_local(destination):
            self._on_link_ipv6(packet, destination)
        elif destination == self._module_global:
            self._answer_echo(6, packet)
        elif source[:8] != self._prefix8 or source == self._module_global:
            # a link-local or foreign source, or the module's own address
            self.dropped_spoofed += 1
        else:
            self._route(packet)

    def _on_link_ipv6(self, packet: bytes, destination: bytes) -> None:
        is_rs = (
            packet[6] == _PROTO_ICMPV6
            and len(packet) > _IPV6_HEADER
            and packet[_IPV6_HEADER] == ICMPV6_ROUTER_SOLICITATION
        )
        if is_rs and destination in (_ALL_ROUTERS, self._module_ll):
            self._solicited(packet)
        elif destination == self._module_ll:
            self._answer_echo(6, packet)
        else:
            self.dropped_local += 1  # MLD reports, other multicast, other link-locals

    def _solicited(self, packet: bytes) -> None:
        advertiser = self.advertiser
        assert advertiser is not None  # only IPv6 sessions get here
        now = self._clock()
        advertiser.receive_packet(packet, now)
        if advertiser.next_event() is None:
            self.dropped_malformed += 1  # the advertiser refused it (RFC 4861 §6.1.1)
            return
        while advertiser.next_event() is not None:
            pass
        self.router_solicitations += 1
        self.handle_timer(now)

    def _answer_echo(self, family: int, packet: bytes) -> None:
        """The module answers pings to its own addresses; anything else for it is dropped."""
        reply = echo_reply(packet)
        if reply is None:
            self.dropped_local += 1
            return
        self.echo_replies += 1
        self._downlink(family, reply)

    def _route(self, packet: bytes) -> None:
        if self._to_internet(packet):
            self.routed_packets += 1
        else:
            self.dropped_internet += 1

    # -- downlink: network -> DTE -----------------------------------------------------------
    def deliver(self, family: int, packet: bytes) -> None:
        """A packet from the internet addressed to this context (called by SimNetwork)."""
        if not self._attached:
            return
        if self.embpf_range is not None:
            ports = transport_ports(packet)
            if ports is not None and self.embpf_range[0] <= ports[2] <= self.embpf_range[1]:
                # app note §4.3: for the embedded applications, never for the DTE
                self.filtered_embpf += 1
                return
        if family == 6 and packet[24:40] == self._module_global:
            # the module's own address (app note §4.1.2): answered by the module
            reply = echo_reply(packet)
            if reply is None:
                self.dropped_local += 1
            else:
                self.echo_replies += 1
                self._route(reply)
            return
        self._downlink(family, packet)

    def _downlink(self, family: int, packet: bytes) -> None:
        self.downlink_packets += 1
        self.downlink_bytes += len(packet)
        self._send_downlink(family, packet)

    # -- router advertisements ---------------------------------------------------------------
    def start_advertising(self) -> None:
        """Send unsolicited RAs from now on (call when IPV6CP has opened); RS are always answered."""
        if self.advertiser is not None and self._attached:
            self.advertiser.start(self._clock())
            self._timer_changed()

    def get_timer(self) -> float | None:
        """When `handle_timer` is due next (the RA schedule), or None."""
        if self.advertiser is None or not self._attached:
            return None
        return self.advertiser.get_timer()

    def handle_timer(self, now: float) -> None:
        """Send the RAs due at `now` to the DTE."""
        advertiser = self.advertiser
        if advertiser is None or not self._attached:
            return
        deadline = advertiser.get_timer()
        if deadline is not None and deadline <= now:
            advertiser.handle_timer(now)
        self._flush_advertisements()
        self._timer_changed()

    def _flush_advertisements(self) -> None:
        assert self.advertiser is not None
        for advertisement in self.advertiser.packets_to_send():
            self.router_advertisements += 1
            self._downlink(6, advertisement)

    # -- teardown ----------------------------------------------------------------------------
    def detach(self, *, withdraw: bool = False) -> None:
        """Leave the network (idempotent); `withdraw` first sends an RA with lifetime 0."""
        if not self._attached:
            return
        if withdraw and self.advertiser is not None:
            self.advertiser.withdraw(self._clock())
            self._flush_advertisements()
        self._attached = False
        self._on_detach(self)
        self._timer_changed()


class SimNetwork:
    """The simulated internet behind the module: a namespace with a TUN, hosts, DNS and PDP routing."""

    def __init__(
        self,
        netns: str | None = DEFAULT_NETNS,
        *,
        plan: AddressPlan = AddressPlan(),
        router: RouterSettings = RouterSettings(),
        tun_name: str = TUN_NAME,
    ) -> None:
        """Use `SimNetwork.start()`; this only records the settings."""
        self.netns = netns
        self.plan = plan
        self.router = router
        self.tun_name = tun_name
        self.dns: DnsServer | None = None
        self._loop = asyncio.get_running_loop()
        self._created = False
        self._stopped = False
        self._tun: Tun | None = None
        self._reading = False
        self._netlink: Netlink | None = None
        self._sysctl = Sysctl()
        self._sessions: dict[int, SessionPort] = {}
        self._by_ipv4: dict[bytes, SessionPort] = {}
        self._by_prefix: dict[bytes, SessionPort] = {}
        self._embpf: tuple[int, int] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        #: downlink packets for no attached context, multicast (never for a DTE), not IP,
        #: or failing in send_downlink
        self.downlink_unknown = 0
        self.downlink_multicast = 0
        self.downlink_malformed = 0
        self.downlink_errors = 0
        self.tun_write_errors = 0

    # -- lifecycle ------------------------------------------------------------------------
    @classmethod
    async def start(
        cls,
        netns: str | None = DEFAULT_NETNS,
        *,
        create: bool = True,
        plan: AddressPlan = AddressPlan(),
        router: RouterSettings = RouterSettings(),
        tun_name: str = TUN_NAME,
        dns: bool = True,
        dns_port: int = DNS_PORT,
    ) -> SimNetwork:
        """Set up the internet namespace (`netns`; None: this process's own namespace).

        `create`: make the namespace (an existing one is an error) and delete it at stop;
        False: use an existing one and undo exactly what was added to it.
        """
        network = cls(netns, plan=plan, router=router, tun_name=tun_name)
        try:
            await network._setup(create=create, dns=dns, dns_port=dns_port)
        except BaseException:
            await network.stop()
            raise
        return network

    async def _setup(self, *, create: bool, dns: bool, dns_port: int) -> None:
        plan = self.plan
        if self.netns is not None and create:
            await asyncio.to_thread(create_netns, self.netns)
            self._created = True
        await self._in_netns(self._enable_forwarding)
        self._tun = await self._in_netns(Tun.open, self.tun_name, mtu=plan.mtu)
        await self._in_netns(self._prepare_tun_sysctls)
        netlink = self._netlink = Netlink(self.netns)
        await netlink.open()
        await netlink.set_link_up("lo")
        for host in plan.internet_addresses:
            # Only the server addresses may be picked as a source: an unbound socket's
            # reply (iperf3's UDP test) must come from the address the DTE talked to.
            # IPv6 avoids deprecated addresses (RFC 6724 rule 3), so the DNS ones are.
            secondary = host in plan.dns_addresses and host.version == 6
            await netlink.add_address(
                "lo", f"{host}/{host.max_prefixlen}", nodad=True,
                valid_lft=None, preferred_lft=0 if secondary else None,
            )
        await netlink.set_link_up(self.tun_name)
        await netlink.add_route(self.tun_name, plan.ipv4_pool)
        await netlink.add_route(self.tun_name, plan.ipv6_pool)
        self._loop.add_reader(self._tun.fileno(), self._on_tun_readable)
        self._reading = True
        if dns:
            self.dns = await DnsServer.start(
                plan.dns_addresses, plan.zone(), netns=self.netns, port=dns_port
            )

    def _enable_forwarding(self) -> None:
        # packets between two contexts cross the internet namespace's kernel
        self._sysctl.set_forwarding(4, True)
        self._sysctl.set_forwarding(6, True, "all")

    def _prepare_tun_sysctls(self) -> None:
        # before link-up: no kernel link-local on the TUN, hence no MLD reports from it
        self._sysctl.set_ipv6_conf(self.tun_name, "disable_ipv6", 0)
        self._sysctl.set_ipv6_conf(self.tun_name, "addr_gen_mode", 1)

    async def _in_netns(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """fn in a thread inside the namespace (files and fds it opens stay bound there)."""
        if self.netns is None:
            return await asyncio.to_thread(fn, *args, **kwargs)
        return await asyncio.to_thread(call_in_netns, self.netns, fn, *args, **kwargs)

    async def stop(self) -> None:
        """Detach every session, close the DNS server and the TUN, undo or delete (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        self._cancel_timer()
        for port in list(self._sessions.values()):
            port.detach()
        failures: list[str] = []
        if self.dns is not None:
            self.dns.close()
        if self._tun is not None:
            if self._reading and not self._loop.is_closed():
                self._loop.remove_reader(self._tun.fileno())
            self._reading = False
            self._tun.close()  # the kernel removes its routes with it
        netlink = self._netlink
        if netlink is not None:
            netlink.ledger.forget_interface(self.tun_name)
        self._sysctl.forget_interface(self.tun_name)
        try:
            if self._created:
                assert self.netns is not None
                await asyncio.to_thread(delete_netns, self.netns)
                self._created = False
            else:
                if netlink is not None:
                    failures += await netlink.ledger.undo()
                if self._sysctl.changes:
                    failures += await self._in_netns(self._sysctl.undo)
        except (OSError, NetworkSetupError) as exc:
            failures.append(str(exc))
        finally:
            if netlink is not None:
                netlink.close()
        for failure in failures:
            log.warning("simulated network %s: could not undo %s", self.netns, failure)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- sessions -------------------------------------------------------------------------
    def attach(self, cid: int, *, grant: Grant, send_downlink: SendDownlink) -> SessionPort:
        """Attach PDP context `cid` with what the network granted; packets for the DTE go to
        send_downlink(family, packet)."""
        if self._stopped:
            raise NetworkSetupError("the simulated network is stopped: start a new one")
        if cid in self._sessions:
            raise NetworkSetupError(
                f"PDP context {cid} is attached to the simulated network already: detach it first"
            )
        port = SessionPort(
            cid,
            grant,
            self.plan,
            send_downlink,
            self._write_tun,
            clock=self._loop.time,
            router=self.router,
            timer_changed=self._reschedule,
            on_detach=self._forget,
            embpf_range=self._embpf,
        )
        self._sessions[cid] = port
        if port.ipv4_address is not None:
            self._by_ipv4[port.ipv4_address.packed] = port
        if port.ipv6_prefix is not None:
            self._by_prefix[port.ipv6_prefix.network_address.packed[:8]] = port
        return port

    def session(self, cid: int) -> SessionPort | None:
        """The attached session of context `cid`, or None."""
        return self._sessions.get(cid)

    @property
    def sessions(self) -> Sequence[SessionPort]:
        return tuple(self._sessions.values())

    def _forget(self, port: SessionPort) -> None:
        if self._sessions.get(port.cid) is port:
            del self._sessions[port.cid]
        if port.ipv4_address is not None:
            self._by_ipv4.pop(port.ipv4_address.packed, None)
        if port.ipv6_prefix is not None:
            self._by_prefix.pop(port.ipv6_prefix.network_address.packed[:8], None)

    # -- UEMBPF ---------------------------------------------------------------------------
    def set_embpf_range(self, first: int | None, last: int | None = None) -> None:
        """Apply the +UEMBPF port range (app note §4.3), or None to turn filtering off."""
        if first is None:
            self._embpf = None
        else:
            last = first if last is None else last
            if not 1 <= first <= last <= 65535:
                raise ConfigError(
                    f"UEMBPF range {first}-{last} is invalid: give 1 <= first <= last <= 65535"
                )
            self._embpf = (first, last)
        for port in self._sessions.values():
            port.embpf_range = self._embpf

    @property
    def embpf_range(self) -> tuple[int, int] | None:
        return self._embpf

    # -- packets ---------------------------------------------------------------------------
    def _write_tun(self, packet: bytes) -> bool:
        tun = self._tun
        if tun is None or tun.closed:
            return False
        try:
            written = tun.write_packet(packet)
        except OSError as exc:
            self.tun_write_errors += 1
            log.debug("simulated network: TUN write: %s", exc)
            return False
        if not written:
            self.tun_write_errors += 1
        return written

    def _on_tun_readable(self) -> None:
        tun = self._tun
        if tun is None:
            return
        for _ in range(READ_BURST):
            try:
                packet = tun.read_packet()
            except OSError as exc:
                log.warning("simulated network: TUN %s read failed: %s", tun.name, exc)
                self._loop.remove_reader(tun.fileno())
                self._reading = False
                return
            if packet is None:
                return
            self.route_downlink(packet)

    def route_downlink(self, packet: bytes) -> None:
        """Hand a packet from the internet to the session owning its destination."""
        version = packet[0] >> 4 if packet else 0
        port: SessionPort | None
        if version == 4 and len(packet) >= _IPV4_HEADER:
            port = self._by_ipv4.get(packet[16:20])
        elif version == 6 and len(packet) >= _IPV6_HEADER:
            port = self._by_prefix.get(packet[24:32])
        else:
            self.downlink_malformed += 1
            return
        if port is None:
            if packet[16 if version == 4 else 24] >= (224 if version == 4 else 0xFF):
                self.downlink_multicast += 1  # the internet kernel's own link chatter
            else:
                self.downlink_unknown += 1
            return
        try:
            port.deliver(version, packet)
        except Exception:  # a broken consumer must not stop the reader
            self.downlink_errors += 1
            log.exception("simulated network: delivering to context %d failed", port.cid)

    # -- RA timers ---------------------------------------------------------------------------
    def _reschedule(self) -> None:
        if self._stopped:
            return
        deadlines = [t for port in self._sessions.values() if (t := port.get_timer()) is not None]
        when = min(deadlines) if deadlines else None
        if when == self._timer_at and self._timer is not None:
            return
        self._cancel_timer()
        if when is not None:
            self._timer_at = when
            self._timer = self._loop.call_at(when + TIMER_SLACK, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = None

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        now = self._loop.time()
        for port in list(self._sessions.values()):
            deadline = port.get_timer()
            if deadline is not None and deadline <= now:
                try:
                    port.handle_timer(now)
                except Exception:  # one session must not stop the others' RAs
                    self.downlink_errors += 1
                    log.exception("simulated network: RA timer of context %d failed", port.cid)
        self._reschedule()
