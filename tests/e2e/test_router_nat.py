"""End to end, router mode (app note §4.3, figure 5): a LAN namespace behind the DTE
namespace, whose uplink is a larappp session against the simulator, which keeps every
downlink packet for a port of the +UEMBPF range for the module's own applications.

With another masquerade on the link the LAN's flows from ports of the range lose their
replies, and `check` says why; with `nat = true` larappp's NAT keeps them out of the
range, every flow is answered, and `down` leaves no larappp table behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from larappp.transport import nft
from larappp.transport.netns import create_netns, delete_netns
from tests.e2e.conftest import ROOT, Cli
from tests.e2e.test_ppp_e2e import SERVER_V4, Net, _config, _session, _up, net  # noqa: F401

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(not nft.installed(), reason="needs nftables (apt-get install nftables)"),
]

EMBPF = range(6000, 6201)
LAN_SOURCES = ["192.168.60.2", "192.168.60.3"]
FOREIGN = ('table ip routerfw {\n chain post {\n  type nat hook postrouting priority srcnat;\n'
           '  oifname "lara1" masquerade\n }\n}\n')


@pytest.fixture
def lan_of() -> Iterator[Any]:
    made: list[str] = []

    def make(router: str) -> str:
        name = f"lp-lan-{uuid.uuid4().hex[:6]}"
        create_netns(name)
        made.append(name)
        subprocess.run(["ip", "link", "add", "lan1", "netns", router, "type", "veth", "peer", "name", "lan0",
                        "netns", name], check=True)
        for ns, argv in (
            *((name, ["addr", "add", f"{a}/24", "dev", "lan0"]) for a in LAN_SOURCES),
            (name, ["link", "set", "lan0", "up"]),
            (name, ["route", "add", "default", "via", "192.168.60.1"]),
            (router, ["addr", "add", "192.168.60.1/24", "dev", "lan1"]),
            (router, ["link", "set", "lan1", "up"]),
        ):
            subprocess.run(["ip", "-n", ns, *argv], check=True)
        return name

    yield make
    for name in made:
        delete_netns(name)


def _flows(n: Net, lan: str, ports: list[int], server_ports: tuple[int, int], timeout: float) -> list[dict[str, Any]]:
    server = subprocess.Popen(
        ["ip", "netns", "exec", n.inet, sys.executable, "-m", "tests.natflows", "serve", SERVER_V4,
         *map(str, server_ports)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "serving"
        out = subprocess.run(
            ["ip", "netns", "exec", lan, sys.executable, "-m", "tests.natflows", "flows", SERVER_V4,
             *map(str, server_ports), ",".join(LAN_SOURCES), ",".join(map(str, ports))],
            capture_output=True, text=True, timeout=300, cwd=ROOT, check=True,
            env=dict(os.environ, NATFLOWS_TIMEOUT=str(timeout)),
        )
    finally:
        server.kill()
        server.wait()
    return [json.loads(line) for line in out.stdout.splitlines()]


def _tables(n: Net) -> list[str]:
    listed = json.loads(n.dte_run("nft", "-j", "list", "tables").stdout)
    return [f"{t['table']['family']} {t['table']['name']}" for t in listed["nftables"] if "table" in t]


def test_lan_flows_through_the_session_never_use_a_module_port(cli: Cli, net, lan_of, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    n: Net = net()
    lan = lan_of(n.dte)
    n.dte_run("sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
    foreign = tmp_path / "routerfw.nft"
    foreign.write_text(FOREIGN)
    n.dte_run("nft", "-f", str(foreign))
    modem = 'embpf = "6000-6200"\n'

    # The hole: the router's own masquerade keeps a LAN port of the range, the module keeps the reply.
    cfg = _config(cli, n, _session(n.sim.ptys[0], 1, "internet"), modem_extra=modem)
    _up(cli, cfg, n)
    check = cli.run(cfg, "check", netns=n.dte)
    assert check.returncode == 1, check.stdout
    line = next(x for x in check.stdout.splitlines() if "NAT vs UEMBPF" in x)
    assert line.startswith("[FAIL]") and "ip routerfw chain post" in line and "set nat = true" in line, line
    lost = _flows(n, lan, [6000, 6100, 6200, 40000], (9001, 9002), timeout=1.0)
    unanswered = sorted({f["sport"] for f in lost if f["seen"] is None})
    assert unanswered == [6000, 6100, 6200], lost
    assert cli.run(cfg, "down", netns=n.dte, timeout=90).returncode == 0

    # nat = true: every flow answered, none through a port of the range, nothing left after down.
    cfg = _config(cli, n, _session(n.sim.ptys[0], 1, "internet", extra="nat = true\n"), modem_extra=modem)
    _up(cli, cfg, n)
    assert "inet larappp_lara1" in _tables(n)
    check = cli.run(cfg, "check", netns=n.dte)
    line = next(x for x in check.stdout.splitlines() if "NAT vs UEMBPF" in x)
    assert line.startswith("[ok  ]"), check.stdout
    ports = [*EMBPF[::4], 1500, 5999, 6201, 40000, 40001, 60000]
    flows = _flows(n, lan, ports, (9101, 9102), timeout=3.0)
    assert len(flows) == 2 * len(LAN_SOURCES) * len(ports)
    assert not [f for f in flows if f["seen"] is None]
    assert not [f for f in flows if f["seen"] in EMBPF]
    print(f"router mode through the simulator: {len(flows)} flows "
          f"({len([f for f in flows if f['sport'] in EMBPF])} from ports of 6000-6200), all answered, "
          f"translated ports {min(f['seen'] for f in flows)}-{max(f['seen'] for f in flows)}, none in the range")
    down = cli.run(cfg, "down", netns=n.dte, timeout=90)
    assert down.returncode == 0, down.stderr
    assert _tables(n) == ["ip routerfw"]
