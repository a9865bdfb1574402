"""Who paces the uplink (issue 10): the kernel's tc where it can, the engine's own budget
where tc cannot; paced either way, and the engine's queue stays bounded.

A burst of UDP datagrams from a socket in the namespace must reach the module spread out
at the paced rate, not at the pipe's speed.
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest

from larappp.errors import NetworkSetupError
from larappp.proto import ip
from larappp.transport.shaping import UplinkShaper
from tests.e2e.enginerig import HOST_V4, INTERNET_V4, NEEDS_ROOT_AND_TUN, EngineRig, run_scenario

pytestmark = NEEDS_ROOT_AND_TUN

PACED_KBIT = 800
DATAGRAMS = 30
SIZE = 1000


async def burst_arrival(rig: EngineRig) -> tuple[int, float]:
    """Send DATAGRAMS at once; (how many reached the module, seconds from first to last)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((str(HOST_V4), 0))
        for index in range(DATAGRAMS):
            sock.sendto(index.to_bytes(2, "big") + bytes(SIZE - 2), (str(INTERNET_V4), 7001))
    arrivals: list[float] = []
    while len(arrivals) < DATAGRAMS:
        try:
            _family, packet = await asyncio.wait_for(rig.module.packets.get(), 2.0)
        except TimeoutError:
            break
        datagram = ip.parse_udp(packet)
        if datagram is not None and datagram.dst_port == 7001:
            arrivals.append(time.monotonic())
    return len(arrivals), (arrivals[-1] - arrivals[0]) if arrivals else 0.0


def test_the_kernel_paces_where_it_can(netns: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with EngineRig(netns, tmp_path, uplink_kbit=PACED_KBIT) as rig:
            await rig.engine.wait_up(10)
            assert rig.engine.host.shaper.bucket is not None
            assert rig.engine.status()["uplink"]["paced_by"] == "tc"  # type: ignore[index]
            arrived, spread = await burst_arrival(rig)
            # tbf's queue holds about 50 ms at the rate: what does not fit is the host's drop
            assert arrived >= 3
            # what arrived left at the paced rate (a tbf burst of two packets aside)
            assert spread >= (arrived - 3) * SIZE * 8 / (PACED_KBIT * 1000) * 0.8, (arrived, spread)
            counters = await rig.engine.host.shaper.counters()
            assert counters["sent_packets"] >= arrived
            assert arrived + counters["dropped"] >= DATAGRAMS

    run_scenario(netns, scenario)


def test_the_engine_paces_where_the_kernel_cannot(
    netns: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refuse(self: UplinkShaper, kbit: int, mtu: int) -> None:
        raise NetworkSetupError(f"cannot pace {self.ifname}: no sch_tbf in this kernel")

    monkeypatch.setattr(UplinkShaper, "apply", refuse)

    async def scenario() -> None:
        async with EngineRig(netns, tmp_path, uplink_kbit=PACED_KBIT) as rig:
            engine = rig.engine
            await engine.wait_up(10)
            assert engine.host.shaper.bucket is None
            assert engine.status()["uplink"]["paced_by"] == "engine"  # type: ignore[index]
            arrived, spread = await burst_arrival(rig)
            # the TUN's own queue holds the burst while the engine's bounded queue is full
            assert arrived == DATAGRAMS
            # the first chunk leaves at once, the rest at the paced rate
            paced = (DATAGRAMS * SIZE - engine.uplink.chunk) * 8 / (PACED_KBIT * 1000)
            assert spread >= paced * 0.8, (spread, paced)
            assert engine.status()["drops"]["engine_queue"] == 0  # type: ignore[index]

    run_scenario(netns, scenario)
