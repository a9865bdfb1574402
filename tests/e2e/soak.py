"""Up/down cycles of the real `larappp` against one simulator, measured cycle by cycle.

Shared by `scripts/soak.py` (1,000 cycles) and tests/e2e/test_soak.py (a few). Each
cycle runs `larappp up` (PPP on) in a DTE namespace, reads the daemon's open fds and
RSS while it is up, runs `larappp down` and checks the namespace is back to `lo` only.
The simulator lives through all cycles, so its fds and RSS are the long-run leak
detector; the daemon is new each cycle, so its figures show that nothing it reads at
start (state, runtime files) grows. `leftovers()` names what the run left on the host.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from larappp import runtime
from larappp.transport.netns import create_netns, delete_netns
from tests.e2e.conftest import Cli, SimProcess, start_sim


@dataclass(frozen=True)
class Cycle:
    """What one up/down cycle took and what the processes held while it was up."""

    index: int
    seconds: float
    up_seconds: float
    daemon_fds: int
    daemon_rss_mb: float
    sim_fds: int
    sim_rss_mb: float
    runtime_files: tuple[str, ...]

    def row(self) -> str:
        return (
            f"{self.index:>5} {self.seconds:>7.2f} {self.up_seconds:>6.2f} {self.daemon_fds:>6}"
            f" {self.daemon_rss_mb:>8.1f} {self.sim_fds:>6} {self.sim_rss_mb:>8.1f}"
        )


NAMESPACE_PREFIX = "lp-soak-"
IFNAME_PREFIX = "lara"  # larappp's default interface names (lara<cid>)
TEARDOWNS = ("lcp", "dtr", "escape", "ath")
# The daemon's record of its last run, and the lock that is never removed (larappp/runtime.py);
# the pid file and the host record must be gone after down.
KEPT_FILES = frozenset({runtime.STATE_FILE, runtime.LOG_FILE, runtime.LOCK_FILE})
HEADER = (
    f"{'cycle':>5} {'seconds':>7} {'up_s':>6} {'fds':>6} {'RSS_MB':>8} {'simfds':>6} {'simRSS':>8}"
)


@dataclass(frozen=True)
class HostSnapshot:
    """The host things a run could leave behind."""

    namespaces: frozenset[str]
    tun_links: frozenset[str]
    processes: frozenset[int]

    @staticmethod
    def take(workdir: Path) -> HostSnapshot:
        """The namespaces of a run in `workdir`, TUN links named like larappp's, processes
        whose command line names `workdir`."""
        tag = run_tag(workdir)
        return HostSnapshot(
            frozenset(name for name in _namespaces() if name.endswith(tag)),
            frozenset(name for name in _tun_links() if name.startswith(IFNAME_PREFIX)),
            frozenset(_processes_mentioning(str(workdir))),
        )


def run_tag(workdir: Path) -> str:
    """The suffix of the namespaces of a run in `workdir` (runs at the same time differ)."""
    return hashlib.sha256(str(workdir).encode()).hexdigest()[:8]


def _namespaces() -> list[str]:
    out = subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True, check=True)
    return [entry["name"] for entry in json.loads(out.stdout or "[]")]


def _tun_links() -> list[str]:
    return [link.name for link in Path("/sys/class/net").iterdir() if (link / "tun_flags").exists()]


def _processes_mentioning(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(int(entry.name))
    return found


def _fds_and_rss(pid: int) -> tuple[int, float]:
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return fds, int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def _dte_links(dte: str) -> list[str]:
    out = subprocess.run(
        ["ip", "-n", dte, "-j", "link"], capture_output=True, text=True, check=True
    )
    return [link["ifname"] for link in json.loads(out.stdout)]


@contextlib.contextmanager
def simulator_and_dte(workdir: Path, *sim_args: str) -> Iterator[tuple[str, SimProcess]]:
    """A DTE namespace and a one-port simulator whose network has a namespace of its own;
    both gone on exit, after `down` for whatever the test brought up."""
    tag = run_tag(workdir)
    dte, inet = f"{NAMESPACE_PREFIX}dte-{tag}", f"{NAMESPACE_PREFIX}inet-{tag}"
    create_netns(dte)
    sim = None
    try:
        sim = start_sim(workdir, "--network", inet, *sim_args, ports=1)
        yield dte, sim
    finally:
        if sim is not None:
            sim.stop()
        delete_netns(dte)
        delete_netns(inet)


def write_config(cli: Cli, sim: SimProcess, session: str = "", cid: int = 1) -> Path:
    """One session on the simulator's port; `session` adds keys to it."""
    return cli.write_config(
        f'[modem]\nport = "{sim.ptys[0]}"\nregistration_timeout = 20\n'
        "reboot_timeout = 20\ncommand_timeout = 5\n",
        f'[[session]]\ncid = {cid}\napn = "internet"\nport = "{sim.ptys[0]}"\n{session}',
    )


