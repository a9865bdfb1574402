"""The short soak of CI: ten up/down cycles, every series flat, nothing left behind.

The long soak (1,000 cycles) is `scripts/soak.py`, on the same cycles (tests/e2e/soak.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.soak import Cycle, Drift, HostSnapshot, drifts, leftovers, run_soak

pytestmark = pytest.mark.root

CYCLES = 10


def test_ten_up_down_cycles_stay_flat_and_leave_nothing(tmp_path: Path) -> None:
    before = HostSnapshot.take(tmp_path)
    cycles = run_soak(CYCLES, tmp_path)
    after = HostSnapshot.take(tmp_path)

    assert [cycle.index for cycle in cycles] == list(range(CYCLES))
    report = "\n".join(cycle.row() for cycle in cycles)
    for drift in drifts(cycles):
        assert drift.flat, f"{drift.line()}\n{report}"
    assert len({cycle.runtime_files for cycle in cycles}) == 1, [c.runtime_files for c in cycles]
    assert leftovers(before, after, tmp_path) == []


def _cycle(index: int, fds: int, rss: float) -> Cycle:
    return Cycle(index, 5.0, 1.0, fds, rss, 14, 40.0, ())


def test_drift_compares_the_first_decile_with_the_last() -> None:
    steady = [_cycle(i, 17, 32.8) for i in range(20)]
    assert all(drift.flat for drift in drifts(steady))
    leaking = [_cycle(i, 17 + i // 5, 32.8 + i) for i in range(20)]
    grown = {drift.name for drift in drifts(leaking) if not drift.flat}
    assert grown == {"daemon_fds", "daemon_rss_mb"}
    assert Drift("x", 1.0, 2.0, 0.5).line().endswith("GROWS")
