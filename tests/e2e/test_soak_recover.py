"""The short recovery soak of CI: five drop-and-recover cycles of one daemon, its fds and
RSS flat, nothing left behind. The long one (200 cycles) is `scripts/soak_recover.py`,
on the same cycles (tests/e2e/recovery_soak.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.recovery_soak import HEADER, drifts, run_recovery_soak
from tests.e2e.soak import HostSnapshot, leftovers

pytestmark = pytest.mark.root

CYCLES = 5


def test_five_drops_are_each_seen_and_redialled_and_leave_nothing(tmp_path: Path) -> None:
    before = HostSnapshot.take(tmp_path)
    cycles = run_recovery_soak(CYCLES, tmp_path)
    after = HostSnapshot.take(tmp_path)

    report = "\n".join([HEADER, *(cycle.row() for cycle in cycles)])
    print(report)
    assert [cycle.index for cycle in cycles] == list(range(CYCLES))
    for drift in drifts(cycles):
        assert drift.flat, f"{drift.line()}\n{report}"
    assert leftovers(before, after, tmp_path) == []
