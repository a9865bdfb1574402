"""The built-in engine and IPv6: an IPv4-only module, Router Advertisements missing or odd."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path
from typing import Any

import pytest

from larappp.errors import PPPError
from larappp.proto import ip
from larappp.proto.ipv6.ndp import (
    PrefixInformation,
    RecursiveDnsServers,
    RouterAdvertisement,
    build_router_advertisement,
)
from larappp.proto.ipv6.slaac import RTR_SOLICITATION_INTERVAL
from larappp.proto.ppp import frame
from tests.e2e.enginerig import (
    DNS_V4,
    DNS_V6,
    HOST_V4,
    IFNAME,
    MODULE_CONFIG,
    MODULE_V4,
    NEEDS_ROOT_AND_TUN,
    PREFIX,
    ROUTER_LL,
    EngineRig,
    addresses,
    check_udp_both_ways,
    default_routes,
    host_ipv6,
    run_scenario,
)

pytestmark = NEEDS_ROOT_AND_TUN


# -- an IPv4-only module, an RA that never comes ---------------------------------------------

IPV4_ONLY_MODULE = replace(MODULE_CONFIG, ipv6=False, ipv6_interface_id=None)


def test_ipv6cp_rejected_by_an_ipv4_only_module_comes_up_with_ipv4(
    netns: str, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with EngineRig(netns, tmp_path, IPV4_ONLY_MODULE) as rig:
            engine, module = rig.engine, rig.module
            await engine.wait_up(10)
            assert engine.families_up == {4} and engine.families_expected == {4}
            assert module.link.stats.protocol_rejects_sent == 1
            assert module.sent(frame.IPV6CP, 1) == 1  # asked once, then never again
            assert any("the peer rejected protocol IPV6CP" in note for note in rig.notes)
            assert engine.slaac is None
            assert addresses(netns) == {(str(HOST_V4), 32, str(MODULE_V4))}  # no fe80::
            assert default_routes(netns, 6) == []
            fragment = (tmp_path / "resolv.conf.d" / f"{IFNAME}.conf").read_text()
            assert f"nameserver {DNS_V4}" in fragment and "2001:" not in fragment
            await check_udp_both_ways(rig, 4, b"v4 only")
            assert not engine.terminated.is_set()

    run_scenario(netns, scenario)


def test_ipv6_only_session_against_an_ipv4_only_module_fails_clearly(
    netns: str, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with EngineRig(netns, tmp_path, IPV4_ONLY_MODULE, families=(6,)) as rig:
            engine, module = rig.engine, rig.module
            started = time.monotonic()
            with pytest.raises(PPPError) as caught:
                await engine.wait_up(10)
            assert time.monotonic() - started < 3
            assert str(caught.value) == (
                f"PPP on {IFNAME}: the network offers none of the configured IP families "
                "(the peer Protocol-Rejected IPV6CP): check the APN and the PDP type"
            )
            assert engine.terminated.is_set() and engine.reason == str(caught.value)
            assert module.link.stats.protocol_rejects_sent == 1
            # the host's link has no network protocol left and ends itself
            await asyncio.wait_for(module.terminated.wait(), 3)
            assert module.sent(frame.LCP, 5) >= 1  # Terminate-Request from the host
            assert addresses(netns) == set()

    run_scenario(netns, scenario)


def test_router_advertisement_that_never_comes(netns: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with EngineRig(netns, tmp_path, answer_rs=False, rs_interval=0.2) as rig:
            engine, module = rig.engine, rig.module
            started = time.monotonic()
            with pytest.raises(PPPError) as caught:
                await engine.wait_up(10)
            # the first RS at once (one host on a PPP link), 3 RS 0.2 s apart, 0.2 s more for the RA
            assert time.monotonic() - started < 2
            assert str(caught.value) == (
                f"no Router Advertisement on {IFNAME} (no Router Advertisement after 3 Router "
                "Solicitations): the network gave no IPv6 prefix; check the PDP type, or use "
                'pdp_type = "IP"'
            )
            assert engine.reason == str(caught.value)
            assert module.solicitations == 3
            assert engine.families_up == {4}
            ipv6cp = engine.link.ipv6cp
            assert ipv6cp is not None
            link_local = IPv6Address(b"\xfe\x80" + bytes(6) + ipv6cp.local_iid)
            assert addresses(netns) == {
                (str(HOST_V4), 32, str(MODULE_V4)),
                (str(link_local), 64, None),
            }

    run_scenario(netns, scenario)



def test_a_lost_router_solicitation_is_repeated_after_the_rfc_4861_interval(netns: str, tmp_path: Path) -> None:
    """The production RS interval (RFC 4861 §10, 4 s), not a test's shorter one."""

    async def scenario() -> None:
        async with EngineRig(netns, tmp_path, answer_rs=False, rs_interval=RTR_SOLICITATION_INTERVAL) as rig:
            engine, module = rig.engine, rig.module
            while module.solicitations == 0:
                await asyncio.sleep(0.01)
            first_rs = time.monotonic()
            module.answer_rs = True  # the first RS was lost; the router answers the next one
            await engine.wait_up(10)
            waited = time.monotonic() - first_rs
            assert module.solicitations == 2
            assert RTR_SOLICITATION_INTERVAL - 0.1 <= waited < RTR_SOLICITATION_INTERVAL + 1.0, waited
            assert engine.families_up == {4, 6}

    run_scenario(netns, scenario)


