"""`larappp check` finds ModemManager (a stand-in of that name) holding or able to probe the module's port."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from larappp.transport import devusers
from tests.e2e.conftest import ROOT, Cli
from tests.kernel.test_devusers import hold_open

SESSION = '[[session]]\ncid = 1\napn = "internet"\n'


@pytest.fixture
def module_port() -> Iterator[str]:
    """A pty slave standing in for the module's AT port."""
    if devusers.processes_named("ModemManager"):
        pytest.skip("a real ModemManager runs on this machine")
    master, slave = os.openpty()
    path = os.ttyname(slave)
    os.close(slave)
    yield path
    os.close(master)


def _port_users_line(stdout: str) -> str:
    return next(line for line in stdout.splitlines() if "port users" in line)


def _check_while_running(cli: Cli, tmp_path: Path, port: str, name: str, holds: bool) -> tuple[int, int, str, Path]:
    """`larappp check` while a process called `name` runs (holding `port` open when `holds`).

    Returns check's exit status, the process's pid, the port-users line and the config.
    """
    cfg = cli.write_config(f'[modem]\nport = "{port}"\n', SESSION)
    process = hold_open(tmp_path, name, port if holds else None)
    try:
        check = cli.run(cfg, "check")
    finally:
        process.kill()
        process.wait()
    return check.returncode, process.pid, _port_users_line(check.stdout), cfg


def test_modemmanager_holding_the_port_is_reported_with_the_fix(cli: Cli, tmp_path: Path, module_port: str) -> None:
    status, pid, line, cfg = _check_while_running(cli, tmp_path, module_port, "ModemManager", holds=True)
    assert status == 1, line
    assert line.startswith("[FAIL]")
    assert f"{module_port} is held open by ModemManager (pid {pid})" in line
    assert "ID_MM_DEVICE_IGNORE=1" in line and "systemctl disable --now ModemManager" in line

    again = cli.run(cfg, "check")
    assert _port_users_line(again.stdout).startswith("[ok  ]"), again.stdout


def _check_with_udev_entry(cli: Cli, tmp_path: Path, port: str, entry: str | None) -> tuple[int, str]:
    """`larappp check` beside a ModemManager stand-in that holds nothing, in a private mount
    namespace whose /run (a tmpfs) has `entry` as udev's database entry of `port`."""
    cfg = cli.write_config(f'[modem]\nport = "{port}"\n', SESSION)
    rdev = os.stat(port).st_rdev
    record = f"/run/udev/data/c{os.major(rdev)}:{os.minor(rdev)}"
    write = f'printf "%s" "$1" > {record} && ' if entry is not None else ""
    script = f'mount -t tmpfs larappp-test /run && mkdir -p /run/udev/data && {write}shift && exec "$@"'
    modemmanager = hold_open(tmp_path, "ModemManager", None)
    try:
        out = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", entry or "",
             sys.executable, "-m", "larappp.cli", "--config", str(cfg), "check"],
            capture_output=True, text=True, timeout=60, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), check=False,
        )
    finally:
        modemmanager.kill()
        modemmanager.wait()
    return modemmanager.pid, _port_users_line(out.stdout)


def test_modemmanager_running_while_udev_does_not_tag_the_port_is_reported(cli: Cli, tmp_path: Path, module_port: str) -> None:
    pid, line = _check_with_udev_entry(cli, tmp_path, module_port, "E:ID_SERIAL=u-blox_Modem\n")
    assert line.startswith("[FAIL]") and f"may be probed by ModemManager (pid {pid})" in line, line


def test_modemmanager_running_is_fine_when_udev_tags_the_port(cli: Cli, tmp_path: Path, module_port: str) -> None:
    _, line = _check_with_udev_entry(cli, tmp_path, module_port, "E:ID_MM_DEVICE_IGNORE=1\n")
    assert line.startswith("[ok  ]") and "ModemManager ignores them" in line, line


def test_a_port_udev_does_not_know_is_invisible_to_modemmanager(cli: Cli, tmp_path: Path, module_port: str) -> None:
    _, line = _check_with_udev_entry(cli, tmp_path, module_port, None)
    assert line.startswith("[ok  ]"), line


def test_any_other_holder_is_named(cli: Cli, tmp_path: Path, module_port: str) -> None:
    _, pid, line, _ = _check_while_running(cli, tmp_path, module_port, "minicom", holds=True)
    assert f"held open by minicom (pid {pid}): close it there or stop that process" in line
