"""The daemon's files: its directories, the lock, the pid file, state.json and the host record.

- Directories are created owned by us (`runtime_dir` 0755, `state_dir` 0700), and refused
  when they exist with another owner or are group/world-writable.
- `larappp.lock` is flock'ed by the running daemon for its whole life and never renamed or
  removed: the lock, not a pid from a file, says whether a daemon runs. `larappp.pid`
  holds exactly the pid (written atomically) for `pkill -F` and systemd's PIDFile=.
- Every file is written through a temporary file opened with O_NOFOLLOW|O_EXCL, then
  renamed over the target, so a reader never sees half a file and a planted symlink is
  never followed.
- `Daemon.find()` checks the lock holder with a pidfd: `down` signals that process only.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import select
import signal
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from larappp.config import Config
from larappp.errors import LarapppError

STATE_FILE = "state.json"
PID_FILE = "larappp.pid"
LOCK_FILE = "larappp.lock"
LOG_FILE = "larappp.log"
#: what the host looked like after each change (DNS published, netlink ledger), so that a
#: larappp killed with SIGKILL can be cleaned up after by the next `up` or `down`
HOST_RECORD_FILE = "host.json"

#: the states a daemon (or a session) writes when it ended by itself, having torn down;
#: any other state in a state file whose daemon is gone means it was killed
ENDED_STATES = ("down", "failed", "given-up")

log = logging.getLogger(__name__)


class RuntimeDirError(LarapppError):
    """A runtime or state directory cannot be used (cannot be made, wrong owner or mode)."""

    exit_code = 2  # a configuration the user changes, like ConfigError


# -- directories ------------------------------------------------------------------------------
def ensure_dir(path: str | Path, *, key: str, mode: int = 0o700) -> Path:
    """Create `path` (and parents) with `mode`, or check an existing one is ours and private.

    `key` names the setting in messages (e.g. "modem.runtime_dir")."""
    directory = Path(path)
    try:
        os.makedirs(directory, mode=mode, exist_ok=True)
        info = os.lstat(directory)
    except OSError as exc:
        raise RuntimeDirError(f"{key} {directory} cannot be created ({_why(exc, directory)}): set {key} to a directory larappp can create") from None
    if not stat.S_ISDIR(info.st_mode):
        raise RuntimeDirError(f"{key} {directory} is a symbolic link or not a directory: set {key} to a real directory")
    if info.st_uid != os.geteuid():
        raise RuntimeDirError(
            f"{key} {directory} belongs to uid {info.st_uid}, not to larappp's uid {os.geteuid()}: "
            f"chown it or set {key} elsewhere"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise RuntimeDirError(
            f"{key} {directory} is writable by group or others (mode {stat.S_IMODE(info.st_mode):04o}): "
            f"run 'chmod go-w {directory}' or set {key} elsewhere"
        )
    return directory


def _why(exc: OSError, directory: Path) -> str:
    if exc.errno == errno.ENOTDIR:
        parent = next((p for p in directory.parents if p.exists() and not p.is_dir()), None)
        return f"{parent} is a file" if parent else "a parent is not a directory"
    return exc.strerror or str(exc)


def prepare_dirs(config: Config) -> None:
    """Both directories of a config, checked before anything is started or written."""
    ensure_dir(config.modem.runtime_dir, key="modem.runtime_dir", mode=0o755)
    ensure_dir(config.modem.state_dir, key="modem.state_dir", mode=0o700)


# -- files --------------------------------------------------------------------------------------
def write_atomic(path: str | Path, text: str, mode: int = 0o644) -> None:
    """Replace `path` with `text`: a fresh temporary file (never through a symlink), then rename."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_text(path: str | Path) -> str | None:
    """A file's text, never through a symlink; None when it is absent or unreadable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, encoding="utf-8", errors="replace") as stream:
        return stream.read()


def read_json(path: str | Path) -> dict[str, Any] | None:
    text = read_text(path)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def open_append(path: str | Path, mode: int = 0o640) -> int:
    """An fd appending to a log file, never through a symlink."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, mode)


# -- the daemon's lock and pid ---------------------------------------------------------------------
@dataclass(frozen=True)
class RuntimePaths:
    """Where one runtime_dir keeps the daemon's files."""

    directory: Path

    @classmethod
    def of(cls, config: Config) -> RuntimePaths:
        return cls(Path(config.modem.runtime_dir))

    @property
    def state(self) -> Path:
        return self.directory / STATE_FILE

    @property
    def pid(self) -> Path:
        return self.directory / PID_FILE

    @property
    def lock(self) -> Path:
        return self.directory / LOCK_FILE

    @property
    def log(self) -> Path:
        return self.directory / LOG_FILE

    @property
    def host_record(self) -> Path:
        return self.directory / HOST_RECORD_FILE

    @property
    def dns_dir(self) -> Path:
        """Where "file" mode DNS fragments go (DnsWriter's directory)."""
        return self.directory / "resolv.conf.d"


class AlreadyRunning(LarapppError):
    """Another larappp holds the lock of this runtime_dir."""


