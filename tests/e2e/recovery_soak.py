"""Drop-and-recover cycles of one running `larappp` daemon, measured cycle by cycle.

Shared by `scripts/soak_recover.py` (200 cycles) and tests/e2e/test_soak_recover.py (a
few). One daemon is brought up once; each cycle the simulated network drops the call
(`NO CARRIER`, through the simulator's control socket), and the cycle measures when
larappp saw the loss (`last_loss` in its state), when ping and ping -6 over the session
are answered again, and the daemon's open fds and RSS once it is back. The host must be
as before the first drop after every cycle (addresses, routes, DNS fragment, runtime
files, processes). The daemon lives through all cycles: its fds and RSS are the leak
detector; `drifts()` compares their first decile with their last.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Cli
from tests.e2e.soak import (
    NAMESPACE_PREFIX,
    Drift,
    _fds_and_rss,
    run_tag,
    simulator_and_dte,
    write_config,
)
from tests.e2e.test_fault_matrix import SESSION_KEYS, HostSnapshot, _fault, _usable_again
from tests.e2e.test_ppp_e2e import Net
from tests.e2e.test_recovery import _wait_for

HEADER = f"{'cycle':>5} {'detect_s':>8} {'v4_s':>6} {'v6_s':>6} {'fds':>5} {'RSS_MB':>7}"
#: what keeps a cycle from hanging (no goal)
LOSS_BOUND_S = 15.0


@dataclass(frozen=True)
class RecoveryCycle:
    """One drop: when it was seen, when IPv4 and IPv6 were usable again, the daemon after it."""

    index: int
    detected: float
    usable_v4: float
    usable_v6: float
    daemon_fds: int
    daemon_rss_mb: float

    def row(self) -> str:
        return (f"{self.index:>5} {self.detected:>8.3f} {self.usable_v4:>6.2f} {self.usable_v6:>6.2f}"
                f" {self.daemon_fds:>5} {self.daemon_rss_mb:>7.1f}")


def run_recovery_soak(
    cycles: int, workdir: Path, on_cycle: Callable[[RecoveryCycle], None] = lambda cycle: None,
) -> list[RecoveryCycle]:
    """`cycles` drops of one session of one daemon, in namespaces of their own; everything
    removed on return (AssertionError naming the cycle that went wrong)."""
    cli = Cli(workdir)
    results: list[RecoveryCycle] = []
    with simulator_and_dte(workdir) as (dte, sim):
        n = Net(dte, f"{NAMESPACE_PREFIX}inet-{run_tag(workdir)}", sim)
        try:
            config = write_config(cli, sim, SESSION_KEYS)
            up = cli.run(config, "up", netns=dte, timeout=120)
            if up.returncode != 0:
                raise AssertionError(f"up failed ({up.returncode}): {up.stderr}{up.stdout}")
            _cycles(n, config, cycles, results, on_cycle)
            down = cli.run(config, "down", netns=dte, timeout=90)
            if down.returncode != 0:
                raise AssertionError(f"down failed ({down.returncode}): {down.stderr}{down.stdout}")
        finally:
            cli.cleanup()
    return results


def _state(config: Path) -> dict[str, Any]:
    """The daemon's state file (what `status --json` reads), without starting a process."""
    state: dict[str, Any] = json.loads((config.parent / "run" / "state.json").read_text())
    return state


def _cycles(
    n: Net, config: Path, cycles: int, results: list[RecoveryCycle], on_cycle: Callable[[RecoveryCycle], None],
) -> None:
    pid = int(_state(config)["pid"])
    before = HostSnapshot.take(n, config)
    for index in range(cycles):
        injected = time.time()
        _fault(n, {"fault": "drop", "cid": 1})
        session = _wait_for(f"cycle {index}: the loss",
                            lambda seen=index: (s := _state(config)["sessions"][0])["losses"] > seen and s,
                            LOSS_BOUND_S)
        detected = float(session["last_loss"]) - injected
        usable_v4, usable_v6 = _usable_again(n, "lara1", injected)
        session = _state(config)["sessions"][0]
        if session["state"] != "up" or session["losses"] != index + 1 or session["redials"] < index + 1:
            raise AssertionError(f"cycle {index}: after the redial: {session}")
        differences = before.differences(HostSnapshot.take(n, config))
        if differences:
            raise AssertionError(f"cycle {index}: the host differs from before the first drop: {differences}")
        fds, rss = _fds_and_rss(pid)
        cycle = RecoveryCycle(index, detected, usable_v4, usable_v6, fds, rss)
        results.append(cycle)
        on_cycle(cycle)


def drifts(cycles: Sequence[RecoveryCycle]) -> list[Drift]:
    """Medians of the first and last tenth (at least three cycles each) of the daemon's fds
    and RSS: flat when the last is within one fd (a socket open at that moment) and
    max(4 MB, 10 %). Detection and recovery times are shown, not judged."""
    tenth = max(min(3, len(cycles)), len(cycles) // 10)
    head, tail = cycles[:tenth], cycles[-tenth:]

    def drift(attribute: str, slack: Callable[[float], float]) -> Drift:
        first = float(statistics.median(getattr(c, attribute) for c in head))
        last = float(statistics.median(getattr(c, attribute) for c in tail))
        return Drift(attribute, first, last, slack(first))

    return [
        drift("daemon_fds", lambda first: 1),
        drift("daemon_rss_mb", lambda first: max(4.0, 0.1 * first)),
        drift("detected", lambda first: float("inf")),
        drift("usable_v4", lambda first: float("inf")),
        drift("usable_v6", lambda first: float("inf")),
    ]
