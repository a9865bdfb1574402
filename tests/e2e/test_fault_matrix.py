"""End to end: every fault of the simulator's control socket, injected while ping runs.

Each row brings a session up in a DTE namespace (the control port is a port of its own,
as on a router), takes a snapshot of what larappp put on the host (addresses, routes, DNS
fragments, runtime files, processes), injects one fault through `larappp sim`'s control
socket (larappp/sim/control.py) while ping runs over the session, and measures:

- detection: from the injection to the loss larappp records (`last_loss` in
  `status --json`, a wall-clock time) or, for the faults that are no loss, to the change
  on the host (an NCP renegotiating: the kernel's timestamp of its family's address going,
  from `ip monitor`; an RA: the new or withdrawn address in `status`, polled);
- usable again: from the injection until ping and ping -6 to the internet are answered
  over the session's interface;

then checks the host is exactly as in the snapshot (modulo what the fault changes by
design: a renumbered prefix) and that `larappp down` ends clean. The three-session rows
inject the fault on one session and check the others' ping never stopped.

The figures are printed (`pytest -s`); the issue's goals are measured, not asserted: the
only time bounds here keep a test from hanging. Short LCP echo settings and the
simulator's fast knobs (reboot and registration times) keep the cost down.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from larappp.sim import control
from tests.e2e import test_ppp_e2e
from tests.e2e.conftest import Cli
from tests.e2e.test_ppp_e2e import (
    SERVER_V4,
    SERVER_V6,
    Net,
    _assert_clean_after_down,
    _config,
    _session,
)
from tests.e2e.test_recovery import _status, _wait_for

#: the `net` fixture (DTE namespace, simulator with its internet namespace), shared with test_ppp_e2e
net = test_ppp_e2e.net

pytestmark = pytest.mark.root

#: what keeps a row from hanging: no goal, a bound well over any figure measured
DETECT_BOUND_S = 15.0
RECOVER_BOUND_S = 60.0
#: LCP echo every second, two missed replies a loss (the smallest interval the config takes)
SESSION_KEYS = "lcp_echo_interval = 1\nlcp_echo_failure = 2\nholdoff = 0.3\n"
NEW_PREFIX = "2001:db8:0:99::/64"
#: its addresses as text start with this
NEW_PREFIX_TEXT = "2001:db8:0:99:"
EXPIRES = re.compile(r" expires \d+sec")


# -- the simulator's control socket ------------------------------------------------------

def _fault(n: Net, request: dict[str, Any]) -> dict[str, Any]:
    """One request to the simulator's control socket (its default place in the pty dir)."""
    reply = control.request(str(Path(n.sim.ptys[0]).parent / "control.sock"), request, timeout=10)
    assert reply["ok"], (request, reply)
    return reply


# -- what larappp put on the host --------------------------------------------------------

