"""One NCP of the built-in engine's session renegotiated by the module while LCP stays up.

IPV6CP renegotiated: the host's old link-local and SLAAC address go at once and the new
identifier's come; IPCP renegotiated: the IPv4 address and default route are taken away
and set again, never doubled. The rig checks on exit that stop() leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from tests.e2e.enginerig import (
    HOST_V4,
    MODULE_V4,
    NEEDS_ROOT_AND_TUN,
    EngineRig,
    addresses,
    check_udp_both_ways,
    default_routes,
    host_ipv6,
    run_scenario,
)

pytestmark = NEEDS_ROOT_AND_TUN


async def until(what: str, check: Callable[[], bool], limit: float = 5.0) -> float:
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < limit, f"{what} did not happen within {limit} s"
        await asyncio.sleep(0.02)
    return time.monotonic() - start


def test_ipv6cp_renegotiated_replaces_link_local_and_slaac_address(netns: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with EngineRig(netns, tmp_path) as rig:
            engine, module = rig.engine, rig.module
            await engine.wait_up(10)
            old_global, old_link_local = host_ipv6(engine)
            module.link.renegotiate(6, time.monotonic())
            await until("the new identifier", lambda: host_ipv6(engine)[1] != old_link_local)
            new_global, new_link_local = host_ipv6(engine)
            wanted = {
                (str(HOST_V4), 32, str(MODULE_V4)),
                (str(new_link_local), 64, None),
                (str(new_global), 64, None),
            }
            took = await until("the new addresses alone", lambda: addresses(netns) == wanted)
            # the address is on the host a moment before its route and DNS, then IPv6 is up
            await until("IPv6 up again", lambda: 6 in engine.families_up)
            assert not engine.terminated.is_set()
            assert (str(old_global), 64, None) not in addresses(netns)
            assert len(default_routes(netns, 6)) == 1
            assert any("IPv6 withdrawn" in note for note in rig.notes)
            await check_udp_both_ways(rig, 6, b"after IPV6CP")
            await check_udp_both_ways(rig, 4, b"IPv4 untouched")
            print(f"IPV6CP renegotiated: new addresses alone on the host after {took * 1000:.0f} ms")

    run_scenario(netns, scenario)


def test_ipcp_renegotiated_sets_ipv4_again_once(netns: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with EngineRig(netns, tmp_path) as rig:
            engine, module = rig.engine, rig.module
            await engine.wait_up(10)
            before = addresses(netns)
            withdrawn = len([n for n in rig.notes if "IPv4 withdrawn" in n])
            module.link.renegotiate(4, time.monotonic())
            await until("IPv4 withdrawn", lambda: any("IPv4 withdrawn" in n for n in rig.notes[withdrawn:]))
            await until("IPv4 back", lambda: 4 in engine.families_up and addresses(netns) == before)
            assert len(default_routes(netns, 4)) == 1
            await check_udp_both_ways(rig, 4, b"after IPCP")

    run_scenario(netns, scenario)
