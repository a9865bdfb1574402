#!/usr/bin/env python3
"""Soak: 200 drop-and-recover cycles of one `larappp` session against the simulator, as root.

    python scripts/soak_recover.py               # 200 cycles
    python scripts/soak_recover.py --cycles 20

One daemon stays up; each cycle the simulated network drops the call (NO CARRIER) and
larappp must see it, undo the session on the host and redial by itself. Prints one line
per cycle (seconds from the drop to the loss larappp recorded, to ping and ping -6
answered again; the daemon's open fds and RSS once back), then the first decile of each
series against its last, and what the run left on the host. Exit status 1 if a cycle
failed, the daemon's fds or RSS grew, or something was left behind; Ctrl-C stops the run
cleanly and still prints the figures of the cycles done. The cycles are
tests/e2e/recovery_soak.py, which the suite runs a few of (tests/e2e/test_soak_recover.py).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from tests.e2e.recovery_soak import HEADER, RecoveryCycle, drifts, run_recovery_soak
    from tests.e2e.soak import HostSnapshot, leftovers

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=200)
    args = parser.parse_args()
    cycles: list[RecoveryCycle] = []
    with tempfile.TemporaryDirectory(prefix="larappp-soak-recover-") as tmp:
        workdir = Path(tmp)
        before = HostSnapshot.take(workdir)
        print(HEADER, flush=True)
        start = time.monotonic()

        def report(cycle: RecoveryCycle) -> None:
            cycles.append(cycle)
            print(cycle.row(), flush=True)

        try:
            run_recovery_soak(args.cycles, workdir, report)
        except AssertionError as exc:
            print(f"soak failed: {exc}", file=sys.stderr)
        except KeyboardInterrupt:
            print("interrupted: figures of the cycles done so far", file=sys.stderr)
        elapsed = time.monotonic() - start
        left = leftovers(before, HostSnapshot.take(workdir), workdir)
    failed = len(cycles) < args.cycles
    print(f"\n{len(cycles)} of {args.cycles} cycles in {elapsed:.0f} s")
    for name in ("detected", "usable_v4", "usable_v6"):
        values = sorted(getattr(c, name) for c in cycles)
        if values:
            print(f"{name:<14} median {statistics.median(values):.3f} s  max {values[-1]:.3f} s")
    for drift in drifts(cycles) if cycles else []:
        print(drift.line())
        failed |= not drift.flat
    print("left behind: " + (", ".join(left) if left else "nothing"))
    return 1 if failed or left else 0


if __name__ == "__main__":
    sys.exit(main())
