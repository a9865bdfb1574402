"""What pppd brought up, seen through netlink, and the host configured for it.

pppd makes the interface when it has opened its tty (larappp then paces its uplink with
the kernel's tc, `HostInterface.pace_uplink`), adds the IPCP address and the
IPV6CP link-local when those open; its ip-up hook reports IPCP's DNS servers. Routes and
DNS are larappp's (`HostInterface`; pppd gets `nodefaultroute`), and SLAAC runs in user
space (`SlaacClient`, accept_ra=0) with its RS and RA over a raw ICMPv6 socket on the
ppp interface: the same RS retries, RA timeout, RDNSS, lifetimes and undo as the
built-in engine.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address

from larappp.engine.base import no_router_advertisement
from larappp.engine.options import EngineOptions
from larappp.engine.pppd.options import IpcpReport, PppdFolder
from larappp.hostnet import HostInterface
from larappp.proto.ipv6 import slaac
from larappp.transport.ndsocket import NdpSocket

__all__ = ["InterfaceObserver"]

log = logging.getLogger(__name__)

#: how long after the IPCP address appears the ip-up report (DNS) may take
IPCP_REPORT_WAIT_S = 5.0
#: netlink waits that only pppd's exit (or larappp's stop) ends
FOREVER_S = 24 * 3600.0


class InterfaceObserver:
    """Watches pppd's interface and applies addresses, routes, DNS and SLAAC to the host."""

    def __init__(
        self,
        host: HostInterface,
        options: EngineOptions,
        folder: PppdFolder,
        *,
        clock: Callable[[], float],
        note: Callable[[str], None],
        family_up: Callable[[int], None],
    ) -> None:
        self.host = host
        self.options = options
        self.folder = folder
        self._clock = clock
        self._note = note
        self._family_up = family_up
        self.ndp: NdpSocket | None = None
        self.slaac: slaac.SlaacClient | None = None

    async def run(self) -> None:
        """Until cancelled; raises LarapppError or OSError when the host cannot be configured."""
        await self.host.netlink.wait_for_link(self.options.ifname, timeout=FOREVER_S)
        # pppd made the interface: paced before any IP flows (app note §4), as the built-in
        # engine paces its TUN; HostInterface.close removes exactly that qdisc
        await self.host.pace_uplink(self.options.uplink_kbit, self.options.mru)
        await self.host.prepare(ipv6=6 in self.options.families)
        watchers = []
        if 4 in self.options.families:
            watchers.append(self._ipv4())
        if 6 in self.options.families:
            watchers.append(self._ipv6())
        await asyncio.gather(*watchers)

    def close(self) -> None:
        if self.ndp is not None:
            self.ndp.close()
            self.ndp = None

    async def _ipv4(self) -> None:
        ifname = self.options.ifname
        info = await self.host.netlink.wait_for_address(ifname, 4, timeout=FOREVER_S)
        report = await self._ipcp_report(IPCP_REPORT_WAIT_S)
        local = info.interface.ip
        peer = info.peer
        assert isinstance(local, IPv4Address)
        dns = report.dns if report is not None else ()
        if report is None:
            log.warning("%s: pppd's ip-up hook reported nothing within %g s: no IPv4 DNS servers", ifname, IPCP_REPORT_WAIT_S)
        await self.host.apply_ipv4(local, peer if isinstance(peer, IPv4Address) else None, dns)
        link = await self.host.netlink.link(ifname)
        if link is not None:
            self.host.state.mtu = link.mtu
        self._note(f"{ifname}: IPv4 {local} peer {peer or '-'} DNS {', '.join(map(str, dns)) or '-'}")
        self._family_up(4)

    async def _ipcp_report(self, timeout: float) -> IpcpReport | None:
        deadline = time.monotonic() + timeout
        while (report := self.folder.ipcp_report()) is None:
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(0.05)
        return report

    async def _ipv6(self) -> None:
        ifname = self.options.ifname
        # pppd adds fe80::<our IPV6CP identifier> when IPV6CP is up.
        link_local = await self.host.netlink.wait_for_address(ifname, 6, timeout=FOREVER_S, scope="link")
        address = link_local.interface.ip
        assert isinstance(address, IPv6Address)
        iid = address.packed[8:]
        self.host.state.ipv6_link_local = str(address)
        self.ndp = ndp = NdpSocket.open(ifname)
        now = self._clock()
        # Only the network sends RAs on a PPP link: its lifetimes hold, even short ones.
        client = slaac.SlaacClient(
            iid, now, rs_interval=self.options.rs_interval, max_mtu=self.options.mru,
            two_hour_rule=False,
        )
        self.slaac = client
        client.start(now)
        receiving: asyncio.Task[bytes] | None = None
        try:
            while True:
                await self._drain_slaac(client, ndp)
                if receiving is None:
                    receiving = asyncio.ensure_future(ndp.receive())
                timer = client.get_timer()
                timeout = None if timer is None else max(0.0, timer - self._clock())
                done, _ = await asyncio.wait({receiving}, timeout=timeout)
                if receiving in done:
                    packet = receiving.result()
                    receiving = None
                    client.receive_packet(packet, self._clock())
                client.handle_timer(self._clock())
        finally:
            if receiving is not None:
                receiving.cancel()

    async def _drain_slaac(self, client: slaac.SlaacClient, ndp: NdpSocket) -> None:
        for packet in client.packets_to_send():
            ndp.send(packet)
        while (event := client.next_event()) is not None:
            if isinstance(event, slaac.RaTimedOut):
                raise no_router_advertisement(self.options.ifname, event.reason)
            line = await self.host.apply_slaac(event, self._clock())
            if line:
                self._note(line)
            if isinstance(event, slaac.AddressConfigured):
                self._family_up(6)
