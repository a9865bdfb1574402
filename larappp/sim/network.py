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
import contextlib
import fcntl
import logging
import os
from collections.abc import Callable, Sequence
from ipaddress import IPv6Network
from typing import Any, Self, TypeVar

from larappp.errors import ConfigError, NetworkSetupError
from larappp.sim.addressing import DEFAULT_PLAN, DEFAULT_ROUTER, AddressPlan, Grant, RouterSettings
from larappp.sim.dnsserver import DNS_PORT, DnsServer
from larappp.sim.pdn import IPV4_HEADER, IPV6_HEADER, SendDownlink, SessionPort
from larappp.transport.netlink import Netlink
from larappp.transport.netns import call_in_netns, create_netns, delete_netns
from larappp.transport.sysctl import Sysctl
from larappp.transport.tun import Tun

__all__ = ["DEFAULT_NETNS", "OWNER_DIR", "TUN_NAME", "NetnsOwner", "SimNetwork", "claim_netns"]

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_NETNS = "larappp-inet"
#: Where the simulators that made a namespace hold its lock file (see claim_netns).
OWNER_DIR = "/run/larappp-sim/netns"
TUN_NAME = "pdn0"
#: asyncio may run a timer a little early; the advertisers' deadlines need "at or after".
TIMER_SLACK = 0.001
#: TUN packets handled per wake-up before other callbacks get their turn.
READ_BURST = 256


class NetnsOwner:
    """A lock file (`OWNER_DIR/<name>.lock`, flock held) saying a live simulator made
    namespace <name>; a namespace whose lock file is there but not held was left by a
    killed simulator."""

    def __init__(self, name: str, fd: int) -> None:
        self.path = os.path.join(OWNER_DIR, f"{name}.lock")
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        os.close(self._fd)
        self._fd = None


def claim_netns(name: str) -> NetnsOwner:
    """Take ownership of namespace `name` before creating it; delete it first when a killed
    simulator left it. A namespace a live simulator (or anyone else) owns stays untouched:
    creating it then fails with the usual error."""
    os.makedirs(OWNER_DIR, exist_ok=True)
    path = os.path.join(OWNER_DIR, f"{name}.lock")
    left_behind = os.path.exists(path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise NetworkSetupError(
            f"network namespace {name} belongs to a running simulator: stop it or pick another name"
        ) from None
    if left_behind:
        log.info("simulated network: removing namespace %s left by a killed simulator", name)
        delete_netns(name)
    return NetnsOwner(name, fd)


class SimNetwork:
    """The simulated internet behind the module: a namespace with a TUN, hosts, DNS and PDP routing."""

    def __init__(
        self,
        netns: str | None = DEFAULT_NETNS,
        *,
        plan: AddressPlan = DEFAULT_PLAN,
        router: RouterSettings = DEFAULT_ROUTER,
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
        self._owner: NetnsOwner | None = None
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
        plan: AddressPlan = DEFAULT_PLAN,
        router: RouterSettings = DEFAULT_ROUTER,
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
            self._owner = await asyncio.to_thread(claim_netns, self.netns)
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
            if self._owner is not None and not self._created:
                self._owner.release()
                self._owner = None
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

    def readvertise(self, cid: int, *, prefix: IPv6Network | None = None, lifetime: int | None = None) -> None:
        """Send an RA on context `cid` now, renumbering it into `prefix` (a /64 of the IPv6
        pool) and/or with `lifetime`: see SessionPort.readvertise."""
        port = self._sessions.get(cid)
        if port is None or port.ipv6_prefix is None:
            raise NetworkSetupError(f"no IPv6 session is attached on context {cid}")
        if prefix is not None:
            if prefix.prefixlen != 64 or not prefix.subnet_of(self.plan.ipv6_pool):
                raise NetworkSetupError(
                    f"prefix {prefix} cannot be routed here: give a /64 inside {self.plan.ipv6_pool}"
                )
            owner = self._by_prefix.get(prefix.network_address.packed[:8])
            if owner is not None and owner is not port:
                raise NetworkSetupError(f"prefix {prefix} belongs to context {owner.cid}: pick another")
            self._by_prefix.pop(port.ipv6_prefix.network_address.packed[:8], None)
            self._by_prefix[prefix.network_address.packed[:8]] = port
        port.readvertise(prefix=prefix, lifetime=lifetime)

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
        if version == 4 and len(packet) >= IPV4_HEADER:
            port = self._by_ipv4.get(packet[16:20])
        elif version == 6 and len(packet) >= IPV6_HEADER:
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
