"""HostInterface and SLAAC: an address that expires (or is renumbered away) takes its prefix route along."""

from __future__ import annotations

import asyncio
import os
import subprocess
from ipaddress import IPv6Address
from pathlib import Path

import pytest

from larappp import runtime
from larappp.hostnet import HostInterface
from larappp.proto.ipv6 import slaac
from tests.nshelp import in_netns, ip_json

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces"),
]

OLD = IPv6Address("2001:db8:0:1:90a1:5cfc:3cc9:7301")
NEW = IPv6Address("2001:db8:0:99:90a1:5cfc:3cc9:7301")


def test_an_expired_address_leaves_no_route_to_its_prefix(netns: str, tmp_path: Path) -> None:
    for argv in (["link", "add", "lara9", "type", "veth", "peer", "name", "lara9p"],
                 ["link", "set", "lara9", "up"], ["link", "set", "lara9p", "up"]):
        subprocess.run(["ip", "-n", netns, *argv], check=True)

    def prefixes() -> list[str]:
        return sorted(r["dst"] for r in ip_json(netns, "-6", "route", "show", "dev", "lara9") if r["dst"].startswith("2001:"))

    async def scenario() -> tuple[list[str], list[str], list[str]]:
        host = HostInterface("lara9", dns_mode="file", dns_dir=tmp_path / "dns")
        await host.open()
        try:
            # Lifetimes, as from an RA: the kernel then treats the prefix route as the RA's.
            for address in (OLD, NEW):
                await host.apply_slaac(slaac.AddressConfigured(address, 64, 1000.0 + 3600, 1000.0 + 1800), 1000.0)
            both = prefixes()
            await host.apply_slaac(slaac.AddressExpired(OLD), 1001.0)  # renumbered: the old one withdrawn
            renumbered = prefixes()
            return both, renumbered, host.state.ipv6_global
        finally:
            assert await host.close() == []

    runtime.HOST_RECORD.attach(tmp_path / "host.json")
    try:
        both, renumbered, addresses = in_netns(netns, lambda: asyncio.run(scenario()))
    finally:
        runtime.HOST_RECORD.attach(None)
    assert both == ["2001:db8:0:1::/64", "2001:db8:0:99::/64"]
    assert renumbered == ["2001:db8:0:99::/64"]
    assert addresses == [str(NEW)]
