"""CI's entry point: .ci/run runs the tests and the linters, and a suite that collected
nothing is a failure (pytest's exit 5), not a pass."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def _ci_with_make(tmp_path: Path, failing: str = "") -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """.ci/run with a stand-in `make` that records its targets (and fails the one named)."""
    calls = tmp_path / "calls"
    fake = tmp_path / "bin" / "make"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n[ "$1" = "{failing}" ] && exit 2\nexit 0\n')
    fake.chmod(0o755)
    env = dict(os.environ, PATH=f"{fake.parent}:{os.environ['PATH']}")
    done = subprocess.run([str(ROOT / ".ci" / "run")], capture_output=True, text=True, env=env, check=False, timeout=60)
    return done, calls.read_text().splitlines() if calls.exists() else []


def test_ci_runs_the_tests_and_the_linters(tmp_path: Path) -> None:
    done, calls = _ci_with_make(tmp_path)
    assert done.returncode == 0, done.stderr
    assert calls == ["test", "lint"]


@pytest.mark.parametrize("failing", ["test", "lint"])
def test_ci_fails_when_either_fails_and_still_runs_both(tmp_path: Path, failing: str) -> None:
    done, calls = _ci_with_make(tmp_path, failing)
    assert done.returncode != 0
    assert calls == ["test", "lint"]
    assert f"ci: make {failing} failed" in done.stderr


def test_make_lint_covers_tests_and_scripts() -> None:
    dry = subprocess.run(["make", "-n", "-o", ".deps-installed", "lint"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "ruff check larappp tests scripts" in dry.stdout and "mypy larappp" in dry.stdout


def test_make_test_fails_when_pytest_collects_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "no-tests"
    empty.mkdir()
    # -o: take the installed dependencies as they are (no pip, no apt)
    done = subprocess.run(
        ["make", "-o", ".deps-installed", "test", f"TESTS={empty}", "PYTHON=python3"],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=120,
    )
    assert done.returncode != 0
    assert "make test: pytest collected no tests" in done.stderr
