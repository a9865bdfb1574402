"""How the simulated network numbers PDP contexts: address pools, per-context addresses
and /64 prefixes, the module's and the DTE's interface identifiers (app note §4.1.2), the
internet hosts and DNS servers, and the router's RA settings."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Literal

from larappp.errors import ConfigError
from larappp.proto.ipv6.ndp import (
    address_from_prefix,
    link_local_from_iid,
)
from larappp.proto.ipv6.slaac import AdvertisedLifetimes
from larappp.sim.dnsserver import DnsZone
from larappp.sim.scenario import ContextAddresses

Grant = Literal["IPV4V6", "IPV6", "IP"]
GRANTS: tuple[Grant, ...] = ("IPV4V6", "IPV6", "IP")

#: The interface identifiers of the app note's example (§4.1.2): the module keeps
#: 2A0B:AD40:1:102A, the DTE gets 90A1:5CFC:3CC9:7301, both in the same /64.
MODULE_IID = bytes.fromhex("2a0bad400001102a")
DTE_IID = bytes.fromhex("90a15cfc3cc97301")

# Documentation and shared address space only (RFC 5737, RFC 3849, RFC 6598): all of it
# lives inside namespaces.
DEFAULT_IPV4_POOL = IPv4Network("100.64.0.0/10")
DEFAULT_IPV6_POOL = IPv6Network("2001:db8::/48")
DEFAULT_SERVER_V4 = IPv4Address("198.51.100.1")
DEFAULT_SERVER_V6 = IPv6Address("2001:db8:ffff::1")
DEFAULT_DNS_V4 = (IPv4Address("198.51.100.53"), IPv4Address("198.51.100.54"))
DEFAULT_DNS_V6 = (IPv6Address("2001:db8:ffff::53"), IPv6Address("2001:db8:ffff::54"))
DEFAULT_LIFETIMES = AdvertisedLifetimes()


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


#: The plan and RA settings used unless told otherwise (both frozen).
DEFAULT_PLAN = AddressPlan()
DEFAULT_ROUTER = RouterSettings()
