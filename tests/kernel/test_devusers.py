"""Finding the processes that hold a device open, and udev's properties of a device."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from larappp.transport import devusers

HOLD = "import os, sys, time; os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY); print('open', flush=True); time.sleep(60)"


@pytest.fixture
def pty_slave() -> Iterator[str]:
    master, slave = os.openpty()
    path = os.ttyname(slave)
    os.close(slave)
    yield path
    os.close(master)


def hold_open(tmp_path: Path, name: str, device: str | None) -> subprocess.Popen[str]:
    """A process named `name` (its executable's name is what /proc/<pid>/comm shows) holding `device`."""
    program = tmp_path / name
    program.symlink_to(sys.executable)
    script = HOLD if device else "print('open', flush=True); import time; time.sleep(60)"
    proc = subprocess.Popen([str(program), "-c", script, device or ""], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "open"
    return proc


def test_a_process_holding_the_pty_is_found_by_pid_and_name(tmp_path: Path, pty_slave: str) -> None:
    holder = hold_open(tmp_path, "ModemManager", pty_slave)
    try:
        assert devusers.processes_using(pty_slave) == [devusers.DeviceUser(holder.pid, "ModemManager")]
        assert holder.pid in devusers.processes_named("ModemManager")
    finally:
        holder.kill()
        holder.wait()
    assert devusers.processes_using(pty_slave) == []


def test_a_symlink_to_the_device_finds_the_same_holder(tmp_path: Path, pty_slave: str) -> None:
    link = tmp_path / "at0"
    link.symlink_to(pty_slave)
    holder = hold_open(tmp_path, "minicom", str(link))
    try:
        assert [u.name for u in devusers.processes_using(str(link))] == ["minicom"]
    finally:
        holder.kill()
        holder.wait()


def test_this_process_does_not_count(pty_slave: str) -> None:
    fd = os.open(pty_slave, os.O_RDWR | os.O_NOCTTY)
    try:
        assert devusers.processes_using(pty_slave) == []
    finally:
        os.close(fd)


def test_udev_properties_come_from_the_database_entry_of_the_character_device(tmp_path: Path) -> None:
    rdev = os.stat("/dev/null").st_rdev
    (tmp_path / f"c{os.major(rdev)}:{os.minor(rdev)}").write_text(
        "I:123\nE:ID_MM_DEVICE_IGNORE=1\nE:ID_SERIAL=u-blox_Modem_1478200b\nG:systemd\n"
    )
    props = devusers.udev_properties("/dev/null", data_dir=tmp_path)
    assert props == {"ID_MM_DEVICE_IGNORE": "1", "ID_SERIAL": "u-blox_Modem_1478200b"}
    assert devusers.udev_properties("/dev/zero", data_dir=tmp_path) is None  # no entry
    assert devusers.udev_properties(str(tmp_path), data_dir=tmp_path) is None  # not a device