def ra_packet(**fields: Any) -> bytes:
    """A Router Advertisement from the module's link-local address."""
    advertisement = RouterAdvertisement(source=ROUTER_LL, **fields)
    return build_router_advertisement(advertisement)


def test_odd_router_advertisements_keep_the_session(netns: str, tmp_path: Path) -> None:
    """RAs that are malformed, out of range or short-lived: ignored or followed, never fatal."""
    second = IPv6Network("2001:db8:64:2::/64")

    async def scenario() -> None:
        async with EngineRig(netns, tmp_path) as rig:
            engine, module = rig.engine, rig.module
            await engine.wait_up(10)
            global_v6, link_local = host_ipv6(engine)
            iid = global_v6.packed[8:]
            prefix = PrefixInformation(PREFIX)
            header_only = ra_packet()[:44]  # cut inside the RA header: checksum and length off
            for packet in (
                header_only,
                ra_packet(mtu=500, prefixes=(prefix,)),  # below the IPv6 minimum
                ra_packet(mtu=9000, prefixes=(prefix,)),  # above the PPP link's MTU
                ra_packet(prefixes=(PrefixInformation(IPv6Network("2001:db8:99::/48")),)),
                ra_packet(prefixes=(PrefixInformation(IPv6Network("2001:db8:98::/64"), True,
                                                      True, 100, 200),)),  # preferred > valid
                ip.build_icmpv6(  # hop limit 64: not from the link (RFC 4861 §6.1.2)
                    ROUTER_LL, "ff02::1", 134, 0, ra_packet(prefixes=(prefix,))[44:], hop_limit=64
                ),
                ra_packet(dns=(RecursiveDnsServers((IPv6Address("2001:db8:53::99"),), 0),)),
                ra_packet(mtu=1300),  # a legitimate change
                ra_packet(prefixes=(PrefixInformation(second, True, True, 1, 1),)),  # short-lived
            ):
                module.send_packet(6, packet)
            second_address = IPv6Address(second.network_address.packed[:8] + iid)
            # the short-lived prefix gives an address that goes away on its own
            deadline = time.monotonic() + 6
            seen = False
            while time.monotonic() < deadline:
                present = [entry[0] for entry in addresses(netns)]
                seen = seen or str(second_address) in present
                listed = engine.status()["ipv6_global"]
                assert isinstance(listed, list)
                if seen and str(second_address) not in present + listed:
                    break  # the kernel and SLAAC both let it expire
                await asyncio.sleep(0.1)
            assert seen, f"the address of the second prefix never appeared: {engine.reason}"
            assert addresses(netns) == {
                (str(HOST_V4), 32, str(MODULE_V4)),
                (str(link_local), 64, None),
                (str(global_v6), 64, None),
            }
            ipv6_mtu = Path(f"/proc/sys/net/ipv6/conf/{IFNAME}/mtu").read_text()
            assert int(ipv6_mtu) == 1300
            fragment = (tmp_path / "resolv.conf.d" / f"{IFNAME}.conf").read_text()
            assert f"nameserver {DNS_V6}" in fragment and "2001:db8:53::99" not in fragment
            assert not engine.terminated.is_set() and engine.families_up == {4, 6}
            assert engine.status()["ipv6_global"] == [str(global_v6)]
            await check_udp_both_ways(rig, 6, b"after odd RAs")

    run_scenario(netns, scenario)