@dataclass(frozen=True)
class HostSnapshot:
    """Addresses, routes, DNS fragments, runtime files and processes of one run."""

    addresses: tuple[tuple[str, str, int], ...]
    routes: tuple[str, ...]
    dns: tuple[tuple[str, str], ...]
    files: tuple[str, ...]
    processes: tuple[int, ...]

    @staticmethod
    def take(n: Net, cfg: Path, renumbered: tuple[str, str] | None = None) -> HostSnapshot:
        """`renumbered` (old, new): a prefix the network renumbered, written as the old one so
        that a snapshot after the renumbering compares equal to the one before."""
        def fix(text: str) -> str:
            return text.replace(*renumbered) if renumbered else text

        links = json.loads(n.dte_run("ip", "-j", "addr").stdout)
        addresses = sorted(
            (link["ifname"], fix(_address_key(a)), a["prefixlen"])
            for link in links if link["ifname"] != "lo" for a in link["addr_info"]
        )
        routes = sorted(
            fix(EXPIRES.sub("", line.strip()))
            for family in ("-4", "-6") for line in n.dte_run("ip", family, "route").stdout.splitlines()
            if line.strip()
        )
        rundir = cfg.parent / "run"
        fragments = rundir / "resolv.conf.d"
        dns = sorted((p.name, p.read_text()) for p in fragments.iterdir()) if fragments.is_dir() else []
        files = sorted(str(p.relative_to(rundir)) for p in rundir.rglob("*"))
        return HostSnapshot(tuple(addresses), tuple(routes), tuple(dns), tuple(files), tuple(_processes(cfg.parent)))

    def differences(self, other: HostSnapshot) -> list[str]:
        found = []
        for name in ("addresses", "routes", "dns", "files", "processes"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine != theirs:
                found.append(f"{name}: gone {sorted(set(mine) - set(theirs))}, new {sorted(set(theirs) - set(mine))}"
                             + ("" if set(mine) != set(theirs) else f" (duplicates: {theirs})"))
        return found


def _address_key(address: dict[str, Any]) -> str:
    """An address as compared across a fault: a link-local address by its scope only (a new
    IPV6CP identifier replaces it by design), every other by its value."""
    local = str(address["local"])
    return "fe80::/link" if address.get("scope") == "link" and local.startswith("fe80") else local


def _processes(workdir: Path) -> list[int]:
    """Processes whose command line names the test's directory (larappp, the simulator)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(workdir).encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return sorted(found)


# -- measuring ---------------------------------------------------------------------------

def _session_of(cli: Cli, cfg: Path, n: Net, cid: int) -> dict[str, Any]:
    return next(s for s in _status(cli, cfg, n)["sessions"] if s["cid"] == cid)


@dataclass
class AddressMonitor:
    """`ip monitor address` in the DTE namespace, with the kernel's timestamps: when an NCP
    going down took its family's addresses off the host (no loss, nothing in `status`)."""

    n: Net
    proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["ip", "-n", self.n.dte, "-ts", "monitor", "address"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        time.sleep(0.3)  # subscribed before the fault

    def first_deleted(self, ifname: str, family: str, since: float) -> float | None:
        """Stop; the time of the first address of `family` ("inet", "inet6") removed from
        `ifname` at or after `since`, or None."""
        assert self.proc is not None
        self.proc.terminate()
        out = self.proc.communicate(timeout=10)[0]
        for line in out.splitlines():
            stamp, _, event = line.partition("] ")
            words = event.split()
            if words[:1] == ["Deleted"] and words[2:4] == [ifname, family]:
                when = datetime.fromisoformat(stamp.lstrip("[")).timestamp()
                if when >= since:
                    return when
        return None


def _answered(n: Net, ifname: str, family: str) -> bool:
    target = SERVER_V4 if family == "-4" else SERVER_V6
    ping = n.dte_run("ping", family, "-n", "-c", "1", "-W", "1", "-I", ifname, target, timeout=10, check=False)
    if ping.returncode != 0 and "bytes from" not in ping.stdout:
        time.sleep(0.05)  # no such device yet: ping failed at once
        return False
    return True


def _usable_again(n: Net, ifname: str, since: float) -> tuple[float, float]:
    """Seconds from `since` (wall clock) until ping and ping -6 over `ifname` are answered."""
    got: dict[str, float] = {}
    deadline = time.monotonic() + RECOVER_BOUND_S
    while len(got) < 2:
        for family in ("-4", "-6"):
            if family not in got and _answered(n, ifname, family):
                got[family] = time.time() - since
        if time.monotonic() > deadline:
            raise AssertionError(f"{ifname} not usable again within {RECOVER_BOUND_S} s (answered: {got})")
    return got["-4"], got["-6"]


@dataclass
class Pinger:
    """ping (v4 and v6) running over one interface for the whole of a fault."""

    n: Net
    ifname: str
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def start(self) -> None:
        for family, target in (("-4", SERVER_V4), ("-6", SERVER_V6)):
            self.procs.append(subprocess.Popen(
                ["ip", "netns", "exec", self.n.dte, "ping", family, "-n", "-i", "0.2", "-W", "1", "-I", self.ifname,
                 target], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))

    def stop(self) -> list[tuple[int, int, str]]:
        """(sent, answered, output) of each ping; `ip netns exec` execs ping, so SIGINT reaches it
        and it prints its summary."""
        results = []
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            try:
                out = proc.communicate(timeout=10)[0]
            except subprocess.TimeoutExpired:
                proc.kill()
                out = proc.communicate()[0]
            sent = answered = 0
            for line in out.splitlines():
                if "packets transmitted" in line:
                    parts = line.split()
                    sent, answered = int(parts[0]), int(parts[3])
            results.append((sent, answered, out))
        self.procs.clear()
        return results




# -- the faults --------------------------------------------------------------------------

Requests = Callable[[int], list[dict[str, Any]]]


@dataclass(frozen=True)
class Fault:
    """One row: the control requests that inject it (for the session's cid), whether larappp
    must see a loss, and what the network does after the loss was seen (`restore`)."""

    name: str
    inject: Requests
    loss: bool = True
    restore: Requests | None = None
    #: the fault hits one call, not the whole module: the other sessions must not notice it
    one_session: bool = True


FAULTS = [
    Fault("drop", lambda cid: [{"fault": "drop", "cid": cid}]),
    Fault("deactivate", lambda cid: [{"fault": "deactivate", "cid": cid}]),
    Fault("silence", lambda cid: [{"fault": "silence", "cid": cid, "seconds": 60}]),
    Fault("reboot", lambda cid: [{"fault": "reboot", "seconds": 1}], one_session=False),
    Fault("unplug", lambda cid: [{"fault": "unplug", "seconds": 2}], one_session=False),
    Fault("radio-off", lambda cid: [{"fault": "radio-off"}], restore=lambda cid: [{"fault": "radio-on"}],
          one_session=False),
    Fault("renegotiate-ipcp", lambda cid: [{"fault": "renegotiate", "cid": cid, "family": 4}], loss=False),
    Fault("renegotiate-ipv6cp", lambda cid: [{"fault": "renegotiate", "cid": cid, "family": 6}], loss=False),
    Fault("ra-new-prefix", lambda cid: [{"fault": "ra", "cid": cid, "prefix": NEW_PREFIX}], loss=False),
    Fault("ra-zero-lifetime", lambda cid: [{"fault": "ra", "cid": cid, "lifetime": 0}], loss=False,
          restore=lambda cid: [{"fault": "ra", "cid": cid, "lifetime": 1800}]),
]


@dataclass
class Figures:
    fault: str
    sessions: int
    detected: float | None = None
    usable_v4: float | None = None
    usable_v6: float | None = None
    restored_at: float | None = None
    cause: str = ""
    #: the other sessions' times to usable again, when the fault hit them too
    others: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)

    def line(self) -> str:
        def s(value: float | None) -> str:
            return "-" if value is None else f"{value:.3f} s"

        after = "" if self.restored_at is None else f" (network back at {self.restored_at:.2f} s)"
        if self.others:
            after += f" (others: {', '.join(self.others)})"
        return (f"FAULT {self.fault:<19} sessions {self.sessions}: detected {s(self.detected)}, usable v4"
                f" {s(self.usable_v4)} v6 {s(self.usable_v6)} after injection{after}; cause {self.cause!r};"
                f" left behind: {', '.join(self.leftovers) or 'nothing'}")


def _prefix_of(address: str) -> str:
    """The /64 of a global address as text ("2001:db8:0:1:"), for renumbering a snapshot."""
    return ":".join(address.split(":")[:4]) + ":"


def _run_fault(cli: Cli, cfg: Path, n: Net, cid: int, fault: Fault, cids: list[int]) -> Figures:
    """Inject `fault` on session `cid` while every session pings; measure, check the snapshot."""
    figures = Figures(fault.name, len(cids))
    sessions = {s["cid"]: s for s in _status(cli, cfg, n)["sessions"]}
    mine = sessions[cid]
    assert all(s["state"] == "up" for s in sessions.values()), sessions
    ifname = mine["ifname"]
    before = HostSnapshot.take(n, cfg)
    old_prefix = _prefix_of(mine["ipv6_global"][0])
    pingers = {c: Pinger(n, sessions[c]["ifname"]) for c in cids}
    for pinger in pingers.values():
        pinger.start()
    monitor = AddressMonitor(n)
    monitor.start()
    try:
        time.sleep(1)
        injected = time.time()
        for request in fault.inject(cid):
            _fault(n, request)
        if fault.loss:
            lost = _wait_for("the loss", lambda: (s := _session_of(cli, cfg, n, cid))["losses"] > mine["losses"] and s,
                             DETECT_BOUND_S)
            figures.detected = lost["last_loss"] - injected
            figures.cause = lost["last_loss_cause"]
        elif fault.name == "ra-new-prefix":
            _wait_for("the new prefix", lambda: any(a.startswith(NEW_PREFIX_TEXT)
                                                    for a in _session_of(cli, cfg, n, cid)["ipv6_global"]),
                      DETECT_BOUND_S)
            figures.detected = time.time() - injected
        elif fault.name == "ra-zero-lifetime":
            _wait_for("the withdrawn address", lambda: not _session_of(cli, cfg, n, cid)["ipv6_global"], DETECT_BOUND_S)
            figures.detected = time.time() - injected
        if fault.restore is not None:
            time.sleep(0.5)
            figures.restored_at = time.time() - injected
            for request in fault.restore(cid):
                _fault(n, request)
        if fault.loss:
            back = _wait_for("the redial", lambda: (s := _session_of(cli, cfg, n, cid))["state"] == "up" and s,
                             RECOVER_BOUND_S)
            assert back["redials"] > mine["redials"], back  # every attempt counts (radio off: more than one)
        figures.usable_v4, figures.usable_v6 = _usable_again(n, ifname, injected)
        if not fault.one_session:
            # Every session lost its call: each is back (measured one after the other, so
            # the later figures are upper bounds).
            _wait_for("every session", lambda: all(s["state"] == "up" for s in _status(cli, cfg, n)["sessions"]),
                      RECOVER_BOUND_S)
            for other in (c for c in cids if c != cid):
                v4, v6 = _usable_again(n, sessions[other]["ifname"], injected)
                figures.others.append(f"{sessions[other]['ifname']} v4 {v4:.2f} s v6 {v6:.2f} s")
        if fault.name.startswith("renegotiate"):
            # No loss: the NCP going down takes that family off the host until it reopens.
            seen = monitor.first_deleted(ifname, "inet" if fault.name.endswith("-ipcp") else "inet6", injected)
            figures.detected = None if seen is None else seen - injected
    finally:
        pinged = {c: p.stop() for c, p in pingers.items()}
        if monitor.proc is not None and monitor.proc.poll() is None:
            monitor.proc.kill()
            monitor.proc.wait()
    renumbered = (NEW_PREFIX_TEXT, old_prefix) if fault.name == "ra-new-prefix" else None
    after = HostSnapshot.take(n, cfg, renumbered)
    figures.leftovers = before.differences(after)
    print(figures.line())
    assert figures.leftovers == [], figures.line()
    assert _session_of(cli, cfg, n, cid).get("warnings") == mine.get("warnings"), "new warnings after the fault"
    if fault.name.startswith("renegotiate"):
        assert figures.detected is not None, "the NCP going down took nothing off the host"
    if fault.one_session:
        for other in (c for c in cids if c != cid):
            for sent, answered, out in pinged[other]:
                # the other sessions' ping kept going: at most a reply late under load
                assert sent >= 5 and answered >= sent - 2, f"session {other} disturbed:\n{out}"
            now = _session_of(cli, cfg, n, other)
            assert now["losses"] == 0 and now["up_since"] == sessions[other]["up_since"], now
    return figures


def _matrix_config(cli: Cli, n: Net, cids: list[int]) -> Path:
    """Sessions on the first ports, the control port the last one (no session on it: it hears
    +CGEV and +CEREG)."""
    control = n.sim.ptys[-1]
    sessions = "".join(
        _session(n.sim.ptys[i], cid, f"apn{cid}.example" if len(cids) > 1 else "internet",
                 extra=f"metric = {100 * cid}\n{SESSION_KEYS}")
        for i, cid in enumerate(cids)
    )
    cfg = _config(cli, n, sessions)
    cfg.write_text(cfg.read_text().replace(f'port = "{n.sim.ptys[0]}"', f'port = "{control}"', 1))
    return cfg


def _up(cli: Cli, cfg: Path, n: Net) -> None:
    up = cli.run(cfg, "up", netns=n.dte, timeout=120)
    assert up.returncode == 0, up.stderr + up.stdout


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_one_session_recovers_from(cli: Cli, net, fault: Fault) -> None:  # type: ignore[no-untyped-def]
    n: Net = net(ports=2)
    cfg = _matrix_config(cli, n, [1])
    _up(cli, cfg, n)
    _run_fault(cli, cfg, n, 1, fault, [1])
    _assert_clean_after_down(cli, cfg, n, [n.sim.ptys[0]])


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_three_sessions_recover_from(cli: Cli, net, fault: Fault) -> None:  # type: ignore[no-untyped-def]
    """On session 2 (cid 2): a fault of one call leaves sessions 1 and 3 alone (their ping
    goes on); a fault of the whole module (reboot, unplug, radio off) brings all three back."""
    n: Net = net(ports=4)
    cfg = _matrix_config(cli, n, [1, 2, 3])
    _up(cli, cfg, n)
    _run_fault(cli, cfg, n, 2, fault, [1, 2, 3])
    _assert_clean_after_down(cli, cfg, n, n.sim.ptys[:3])


def test_ports_gone_longer_than_maxfail_allows_end_the_daemon_with_exit_8(cli: Cli, net, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The module is unplugged for longer than `maxfail` redials wait for it (each waits
    `reboot_timeout` for the port): exit 8 (README), the host clean, though the simulator
    still runs. (tests/e2e/test_recovery.py gives up on a simulator killed for good.)"""
    n: Net = net(ports=2)
    cfg = _matrix_config(cli, n, [1])
    cfg.write_text(cfg.read_text().replace("holdoff = 0.3", "holdoff = 0.2\nmaxfail = 2")
                   .replace("reboot_timeout = 20", "reboot_timeout = 1"))
    done: list[subprocess.CompletedProcess[str]] = []
    runner = threading.Thread(target=lambda: done.append(cli.run(cfg, "up", "--foreground", netns=n.dte, timeout=120)))
    runner.start()
    state_file = cfg.parent / "run" / "state.json"
    _wait_for("the session", lambda: state_file.exists() and json.loads(state_file.read_text())["state"] == "up", 60)
    injected = time.monotonic()
    _fault(n, {"fault": "unplug", "seconds": 60})
    runner.join(90)
    took = time.monotonic() - injected
    assert done, "larappp up --foreground did not end"
    assert done[0].returncode == 8, done[0].stderr  # GaveUp, as README documents
    state = json.loads(state_file.read_text())
    assert state["state"] == "given-up" and state["sessions"][0]["state"] == "given-up", state
    assert "maxfail = 2" in state["error"], state
    links = json.loads(n.dte_run("ip", "-j", "link").stdout)
    assert [link["ifname"] for link in links] == ["lo"], links
    assert n.dte_run("ip", "route").stdout.strip() == "" and n.dte_run("ip", "-6", "route").stdout.strip() == ""
    fragments = cfg.parent / "run" / "resolv.conf.d"
    assert not fragments.exists() or not list(fragments.iterdir())
    assert _processes(cfg.parent) == [n.sim.proc.pid]
    print(f"FAULT unplug for 60 s, maxfail = 2: gave up (exit 8) {took:.2f} s after the ports went")
