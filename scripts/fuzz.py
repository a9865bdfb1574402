#!/usr/bin/env python3
"""Fuzz larappp's parsers with atheris (libFuzzer, coverage-guided): 10^6 inputs per target.

    python scripts/fuzz.py                    # every target, 1,000,000 inputs each
    python scripts/fuzz.py at hdlc --runs 20000

Each target (tests/fuzz_targets.py) runs in its own process, instrumented, with a
per-input time bound (libFuzzer -timeout) and an RSS cap (-rss_limit_mb). The child
reports its RSS after the first inputs and after the last one; the parent prints one
line per target: inputs, seconds, inputs/s, RSS before/after, crashes. A crash (an
exception the parser's contract does not allow, a failed invariant, a hang, memory over
the cap) leaves its input in --artifacts and makes the exit status 1. Replay one with
`python scripts/fuzz.py NAME --replay FILE`. Needs `pip install atheris`.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RSS_SAMPLE_AFTER = 10_000  # inputs: the "before" RSS, once imports and first allocations are done


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(name: str, runs: int, libfuzzer_args: list[str]) -> None:
    """Run inside the fuzzing process: instrument larappp, hand one target to libFuzzer."""
    import atheris

    sys.path.insert(0, str(ROOT))
    with atheris.instrument_imports(include=["larappp", "tests.fuzz_targets"]):
        from tests.fuzz_targets import TARGET_BY_NAME
    target = TARGET_BY_NAME[name]
    count = 0
    rss_before = 0.0

    def one_input(data: bytes) -> None:
        nonlocal count, rss_before
        target.check(data)
        count += 1
        if count == min(RSS_SAMPLE_AFTER, runs):
            rss_before = rss_mb()
        if count == runs:
            print(f"FUZZ-RSS {rss_before:.1f} {rss_mb():.1f}", file=sys.stderr, flush=True)

    atheris.Setup([sys.argv[0], *libfuzzer_args], one_input)
    atheris.Fuzz()


def replay(name: str, path: Path) -> None:
    """Run one saved input without instrumentation, showing the traceback."""
    sys.path.insert(0, str(ROOT))
    from tests.fuzz_targets import TARGET_BY_NAME

    TARGET_BY_NAME[name].check(path.read_bytes())
    print(f"{name}: {path} runs without a crash")


def run_target(name: str, args: argparse.Namespace) -> dict[str, object]:
    sys.path.insert(0, str(ROOT))
    from tests.fuzz_targets import TARGET_BY_NAME

    target = TARGET_BY_NAME[name]
    artifacts = Path(args.artifacts) / name
    artifacts.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"larappp-fuzz-{name}-") as corpus:
        for index, seed in enumerate(target.seeds):
            Path(corpus, f"seed{index}").write_bytes(seed)
        libfuzzer = [
            f"-runs={args.runs}",
            f"-timeout={args.timeout}",
            f"-rss_limit_mb={args.rss_limit_mb}",
            f"-max_len={args.max_len}",
            f"-artifact_prefix={artifacts}/",
            f"-seed={args.seed}",
            "-print_final_stats=1",
            corpus,
        ]
        command = [sys.executable, __file__, "--child", name, str(args.runs), *libfuzzer]
        start = time.monotonic()
        proc = subprocess.run(
            command, check=False, capture_output=True, text=True, errors="replace", cwd=ROOT
        )
        seconds = time.monotonic() - start
    output = proc.stderr + proc.stdout
    done = re.search(r"Done (\d+) runs in (\d+) second", output)
    rss = re.search(r"FUZZ-RSS ([\d.]+) ([\d.]+)", output)
    crashed = proc.returncode != 0 or done is None
    result: dict[str, object] = {
        "name": name,
        "inputs": int(done.group(1)) if done else _last_count(output),
        "seconds": seconds,
        "rss_before": float(rss.group(1)) if rss else None,
        "rss_after": float(rss.group(2)) if rss else None,
        "crashed": crashed,
        "artifacts": sorted(str(p) for p in artifacts.iterdir()),
    }
    if crashed:
        tail = "\n".join(output.splitlines()[-40:])
        print(f"--- {name}: exit {proc.returncode}\n{tail}\n---", file=sys.stderr)
    return result


def _last_count(output: str) -> int:
    counts = re.findall(r"^#(\d+)\s", output, re.MULTILINE)
    return int(counts[-1]) if counts else 0


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], int(sys.argv[3]), sys.argv[4:])
        return 0
    sys.path.insert(0, str(ROOT))
    from tests.fuzz_targets import TARGETS

    names = [target.name for target in TARGETS]
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("targets", nargs="*", metavar="TARGET", help=", ".join(names))
    parser.add_argument("--runs", type=int, default=1_000_000, help="inputs per target")
    parser.add_argument("--timeout", type=int, default=2, help="seconds one input may take")
    parser.add_argument(
        "--rss-limit-mb", type=int, default=1024, help="memory cap of a fuzzing process"
    )
    parser.add_argument("--max-len", type=int, default=4096, help="longest input")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--artifacts", default=str(ROOT / "fuzz-artifacts"), help="where crashing inputs go"
    )
    parser.add_argument(
        "--replay", type=Path, help="run one saved input of TARGET and show the traceback"
    )
    args = parser.parse_args()
    unknown = sorted(set(args.targets) - set(names))
    if unknown:
        parser.error(f"unknown target {unknown[0]}; the targets are {', '.join(names)}")
    if args.replay:
        replay(args.targets[0], args.replay)
        return 0
    print(
        f"{'target':<12} {'inputs':>9} {'seconds':>8} {'inputs/s':>9} {'RSS MB before':>14} {'after':>6}  result"
    )
    failed = False
    for name in args.targets or names:
        r = run_target(name, args)
        failed |= bool(r["crashed"])
        rate = int(r["inputs"]) / float(r["seconds"]) if r["seconds"] else 0.0  # type: ignore[call-overload, arg-type]
        before = f"{r['rss_before']:.1f}" if r["rss_before"] is not None else "-"
        after = f"{r['rss_after']:.1f}" if r["rss_after"] is not None else "-"
        verdict = "CRASH " + " ".join(r["artifacts"]) if r["crashed"] else "no crash"  # type: ignore[arg-type]
        print(
            f"{name:<12} {r['inputs']:>9} {r['seconds']:>8.1f} {rate:>9.0f} {before:>14} {after:>6}  {verdict}",
            flush=True,
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
