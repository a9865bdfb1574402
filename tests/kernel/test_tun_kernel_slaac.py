"""Kernel SLAAC versus user-space SLAAC on a TUN, in a throw-away namespace (needs root).

Answers the engine author's question "who does SLAAC on the PPP TUN": the kernel does
it correctly from an RA written into the TUN (address from the IPV6CP IID, default
route with the RA MTU) but ignores RDNSS; user space (SlaacClient + Netlink) gives the
same address and route and is fully undone by the ledger.
"""

from __future__ import annotations

import asyncio
import os
import random
from ipaddress import IPv6Address, IPv6Network
from typing import Any, TypeVar

import pytest

from larappp.proto import ip
from larappp.proto.ipv6 import ndp
from larappp.proto.ipv6.slaac import (
    AddressConfigured,
    AdvertisedLifetimes,
    DefaultRouterLearned,
    DnsServersLearned,
    RouterAdvertiser,
    SlaacClient,
)
from larappp.transport.netlink import Netlink
from larappp.transport.sysctl import Sysctl
from larappp.transport.tun import Tun
from tests.nshelp import in_netns, ip_json

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces and TUN"),
    pytest.mark.skipif(not os.path.exists("/dev/net/tun"), reason="no /dev/net/tun"),
]

T = TypeVar("T")
HOST_IID = bytes.fromhex("90a15cfc3cc97301")  # app note §4.1.2 example
MODULE_IID = bytes.fromhex("2a0bad400001102a")
PREFIX = IPv6Network("2a0b:ad40:1:102a::/64")
HOST_GLOBAL = IPv6Address("2a0b:ad40:1:102a:90a1:5cfc:3cc9:7301")
HOST_LL = ndp.link_local_from_iid(HOST_IID)
ROUTER_LL = ndp.link_local_from_iid(MODULE_IID)
DNS = IPv6Address("2001:db8:53::1")
RA_MTU = 1380


def make_router() -> RouterAdvertiser:
    return RouterAdvertiser(
        PREFIX,
        MODULE_IID,
        mtu=RA_MTU,
        dns=(DNS,),
        lifetimes=AdvertisedLifetimes(router=1800, valid=86400, preferred=14400, dns=600),
        rng=random.Random(0),
        response_delay_max=0.0,
        min_delay_between_ras=0.0,
        initial_advertisements=0,
        max_interval=1800.0,
    )


async def ping_through(tun: Tun) -> None:
    """An echo round trip through the kernel: everything written before it was processed."""
    request = ip.build_icmpv6(ROUTER_LL, HOST_LL, 128, 0, b"\x00\x01\x00\x01sync", hop_limit=64)
    # Just after link-up the kernel may not have the local route of fe80::<iid> yet and
    # drops the first echo (Ip6InAddrErrors): ask again, a few times.
    loop = asyncio.get_running_loop()
    for _attempt in range(10):
        await tun.write(request)
        deadline = loop.time() + 1.0
        while (remaining := deadline - loop.time()) > 0:
            try:
                message = ip.parse_icmpv6(await asyncio.wait_for(tun.read(), remaining))
            except TimeoutError:
                break
            if message is not None and message.type == 129 and message.body.endswith(b"sync"):
                return
    raise AssertionError("the kernel answered none of 10 echo requests through the TUN")


def test_kernel_slaac_from_an_ra_written_into_the_tun(netns: str) -> None:
    async def scenario(tun: Tun) -> dict[str, Any]:
        sysctl = Sysctl()
        sysctl.prepare_ipv6_link(tun.name, kernel_slaac=True)
        sysctl.set_ipv6_conf(tun.name, "router_solicitation_delay", 0)
        # the first RS right after link-up is dropped about every other time (see
        # larappp/transport/tun.py); a 1 s retry keeps this test short
        sysctl.set_ipv6_conf(tun.name, "router_solicitation_interval", 1)
        async with Netlink() as nl:
            await nl.add_ipv6_link_local(tun.name, HOST_IID)
            await nl.set_link_up(tun.name)
            # the kernel solicits by itself, from our link-local, without an SLLA option
            solicitation = None
            while solicitation is None:
                packet = await asyncio.wait_for(tun.read(), 10)
                solicitation = ndp.parse_router_solicitation(packet)
            router = make_router()
            router.receive_packet(packet, 0.0)
            router.handle_timer(0.0)
            (advertisement,) = router.packets_to_send()
            await tun.write(advertisement)
            address = await nl.wait_for_address(tun.name, 6, timeout=5)
            # what user space would have concluded from the same RA
            client = SlaacClient(HOST_IID, 0.0, random.Random(0))
            client.receive_packet(advertisement, 0.0)
            events = []
            while (event := client.next_event()) is not None:
                events.append(event)
            return {
                "solicitation": solicitation,
                "address": address,
                "link_local": [
                    a.interface.ip for a in await nl.addresses(tun.name, 6) if a.scope == 253
                ],
                "routes": await nl.routes(6, tun.name),
                "events": events,
                "ip_addr": ip_json(netns, "-6", "addr", "show", "dev", tun.name),
                "ip_route": ip_json(netns, "-6", "route", "show", "default"),
            }

    def run() -> dict[str, Any]:
        with Tun.open("ppp0", mtu=1500) as tun:
            return asyncio.run(scenario(tun))

    seen = in_netns(netns, run)
    assert seen["solicitation"].source == HOST_LL
    assert seen["solicitation"].source_link_layer is None
    assert seen["address"].interface.ip == HOST_GLOBAL  # <prefix>:<host IID>/64
    assert seen["address"].interface.network.prefixlen == 64
    assert seen["link_local"] == [HOST_LL]  # addr_gen_mode=1: no kernel-made link-local
    (default,) = [r for r in seen["routes"] if r.destination.prefixlen == 0]
    assert default.gateway == ROUTER_LL and default.mtu == RA_MTU
    # the same facts through iproute2's eyes
    (link,) = seen["ip_addr"]
    locals_ = {(a["local"], a["prefixlen"]) for a in link["addr_info"]}
    assert (str(HOST_GLOBAL), 64) in locals_
    (route,) = seen["ip_route"]
    assert route["gateway"] == str(ROUTER_LL) and route["protocol"] == "ra"
    assert any(m.get("mtu") == RA_MTU for m in route.get("metrics", []))
    # user space reaches the same address and router, and also sees the RDNSS option
    events = seen["events"]
    assert AddressConfigured(HOST_GLOBAL, 64, 86400.0, 14400.0) in events
    assert DefaultRouterLearned(ROUTER_LL, 1800, RA_MTU) in events
    assert DnsServersLearned((DNS,), 600) in events


