"""The host side of one PPP interface: addresses, routes, sysctls and DNS that PPP (IPCP,
IPV6CP) and SLAAC learned, applied through larappp.transport and undone exactly.

Used by both backends: the built-in engine (a TUN) and pppd (a ppp<N> interface).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from larappp import runtime
from larappp.errors import LarapppError, NetworkSetupError
from larappp.lara_r6.ports import PortRange
from larappp.proto.ipv6 import slaac
from larappp.transport.dns import DnsWriter
from larappp.transport.netlink import Netlink
from larappp.transport.nft import SessionTable
from larappp.transport.shaping import UplinkShaper
from larappp.transport.sysctl import Sysctl

log = logging.getLogger(__name__)


@dataclass
class InterfaceState:
    """What is configured on the interface now, for `larappp status`."""

    ifname: str
    ipv4: str | None = None
    ipv4_peer: str | None = None
    ipv6_link_local: str | None = None
    ipv6_global: list[str] = field(default_factory=list)
    ipv6_router: str | None = None
    mtu: int | None = None
    dns: list[str] = field(default_factory=list)
    #: what was not done as configured, and why (e.g. a default route the host already has)
    warnings: list[str] = field(default_factory=list)
    #: the session's nftables table and what it holds ("inet larappp_lara1: nat, firewall_ipv6")
    nftables: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "ifname": self.ifname, "ipv4": self.ipv4, "ipv4_peer": self.ipv4_peer,
            "ipv6_link_local": self.ipv6_link_local, "ipv6_global": list(self.ipv6_global),
            "ipv6_router": self.ipv6_router, "mtu": self.mtu, "dns": list(self.dns),
            "warnings": list(self.warnings), "nftables": self.nftables,
        }


class HostInterface:
    """Applies PPP and SLAAC results to one interface of this network namespace; undoes them."""

    def __init__(
        self,
        ifname: str,
        *,
        default_route: bool = True,
        metric: int | None = None,
        dns_mode: str = "auto",
        dns_dir: str | Path = "/run/larappp/resolv.conf.d",
        nat: bool = False,
        embpf: str | None = None,
        firewall_ipv6: bool = False,
    ) -> None:
        """`nat`: masquerade IPv4 leaving the interface, with translated ports outside the
        module's `embpf` range (router mode, app note §4.3); `firewall_ipv6`: drop IPv6
        arriving on it but replies and needed ICMPv6 (app note §4.1.2, RFC 4890)."""
        self.ifname = ifname
        self.default_route = default_route
        self.metric = metric
        self.netlink = Netlink()
        self.sysctl = Sysctl()
        self.dns = DnsWriter(ifname, dns_mode, directory=dns_dir)  # type: ignore[arg-type]
        self.state = InterfaceState(ifname)
        #: the kernel's pacing of this interface's uplink (pace_uplink), removed by close
        self.shaper = UplinkShaper(ifname)
        #: the session's nftables table (larappp.nftrules), put in by open, removed by close
        self.table = SessionTable(ifname, nat=nat, embpf=PortRange.parse(embpf) if embpf else None,
                                  firewall_ipv6=firewall_ipv6)
        self._dns_v4: list[IPv4Address] = []
        self._dns_v6: list[IPv6Address] = []
        self._opened = False

    async def open(self) -> None:
        """Open netlink and put the session's nftables table in, before any address exists."""
        await self.netlink.open()
        self._opened = True
        if self.table.wanted:
            await self.table.install(self._record)
            self.state.nftables = self.table.describe()
            log.info("%s: nftables table %s in place", self.ifname, self.state.nftables)

    # -- link --------------------------------------------------------------------------
    async def prepare(self, *, ipv6: bool) -> None:
        """Before link-up: IPv6 on without a kernel link-local; RAs are larappp's (accept_ra=0)."""
        if ipv6:
            self.sysctl.prepare_ipv6_link(self.ifname, kernel_slaac=False)
        else:
            self.sysctl.set_ipv6_conf(self.ifname, "disable_ipv6", 1)

    async def link_up(self, mtu: int | None = None) -> None:
        if mtu is not None:
            await self.netlink.set_mtu(self.ifname, mtu)
            self.state.mtu = mtu
        await self.netlink.set_link_up(self.ifname)

    async def pace_uplink(self, kbit: int, mtu: int) -> None:
        """Pace what the host sends on the interface at `kbit` kbit/s in the kernel (tc), so
        the queue and its drops are the host's, not the module's (app note §4); 0: not paced."""
        if kbit > 0:
            try:
                bucket = await self.shaper.apply(kbit, mtu)
            except NetworkSetupError as exc:
                # Not fatal: the engine's own queue stays bounded; the module may drop (§4).
                self.state.warnings.append(str(exc))
                log.warning("%s", exc)
                return
            log.info("%s: uplink paced at %d kbit/s (queue %.0f ms%s)", self.ifname, kbit,
                     bucket.queue_seconds * 1000, ", fq_codel" if self.shaper.fair_queue else "")

    # -- IPv4 (IPCP) -------------------------------------------------------------------------
    async def apply_ipv4(self, local: IPv4Address, peer: IPv4Address | None, dns: tuple[IPv4Address, ...]) -> None:
        # PPP has no broadcast domain: the pppd form `local peer <peer>/32` (or a /32 alone).
        if peer is not None:
            await self.netlink.add_ipv4_peer(self.ifname, local, peer)
        else:
            await self.netlink.add_address(self.ifname, f"{local}/32")
        if self.default_route and not await self.netlink.add_default_route(self.ifname, 4, metric=self.metric):
            await self._report_default_route_taken()
        self.state.ipv4 = str(local)
        self.state.ipv4_peer = str(peer) if peer else None
        self._dns_v4 = list(dict.fromkeys(dns))  # pppd with one ms-dns hands it out twice
        self._publish_dns()
        self._record()

    async def _report_default_route_taken(self) -> None:
        """The kernel refused our IPv4 default route: one with the same metric exists."""
        metric = self.metric or 0
        others = [
            r for r in await self.netlink.routes(4)
            if r.destination.prefixlen == 0 and (r.metric or 0) == metric and r.ifname != self.ifname
        ]
        where = ", ".join(f"dev {r.ifname}" + (f" via {r.gateway}" if r.gateway else "") for r in others) or "another interface"
        warning = (
            f"IPv4 default route not added: the host already has one with metric {metric} ({where}); "
            "set this session's metric to a different number (higher: larappp is the backup) "
            "or default_route = false"
        )
        self.state.warnings.append(warning)
        log.warning("%s: %s", self.ifname, warning)
    # -- IPv6 (IPV6CP + SLAAC) ------------------------------------------------------------------
    async def apply_ipv6_link_local(self, iid: bytes) -> None:
        await self.netlink.add_ipv6_link_local(self.ifname, iid)
        self.state.ipv6_link_local = str(IPv6Address(b"\xfe\x80" + bytes(6) + iid))
        self._record()

    async def apply_slaac(self, event: object, now: float) -> str | None:
        """Apply one SlaacClient event; returns a line for the log, or None."""
        try:
            return await self._apply_slaac(event, now)
        finally:
            self._record()

    async def _apply_slaac(self, event: object, now: float) -> str | None:
        if isinstance(event, (slaac.AddressConfigured, slaac.AddressRefreshed)):
            # The kernel refuses valid_lft 0 (EINVAL); SLAAC removes an expired address itself.
            valid = _remaining(event.valid_until, now, minimum=1)
            preferred = _remaining(event.preferred_until, now)
            if isinstance(event, slaac.AddressConfigured):
                await self.netlink.add_ipv6_global(
                    self.ifname, event.address, event.prefix_len, valid_lft=valid, preferred_lft=preferred
                )
                if str(event.address) not in self.state.ipv6_global:
                    self.state.ipv6_global.append(str(event.address))
                return f"{self.ifname}: SLAAC address {event.address}/{event.prefix_len}"
            await self.netlink.update_address_lifetimes(
                self.ifname, f"{event.address}/{event.prefix_len}", valid, preferred
            )
            return None
        if isinstance(event, slaac.AddressDeprecated):
            return f"{self.ifname}: {event.address} deprecated (preferred lifetime over)"
        if isinstance(event, slaac.AddressExpired):
            await self.netlink.del_address(self.ifname, f"{event.address}/64")
            if str(event.address) in self.state.ipv6_global:
                self.state.ipv6_global.remove(str(event.address))
            return f"{self.ifname}: {event.address} expired"
        if isinstance(event, slaac.DefaultRouterLearned):
            if self.default_route and event.lifetime > 0:
                await self.netlink.add_default_route(
                    self.ifname, 6, gateway=event.router_ll, metric=self.metric, mtu=event.mtu
                )
            self.state.ipv6_router = str(event.router_ll)
            return f"{self.ifname}: IPv6 default router {event.router_ll}" + (f" mtu {event.mtu}" if event.mtu else "")
        if isinstance(event, slaac.RouterLost):
            if self.default_route:
                await self.netlink.del_route(self.ifname, "::/0", gateway=event.router_ll, metric=self.metric)
            self.state.ipv6_router = None
            return f"{self.ifname}: IPv6 router lost ({event.reason})"
        if isinstance(event, slaac.LinkMtuLearned):
            # RFC 4861 §6.3.4: the RA MTU is the link's MTU for IPv6.
            self.sysctl.set_ipv6_conf(self.ifname, "mtu", event.mtu)
            return f"{self.ifname}: IPv6 MTU {event.mtu} from the RA"
        if isinstance(event, slaac.DnsServersLearned):
            self._dns_v6 = list(dict.fromkeys([*self._dns_v6, *event.servers]))
            self._publish_dns()
            return f"{self.ifname}: IPv6 DNS {', '.join(map(str, event.servers))} (RDNSS)"
        if isinstance(event, slaac.DnsServersExpired):
            self._dns_v6 = list(event.remaining)
            self._publish_dns()
            return None
        return None

    # -- one family ending while the link stays -------------------------------------------------
    async def withdraw(self, family: int) -> list[str]:
        """Undo what IP `family` set (its NCP closed while the link stays up): addresses, routes
        and DNS servers; returns what could not be undone. Applying it again later starts clean."""
        failures = await self.netlink.ledger.undo(family)
        if family == 4:
            self.state.ipv4 = self.state.ipv4_peer = None
            self._dns_v4 = []
        else:
            self.state.ipv6_link_local = self.state.ipv6_router = None
            self.state.ipv6_global = []
            self._dns_v6 = []
        self._publish_dns()
        self._record()
        return failures

    def _publish_dns(self) -> None:
        servers: list[IPv4Address | IPv6Address] = [*self._dns_v4, *self._dns_v6]
        self.state.dns = [str(s) for s in servers]
        try:
            self.dns.apply(servers)
        except (OSError, LarapppError) as exc:
            log.warning("%s: could not publish DNS servers: %s", self.ifname, exc)

    def _record(self) -> None:
        """Keep the host record current: what a next larappp removes if this one is killed."""
        runtime.HOST_RECORD.update(self.ifname, {
            "dns": self.dns.record(), "netlink": self.netlink.ledger.as_dicts(), "nft": self.table.record(),
        })

    # -- teardown ------------------------------------------------------------------------------
    async def close(self) -> list[str]:
        """Undo everything this object configured; returns what could not be undone."""
        failures: list[str] = []
        failures += await self.shaper.remove()
        try:
            self.dns.remove()
        except (OSError, LarapppError) as exc:
            failures.append(f"DNS: {exc}")
        if self._opened:
            try:
                failures += await self.netlink.ledger.undo()
            finally:
                self.netlink.close()
                self._opened = False
        failures += self.sysctl.undo()
        failures += await self.table.remove()
        if failures:
            self._record()
        else:
            runtime.HOST_RECORD.drop(self.ifname)
        return failures


def _remaining(until: float | None, now: float, minimum: int = 0) -> int | None:
    """Whole seconds left, rounded up (a 1 s lifetime applied a moment later is still 1 s)."""
    if until is None:
        return None  # infinite
    return max(minimum, math.ceil(until - now))
