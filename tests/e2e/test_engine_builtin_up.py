"""The built-in engine up, used and ended: addresses, routes, DNS, traffic, terminate, port loss."""

from __future__ import annotations

import asyncio
import time
from ipaddress import IPv6Address
from pathlib import Path

import pytest

from larappp.engine.ppp_builtin import BuiltinPppEngine
from larappp.errors import NetworkSetupError, PPPError
from larappp.proto.ppp import events as ev
from larappp.proto.ppp import frame
from larappp.transport.memory import pipe_pair
from tests.e2e.enginerig import (
    DNS_V4,
    DNS_V6,
    HOST_V4,
    IFNAME,
    MODULE_IID,
    MODULE_V4,
    NEEDS_ROOT_AND_TUN,
    RA_MTU,
    EngineRig,
    addresses,
    check_udp_both_ways,
    default_routes,
    engine_options,
    host_ipv6,
    run_scenario,
)

pytestmark = NEEDS_ROOT_AND_TUN


# -- happy path ----------------------------------------------------------------------------


def test_ipv4_and_ipv6_up_then_stop_leaves_nothing(netns: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with EngineRig(netns, tmp_path) as rig:
            engine, module = rig.engine, rig.module
            await engine.wait_up(10)
            assert engine.families_up == {4, 6}
            assert not engine.terminated.is_set() and engine.reason == ""
            global_v6, link_local = host_ipv6(engine)
            assert addresses(netns) == {
                (str(HOST_V4), 32, str(MODULE_V4)),
                (str(link_local), 64, None),
                (str(global_v6), 64, None),
            }
            (v4_default,) = default_routes(netns, 4)
            assert v4_default["dev"] == IFNAME
            (v6_default,) = default_routes(netns, 6)
            assert v6_default["dev"] == IFNAME
            assert v6_default["gateway"] == str(IPv6Address(b"\xfe\x80" + bytes(6) + MODULE_IID))
            assert v6_default.get("metrics", [{}])[0].get("mtu") == RA_MTU
            fragment = (tmp_path / "resolv.conf.d" / f"{IFNAME}.conf").read_text()
            assert f"nameserver {DNS_V4}" in fragment and f"nameserver {DNS_V6}" in fragment
            status = engine.status()
            assert status["ipv4"] == str(HOST_V4) and status["ipv6_global"] == [str(global_v6)]
            assert status["phase"] == "Network" and status["bad_frames"] == 0
            assert module.solicitations >= 1
            assert engine.running_pumps() == {"serial-in", "tun-in", "timers", "serial-out", "configure"}

    run_scenario(netns, scenario)


def test_an_interface_name_in_use_fails_clearly_and_harms_nothing(
    netns: str, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with EngineRig(netns, tmp_path) as rig:
            await rig.engine.wait_up(10)
            other_host, _other_module = pipe_pair()
            second = BuiltinPppEngine(other_host, engine_options(tmp_path))
            with pytest.raises(NetworkSetupError) as caught:
                await second.start()
            assert str(caught.value) == (
                f"interface '{IFNAME}' already exists and is in use: choose another name"
            )
            assert await second.stop() == []
            assert other_host.owner is None
            # the first session is untouched: its addresses, DNS and traffic
            assert (str(HOST_V4), 32, str(MODULE_V4)) in addresses(netns)
            assert (tmp_path / "resolv.conf.d" / f"{IFNAME}.conf").exists()
            await check_udp_both_ways(rig, 4, b"still mine")

    run_scenario(netns, scenario)

# -- the end of the link -----------------------------------------------------------------


def test_port_vanishing_while_up(netns: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with EngineRig(netns, tmp_path) as rig:
            engine = rig.engine
            await engine.wait_up(10)
            await rig.module_pipe.close()
            await asyncio.wait_for(engine.terminated.wait(), 2)
            assert engine.reason == "the module's port closed (host: the other end closed)"
            # the pumps that do not touch the port keep running until stop()
            assert engine.running_pumps() == {"tun-in", "timers", "serial-out", "configure"}
            await engine.wait_up(0.1)  # returns at once: the session had been up

    run_scenario(netns, scenario)


def test_port_vanishing_during_negotiation(netns: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with EngineRig(netns, tmp_path, raw_peer=lambda protocol, info: []) as rig:
            await rig.module_pipe.close()
            with pytest.raises(PPPError) as caught:
                await rig.engine.wait_up(5)
            assert str(caught.value) == (
                f"PPP on {IFNAME} ended before it was up: the module's port closed "
                "(host: the other end closed)"
            )

    run_scenario(netns, scenario)

def test_terminate_request_from_the_module(netns: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        # RFC 1661: after a Terminate-Request the host waits one restart interval
        # (Stopping, zrc) before the link is finished; 3 s by default, 0.3 s here
        async with EngineRig(netns, tmp_path, link_timers={"restart_interval": 0.3}) as rig:
            engine, module = rig.engine, rig.module
            await engine.wait_up(10)
            module.close("network detached")
            await asyncio.wait_for(engine.terminated.wait(), 3)
            assert engine.reason == "LCP: the peer sent Terminate-Request (network detached)"
            assert engine.link.terminated
            await asyncio.wait_for(module.terminated.wait(), 3)
            assert module.sent(frame.LCP, 6) == 1  # the host's Terminate-Ack
            await engine.terminate(timeout=1)  # already over: returns at once

    run_scenario(netns, scenario)


def test_terminate_from_the_host(netns: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with EngineRig(netns, tmp_path) as rig:
            engine, module = rig.engine, rig.module
            await engine.wait_up(10)
            started = time.monotonic()
            await engine.terminate(timeout=3)
            assert time.monotonic() - started < 2
            assert engine.terminated.is_set() and engine.reason == "larappp down"
            await asyncio.wait_for(module.terminated.wait(), 1)
            assert module.sent(frame.LCP, 5) == 1
            terminated = module.first(ev.LinkTerminated)
            assert terminated.reason == "LCP: the peer sent Terminate-Request (larappp down)"

    run_scenario(netns, scenario)


def test_terminate_from_the_host_when_the_module_is_silent(netns: str, tmp_path: Path) -> None:
    """The module stops answering: terminate() still returns, after Max-Terminate."""

    async def scenario() -> None:
        async with EngineRig(netns, tmp_path, link_timers={"restart_interval": 0.2}) as rig:
            engine, module = rig.engine, rig.module
            await engine.wait_up(10)
            await module.stop()
            started = time.monotonic()
            await engine.terminate(timeout=3)
            assert time.monotonic() - started < 2
            assert engine.terminated.is_set()
            assert engine.reason == "larappp down"

    run_scenario(netns, scenario)
