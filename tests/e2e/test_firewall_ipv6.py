"""End to end: `firewall_ipv6 = true` closes the DTE's global IPv6 address to the internet
(app note §4.1.2: otherwise nothing filters what comes in), keeps what IPv6 needs (RFC 4890),
and is in place exactly while the session is: through a redial, `down`, and a killed larappp.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from larappp.sim.control import request
from larappp.transport import nft
from tests.e2e.conftest import ROOT, Cli, kill_lock_holder
from tests.e2e.test_ppp_e2e import SERVER_V4, SERVER_V6, Net, _config, _session, _up, net  # noqa: F401

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(not nft.installed(), reason="needs nftables (apt-get install nftables)"),
]

DTE_V4 = "100.64.1.2"
DTE_V6 = "2001:db8:0:1:90a1:5cfc:3cc9:7301"
#: a TCP server that answers "hi" to every connection, on every address of its namespace
LISTENER = (
    "import socket,sys\n"
    "s=socket.socket(socket.AF_INET6); s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)\n"
    "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('::', int(sys.argv[1]))); s.listen(8)\n"
    "print('listening', flush=True)\n"
    "while True:\n"
    "    c,_=s.accept(); c.sendall(b'hi'); c.close()\n"
)
CONNECT = (
    "import socket,sys\n"
    "try:\n"
    "    c=socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2); print(c.recv(8).decode())\n"
    "except OSError as e:\n"
    "    print('failed', type(e).__name__)\n"
)


def _listen(ns: str, port: int) -> subprocess.Popen[str]:
    server = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", LISTENER, str(port)],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert server.stdout is not None and server.stdout.readline().strip() == "listening"
    return server


def _connect(n: Net, ns: str, address: str, port: int) -> str:
    run = n.dte_run if ns == n.dte else n.inet_run
    return run(sys.executable, "-c", CONNECT, address, str(port)).stdout.strip()


def _tables(n: Net) -> list[str]:
    listed = json.loads(n.dte_run("nft", "-j", "list", "tables").stdout)
    return [t["table"]["name"] for t in listed["nftables"] if "table" in t]


def _dropped(n: Net) -> int:
    listed: dict[str, Any] = json.loads(n.dte_run("nft", "-j", "list", "chain", "inet", "larappp_lara1", "inbound").stdout)
    counters = [e["counter"] for i in listed["nftables"] if "rule" in i for e in i["rule"]["expr"] if "counter" in e]
    return int(counters[0]["packets"])


def _state(cli: Cli, cfg: Path, n: Net) -> dict[str, Any]:
    state: dict[str, Any] = json.loads(cli.run(cfg, "status", "--json", netns=n.dte).stdout)["sessions"][0]
    return state


def _closed_to_the_internet_open_to_replies(n: Net) -> None:
    server = _listen(n.dte, 8080)
    try:
        assert _connect(n, n.inet, DTE_V6, 8080) == "failed TimeoutError"  # dropped, not refused
        assert _connect(n, n.inet, DTE_V4, 8080) == "hi"  # IPv4 is not this firewall's business
    finally:
        server.kill()
        server.wait()
    far = _listen(n.inet, 8081)
    try:
        assert _connect(n, n.dte, SERVER_V6, 8081) == "hi"  # its own flows, and their replies
    finally:
        far.kill()
        far.wait()
    n.dte_run("ping", "-6", "-c", "2", "-W", "3", SERVER_V6)
    n.inet_run("ping", "-6", "-c", "2", "-W", "3", DTE_V6)  # RFC 4890 §4.3.1: echo is not dropped


def test_the_ipv6_firewall_holds_for_the_session_and_goes_with_it(cli: Cli, net) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    n: Net = net()
    cfg = _config(cli, n, _session(n.sim.ptys[0], 1, "internet",
                                   extra="firewall_ipv6 = true\nholdoff = 0.3\n"))
    state = _up(cli, cfg, n)
    assert state["sessions"][0]["ipv6_global"] == [DTE_V6]  # the RA came through
    assert state["sessions"][0]["nftables"] == "inet larappp_lara1: firewall_ipv6"
    assert _tables(n) == ["larappp_lara1"]
    shown = cli.run(cfg, "status", netns=n.dte).stdout
    assert "    nftables inet larappp_lara1: firewall_ipv6" in shown.splitlines(), shown
    before = _dropped(n)
    _closed_to_the_internet_open_to_replies(n)
    assert _dropped(n) > before

    # A redial takes the table out with the link and puts it back: one table, still closed.
    answer = request(str(Path(n.sim.ptys[0]).parent / "control.sock"), {"fault": "drop", "cid": 1})
    assert answer["ok"], answer
    deadline = time.monotonic() + 60
    while not ((s := _state(cli, cfg, n))["losses"] >= 1 and s["state"] == "up"):
        assert time.monotonic() < deadline, s
        time.sleep(0.2)
    assert _tables(n) == ["larappp_lara1"]
    _closed_to_the_internet_open_to_replies(n)

    down = cli.run(cfg, "down", netns=n.dte, timeout=90)
    assert down.returncode == 0, down.stderr
    assert _tables(n) == []
    ruleset = n.dte_run("nft", "-j", "list", "ruleset").stdout
    assert "larappp" not in ruleset, ruleset


def test_a_killed_larappps_firewall_is_removed_by_down(cli: Cli, net) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    n: Net = net()
    cfg = _config(cli, n, _session(n.sim.ptys[0], 1, "internet", extra="firewall_ipv6 = true\nnat = true\n"),
                  modem_extra='embpf = "6000-6200"\n')
    _up(cli, cfg, n)
    assert _tables(n) == ["larappp_lara1"]
    kill_lock_holder(cfg.parent / "run")  # SIGKILL: no teardown
    assert _tables(n) == ["larappp_lara1"]
    down = cli.run(cfg, "down", netns=n.dte, timeout=90)
    assert down.returncode == 0, down.stderr
    assert "nftables table inet larappp_lara1" in down.stderr, down.stderr
    assert _tables(n) == []


def test_a_failed_up_leaves_no_table(cli: Cli, net) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """The first session is up (its table in) when the network refuses the second: `up`
    fails and undoes the first, table included."""
    n: Net = net("--grant", "IP")
    sessions = (_session(n.sim.ptys[0], 1, "internet", extra="firewall_ipv6 = true\n")
                + _session(n.sim.ptys[1], 2, "v6only.example", extra='pdp_type = "IPV6"\nifname = "lara2"\n'))
    cfg = _config(cli, n, sessions)
    up = cli.run(cfg, "up", netns=n.dte, timeout=120)
    assert up.returncode != 0, up.stderr
    assert "lara1 up" in up.stderr and "refused the call on cid 2" in up.stderr, up.stderr
    assert _tables(n) == []
