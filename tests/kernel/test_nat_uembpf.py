"""Router mode: NAT on the link never gives a LAN flow a source port of the module's
UEMBPF range (app note §4.3, figure 5), with larappp's table beside another masquerade.

A LAN namespace, a router namespace whose `lara9` (a veth standing in for the session's
interface) leads to a far namespace, where servers answer each flow with the source port
they saw. Hundreds of UDP and TCP flows start from LAN ports inside and outside the range,
from three LAN addresses using the same ports (so NAT must pick other ports for most).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from larappp import runtime
from larappp.config import parse_config
from larappp.hostnet import HostInterface
from larappp.preflight import check_nat
from larappp.transport import nft
from larappp.transport.netns import create_netns, delete_netns
from tests.nshelp import in_netns

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces"),
    pytest.mark.skipif(not nft.installed(), reason="needs nftables (apt-get install nftables)"),
]

ROOT = Path(__file__).resolve().parents[2]
EMBPF = range(6000, 6201)
FAR = "100.64.9.1"
LAN_SOURCES = ["192.168.50.2", "192.168.50.3", "192.168.50.4"]
#: every port of the range, its edges' neighbours, and ports of both free ranges
LAN_PORTS = [*EMBPF, 1024, 1500, 5998, 5999, 6201, 6202, 40000, 40001, 60999, 65535]


@dataclass
class Lan:
    lan: str
    router: str
    far: str

    def run(self, ns: str, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, check=True,
                              timeout=120, cwd=ROOT)


@pytest.fixture
def lan() -> Iterator[Lan]:
    tag = uuid.uuid4().hex[:6]
    net = Lan(f"lp-lan-{tag}", f"lp-rtr-{tag}", f"lp-far-{tag}")
    for ns in (net.lan, net.router, net.far):
        create_netns(ns)
    try:
        for argv in (
            ["link", "add", "lan1", "netns", net.router, "type", "veth", "peer", "name", "lan0", "netns", net.lan],
            ["link", "add", "lara9", "netns", net.router, "type", "veth", "peer", "name", "far0", "netns", net.far],
        ):
            subprocess.run(["ip", *argv], check=True)
        for ns, argv in (
            (net.lan, ["addr", "add", "192.168.50.2/24", "dev", "lan0"]),
            (net.lan, ["addr", "add", "192.168.50.3/24", "dev", "lan0"]),
            (net.lan, ["addr", "add", "192.168.50.4/24", "dev", "lan0"]),
            (net.lan, ["link", "set", "lan0", "up"]),
            (net.lan, ["route", "add", "default", "via", "192.168.50.1"]),
            (net.router, ["addr", "add", "192.168.50.1/24", "dev", "lan1"]),
            (net.router, ["addr", "add", "100.64.9.2/24", "dev", "lara9"]),
            (net.router, ["link", "set", "lan1", "up"]),
            (net.router, ["link", "set", "lara9", "up"]),
            (net.far, ["addr", "add", f"{FAR}/24", "dev", "far0"]),
            (net.far, ["link", "set", "far0", "up"]),
        ):
            subprocess.run(["ip", "-n", ns, *argv], check=True)
        net.run(net.router, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        yield net
    finally:
        for ns in (net.lan, net.router, net.far):
            delete_netns(ns)


def _flows(net: Lan, udp_port: int, tcp_port: int) -> list[dict[str, Any]]:
    """Every LAN flow through the router to servers on fresh ports (no conntrack entry reused)."""
    server = subprocess.Popen(
        ["ip", "netns", "exec", net.far, sys.executable, "-m", "tests.natflows", "serve", FAR,
         str(udp_port), str(tcp_port)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "serving"
        out = net.run(net.lan, sys.executable, "-m", "tests.natflows", "flows", FAR, str(udp_port),
                      str(tcp_port), ",".join(LAN_SOURCES), ",".join(map(str, LAN_PORTS)))
    finally:
        server.kill()
        server.wait()
    return [json.loads(line) for line in out.stdout.splitlines()]


def _ruleset(net: Lan) -> dict[str, Any]:
    return in_netns(net.router, nft.ruleset)


def _tables(net: Lan) -> list[str]:
    return [f"{t['table']['family']} {t['table']['name']}" for t in _ruleset(net)["nftables"] if "table" in t]


def _conntrack_nat_ports(net: Lan, server_ports: tuple[int, ...]) -> list[int]:
    """The translated source ports of the router's NATed flows to `server_ports` on the far
    side: the destination port of each flow's reply direction."""
    text = net.run(net.router, "cat", "/proc/net/nf_conntrack").stdout
    ports = []
    for line in text.splitlines():
        fields = line.split()
        if "tcp" not in fields[:4] and "udp" not in fields[:4]:
            continue
        values = [f.split("=", 1) for f in fields if "=" in f]
        dsts = [v for k, v in values if k == "dst"]
        dports = [int(v) for k, v in values if k == "dport"]
        if len(dsts) == 2 and dsts[1] == "100.64.9.2" and dports[0] in server_ports:
            ports.append(dports[1])
    return ports


def _config(nat: bool) -> Any:
    return parse_config(
        '[modem]\nport = "sim"\nembpf = "6000-6200"\n'
        f'[[session]]\ncid = 1\napn = "internet"\nifname = "lara9"\nnat = {"true" if nat else "false"}\n'
    )


