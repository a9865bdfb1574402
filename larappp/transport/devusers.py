"""Who else uses a device node: processes holding it open, and what udev says about it.

A serial port has one owner at a time; ModemManager probes every new tty with AT
commands unless udev tags it ID_MM_DEVICE_IGNORE. psutil's `open_files()` lists regular
files only, so the holders come from /proc/<pid>/fd; udev's properties of a device come
from its database entry /run/udev/data/c<major>:<minor>.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DeviceUser", "processes_named", "processes_using", "udev_properties"]

PROC = Path("/proc")
UDEV_DATA = Path("/run/udev/data")


@dataclass(frozen=True)
class DeviceUser:
    """A process with a file descriptor open on the device."""

    pid: int
    name: str


def _name(pid_dir: Path) -> str:
    try:
        return pid_dir.joinpath("comm").read_text().strip()
    except OSError:
        return "?"


def processes_using(device: str, *, proc: Path = PROC) -> list[DeviceUser]:
    """Processes other than this one with `device` open (symlinks resolved), sorted by pid.

    Another user's processes are only visible to root; processes that end while being
    looked at are skipped.
    """
    target = os.path.realpath(device)
    own = os.getpid()
    users = []
    for pid_dir in proc.iterdir():
        if not pid_dir.name.isdigit() or int(pid_dir.name) == own:
            continue
        try:
            fds = list(pid_dir.joinpath("fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) == target:
                    users.append(DeviceUser(int(pid_dir.name), _name(pid_dir)))
                    break
            except OSError:
                continue
    return sorted(users, key=lambda u: u.pid)


def processes_named(name: str, *, proc: Path = PROC) -> list[int]:
    """Pids of the processes whose command name (/proc/<pid>/comm) is `name`."""
    return sorted(
        int(p.name) for p in proc.iterdir() if p.name.isdigit() and _name(p) == name
    )


def udev_properties(device: str, *, data_dir: Path | None = None) -> dict[str, str] | None:
    """The E: properties udev recorded for a character device, None when udev has no entry.

    `data_dir` is udev's database folder (UDEV_DATA when None).
    """
    data_dir = UDEV_DATA if data_dir is None else data_dir
    try:
        st = os.stat(device)
    except OSError:
        return None
    if not stat.S_ISCHR(st.st_mode):
        return None
    try:
        text = data_dir.joinpath(f"c{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}").read_text()
    except OSError:
        return None
    return dict(line[2:].split("=", 1) for line in text.splitlines() if line.startswith("E:") and "=" in line)