def acquire_lock(paths: RuntimePaths) -> int:
    """The lock fd (held until closed, inherited across fork); AlreadyRunning if taken."""
    # Readable by all (0644): `status` as another user can still test the lock.
    fd = os.open(paths.lock, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        other = (read_text(paths.pid) or "").strip() or "?"
        raise AlreadyRunning(
            f"larappp is already running with runtime_dir {paths.directory} (pid {other}): "
            "run 'larappp down' first"
        ) from None
    return fd


def write_pid(paths: RuntimePaths) -> None:
    """The pid file: exactly this process's pid and a newline."""
    write_atomic(paths.pid, f"{os.getpid()}\n")


def lock_is_free(paths: RuntimePaths) -> bool:
    """True when no process holds the lock (no daemon runs, or it died)."""
    try:
        fd = os.open(paths.lock, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # also releases the lock if we got it
    return True


def _holds_lock(pid: int, lock: Path) -> bool | None:
    """Whether process `pid` has the lock file open with an flock on that open file; None
    when this user may not look (another user's process, which it could not signal either)."""
    try:
        want = os.stat(lock)
        fds = os.listdir(f"/proc/{pid}/fd")
    except PermissionError:
        return None
    except OSError:
        return False
    for fd in fds:
        try:
            info = os.stat(f"/proc/{pid}/fd/{fd}")
            if (info.st_dev, info.st_ino) != (want.st_dev, want.st_ino):
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}", encoding="ascii", errors="replace") as stream:
                if any(line.startswith("lock:") and "FLOCK" in line for line in stream):
                    return True
        except OSError:
            continue
    return False


class Daemon:
    """The running larappp of a runtime_dir, pinned by a pidfd so a reused pid is never signalled."""

    def __init__(self, pid: int, pidfd: int) -> None:
        self.pid = pid
        self.pidfd = pidfd

    @classmethod
    def find(cls, paths: RuntimePaths) -> Daemon | None:
        """The process holding the lock, or None when no live process does."""
        if lock_is_free(paths):
            return None
        text = (read_text(paths.pid) or "").strip()
        if not text.isdigit():
            return None  # locked but no pid yet: a daemon starting up (or not ours)
        pid = int(text)
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            return None
        # Checked after the pidfd is open: the process checked is the one the pidfd pins.
        if _holds_lock(pid, paths.lock) is False:
            os.close(pidfd)
            return None
        return cls(pid, pidfd)

    def signal(self, signum: int) -> None:
        try:
            signal.pidfd_send_signal(self.pidfd, signum)
        except ProcessLookupError:
            pass

    def wait(self, timeout: float) -> bool:
        """True when the process ended within `timeout` seconds."""
        poller = select.poll()
        poller.register(self.pidfd, select.POLLIN)
        return bool(poller.poll(max(0, int(timeout * 1000))))

    def close(self) -> None:
        os.close(self.pidfd)


def remove_files(paths: RuntimePaths) -> None:
    """The daemon's files except the lock (whose inode is what a next daemon locks)."""
    for path in (paths.pid, paths.state, paths.host_record):
        path.unlink(missing_ok=True)


# -- the host record ---------------------------------------------------------------------------
class HostRecord:
    """What this process's interfaces changed on the host, in a file kept current (O_NOFOLLOW,
    atomic), so that whatever a larappp killed by SIGKILL left can be removed later."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self._interfaces: dict[str, dict[str, Any]] = {}

    def attach(self, path: Path | None) -> None:
        """Start (or, with None, stop) keeping the record in `path`."""
        self.path = path
        self._save()

    def update(self, ifname: str, changes: dict[str, Any]) -> None:
        self._interfaces[ifname] = changes
        self._save()

    def drop(self, ifname: str) -> None:
        self._interfaces.pop(ifname, None)
        self._save()

    def _save(self) -> None:
        if self.path is None:
            return
        if not self._interfaces:
            self.path.unlink(missing_ok=True)
            return
        try:
            write_atomic(self.path, json.dumps({"pid": os.getpid(), "interfaces": self._interfaces}, indent=2), 0o600)
        except OSError as exc:
            log.warning("cannot write the host record %s: %s", self.path, exc.strerror)


#: the one record of this process (attached by the daemon, unattached in tests and tools)
HOST_RECORD = HostRecord()


async def undo_leftovers(paths: RuntimePaths) -> list[str]:
    """Remove what a dead larappp left (DNS, netlink changes, nftables tables, its files); what was removed.

    Call only while holding the lock (or having checked that no daemon holds it)."""
    from larappp.transport.dns import DnsWriter

    removed: list[str] = []
    record = read_json(paths.host_record) or {}
    for ifname, changes in (record.get("interfaces") or {}).items():
        if changes.get("dns"):
            try:
                writer = DnsWriter.from_record(ifname, changes["dns"], paths.dns_dir)
                writer.remove()
                removed.append(f"DNS of {ifname} ({writer.mode})")
            except (OSError, LarapppError) as exc:
                removed.append(f"DNS of {ifname} NOT removed: {exc}")
        entries = changes.get("netlink") or []
        if entries:
            removed.append(await _undo_netlink(ifname, entries))
        if changes.get("nft"):
            from larappp.transport.nft import remove_recorded

            removed.append(await remove_recorded(changes["nft"]))
    had_state = paths.state.exists() or paths.pid.exists()
    remove_files(paths)
    if had_state:
        removed.append("its state and pid file")
    return removed


async def _undo_netlink(ifname: str, entries: list[dict[str, Any]]) -> str:
    """Revert a dead larappp's netlink ledger of one interface; one line saying what happened."""
    from larappp.transport.netlink import Netlink

    netlink = Netlink()
    try:
        await netlink.open()
        if await netlink.link(ifname) is None:
            return f"{ifname} (gone, and its {len(entries)} address/route changes with it)"
        netlink.ledger.load_dicts(entries)
        failures = await netlink.ledger.undo()
    finally:
        netlink.close()
    if failures:
        return f"{len(entries) - len(failures)} changes on {ifname}, NOT: {'; '.join(failures)}"
    return f"{len(entries)} address/route changes on {ifname}"
