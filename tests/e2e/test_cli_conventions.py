"""CLI conventions: options before or after the subcommand, `python -m larappp`, --log-level,
journald priority prefixes instead of timestamps."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from larappp import cli
from tests.e2e.conftest import ROOT


@pytest.mark.parametrize(
    "argv",
    [
        ["up", "-v", "--config", "X", "--log-level", "info"],
        ["-v", "up", "-c", "X", "--log-level", "info"],
        ["-v", "-c", "X", "--log-level", "info", "up"],
        ["--config", "X", "up", "--verbose", "--log-level=info"],
    ],
)
def test_common_options_are_taken_before_and_after_the_subcommand(argv: list[str]) -> None:
    args = cli.build_parser().parse_args(argv)
    assert (args.command, args.verbose, args.config, args.log_level) == ("up", True, "X", "info")


def test_an_option_after_the_subcommand_does_not_undo_one_before_it() -> None:
    args = cli.build_parser().parse_args(["-c", "X", "-v", "status", "--json"])
    assert (args.config, args.verbose, args.json, args.log_level) == ("X", True, True, None)
    args = cli.build_parser().parse_args(["status"])
    assert (args.config, args.verbose, args.log_level) == (None, False, None)


def test_a_wrong_log_level_is_refused_by_the_parser() -> None:
    with pytest.raises(SystemExit) as exc:
        cli.build_parser().parse_args(["status", "--log-level", "loud"])
    assert exc.value.code == 2


def _run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("JOURNAL_STREAM", None)
    return subprocess.run(
        [sys.executable, "-m", "larappp", *argv], capture_output=True, text=True, timeout=60,
        env=env, cwd=ROOT, check=False, **kwargs,  # type: ignore[call-overload]
    )


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "larappp.toml"
    config.write_text(
        f'[modem]\nport = "sim"\nruntime_dir = "{tmp_path / "run"}"\nstate_dir = "{tmp_path / "state"}"\n'
        '[[session]]\ncid = 1\napn = "internet"\n'
    )
    return config


def test_python_dash_m_larappp_is_the_command(tmp_path: Path) -> None:
    done = _run(["--version"])
    assert done.returncode == 0 and done.stdout.strip() == f"larappp {cli.__version__}"
    done = _run(["status", "--json", "-c", str(_config(tmp_path))])
    assert done.returncode == cli.STATUS_DOWN, done.stderr
    assert json.loads(done.stdout)["state"] == "down"


def test_under_journald_user_lines_carry_a_priority_and_no_timestamp(tmp_path: Path) -> None:
    log = tmp_path / "journal"
    with log.open("w") as stream:
        st = os.fstat(stream.fileno())
        env = dict(os.environ, PYTHONPATH=str(ROOT), JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
        done = subprocess.run(
            [sys.executable, "-m", "larappp", "status", "-c", str(tmp_path / "missing.toml")],
            stdout=subprocess.PIPE, stderr=stream, text=True, timeout=60, env=env, cwd=ROOT, check=False,
        )
    lines = log.read_text().splitlines()
    assert done.returncode not in (0, 70) and lines, lines
    assert all(line.startswith("<3>larappp: ") for line in lines), lines


def test_the_journal_formatter_prefixes_every_line_with_its_priority() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(cli.JournalFormatter("%(message)s"))
    logger = logging.getLogger("larappp.test_journal")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    try:
        logger.warning("first\nsecond")
        logger.error("broken")
        logger.log(logging.INFO + 5, "between info and warning")
    finally:
        logger.removeHandler(handler)
    assert stream.getvalue().splitlines() == [
        "<4>larappp.test_journal: first",
        "<4>second",
        "<3>larappp.test_journal: broken",
        "<6>larappp.test_journal: between info and warning",
    ]


def test_without_the_journal_log_lines_keep_their_timestamp(tmp_path: Path) -> None:
    done = _run(["--log-level", "debug", "status", "-c", str(_config(tmp_path))])
    assert done.returncode == cli.STATUS_DOWN
    assert not any(line.startswith("<") for line in done.stderr.splitlines())


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_status_shows_the_module_identity_and_radio_and_json_has_a_schema_version(tmp_path: Path) -> None:
    from larappp.sim.commands.identity import ICCID, IMEI
    from tests.e2e.test_daemon_life import Larappp

    instance = Larappp(tmp_path)
    try:
        done = instance.run("up", "-q")
        assert done.returncode == 0, done.stderr
        text = instance.run("status")
        assert text.returncode == cli.STATUS_UP, text.stderr
        assert f"IMEI {IMEI}, ICCID {ICCID}" in text.stdout
        assert ", LTE, RSRP -96 dBm, RSRQ -10.0 dB" in text.stdout
        assert "'" not in text.stdout and "None" not in text.stdout  # no Python reprs
        code, state = instance.status()
        assert code == cli.STATUS_UP and state["schema_version"] == cli.STATUS_SCHEMA_VERSION
        modem = state["modem"]
        assert (modem["imei"], modem["iccid"], modem["act_text"]) == (IMEI, ICCID, "LTE")
        assert modem["operator"] and modem["plmn"].isdigit() and modem["firmware"]
        assert modem["signal"]["rsrp_dbm"] == -96
    finally:
        instance.cleanup()
