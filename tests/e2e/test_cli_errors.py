"""Errors a user can hit with `larappp up`: one line naming what to change, an exit code that is
not 70 (a bug), and found before anything is started or written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from larappp.preflight import ppp_backend_choice
from tests.e2e.conftest import ROOT

SESSION = '[[session]]\ncid = 1\napn = "internet"\n'


def _up(tmp_path: Path, modem: str, sessions: str = SESSION, extra: str = "", ppp: bool = False) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "larappp.toml"
    config.write_text(f"[modem]\n{modem}\n{sessions}{extra}")
    env = dict(os.environ, PYTHONPATH=str(ROOT), LARAPPP_NO_PPP="0" if ppp else "1")
    return subprocess.run(
        [sys.executable, "-m", "larappp.cli", "--config", str(config), "up", "-q"],
        capture_output=True, text=True, timeout=60, env=env, cwd=ROOT, check=False,
    )


def _one_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr and done.returncode not in (0, 70)
    return lines[0]


def _dirs(tmp_path: Path, run: str = "run", state: str = "state") -> str:
    return f'runtime_dir = "{tmp_path / run}"\nstate_dir = "{tmp_path / state}"\n'


def test_a_runtime_dir_that_cannot_be_created_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    done = _up(tmp_path, 'port = "sim"\n' + _dirs(tmp_path, run="file/run"))
    line = _one_line(done)
    assert done.returncode == 2
    assert line == (
        f"larappp: modem.runtime_dir {tmp_path}/file/run cannot be created ({tmp_path}/file is a file): "
        "set modem.runtime_dir to a directory larappp can create"
    )


def test_a_state_dir_under_a_file_is_a_config_error_not_an_internal_one(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    done = _up(tmp_path, 'port = "sim"\n' + _dirs(tmp_path, state="file/state"))
    assert "modem.state_dir" in _one_line(done) and done.returncode == 2
    assert not (tmp_path / "run" / "state.json").exists()


def test_a_world_writable_runtime_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir(mode=0o777)
    (tmp_path / "run").chmod(0o777)
    done = _up(tmp_path, 'port = "sim"\n' + _dirs(tmp_path))
    assert "writable by group or others" in _one_line(done) and done.returncode == 2
    assert os.listdir(tmp_path / "run") == []


def test_a_planted_log_symlink_is_refused_not_followed(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir(mode=0o755)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / "run" / "larappp.log").symlink_to(victim)
    done = _up(tmp_path, 'port = "sim"\n' + _dirs(tmp_path))
    assert "larappp.log" in _one_line(done)
    assert victim.read_text() == "precious\n"
    assert "larappp.pid" not in os.listdir(tmp_path / "run")


def test_a_duplicate_cid_is_named_as_such(tmp_path: Path) -> None:
    done = _up(tmp_path, 'port = "sim"\n' + _dirs(tmp_path), SESSION + '[[session]]\ncid = 1\napn = "other"\n')
    line = _one_line(done)
    assert "two sessions use cid 1" in line and "interface name" not in line


def test_a_wrong_type_is_named_in_words(tmp_path: Path) -> None:
    done = _up(tmp_path, 'port = "sim"\n' + _dirs(tmp_path), '[[session]]\ncid = "1"\napn = "internet"\n')
    line = _one_line(done)
    assert "session[0].cid must be a whole number, not \"1\"" in line or "cid must be a whole number" in line
    assert "a int" not in line


def test_a_missing_port_is_found_before_anything_is_written(tmp_path: Path) -> None:
    done = _up(tmp_path, 'port = "/dev/ttyLARAPPP-NONE"\n' + _dirs(tmp_path))
    assert "/dev/ttyLARAPPP-NONE does not exist" in _one_line(done) and done.returncode == 3
    assert not (tmp_path / "run").exists() and not (tmp_path / "state").exists()


@pytest.mark.skipif(ppp_backend_choice()[0] == "pppd", reason="pppd can run here")
def test_a_pppd_backend_that_cannot_run_is_found_before_anything_is_written(tmp_path: Path) -> None:
    done = _up(tmp_path, 'port = "sim"\n' + _dirs(tmp_path), SESSION + 'backend = "pppd"\n', ppp=True)
    line = _one_line(done)
    assert 'backend = "pppd"' in line and 'set backend = "auto"' in line and done.returncode == 2
    assert not (tmp_path / "run").exists()


def test_a_pdp_type_the_network_does_not_offer_names_the_pdp_type(tmp_path: Path) -> None:
    done = _up(
        tmp_path, 'port = "sim"\n' + _dirs(tmp_path), SESSION + 'pdp_type = "IPV6"\n',
        extra='[sim]\ngrant = "IP"\nnetwork = ""\nregistration_delay = 0.2\nreboot_time = 0.2\n',
    )
    line = _one_line(done)
    assert 'pdp_type = "IPV6"' in line and 'set pdp_type = "IPV4V6"' in line
    assert "check the APN" in line.split('set pdp_type = "IPV4V6"')[1]  # the PDP type first, the APN after


def test_an_interface_name_in_use_is_found_before_anything_is_written(tmp_path: Path) -> None:
    done = _up(tmp_path, 'port = "sim"\n' + _dirs(tmp_path), SESSION + 'ifname = "lo"\n', ppp=True)
    line = _one_line(done)
    assert "an interface named lo exists already" in line and "set ifname" in line and done.returncode == 2
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("knob", "needle"), [("grant = \"BAD\"", "simulator grant 'BAD' is unknown"), ("operator = \"x\"", "simulator operator 'x' is unknown")])
def test_a_bad_simulator_knob_is_found_before_anything_is_written(tmp_path: Path, knob: str, needle: str) -> None:
    done = _up(tmp_path, 'port = "sim"\n' + _dirs(tmp_path), extra=f"[sim]\n{knob}\n")
    assert needle in _one_line(done) and done.returncode == 2
    assert not (tmp_path / "run").exists()
