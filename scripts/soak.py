#!/usr/bin/env python3
"""Soak: 1,000 `larappp up`/`down` cycles against the simulator, as root.

    python scripts/soak.py                  # 1,000 cycles, LCP teardown
    python scripts/soak.py --cycles 50 --teardown dtr

Prints one line per cycle (seconds, seconds to up, the daemon's fds and RSS while up,
the simulator's fds and RSS), then each series' first decile against its last decile
and what the run left on the host (namespaces, TUN links, processes, files). Exit
status 1 if a cycle failed, a series grew or something was left behind; Ctrl-C stops
the run cleanly and still prints the figures of the cycles done. The cycles
are tests/e2e/soak.py, which the suite runs a few of (tests/e2e/test_soak.py).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from tests.e2e.soak import (
        HEADER,
        TEARDOWNS,
        Cycle,
        HostSnapshot,
        drifts,
        leftovers,
        run_soak,
    )

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--teardown", choices=TEARDOWNS, default="lcp")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="larappp-soak-") as tmp:
        workdir = Path(tmp)
        before = HostSnapshot.take(workdir)
        print(HEADER, flush=True)
        start = time.monotonic()
        cycles: list[Cycle] = []

        def report(cycle: Cycle) -> None:
            cycles.append(cycle)
            print(cycle.row(), flush=True)

        try:
            run_soak(args.cycles, workdir, report, args.teardown)
        except AssertionError as exc:
            print(f"soak failed: {exc}", file=sys.stderr)
        except KeyboardInterrupt:
            print("interrupted: figures of the cycles done so far", file=sys.stderr)
        elapsed = time.monotonic() - start
        after = HostSnapshot.take(workdir)
        left = leftovers(before, after, workdir)
    failed = len(cycles) < args.cycles
    print(
        f"\n{len(cycles)} of {args.cycles} cycles in {elapsed:.0f} s ({elapsed / max(1, len(cycles)):.2f} s per cycle)"
    )
    for drift in drifts(cycles) if cycles else []:
        print(drift.line())
        failed |= not drift.flat
    if cycles and cycles[0].runtime_files != cycles[-1].runtime_files:
        print(f"runtime files changed: {cycles[0].runtime_files} -> {cycles[-1].runtime_files}")
        failed = True
    print("left behind: " + (", ".join(left) if left else "nothing"))
    return 1 if failed or left else 0


if __name__ == "__main__":
    sys.exit(main())
