"""Links, addresses and routes through rtnetlink (pyroute2): the only code touching netlink.

Every change goes into a `NetlinkLedger`, so teardown removes exactly what larappp
added and nothing the administrator or the kernel put there. The API is asynchronous
(pyroute2's `AsyncIPRoute`): pyroute2 0.9's synchronous `IPRoute` runs its own event
loop and fails with "This event loop is already running" inside larappp's asyncio
engines.

A `Netlink` works in the network namespace of the thread that creates it, or in the
named namespace `netns` (pyroute2 opens the socket there from a short-lived child).
Lifetimes are seconds; None means forever.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
    ip_address,
    ip_interface,
    ip_network,
)
from typing import Any, Literal, Self

from pyroute2 import AsyncIPRoute
from pyroute2 import netns as pyroute2_netns
from pyroute2.netlink.exceptions import NetlinkError

from larappp.errors import NetworkSetupError

__all__ = [
    "AddressInfo",
    "LedgerEntry",
    "LinkInfo",
    "Netlink",
    "NetlinkLedger",
    "RouteInfo",
]

IFF_UP = 0x1
IFA_F_NODAD = 0x02  # linux/if_addr.h
IFA_F_NOPREFIXROUTE = 0x200
IFA_F_TENTATIVE = 0x40
IFA_F_DADFAILED = 0x08
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253
RTPROT_STATIC = 4
RT_TABLE_MAIN = 254
FOREVER = 0xFFFFFFFF
# errors meaning "already gone", which undo treats as success
_GONE = frozenset({errno.ENODEV, errno.EADDRNOTAVAIL, errno.ESRCH, errno.ENOENT})

Family = Literal[4, 6]
IPInterface = IPv4Interface | IPv6Interface
IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network


def _family_number(family: Family) -> int:
    return socket.AF_INET if family == 4 else socket.AF_INET6


@dataclass(frozen=True)
class LinkInfo:
    """One network interface as the kernel reports it."""

    index: int
    ifname: str
    up: bool
    mtu: int
    flags: int


@dataclass(frozen=True)
class AddressInfo:
    """One address on an interface; `peer` is set for the IPv4 point-to-point form."""

    ifname: str
    interface: IPInterface
    peer: IPAddress | None
    scope: int
    flags: int
    valid_lft: int | None
    preferred_lft: int | None

    @property
    def tentative(self) -> bool:
        return bool(self.flags & IFA_F_TENTATIVE)


@dataclass(frozen=True)
class RouteInfo:
    """One route in the main table (or the one asked for)."""

    destination: IPNetwork
    gateway: IPAddress | None
    ifname: str | None
    metric: int | None
    mtu: int | None
    protocol: int
    table: int


@dataclass(frozen=True)
class LedgerEntry:
    """One change larappp made: what to undo at teardown."""

    kind: Literal["address", "route", "link_up", "mtu"]
    ifname: str
    address: str | None = None  # "address/prefixlen" for kind=address
    peer: str | None = None
    destination: str | None = None  # network for kind=route
    gateway: str | None = None
    metric: int | None = None
    table: int = RT_TABLE_MAIN
    old_mtu: int | None = None  # for kind=mtu

    @property
    def family(self) -> int | None:
        """The IP family (4 or 6) of an address or route; None for link changes."""
        if self.kind == "address":
            return 6 if ":" in (self.address or "") else 4
        if self.kind == "route":
            return 6 if ":" in (self.destination or "") else 4
        return None

    def describe(self) -> str:
        if self.kind == "address":
            peer = f" peer {self.peer}" if self.peer else ""
            return f"address {self.address}{peer} on {self.ifname}"
        if self.kind == "route":
            via = f" via {self.gateway}" if self.gateway else ""
            metric = f" metric {self.metric}" if self.metric is not None else ""
            return f"route {self.destination}{via} dev {self.ifname}{metric}"
        if self.kind == "mtu":
            return f"MTU of {self.ifname} (was {self.old_mtu})"
        return f"link {self.ifname} up"


@dataclass
class NetlinkLedger:
    """What this larappp process changed through netlink, newest last; `undo()` reverts it."""

    netlink: Netlink
    entries: list[LedgerEntry] = field(default_factory=list)

    def record(self, entry: LedgerEntry) -> None:
        if entry not in self.entries:
            self.entries.append(entry)

    def forget(self, entry: LedgerEntry) -> None:
        if entry in self.entries:
            self.entries.remove(entry)

    def forget_interface(self, ifname: str) -> None:
        """Drop the entries of an interface that is gone (a closed TUN takes them with it)."""
        self.entries = [e for e in self.entries if e.ifname != ifname]

    def as_dicts(self) -> list[dict[str, Any]]:
        """The entries as plain data (for a state file a restarted larappp can undo)."""
        return [
            {k: v for k, v in entry.__dict__.items() if v is not None} for entry in self.entries
        ]

    def load_dicts(self, data: Iterable[dict[str, Any]]) -> None:
        for item in data:
            self.record(LedgerEntry(**item))

    async def undo(self, family: int | None = None) -> list[str]:
        """Revert every entry (or the addresses and routes of IP `family` only), newest first;
        returns what could not be reverted (and keeps it)."""
        failures: list[str] = []
        kept: list[LedgerEntry] = []
        for entry in reversed(self.entries):
            if family is not None and entry.family != family:
                kept.append(entry)
                continue
            try:
                await self.netlink._revert(entry)
            except (NetlinkError, OSError) as exc:
                code = exc.code if isinstance(exc, NetlinkError) else exc.errno
                if code in _GONE:
                    continue
                failures.append(f"{entry.describe()}: {exc}")
                kept.append(entry)
        self.entries = list(reversed(kept))
        return failures


def _lifetime(value: int | None) -> int:
    return FOREVER if value is None else int(value)


class Netlink:
    """rtnetlink access (links, addresses, routes) for one namespace, recording each change."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self._ipr: Any = None
        self.ledger = NetlinkLedger(self)

    # -- lifecycle ---------------------------------------------------------------------
    async def open(self) -> Self:
        """Open the netlink socket (in `netns` when given; the namespace must exist)."""
        if self._ipr is None:
            try:
                if self.netns is None:
                    ipr = AsyncIPRoute()
                    await ipr.setup_endpoint()
                else:
                    ipr = await self._open_in_netns(self.netns)
            except OSError as exc:
                where = f" in namespace {self.netns}" if self.netns else ""
                raise NetworkSetupError(f"cannot open rtnetlink{where}: {exc}") from None
            self._ipr = ipr
        return self

    @staticmethod
    async def _open_in_netns(name: str) -> Any:
        """The socket is made while this thread is inside `name`, then the thread goes home.

        Not AsyncIPRoute(netns=...): pyroute2 forks a child for that, and such forks from a
        running asyncio program sent SIGTERM to the whole process group now and then (seen
        here: the simulator died silently). setns(2) on an fd never forks.
        """
        path = f"/run/netns/{name}"
        if not os.path.exists(path):
            raise OSError(errno.ENOENT, f"no network namespace {name}")
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(path, os.O_RDONLY)
        try:
            pyroute2_netns.setns(target, flags=0)
            try:
                ipr = AsyncIPRoute()
                await ipr.setup_endpoint()
            finally:
                pyroute2_netns.setns(home, flags=0)
        finally:
            os.close(home)
            os.close(target)
        return ipr

    def close(self) -> None:
        """Close the socket; the ledger is kept (undo reopens it)."""
        if self._ipr is not None:
            ipr, self._ipr = self._ipr, None
            ipr.close()

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    async def _api(self) -> Any:
        await self.open()
        return self._ipr

    # -- links -----------------------------------------------------------------------
    async def link_index(self, ifname: str) -> int:
        """The interface index of `ifname`; NetworkSetupError when there is none."""
        ipr = await self._api()
        indexes = await ipr.link_lookup(ifname=ifname)
        if not indexes:
            raise NetworkSetupError(f"there is no interface {ifname}: check the interface name")
        return int(indexes[0])

    async def link(self, ifname: str) -> LinkInfo | None:
        """The interface `ifname`, or None when it does not exist."""
        ipr = await self._api()
        indexes = await ipr.link_lookup(ifname=ifname)
        if not indexes:
            return None
        (msg,) = await ipr.link("get", index=indexes[0])
        return LinkInfo(
            index=msg["index"],
            ifname=msg.get("IFLA_IFNAME"),
            up=bool(msg["flags"] & IFF_UP),
            mtu=msg.get("IFLA_MTU"),
            flags=msg["flags"],
        )

    async def set_link_up(self, ifname: str) -> None:
        """Bring the interface up (recorded: undo brings it down if it was down)."""
        before = await self.link(ifname)
        if before is None:
            raise NetworkSetupError(f"there is no interface {ifname}: check the interface name")
        await self._call("link", "set", index=before.index, state="up")
        if not before.up:
            self.ledger.record(LedgerEntry("link_up", ifname))

    async def set_link_down(self, ifname: str) -> None:
        """Take the interface down."""
        index = await self.link_index(ifname)
        await self._call("link", "set", index=index, state="down")
        self.ledger.forget(LedgerEntry("link_up", ifname))

    async def set_mtu(self, ifname: str, mtu: int) -> None:
        """Set the interface MTU (recorded: undo restores the first value seen)."""
        before = await self.link(ifname)
        if before is None:
            raise NetworkSetupError(f"there is no interface {ifname}: check the interface name")
        await self._call("link", "set", index=before.index, mtu=mtu)
        if not any(e.kind == "mtu" and e.ifname == ifname for e in self.ledger.entries):
            self.ledger.record(LedgerEntry("mtu", ifname, old_mtu=before.mtu))

    async def wait_for_link(self, ifname: str, timeout: float, *, up: bool = False) -> LinkInfo:
        """Wait until `ifname` exists (and is up when `up`); NetworkSetupError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            info = await self.link(ifname)
            if info is not None and (info.up or not up):
                return info
            if time.monotonic() >= deadline:
                state = "up" if up else "present"
                raise NetworkSetupError(
                    f"interface {ifname} was not {state} within {timeout:g} s: "
                    "check the PPP link (or raise the timeout)"
                )
            await asyncio.sleep(0.1)

    # -- addresses -------------------------------------------------------------------
    async def add_address(
        self,
        ifname: str,
        address: str | IPInterface,
        *,
        peer: str | IPAddress | None = None,
        nodad: bool = False,
        noprefixroute: bool = False,
        valid_lft: int | None = None,
        preferred_lft: int | None = None,
    ) -> bool:
        """Add `address` ("a/len"); False (and not recorded) when it was already there."""
        interface = ip_interface(address)
        index = await self.link_index(ifname)
        flags = (IFA_F_NODAD if nodad else 0) | (IFA_F_NOPREFIXROUTE if noprefixroute else 0)
        spec: dict[str, Any] = {
            "index": index,
            "address": str(interface.ip),
            "prefixlen": interface.network.prefixlen,
            "family": _family_number(interface.version),
        }
        if peer is not None:
            spec["local"] = str(interface.ip)
            spec["address"] = str(ip_address(peer))
        if flags:
            spec["flags"] = flags
        if valid_lft is not None or preferred_lft is not None:
            spec["valid_lft"] = _lifetime(valid_lft)
            spec["preferred_lft"] = _lifetime(
                preferred_lft if preferred_lft is not None else valid_lft
            )
        try:
            await self._call("addr", "add", **spec)
        except NetworkSetupError as exc:
            if isinstance(exc.__cause__, NetlinkError) and exc.__cause__.code == errno.EEXIST:
                return False
            raise
        self.ledger.record(
            LedgerEntry(
                "address",
                ifname,
                address=str(interface),
                peer=None if peer is None else str(ip_address(peer)),
            )
        )
        return True

    async def add_ipv4_peer(
        self, ifname: str, local: str | IPv4Address, peer: str | IPv4Address
    ) -> bool:
        """The PPP form `local peer <peer>/32` (what pppd installs from IPCP)."""
        return await self.add_address(ifname, f"{local}/32", peer=peer)

    async def add_ipv6_link_local(self, ifname: str, iid: bytes) -> bool:
        """fe80::<iid>/64 nodad, from the IPV6CP interface identifier (RFC 5072 §5)."""
        if len(iid) != 8:
            raise ValueError(f"an interface identifier is 8 bytes, got {len(iid)}")
        address = IPv6Address(b"\xfe\x80" + bytes(6) + bytes(iid))
        return await self.add_address(ifname, f"{address}/64", nodad=True)

    async def add_ipv6_global(
        self,
        ifname: str,
        address: str | IPv6Address,
        prefix_len: int = 64,
        *,
        valid_lft: int | None = None,
        preferred_lft: int | None = None,
    ) -> bool:
        """A SLAAC address <prefix>:<iid>/64 found in user space (nodad: PPP has no peers
        to collide with, and the TUN is NOARP anyway)."""
        return await self.add_address(
            ifname,
            f"{address}/{prefix_len}",
            nodad=True,
            valid_lft=valid_lft,
            preferred_lft=preferred_lft,
        )

    async def update_address_lifetimes(
        self,
        ifname: str,
        address: str | IPInterface,
        valid_lft: int | None,
        preferred_lft: int | None,
    ) -> None:
        """Change the lifetimes of an address larappp added (preferred 0 deprecates it)."""
        interface = ip_interface(address)
        index = await self.link_index(ifname)
        await self._call(
            "addr",
            "replace",
            index=index,
            address=str(interface.ip),
            prefixlen=interface.network.prefixlen,
            family=_family_number(interface.version),
            flags=IFA_F_NODAD if interface.version == 6 else 0,
            valid_lft=_lifetime(valid_lft),
            preferred_lft=_lifetime(preferred_lft),
        )

    async def del_address(
        self, ifname: str, address: str | IPInterface, *, peer: str | IPAddress | None = None
    ) -> None:
        """Remove an address (and its ledger entry); an absent address is not an error."""
        interface = ip_interface(address)
        entry = LedgerEntry(
            "address",
            ifname,
            address=str(interface),
            peer=None if peer is None else str(ip_address(peer)),
        )
        try:
            await self._revert(entry)
        except NetlinkError as exc:
            if exc.code not in _GONE:
                raise NetworkSetupError(f"cannot remove {entry.describe()}: {exc}") from exc
        self.ledger.forget(entry)

    async def addresses(self, ifname: str, family: Family | None = None) -> list[AddressInfo]:
        """The addresses on `ifname` (of one family when given)."""
        ipr = await self._api()
        index = await self.link_index(ifname)
        spec: dict[str, Any] = {"index": index}
        if family is not None:
            spec["family"] = _family_number(family)
        found = []
        async for msg in await ipr.addr("dump", **spec):
            local = msg.get("IFA_LOCAL")
            remote = msg.get("IFA_ADDRESS")
            own = local or remote
            peer = ip_address(remote) if local and remote and local != remote else None
            cacheinfo = msg.get("IFA_CACHEINFO")
            valid = preferred = None
            if cacheinfo is not None:
                valid = None if cacheinfo["ifa_valid"] == FOREVER else cacheinfo["ifa_valid"]
                preferred = (
                    None if cacheinfo["ifa_preferred"] == FOREVER else cacheinfo["ifa_preferred"]
                )
            found.append(
                AddressInfo(
                    ifname=ifname,
                    interface=ip_interface(f"{own}/{msg['prefixlen']}"),
                    peer=peer,
                    scope=msg["scope"],
                    flags=msg.get("IFA_FLAGS") or msg["flags"],
                    valid_lft=valid,
                    preferred_lft=preferred,
                )
            )
        return found

    async def wait_for_address(
        self,
        ifname: str,
        family: Family,
        timeout: float,
        *,
        scope: Literal["global", "link", "any"] = "global",
    ) -> AddressInfo:
        """Wait until `ifname` has a usable (not tentative) address of `family` and `scope`.

        For the pppd backend: IPv4 appears when IPCP is up, the global IPv6 address when
        the kernel finished SLAAC. Polls every 0.1 s; NetworkSetupError on timeout.
        """
        deadline = time.monotonic() + timeout
        wanted_scope = {"global": RT_SCOPE_UNIVERSE, "link": RT_SCOPE_LINK}.get(scope)
        while True:
            if await self.link(ifname) is not None:
                for info in await self.addresses(ifname, family):
                    if info.tentative or info.flags & IFA_F_DADFAILED:
                        continue
                    if wanted_scope is None or info.scope == wanted_scope:
                        return info
            if time.monotonic() >= deadline:
                raise NetworkSetupError(
                    f"{ifname} got no {scope} IPv{family} address within {timeout:g} s: "
                    "check that the network grants this PDP type (or raise the timeout)"
                )
            await asyncio.sleep(0.1)

    # -- routes ----------------------------------------------------------------------
    async def add_route(
        self,
        ifname: str,
        destination: str | IPNetwork,
        *,
        gateway: str | IPAddress | None = None,
        metric: int | None = None,
        mtu: int | None = None,
        table: int = RT_TABLE_MAIN,
    ) -> bool:
        """Add a route out of `ifname`; False (and not recorded) when it already existed."""
        network = ip_network(destination, strict=False)
        index = await self.link_index(ifname)
        spec: dict[str, Any] = {
            "oif": index,
            "dst": str(network.network_address),
            "dst_len": network.prefixlen,
            "family": _family_number(network.version),
            "table": table,
            "proto": RTPROT_STATIC,
        }
        if gateway is not None:
            spec["gateway"] = str(ip_address(gateway))
        else:
            spec["scope"] = RT_SCOPE_LINK if network.version == 4 else RT_SCOPE_UNIVERSE
        if metric is not None:
            spec["priority"] = metric
        if mtu is not None:
            spec["metrics"] = {"mtu": mtu}
        try:
            await self._call("route", "add", **spec)
        except NetworkSetupError as exc:
            if isinstance(exc.__cause__, NetlinkError) and exc.__cause__.code == errno.EEXIST:
                return False
            raise
        self.ledger.record(self._route_entry(ifname, network, gateway, metric, table))
        return True

    async def add_default_route(
        self,
        ifname: str,
        family: Family,
        *,
        gateway: str | IPAddress | None = None,
        metric: int | None = None,
        mtu: int | None = None,
    ) -> bool:
        """`default dev <ifname>` (IPv4 over PPP) or `default via fe80::... dev` (IPv6)."""
        destination = "0.0.0.0/0" if family == 4 else "::/0"
        return await self.add_route(ifname, destination, gateway=gateway, metric=metric, mtu=mtu)

    async def del_route(
        self,
        ifname: str,
        destination: str | IPNetwork,
        *,
        gateway: str | IPAddress | None = None,
        metric: int | None = None,
        table: int = RT_TABLE_MAIN,
    ) -> None:
        """Remove a route (and its ledger entry); an absent route is not an error."""
        network = ip_network(destination, strict=False)
        entry = self._route_entry(ifname, network, gateway, metric, table)
        try:
            await self._revert(entry)
        except NetlinkError as exc:
            if exc.code not in _GONE:
                raise NetworkSetupError(f"cannot remove {entry.describe()}: {exc}") from exc
        self.ledger.forget(entry)

    async def routes(
        self, family: Family, ifname: str | None = None, table: int = RT_TABLE_MAIN
    ) -> list[RouteInfo]:
        """Routes of one family in `table`, optionally only those out of `ifname`."""
        ipr = await self._api()
        names = {}
        async for msg in await ipr.link("dump"):
            names[msg["index"]] = msg.get("IFLA_IFNAME")
        index = None if ifname is None else await self.link_index(ifname)
        found = []
        async for msg in await ipr.route("dump", family=_family_number(family)):
            route_table = msg.get("RTA_TABLE") or msg["table"]
            oif = msg.get("RTA_OIF")
            if route_table != table or (index is not None and oif != index):
                continue
            if msg["type"] != 1:  # RTN_UNICAST only: skip local/multicast/broadcast entries
                continue
            dst = msg.get("RTA_DST") or ("0.0.0.0" if family == 4 else "::")
            gateway = msg.get("RTA_GATEWAY")
            metrics = msg.get("RTA_METRICS")
            mtu = metrics.get_attr("RTAX_MTU") if metrics is not None else None
            found.append(
                RouteInfo(
                    destination=ip_network(f"{dst}/{msg['dst_len']}", strict=False),
                    gateway=ip_address(gateway) if gateway else None,
                    ifname=names.get(oif),
                    metric=msg.get("RTA_PRIORITY"),
                    mtu=mtu,
                    protocol=msg["proto"],
                    table=route_table,
                )
            )
        return found

    # -- internals -------------------------------------------------------------------
    @staticmethod
    def _route_entry(
        ifname: str,
        network: IPNetwork,
        gateway: str | IPAddress | None,
        metric: int | None,
        table: int,
    ) -> LedgerEntry:
        return LedgerEntry(
            "route",
            ifname,
            destination=str(network),
            gateway=None if gateway is None else str(ip_address(gateway)),
            metric=metric,
            table=table,
        )

    async def _call(self, method: str, command: str, **spec: Any) -> Any:
        ipr = await self._api()
        try:
            return await getattr(ipr, method)(command, **spec)
        except NetlinkError as exc:
            what = " ".join(f"{k}={v}" for k, v in spec.items() if k not in ("index", "oif"))
            raise NetworkSetupError(f"netlink {method} {command} {what} failed: {exc}") from exc

    async def _revert(self, entry: LedgerEntry) -> None:
        """Undo one entry; raises NetlinkError as the kernel answered."""
        ipr = await self._api()
        indexes = await ipr.link_lookup(ifname=entry.ifname)
        if not indexes:
            raise NetlinkError(errno.ENODEV, f"no interface {entry.ifname}")
        index = indexes[0]
        if entry.kind == "address":
            assert entry.address is not None
            interface = ip_interface(entry.address)
            spec: dict[str, Any] = {
                "index": index,
                "address": str(interface.ip),
                "prefixlen": interface.network.prefixlen,
                "family": _family_number(interface.version),
            }
            if entry.peer is not None:
                spec["local"] = str(interface.ip)
                spec["address"] = entry.peer
            await ipr.addr("del", **spec)
            if interface.version == 6 and not interface.ip.is_link_local and interface.network.prefixlen < 128:
                # The kernel keeps the on-link prefix route of an address with lifetimes until
                # that route's own expiry: gone with the address, or it routes into a stale prefix.
                try:
                    await ipr.route(
                        "del", oif=index, dst=str(interface.network.network_address),
                        dst_len=interface.network.prefixlen, family=socket.AF_INET6, table=RT_TABLE_MAIN,
                    )
                except NetlinkError as exc:
                    if exc.code not in _GONE:
                        raise
        elif entry.kind == "route":
            assert entry.destination is not None
            network = ip_network(entry.destination)
            spec = {
                "oif": index,
                "dst": str(network.network_address),
                "dst_len": network.prefixlen,
                "family": _family_number(network.version),
                "table": entry.table,
            }
            if entry.gateway is not None:
                spec["gateway"] = entry.gateway
            if entry.metric is not None:
                spec["priority"] = entry.metric
            await ipr.route("del", **spec)
        elif entry.kind == "link_up":
            await ipr.link("set", index=index, state="down")
        elif entry.kind == "mtu" and entry.old_mtu is not None:
            await ipr.link("set", index=index, mtu=entry.old_mtu)
