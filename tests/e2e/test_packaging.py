"""Packaging conventions: the man page and shell completion come from the argument parser,
the sdist carries the tests, units and examples, the licence file matches pyproject."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT


def test_the_licence_file_matches_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == {"text": "MIT"}
    assert (ROOT / "LICENSE").read_text().splitlines()[0] == "MIT License"
    assert (ROOT / "larappp" / "py.typed").exists()


def test_the_man_page_and_completion_scripts_are_generated_from_the_parser(tmp_path: Path) -> None:
    pytest.importorskip("build_manpages")
    pytest.importorskip("argcomplete")
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_docs.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    man = (tmp_path / "man1" / "larappp.1").read_text()
    assert man.startswith(".TH LARAPPP")
    for text in ("larappp up", "larappp down", "larappp status", "larappp check", r"\-\-log\-level", "schema_version"):
        assert text in man, text
    assert "complete" in (tmp_path / "completion" / "larappp.bash").read_text()
    assert (tmp_path / "completion" / "larappp.zsh").read_text().startswith("#compdef larappp")


@pytest.mark.parametrize(("line", "expected"), [
    ("larappp st", {"status"}),
    ("larappp status --j", {"--json"}),
    ("larappp up --log-level w", {"warning"}),
])
def test_the_command_answers_shell_completion(tmp_path: Path, line: str, expected: set[str]) -> None:
    pytest.importorskip("argcomplete")
    answer = tmp_path / "answer"
    env = dict(os.environ, PYTHONPATH=str(ROOT), _ARGCOMPLETE="1", _ARGCOMPLETE_IFS="\n", COMP_LINE=line,
               COMP_POINT=str(len(line)), _ARGCOMPLETE_STDOUT_FILENAME=str(answer))
    subprocess.run([sys.executable, "-m", "larappp"], env=env, timeout=60, check=False, capture_output=True)
    assert {word.strip() for word in answer.read_text().split("\n")} == expected


def test_the_sdist_carries_tests_units_and_examples(tmp_path: Path) -> None:
    pytest.importorskip("build")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (tarball,) = tmp_path.glob("larappp-*.tar.gz")
    with tarfile.open(tarball) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    for wanted in ("LICENSE", "README.md", "larappp/py.typed", "larappp/cli.py", "larappp/__main__.py",
                   "tests/conftest.py", "tests/e2e/test_packaging.py", "systemd/larappp@.service",
                   "udev/77-larappp-lara-r6.rules", "examples/larappp.toml", "scripts/gen_docs.py"):
        assert wanted in names, wanted
    assert not any("__pycache__" in name for name in names)
