#!/usr/bin/env python3
"""Fuzz larappp's parsers with atheris (libFuzzer, coverage-guided): 10^6 inputs per target.

    python scripts/fuzz.py                    # every target, 1,000,000 inputs each
    python scripts/fuzz.py at hdlc --runs 20000 --jobs 2
    python scripts/fuzz.py --max-seconds 600  # a time budget per target

Each target (tests/fuzz_targets.py) runs in its own process, instrumented, with a
per-input time bound (libFuzzer -timeout) and an RSS cap (-rss_limit_mb). The child
logs its RSS every RSS_EVERY inputs; the parent prints one line per target: inputs,
seconds, inputs/s, RSS at the first and the last sample (and libFuzzer's peak), and
the verdict. Each target's libFuzzer log is --artifacts/NAME.log. A crash (an exception
the parser's contract does not allow, a failed invariant, a hang, memory over the cap)
leaves its input in --artifacts/NAME/ and makes the exit status 1. Replay one with
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RSS_EVERY = 10_000  # inputs between two RSS samples in the log


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(name: str, libfuzzer_args: list[str]) -> None:
    """Run inside the fuzzing process: instrument larappp, hand one target to libFuzzer."""
    import atheris

    sys.path.insert(0, str(ROOT))
    with atheris.instrument_imports(include=["larappp", "tests.fuzz_targets"]):
        from tests.fuzz_targets import TARGET_BY_NAME
    target = TARGET_BY_NAME[name]
    count = 0

    def one_input(data: bytes) -> None:
        nonlocal count
        target.check(data)
        count += 1
        if count % RSS_EVERY == 0:
            print(f"FUZZ-RSS {count} {rss_mb():.1f}", file=sys.stderr, flush=True)

    atheris.Setup([sys.argv[0], *libfuzzer_args], one_input)
    atheris.Fuzz()


def replay(name: str, path: Path) -> None:
    """Run one saved input without instrumentation, showing the traceback."""
    sys.path.insert(0, str(ROOT))
    from tests.fuzz_targets import TARGET_BY_NAME

    TARGET_BY_NAME[name].check(path.read_bytes())
    print(f"{name}: {path} runs without a crash")


def run_target(name: str, args: argparse.Namespace) -> dict[str, object]:
    """One target in its own instrumented process; its libFuzzer log goes to --artifacts."""
    sys.path.insert(0, str(ROOT))
    from tests.fuzz_targets import TARGET_BY_NAME

    target = TARGET_BY_NAME[name]
    artifacts = Path(args.artifacts) / name
    artifacts.mkdir(parents=True, exist_ok=True)
    log = Path(args.artifacts) / f"{name}.log"
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
        if args.max_seconds:
            libfuzzer.insert(0, f"-max_total_time={args.max_seconds}")
        command = [sys.executable, __file__, "--child", name, *libfuzzer]
        start = time.monotonic()
        with log.open("w") as out:
            proc = subprocess.run(
                command, check=False, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
            )
        seconds = time.monotonic() - start
    output = log.read_text(errors="replace")
    executed = re.search(r"stat::number_of_executed_units:\s+(\d+)", output)
    samples = re.findall(r"FUZZ-RSS \d+ ([\d.]+)", output)
    peak = re.search(r"stat::peak_rss_mb:\s+(\d+)", output)
    found = sorted(str(p) for p in artifacts.iterdir())
    inputs = int(executed.group(1)) if executed else _last_count(output)
    return {
        "name": name,
        "inputs": inputs,
        "seconds": seconds,
        "rss_first": float(samples[0]) if samples else None,
        "rss_last": float(samples[-1]) if samples else None,
        "peak_rss": int(peak.group(1)) if peak else None,
        "crashed": proc.returncode != 0 or bool(found),
        "stopped_early": proc.returncode == 0 and inputs < args.runs,
        "artifacts": found,
        "log": str(log),
    }


def _last_count(output: str) -> int:
    counts = re.findall(r"^#(\d+)\s", output, re.MULTILINE)
    return int(counts[-1]) if counts else 0


def _mb(value: object) -> str:
    return f"{value:.1f}" if isinstance(value, float) else str(value) if value is not None else "-"


def _row(r: dict[str, object]) -> str:
    inputs, seconds = r["inputs"], r["seconds"]
    assert isinstance(inputs, int) and isinstance(seconds, float)
    rate = inputs / seconds if seconds else 0.0
    if r["crashed"]:
        verdict = f"CRASH, see {r['log']} {' '.join(r['artifacts'])}"  # type: ignore[arg-type]
    elif r["stopped_early"]:
        verdict = "no crash (stopped at the time limit)"
    else:
        verdict = "no crash"
    return (
        f"{r['name']:<12} {inputs:>9} {seconds:>8.1f} {rate:>9.0f} {_mb(r['rss_first']):>10}"
        f" {_mb(r['rss_last']):>6} {_mb(r['peak_rss']):>5}  {verdict}"
    )


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3:])
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
    parser.add_argument("--rss-limit-mb", type=int, default=1024, help="memory cap per target")
    parser.add_argument("--max-len", type=int, default=1024, help="longest input")
    parser.add_argument("--max-seconds", type=int, default=0, help="time budget per target")
    parser.add_argument("--jobs", type=int, default=1, help="targets fuzzed at the same time")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--artifacts", default=str(ROOT / "fuzz-artifacts"), help="logs and crashing inputs"
    )
    parser.add_argument("--replay", type=Path, help="run one saved input of TARGET, show why")
    args = parser.parse_args()
    unknown = sorted(set(args.targets) - set(names))
    if unknown:
        parser.error(f"unknown target {unknown[0]}; the targets are {', '.join(names)}")
    if args.replay:
        replay(args.targets[0], args.replay)
        return 0
    print(
        f"{'target':<12} {'inputs':>9} {'seconds':>8} {'inputs/s':>9} {'RSS_MB_1st':>10}"
        f" {'last':>6} {'peak':>5}  result"
    )
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(run_target, name, args) for name in args.targets or names]
        results = []
        for future in futures:
            results.append(future.result())
            print(_row(results[-1]), flush=True)
    return 1 if any(r["crashed"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
