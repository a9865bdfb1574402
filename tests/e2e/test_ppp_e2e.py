"""End to end: `larappp up` in a DTE namespace, PPP over the simulator's ports into a
namespace playing the operator network and the internet, real tools across.

Every namespace, simulator, larappp process and iperf3 server is removed by fixtures,
also when a test fails.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import serial

from larappp.transport.netns import create_netns, delete_netns
from tests.e2e.conftest import Cli, SimProcess, start_sim

pytestmark = pytest.mark.root

SERVER_V4 = "198.51.100.1"
SERVER_V6 = "2001:db8:ffff::1"
DNS_V4 = "198.51.100.53"


@dataclass
class Net:
    """A DTE namespace, and the simulator with its internet namespace."""

    dte: str
    inet: str
    sim: SimProcess
    sim_in_dte: bool = False

    def dte_run(self, *argv: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _ns(self.dte, *argv, timeout=timeout, check=check)

    def inet_run(self, *argv: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _ns(self.inet, *argv, timeout=timeout, check=check)

    def iperf(self, *extra: str, seconds: int = 4) -> dict[str, Any]:
        """iperf3 -J from the DTE to a one-shot server in the internet namespace. A simulator
        started inside the DTE's namespace made that namespace in its own mount namespace only:
        the server then runs there (nsenter)."""
        inside = ["nsenter", "-t", str(self.sim.proc.pid), "-m"] if self.sim_in_dte else []
        server = subprocess.Popen([*inside, "ip", "netns", "exec", self.inet, "iperf3", "-s", "-1", "-p", "5201"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            out = self.dte_run("iperf3", "-c", SERVER_V4, "-p", "5201", "-t", str(seconds), "-J", *extra, timeout=60)
            result: dict[str, Any] = json.loads(out.stdout)
            assert "error" not in result, result["error"]
            return result
        finally:
            if server.poll() is None:
                server.kill()
            server.wait(timeout=10)


def _ns(ns: str, *argv: str, timeout: float, check: bool) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=timeout, check=False)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} in {ns} failed ({out.returncode}): {out.stdout}{out.stderr}")
    return out


@pytest.fixture
def net(tmp_path: Path, cli: Cli) -> Iterator[object]:
    tag = uuid.uuid4().hex[:6]
    dte, inet = f"lp-dte-{tag}", f"lp-inet-{tag}"
    create_netns(dte)
    started: list[SimProcess] = []

    def factory(*args: str, ports: int = 3, sim_in_dte: bool = False) -> Net:
        sim = start_sim(tmp_path, "--network", inet, *args, ports=ports, netns=dte if sim_in_dte else None)
        started.append(sim)
        return Net(dte, inet, sim, sim_in_dte)

    try:
        yield factory
    finally:
        try:
            cli.cleanup()  # larappp down while its namespace and the simulator still exist
        finally:
            for sim in started:
                sim.stop()
            delete_netns(dte)
            delete_netns(inet)


def _config(cli: Cli, n: Net, sessions: str, modem_extra: str = "") -> Path:
    return cli.write_config(
        f'[modem]\nport = "{n.sim.ptys[0]}"\nregistration_timeout = 20\nreboot_timeout = 20\ncommand_timeout = 5\n{modem_extra}',
        sessions,
    )


def _session(port: str, cid: int, apn: str, teardown: str = "lcp", extra: str = "") -> str:
    return f'[[session]]\ncid = {cid}\napn = "{apn}"\nport = "{port}"\nteardown = "{teardown}"\n{extra}'


def _up(cli: Cli, cfg: Path, n: Net) -> dict:  # type: ignore[type-arg]
    up = cli.run(cfg, "up", netns=n.dte, timeout=120)
    assert up.returncode == 0, up.stderr + up.stdout
    status = cli.run(cfg, "status", "--json", netns=n.dte)
    state: dict = json.loads(status.stdout)  # type: ignore[type-arg]
    assert state["state"] == "up", state
    return state


def _assert_clean_after_down(cli: Cli, cfg: Path, n: Net, ports: list[str]) -> None:
    down = cli.run(cfg, "down", netns=n.dte, timeout=90)
    assert down.returncode == 0, down.stderr + down.stdout
    links = json.loads(n.dte_run("ip", "-j", "link").stdout)
    assert [link["ifname"] for link in links] == ["lo"]
    addrs = json.loads(n.dte_run("ip", "-j", "addr").stdout)
    assert all(a["ifname"] == "lo" for a in addrs)
    assert n.dte_run("ip", "route").stdout.strip() == ""
    assert n.dte_run("ip", "-6", "route").stdout.strip() == ""
    rundir = cfg.parent / "run"
    fragments = rundir / "resolv.conf.d"
    assert not fragments.exists() or not list(fragments.iterdir())
    assert subprocess.run(["pgrep", "-f", f"larappp.cli --config {cfg}"], capture_output=True, check=False).returncode == 1
    # The module is back in command mode on every port the sessions used.
    for port in ports:
        with serial.Serial(port, 115200, timeout=2) as ser:
            ser.reset_input_buffer()
            ser.write(b"AT\r")
            deadline = time.monotonic() + 3
            answer = b""
            while b"OK" not in answer and time.monotonic() < deadline:
                answer += ser.read(64)
            assert b"OK" in answer, answer


def test_one_session_carries_ipv4_ipv6_dns_and_iperf(cli: Cli, net) -> None:  # type: ignore[no-untyped-def]
    n = net()
    # A router forwards: SLAAC must still work (the kernel ignores RAs there unless accept_ra=2).
    n.dte_run("sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1", "net.ipv4.ip_forward=1")
    cfg = _config(cli, n, _session(n.sim.ptys[0], 1, "internet"))
    state = _up(cli, cfg, n)
    sess = state["sessions"][0]
    assert sess["ipv4"] == "100.64.1.2"
    # SLAAC: the network's /64 with the host's own IID, not the module's (app note §4.1.2).
    assert sess["ipv6_global"] == ["2001:db8:0:1:90a1:5cfc:3cc9:7301"]
    assert DNS_V4 in sess["dns"] and "2001:db8:ffff::53" in sess["dns"]

    n.dte_run("ping", "-c", "3", "-W", "3", SERVER_V4)
    n.dte_run("ping", "-6", "-c", "3", "-W", "3", SERVER_V6)
    # The internet reaches the DTE's addresses too.
    n.inet_run("ping", "-c", "2", "-W", "3", "100.64.1.2")
    n.inet_run("ping", "-6", "-c", "2", "-W", "3", "2001:db8:0:1:90a1:5cfc:3cc9:7301")
    dig = n.dte_run("dig", "+short", "+time=3", "+tries=2", f"@{DNS_V4}", "server.larappp.test")
    assert dig.stdout.split() == [SERVER_V4]

    for target, extra in ((SERVER_V4, ()), (SERVER_V4, ("-R",)), (SERVER_V6, ()), (SERVER_V6, ("-R",)),
                          (SERVER_V4, ("-u", "-b", "5M")), (SERVER_V6, ("-u", "-b", "5M", "-R"))):
        server = subprocess.Popen(["ip", "netns", "exec", n.inet, "iperf3", "-s", "-1", "-p", "5201"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.3)
            out = n.dte_run("iperf3", "-c", target, "-p", "5201", "-t", "1", "-J", *extra, timeout=60)
            result = json.loads(out.stdout)
            assert "error" not in result, (target, extra, result["error"])
            received = result["end"].get("sum_received") or result["end"]["sum"]
            assert received["bytes"] > 200_000, (target, extra, received)
            if "-u" in extra:
                assert result["end"]["sum"]["lost_percent"] < 5, result["end"]["sum"]
        finally:
            if server.poll() is None:
                server.kill()
            server.wait(timeout=10)
    _assert_clean_after_down(cli, cfg, n, [n.sim.ptys[0]])


def test_three_sessions_carry_traffic_at_the_same_time(cli: Cli, net) -> None:  # type: ignore[no-untyped-def]
    n = net()
    sessions = "".join(
        _session(n.sim.ptys[i], cid, f"apn{cid}.example", extra=f"metric = {100 * cid}\n")
        for i, cid in enumerate((1, 2, 3))
    )
    cfg = _config(cli, n, sessions)
    state = _up(cli, cfg, n)
    got = {s["cid"]: s for s in state["sessions"]}
    assert sorted(got) == [1, 2, 3]
    assert {got[c]["ifname"] for c in got} == {"lara1", "lara2", "lara3"}
    assert {got[c]["ipv4"] for c in got} == {"100.64.1.2", "100.64.2.2", "100.64.3.2"}
    pings = [
        subprocess.Popen(["ip", "netns", "exec", n.dte, "ping", *fam, "-I", f"lara{c}", "-c", "5", "-i", "0.2",
                          "-W", "3", dst], stdout=subprocess.PIPE, text=True)
        for c in (1, 2, 3) for fam, dst in (((), SERVER_V4), (("-6",), SERVER_V6))
    ]
    for p in pings:
        out, _ = p.communicate(timeout=30)
        assert p.returncode == 0, out
        assert " 0% packet loss" in out
    # Each session's bytes went through its own interface.
    for c in (1, 2, 3):
        stats = json.loads(n.dte_run("ip", "-j", "-s", "link", "show", f"lara{c}").stdout)[0]["stats64"]
        assert stats["tx"]["packets"] >= 10 and stats["rx"]["packets"] >= 10
    _assert_clean_after_down(cli, cfg, n, n.sim.ptys)


@pytest.mark.parametrize("teardown", ["lcp", "dtr", "escape", "ath"])
def test_every_teardown_leaves_the_host_clean(cli: Cli, net, teardown: str) -> None:  # type: ignore[no-untyped-def]
    n = net()
    cfg = _config(cli, n, _session(n.sim.ptys[0], 2, "iot.example", teardown=teardown))
    _up(cli, cfg, n)
    n.dte_run("ping", "-c", "1", "-W", "3", SERVER_V4)
    _assert_clean_after_down(cli, cfg, n, [n.sim.ptys[0]])


def test_ipv6_only_grant_brings_up_ipv6_only(cli: Cli, net) -> None:  # type: ignore[no-untyped-def]
    n = net("--scenario", "tmobile-us-ipv6")
    cfg = _config(cli, n, _session(n.sim.ptys[0], 1, "fast.t-mobile.com"))
    state = _up(cli, cfg, n)
    sess = state["sessions"][0]
    assert sess["ipv4"] is None and sess["families_up"] == [6]
    assert state["modem"]["xlat_enabled"] is True  # app note §2.5
    n.dte_run("ping", "-6", "-c", "2", "-W", "3", SERVER_V6)
    _assert_clean_after_down(cli, cfg, n, [n.sim.ptys[0]])


def test_uembpf_range_traffic_never_reaches_the_dte(cli: Cli, net) -> None:  # type: ignore[no-untyped-def]
    n = net()
    cfg = _config(cli, n, _session(n.sim.ptys[0], 1, "internet"), 'embpf = "6000-6200"\n')
    _up(cli, cfg, n)
    listener = subprocess.Popen(
        ["ip", "netns", "exec", n.dte, "python3", "-c",
         ("import socket,sys\n"
          "socks=[]\n"
          "for p in (5999, 6100):\n"
          "    s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', p)); s.settimeout(4); socks.append(s)\n"
          "print('ready', flush=True)\n"
          "for s in socks:\n"
          "    try:\n"
          "        s.recvfrom(100); print('got', s.getsockname()[1], flush=True)\n"
          "    except OSError:\n"
          "        print('none', s.getsockname()[1], flush=True)\n")],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert listener.stdout is not None and listener.stdout.readline().strip() == "ready"
        for port in (5999, 6100):
            n.inet_run("python3", "-c",
                       "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                       f"[s.sendto(b'x', ('100.64.1.2', {port})) for _ in range(3)]")
        out, _ = listener.communicate(timeout=20)
    finally:
        listener.kill()
    # Outside the module's range: delivered. Inside: kept for the module's apps (app note §4.3).
    assert "got 5999" in out and "none 6100" in out, out
    _assert_clean_after_down(cli, cfg, n, [n.sim.ptys[0]])


def test_embedded_simulator_runs_with_the_real_escape_guard(cli: Cli, tmp_path: Path) -> None:
    """`port = "sim"` changes no timing of larappp's own: "+++" waits the app note's 2 s guard."""
    tag = uuid.uuid4().hex[:6]
    dte, inet = f"lp-dte-{tag}", f"lp-inet-{tag}"
    create_netns(dte)
    create_netns(inet)
    try:
        cfg = cli.write_config(
            '[modem]\nport = "sim"\nregistration_timeout = 20\nreboot_timeout = 20\ncommand_timeout = 5\n',
            '[[session]]\ncid = 1\napn = "internet"\nteardown = "escape"\n'
            f'[sim]\nnetwork = "{inet}"\nregistration_delay = 0.2\nreboot_time = 0.2\n',
        )
        up = cli.run(cfg, "up", netns=dte, ppp=True, timeout=120)
        assert up.returncode == 0, up.stderr + up.stdout
        state = json.loads(cli.run(cfg, "status", "--json", netns=dte).stdout)
        assert state["state"] == "up" and state["simulator"] is True, state
        assert state["sessions"][0]["ipv6_global"], state
        _ns(dte, "ping", "-c", "1", "-W", "3", SERVER_V4, timeout=30, check=True)
        _ns(dte, "ping", "-6", "-c", "1", "-W", "3", SERVER_V6, timeout=30, check=True)

        started = time.monotonic()
        down = cli.run(cfg, "down", netns=dte, timeout=90)
        took = time.monotonic() - started
        assert down.returncode == 0, down.stderr + down.stdout
        assert took >= 2.0, f"down took {took:.2f} s: shorter than the module's 2 s escape guard"
        links = json.loads(_ns(dte, "ip", "-j", "link", timeout=10, check=True).stdout)
        assert [link["ifname"] for link in links] == ["lo"]
        assert _ns(dte, "ip", "route", timeout=10, check=True).stdout.strip() == ""
    finally:
        cli.cleanup()
        delete_netns(dte)
        delete_netns(inet)
