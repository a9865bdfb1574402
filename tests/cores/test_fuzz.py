"""The short fuzzing run of CI: every parser target for a few seconds, no crash, no hang.

The long run (10^6 inputs per target, coverage-guided) is `scripts/fuzz.py`; both use
the targets of tests/fuzz_targets.py. Crashes the long run found are regression tests
next to the parser they broke.
"""

from __future__ import annotations

import contextlib
import importlib.util
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz_targets import TARGETS, Draw, FuzzTarget

ROOT = Path(__file__).resolve().parents[2]
PER_INPUT_LIMIT = 5.0  # seconds: a parser taking this long on one small input hangs


class InputHung(Exception):
    """One input ran past PER_INPUT_LIMIT."""


@contextlib.contextmanager
def time_bound(seconds: float) -> Iterator[None]:
    """Interrupt the block with InputHung after `seconds` (SIGALRM, main thread)."""

    def interrupt(signum: int, frame: object) -> None:
        raise InputHung(f"one input took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("target", TARGETS, ids=lambda target: target.name)
def test_target_survives_random_inputs(target: FuzzTarget) -> None:
    for seed in target.seeds:
        target.check(seed)

    @settings(
        max_examples=500,
        deadline=None,  # load on CI machines varies; time_bound catches a real hang
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )
    @given(st.one_of(st.binary(max_size=600), _mutated(target.seeds)))
    def run(data: bytes) -> None:
        with time_bound(PER_INPUT_LIMIT):
            target.check(data)

    run()


def _mutated(seeds: tuple[bytes, ...]) -> st.SearchStrategy[bytes]:
    """A seed with a few octets overwritten: stays close to a valid message."""

    @st.composite
    def mutate(draw: st.DrawFn) -> bytes:
        data = bytearray(draw(st.sampled_from(seeds)))
        for position, value in draw(
            st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6)
        ):
            if data:
                data[position % len(data)] = value
        return bytes(data + draw(st.binary(max_size=40)))

    return mutate()


def test_a_target_may_raise_only_what_its_contract_allows() -> None:
    def broken(data: bytes) -> None:
        raise KeyError(data)

    with pytest.raises(KeyError):
        FuzzTarget("broken", broken, (ValueError,)).check(b"x")
    FuzzTarget("allowed", broken, (KeyError,)).check(b"x")


def test_time_bound_interrupts_a_hang() -> None:
    with pytest.raises(InputHung), time_bound(0.05):
        while True:
            pass


def test_draw_reads_zeros_past_the_end() -> None:
    draw = Draw(b"\x01\x02")
    assert draw.number(3) == 0x010200
    assert (draw.byte(), draw.chunk(), draw.rest(), draw.exhausted) == (0, b"", b"", True)


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris is not installed")
def test_fuzz_script_runs_a_target_and_reports_figures(tmp_path: Path) -> None:
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "scripts/fuzz.py", "hdlc", "--runs", "3000", "--artifacts", str(tmp_path)],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    row = proc.stdout.splitlines()[-1].split()
    assert row[0] == "hdlc" and int(row[1]) == 3000 and row[-2:] == ["no", "crash"], proc.stdout
    assert time.monotonic() - start < 120