def test_user_space_slaac_installs_and_undo_removes_everything(netns: str) -> None:
    async def scenario(tun: Tun) -> dict[str, Any]:
        sysctl = Sysctl()
        sysctl.prepare_ipv6_link(tun.name, kernel_slaac=False)
        async with Netlink() as nl:
            await nl.add_ipv6_link_local(tun.name, HOST_IID)
            await nl.set_link_up(tun.name)
            client = SlaacClient(HOST_IID, 0.0, random.Random(0), rs_delay_max=0.0)
            router = make_router()
            client.start(0.0)
            client.handle_timer(0.0)
            for solicitation in client.packets_to_send():  # goes over PPP, not into the TUN
                router.receive_packet(solicitation, 0.0)
            router.handle_timer(0.0)
            for advertisement in router.packets_to_send():
                await tun.write(advertisement)  # accept_ra=0: the kernel must ignore it
                client.receive_packet(advertisement, 0.0)
            await ping_through(tun)
            kernel_made = [a for a in await nl.addresses(tun.name, 6) if a.scope == 0]
            while (event := client.next_event()) is not None:
                if isinstance(event, AddressConfigured):
                    await nl.add_ipv6_global(tun.name, event.address, event.prefix_len)
                elif isinstance(event, DefaultRouterLearned):
                    await nl.add_default_route(
                        tun.name, 6, gateway=event.router_ll, metric=1024, mtu=event.mtu
                    )
            installed = {
                "addr": ip_json(netns, "-6", "addr", "show", "dev", tun.name),
                "route": ip_json(netns, "-6", "route", "show", "default"),
            }
            failures = await nl.ledger.undo()
            left = {
                "addr": ip_json(netns, "-6", "addr", "show", "dev", tun.name),
                "route": ip_json(netns, "-6", "route", "show"),
            }
        restored = sysctl.get_ipv6_conf(tun.name, "accept_ra")
        sysctl_failures = sysctl.undo()
        return {
            "kernel_made": kernel_made,
            "installed": installed,
            "failures": failures + sysctl_failures,
            "left": left,
            "accept_ra_during": restored,
            "accept_ra_after": sysctl.get_ipv6_conf(tun.name, "accept_ra"),
            "ledger": list(nl.ledger.entries),
        }

    def run() -> dict[str, Any]:
        with Tun.open("ppp1", mtu=1500) as tun:
            return asyncio.run(scenario(tun))

    seen = in_netns(netns, run)
    assert seen["kernel_made"] == []  # accept_ra=0: the kernel left the RA to us
    (link,) = seen["installed"]["addr"]
    assert {(a["local"], a["prefixlen"]) for a in link["addr_info"]} == {
        (str(HOST_GLOBAL), 64),
        (str(HOST_LL), 64),
    }
    (route,) = seen["installed"]["route"]
    assert route["gateway"] == str(ROUTER_LL) and route["protocol"] == "static"
    assert route["metric"] == 1024
    assert any(m.get("mtu") == RA_MTU for m in route.get("metrics", []))
    assert seen["failures"] == [] and seen["ledger"] == []
    # link-local and global gone (iproute2 then omits the link from a -6 listing)
    assert all(link["addr_info"] == [] for link in seen["left"]["addr"])
    assert seen["left"]["route"] == []
    assert seen["accept_ra_during"] == "0" and seen["accept_ra_after"] == "1"


def test_kernel_installs_from_an_unsolicited_ra_when_it_does_not_solicit(netns: str) -> None:
    """The advised kernel mode: router_solicitations=0 (SlaacClient solicits over PPP)."""

    async def scenario(tun: Tun) -> tuple[list[Any], list[bytes]]:
        sysctl = Sysctl()
        sysctl.prepare_ipv6_link(tun.name, kernel_slaac=True)
        sysctl.set_ipv6_conf(tun.name, "router_solicitations", 0)
        async with Netlink() as nl:
            await nl.add_ipv6_link_local(tun.name, HOST_IID)
            await nl.set_link_up(tun.name)
            router = make_router()
            router.start(0.0)
            router.handle_timer(0.0)
            (advertisement,) = router.packets_to_send()
            await tun.write(advertisement)
            address = await nl.wait_for_address(tun.name, 6, timeout=5)
            routes = await nl.routes(6, tun.name)
            seen = []
            while (packet := tun.read_packet()) is not None:
                seen.append(packet)
            return [address, routes], seen

    def run() -> tuple[list[Any], list[bytes]]:
        with Tun.open("ppp2") as tun:
            return asyncio.run(scenario(tun))

    (address, routes), sent = in_netns(netns, run)
    assert address.interface.ip == HOST_GLOBAL
    assert any(r.gateway == ROUTER_LL and r.mtu == RA_MTU for r in routes)
    assert not [p for p in sent if ndp.parse_router_solicitation(p) is not None]
