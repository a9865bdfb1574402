"""larappp.transport.shaping on a TUN in a throw-away network namespace (needs root):
the kernel's tbf paces the uplink, its counters are read, and exactly it is removed."""

from __future__ import annotations

import asyncio
import os
import subprocess
from typing import Any

import pytest

from larappp.transport.shaping import UplinkShaper
from larappp.transport.tun import Tun
from tests.nshelp import in_netns

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces and TUN"),
    pytest.mark.skipif(not os.path.exists("/dev/net/tun"), reason="no /dev/net/tun"),
]


def qdiscs(netns: str, ifname: str) -> str:
    return subprocess.run(["tc", "-n", netns, "qdisc", "show", "dev", ifname],
                          capture_output=True, text=True, check=True).stdout


def test_tbf_paces_counts_and_is_removed_exactly(netns: str) -> None:
    def scenario() -> dict[str, Any]:
        tun = Tun.open("ppp5", mtu=1500)
        seen: dict[str, Any] = {}
        try:
            subprocess.run(["ip", "-n", netns, "link", "set", "ppp5", "up"], check=True)
            seen["before"] = qdiscs(netns, "ppp5")  # the kernel's default

            async def run() -> None:
                shaper = UplinkShaper("ppp5")
                seen["bucket"] = await shaper.apply(2000, 1500)
                seen["paced"] = qdiscs(netns, "ppp5")
                seen["counters"] = await shaper.counters()
                seen["again"] = await shaper.apply(1000, 1500)  # a second link-up replaces our own
                seen["replaced"] = qdiscs(netns, "ppp5")
                seen["failures"] = await shaper.remove()
                seen["after"] = qdiscs(netns, "ppp5")
                seen["after_counters"] = await shaper.counters()

            asyncio.run(run())
        finally:
            tun.close()
        return seen

    seen = in_netns(netns, scenario)
    assert "tbf 1: root" in seen["paced"] and "rate 2Mbit" in seen["paced"]
    assert seen["bucket"].limit == 12500
    assert seen["counters"] == {"sent_packets": 0, "sent_bytes": 0, "dropped": 0, "overlimits": 0, "backlog": 0}
    assert "rate 1Mbit" in seen["replaced"]
    assert seen["failures"] == []
    assert "tbf" not in seen["after"] and seen["after"] == seen["before"]
    assert seen["after_counters"] == {}


def test_an_administrators_root_qdisc_is_left_alone(netns: str) -> None:
    def scenario() -> dict[str, Any]:
        tun = Tun.open("ppp6", mtu=1500)
        seen: dict[str, Any] = {}
        try:
            subprocess.run(["tc", "-n", netns, "qdisc", "add", "dev", "ppp6", "root", "handle", "1:", "tbf",
                            "rate", "5mbit", "burst", "5000", "limit", "20000"], check=True)

            async def run() -> None:
                shaper = UplinkShaper("ppp6")
                try:
                    await shaper.apply(2000, 1500)
                except Exception as exc:  # noqa: BLE001 - the message is what is checked
                    seen["error"] = str(exc)
                seen["failures"] = await shaper.remove()

            asyncio.run(run())
            seen["after"] = qdiscs(netns, "ppp6")
        finally:
            tun.close()
        return seen

    seen = in_netns(netns, scenario)
    assert "uplink_kbit = 0" in seen["error"]
    assert seen["failures"] == []
    assert "rate 5Mbit" in seen["after"]  # still the administrator's