def test_nat_on_the_link_keeps_every_translated_port_out_of_the_uembpf_range(lan: Lan, tmp_path: Path) -> None:
    # Another masquerade on the link, as a router's own firewall would have: the hole.
    rules = tmp_path / "routerfw.nft"
    rules.write_text('table ip routerfw {\n chain post {\n  type nat hook postrouting priority srcnat;\n'
                     '  oifname "lara9" masquerade\n }\n}\n')
    lan.run(lan.router, "nft", "-f", str(rules))
    plain = _flows(lan, 9001, 9002)
    assert all(flow["seen"] is not None for flow in plain), [f for f in plain if f["seen"] is None][:5]
    plain_in_range = [flow for flow in plain if flow["seen"] in EMBPF]
    assert plain_in_range  # the kernel kept LAN ports of the range
    ok, detail = in_netns(lan.router, lambda: check_nat(_config(nat=False)))
    assert not ok, detail
    assert "ip routerfw chain post" in detail and "set nat = true" in detail and "to :6201-65535" in detail, detail

    # larappp's table beside it: it binds every flow first.
    async def put_in() -> HostInterface:
        host = HostInterface("lara9", dns_mode="none", nat=True, embpf="6000-6200")
        await host.open()
        return host

    runtime.HOST_RECORD.attach(tmp_path / "host.json")
    try:
        host = in_netns(lan.router, lambda: asyncio.run(put_in()))
        assert json.loads((tmp_path / "host.json").read_text())["interfaces"]["lara9"]["nft"] == {
            "family": "inet", "ifname": "lara9"}
        ok, detail = in_netns(lan.router, lambda: check_nat(_config(nat=True)))
        assert ok, detail
        assert "binds flows first" in detail, detail

        flows = _flows(lan, 9101, 9102)
        unanswered = [f for f in flows if f["seen"] is None]
        assert not unanswered, unanswered[:5]
        seen = [flow["seen"] for flow in flows]
        in_range = [flow for flow in flows if flow["seen"] in EMBPF]
        assert not in_range, in_range[:5]
        conntrack = _conntrack_nat_ports(lan, (9101, 9102))
        assert len(conntrack) == len(flows) and not [p for p in conntrack if p in EMBPF]
        # Flows from a free port keep it where they can: the first address's, unless an earlier
        # flow from the range was given that very port.
        first = [f for f in flows if f["src"] == LAN_SOURCES[0] and f["sport"] not in EMBPF]
        kept = [f for f in first if f["seen"] == f["sport"]]
        assert len(kept) >= len(first) - 2, [f for f in first if f["seen"] != f["sport"]]
        # The three addresses share the ports: NAT gave each flow a port of its own per protocol.
        for proto in ("udp", "tcp"):
            ports = [f["seen"] for f in flows if f["proto"] == proto]
            assert len(set(ports)) == len(ports)
        print(f"plain masquerade: {len(plain_in_range)} of {len(plain)} flows went out with a port in the range")
        print(f"NAT vs UEMBPF: {len(flows)} flows ({len([f for f in flows if f['sport'] in EMBPF])} from "
              f"ports in {EMBPF.start}-{EMBPF.stop - 1}), translated ports {min(seen)}-{max(seen)}, "
              f"{len(set(seen))} distinct, none in the range; conntrack entries checked: {len(conntrack)}")

        assert in_netns(lan.router, lambda: asyncio.run(host.close())) == []
    finally:
        runtime.HOST_RECORD.attach(None)
    assert _tables(lan) == ["ip routerfw"]
    assert not (tmp_path / "host.json").exists()


def test_a_killed_larappps_table_is_removed_from_the_record(lan: Lan, tmp_path: Path) -> None:
    async def put_in_and_die() -> None:
        host = HostInterface("lara9", dns_mode="none", nat=True, embpf="6000-6200")
        await host.open()
        host.netlink.close()  # the process ends here without close(): SIGKILL

    paths = runtime.RuntimePaths(tmp_path)
    runtime.HOST_RECORD.attach(paths.host_record)
    try:
        in_netns(lan.router, lambda: asyncio.run(put_in_and_die()))
    finally:
        runtime.HOST_RECORD.attach(None)
    assert _tables(lan) == ["inet larappp_lara9"]
    removed = in_netns(lan.router, lambda: asyncio.run(runtime.undo_leftovers(paths)))
    assert "nftables table inet larappp_lara9" in removed, removed
    assert _tables(lan) == []


def test_a_stale_table_is_replaced_not_doubled(lan: Lan) -> None:
    async def twice() -> None:
        first = HostInterface("lara9", dns_mode="none", nat=True, embpf="6000-6200")
        await first.open()
        second = HostInterface("lara9", dns_mode="none", nat=True, embpf="6000-6200")
        await second.open()
        rules = [i for i in nft.ruleset()["nftables"] if "rule" in i]
        assert len(rules) == 5, rules  # 4 port rules and the rest, once
        assert await second.close() == []
        first.netlink.close()

    in_netns(lan.router, lambda: asyncio.run(twice()))
    assert _tables(lan) == []


@pytest.mark.parametrize(("tool", "says"), [
    ("iptables-nft", "iptables MASQUERADE in ip nat chain POSTROUTING"),
    ("iptables-legacy", "iptables-legacy has a nat table here, whose rules nft cannot read"),
])
def test_check_names_an_iptables_masquerade_on_the_link(lan: Lan, tool: str, says: str) -> None:
    if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True, check=False).returncode != 0:
        pytest.skip(f"{tool} is not installed (Debian's iptables package)")
    lan.run(lan.router, tool, "-t", "nat", "-A", "POSTROUTING", "-o", "lara9", "-j", "MASQUERADE")
    ok, detail = in_netns(lan.router, lambda: check_nat(_config(nat=False)))
    assert not ok and says in detail, detail
    assert "--to-ports" in detail or "set nat = true" in detail, detail
    ok, detail = in_netns(lan.router, lambda: check_nat(_config(nat=True)))
    assert ok, detail
