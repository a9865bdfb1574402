"""HostInterface and a host that already has an IPv4 default route: reported, or beside it by metric."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from larappp import runtime
from larappp.hostnet import HostInterface
from tests.nshelp import in_netns, ip_json

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces"),
]


def _host_with_a_default_route(netns: str) -> None:
    for argv in (
        # veth pairs (no dummy module needed): the host's uplink, and a stand-in PPP link
        ["link", "add", "uplink0", "type", "veth", "peer", "name", "uplink1"],
        ["link", "add", "lara9", "type", "veth", "peer", "name", "lara9p"],
        *(["link", "set", name, "up"] for name in ("uplink0", "uplink1", "lara9", "lara9p")),
        ["addr", "add", "192.0.2.2/24", "dev", "uplink0"],
        ["route", "add", "default", "via", "192.0.2.1", "dev", "uplink0"],
    ):
        subprocess.run(["ip", "-n", netns, *argv], check=True)


def _apply(netns: str, tmp_path: Path, metric: int | None) -> tuple[dict[str, object], list[dict[str, object]]]:
    async def scenario() -> tuple[dict[str, object], list[dict[str, object]]]:
        host = HostInterface("lara9", metric=metric, dns_mode="file", dns_dir=tmp_path / "dns")
        await host.open()
        try:
            await host.apply_ipv4(IPv4Address("100.64.1.2"), IPv4Address("100.64.1.1"), (IPv4Address("198.51.100.53"),))
            record = json.loads((tmp_path / "host.json").read_text())
            return host.state.to_json(), record["interfaces"]["lara9"]["netlink"]
        finally:
            assert await host.close() == []

    runtime.HOST_RECORD.attach(tmp_path / "host.json")
    try:
        return in_netns(netns, lambda: asyncio.run(scenario()))
    finally:
        runtime.HOST_RECORD.attach(None)


def test_an_existing_default_route_is_reported_not_silently_left(netns: str, tmp_path: Path) -> None:
    _host_with_a_default_route(netns)
    state, recorded = _apply(netns, tmp_path, metric=None)
    warnings = state["warnings"]
    assert isinstance(warnings, list) and len(warnings) == 1
    assert "IPv4 default route not added" in warnings[0]
    assert "dev uplink0 via 192.0.2.1" in warnings[0] and "metric" in warnings[0]
    assert not any(e.get("destination") == "0.0.0.0/0" for e in recorded)
    # the host's own default route is untouched, then and after close()
    assert [r["dev"] for r in ip_json(netns, "route", "show", "default")] == ["uplink0"]
    assert not (tmp_path / "host.json").exists()  # closed cleanly: nothing left to clean later


def test_a_metric_puts_the_default_route_beside_the_hosts(netns: str, tmp_path: Path) -> None:
    _host_with_a_default_route(netns)
    state, recorded = _apply(netns, tmp_path, metric=100)
    assert state["warnings"] == []
    assert {"kind": "route", "ifname": "lara9", "destination": "0.0.0.0/0", "metric": 100, "table": 254} in recorded
    assert [r["dev"] for r in ip_json(netns, "route", "show", "default")] == ["uplink0"]  # ours undone
