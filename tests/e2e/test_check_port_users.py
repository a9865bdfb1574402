"""`larappp check` finds ModemManager (a stand-in of that name) holding or able to probe the module's port."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from larappp.transport import devusers
from tests.e2e.conftest import Cli
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


def test_modemmanager_holding_the_port_is_reported_with_the_fix(cli: Cli, tmp_path: Path, module_port: str) -> None:
    cfg = cli.write_config(f'[modem]\nport = "{module_port}"\n', SESSION)
    holder = hold_open(tmp_path, "ModemManager", module_port)
    try:
        check = cli.run(cfg, "check")
    finally:
        holder.kill()
        holder.wait()
    assert check.returncode == 1, check.stdout + check.stderr
    line = _port_users_line(check.stdout)
    assert line.startswith("[FAIL]")
    assert f"{module_port} is held open by ModemManager (pid {holder.pid})" in line
    assert "ID_MM_DEVICE_IGNORE=1" in line and "systemctl disable --now ModemManager" in line

    again = cli.run(cfg, "check")
    assert _port_users_line(again.stdout).startswith("[ok  ]"), again.stdout


def test_modemmanager_running_without_the_udev_tag_is_reported(cli: Cli, tmp_path: Path, module_port: str) -> None:
    cfg = cli.write_config(f'[modem]\nport = "{module_port}"\n', SESSION)
    modemmanager = hold_open(tmp_path, "ModemManager", None)
    try:
        check = cli.run(cfg, "check")
    finally:
        modemmanager.kill()
        modemmanager.wait()
    line = _port_users_line(check.stdout)
    assert line.startswith("[FAIL]") and f"may be probed by ModemManager (pid {modemmanager.pid})" in line


def test_any_other_holder_is_named(cli: Cli, tmp_path: Path, module_port: str) -> None:
    cfg = cli.write_config(f'[modem]\nport = "{module_port}"\n', SESSION)
    holder = hold_open(tmp_path, "minicom", module_port)
    try:
        check = cli.run(cfg, "check")
    finally:
        holder.kill()
        holder.wait()
    assert f"held open by minicom (pid {holder.pid}): close it there or stop that process" in _port_users_line(check.stdout)
