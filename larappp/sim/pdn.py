"""One PDP context attached to the simulated network (`SessionPort`): the checks on each
uplink packet, the packets answered on the link (RS, echo to the module), downlink
delivery with UEMBPF filtering (app note §4.3) and the context's Router Advertisements."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address, IPv6Network

from larappp.errors import ConfigError, NetworkSetupError
from larappp.proto.ip import echo_reply, transport_ports
from larappp.proto.ipv6.ndp import (
    ALL_ROUTERS,
    ICMPV6_ROUTER_SOLICITATION,
    PrefixInformation,
    address_from_prefix,
    build_router_advertisement,
    link_local_from_iid,
)
from larappp.proto.ipv6.slaac import RouterAdvertiser
from larappp.sim.addressing import DEFAULT_ROUTER, GRANTS, AddressPlan, Grant, RouterSettings

SendDownlink = Callable[[int, bytes], None]

IPV4_HEADER = 20
IPV6_HEADER = 40
_PROTO_ICMPV6 = 58
_ALL_ROUTERS = ALL_ROUTERS.packed


def _is_link_local(address: bytes) -> bool:
    return address[0] == 0xFE and address[1] & 0xC0 == 0x80  # fe80::/10


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
        router: RouterSettings = DEFAULT_ROUTER,
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
        if len(packet) < IPV4_HEADER or packet[0] & 0x0F < 5:
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
        if len(packet) < IPV6_HEADER:
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
            and len(packet) > IPV6_HEADER
            and packet[IPV6_HEADER] == ICMPV6_ROUTER_SOLICITATION
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

    # -- faults (larappp.sim.control) ----------------------------------------------------------
    def readvertise(self, *, prefix: IPv6Network | None = None, lifetime: int | None = None) -> None:
        """Send one RA now. `prefix` renumbers the context: this RA also announces the old
        prefix with lifetimes 0, later ones only the new prefix. `lifetime` (seconds, 0 =
        withdrawn) sets the router and prefix lifetimes of this RA and of later ones."""
        advertiser = self.advertiser
        if advertiser is None or self.ipv6_prefix is None or not self._attached:
            raise NetworkSetupError(f"context {self.cid} has no IPv6 session to advertise on")
        current = advertiser.advertisement
        info = current.prefixes[0]
        router_lifetime = current.router_lifetime
        if lifetime is not None:
            info = replace(info, valid_lifetime=lifetime, preferred_lifetime=lifetime)
            router_lifetime = lifetime
        retired: tuple[PrefixInformation, ...] = ()
        if prefix is not None and prefix != self.ipv6_prefix:
            retired = (replace(info, prefix=self.ipv6_prefix, valid_lifetime=0, preferred_lifetime=0),)
            info = replace(info, prefix=prefix)
            self.ipv6_prefix = prefix
            self.module_ipv6 = address_from_prefix(prefix, self.module_iid)
            self._prefix8 = prefix.network_address.packed[:8]
            self._module_global = self.module_ipv6.packed
        advertiser.advertisement = replace(current, router_lifetime=router_lifetime, prefixes=(info,))
        self.router_advertisements += 1
        self._downlink(6, build_router_advertisement(replace(advertiser.advertisement, prefixes=(info, *retired))))

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