def run_soak(
    cycles: int,
    workdir: Path,
    on_cycle: Callable[[Cycle], None] = lambda cycle: None,
    teardown: str = "lcp",
) -> list[Cycle]:
    """`cycles` up/down cycles in namespaces of their own; everything removed on return."""
    cli = Cli(workdir)
    results: list[Cycle] = []
    with simulator_and_dte(workdir) as (dte, sim):
        try:
            _cycles(
                cli,
                dte,
                sim,
                write_config(cli, sim, f'teardown = "{teardown}"\n'),
                cycles,
                results,
                on_cycle,
            )
        finally:
            cli.cleanup()
    return results


def _cycles(
    cli: Cli,
    dte: str,
    sim: SimProcess,
    config: Path,
    cycles: int,
    results: list[Cycle],
    on_cycle: Callable[[Cycle], None],
) -> None:
    runtime = config.parent / "run"
    for index in range(cycles):
        start = time.monotonic()
        up = cli.run(config, "up", netns=dte, ppp=True, timeout=120)
        up_seconds = time.monotonic() - start
        if up.returncode != 0:
            raise AssertionError(
                f"cycle {index}: up failed ({up.returncode}): {up.stderr}{up.stdout}"
            )
        status = json.loads(cli.run(config, "status", "--json", netns=dte).stdout)
        if status.get("state") != "up":
            raise AssertionError(f"cycle {index}: status after up: {status}")
        daemon_fds, daemon_rss = _fds_and_rss(int(status["pid"]))
        sim_fds, sim_rss = _fds_and_rss(sim.proc.pid)
        down = cli.run(config, "down", netns=dte, timeout=90)
        if down.returncode != 0:
            raise AssertionError(
                f"cycle {index}: down failed ({down.returncode}): {down.stderr}{down.stdout}"
            )
        cli.started_up.clear()  # down worked: nothing for cleanup() to stop (not 1,000 downs)
        links = _dte_links(dte)
        if links != ["lo"]:
            raise AssertionError(
                f"cycle {index}: links left in the DTE namespace after down: {links}"
            )
        if _processes_mentioning(str(config)):
            raise AssertionError(f"cycle {index}: a larappp process outlived down")
        files = tuple(sorted(str(p.relative_to(runtime)) for p in runtime.rglob("*")))
        cycle = Cycle(
            index,
            time.monotonic() - start,
            up_seconds,
            daemon_fds,
            daemon_rss,
            sim_fds,
            sim_rss,
            files,
        )
        results.append(cycle)
        on_cycle(cycle)


@dataclass(frozen=True)
class Drift:
    """One figure's first decile against its last: flat when the last is within `slack`."""

    name: str
    first: float
    last: float
    slack: float

    @property
    def flat(self) -> bool:
        return self.last <= self.first + self.slack

    def line(self) -> str:
        verdict = "flat" if self.flat else "GROWS"
        return f"{self.name:<14} first decile {self.first:9.2f}  last decile {self.last:9.2f}  {verdict}"


def drifts(cycles: Sequence[Cycle]) -> list[Drift]:
    """Medians of the first and last tenth (at least three cycles each) of every series.

    Time may double: on a shared machine a burst of load from elsewhere moves it that much,
    while what leaks (fds, memory) grows with the cycles whatever the load.
    """
    tenth = max(min(3, len(cycles)), len(cycles) // 10)
    head, tail = cycles[:tenth], cycles[-tenth:]

    def median(part: Sequence[Cycle], attribute: str) -> float:
        return float(statistics.median(getattr(c, attribute) for c in part))

    def drift(attribute: str, slack: Callable[[float], float]) -> Drift:
        first = median(head, attribute)
        return Drift(attribute, first, median(tail, attribute), slack(first))

    return [
        drift("seconds", lambda first: first + 1.0),
        drift("daemon_fds", lambda first: 0),
        drift("daemon_rss_mb", lambda first: max(4.0, 0.1 * first)),
        drift("sim_fds", lambda first: 0),
        drift("sim_rss_mb", lambda first: max(4.0, 0.1 * first)),
    ]


def leftovers(before: HostSnapshot, after: HostSnapshot, workdir: Path) -> list[str]:
    """What the run left behind: namespaces, TUN links, processes, files other than the
    daemon's record of its last run and its lock (KEPT_FILES), the simulator's ptys."""
    found = [f"namespace {name}" for name in sorted(after.namespaces - before.namespaces)]
    found += [f"TUN link {name}" for name in sorted(after.tun_links - before.tun_links)]
    found += [f"process {pid}" for pid in sorted(after.processes - before.processes)]
    runtime = workdir / "run"
    if runtime.exists():
        found += [
            f"file {path}"
            for path in sorted(runtime.rglob("*"))
            if not path.is_dir() and path.name not in KEPT_FILES
        ]
    if (workdir / "sim").exists() and any((workdir / "sim").iterdir()):
        found.append(f"simulator ports in {workdir / 'sim'}")
    return found
