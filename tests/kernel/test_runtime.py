"""The daemon's runtime files (larappp.runtime): directories, atomic writes, the lock and the pidfd."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from larappp import runtime
from larappp.cli import STATUS_DEGRADED, STATUS_DOWN, STATUS_UP, status_exit_code


def test_write_atomic_replaces_a_planted_symlink_instead_of_following_it(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    target = tmp_path / "state.json"
    target.symlink_to(victim)
    runtime.write_atomic(target, "{}\n")
    assert victim.read_text() == "precious\n"
    assert not target.is_symlink() and target.read_text() == "{}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json", "victim"]  # no temporary left


def test_reading_never_follows_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "real").write_text('{"state": "up"}')
    (tmp_path / "state.json").symlink_to(tmp_path / "real")
    assert runtime.read_json(tmp_path / "state.json") is None
    with pytest.raises(OSError):
        runtime.open_append(tmp_path / "state.json")


def test_directories_are_created_private_and_checked(tmp_path: Path) -> None:
    made = runtime.ensure_dir(tmp_path / "a" / "run", key="modem.runtime_dir", mode=0o700)
    assert made.stat().st_mode & 0o777 == 0o700 and made.stat().st_uid == os.geteuid()
    # already there and ours: reused as it is
    assert runtime.ensure_dir(made, key="modem.runtime_dir") == made


def test_a_group_or_world_writable_directory_is_refused_in_one_line(tmp_path: Path) -> None:
    loose = tmp_path / "run"
    loose.mkdir()
    loose.chmod(0o777)
    with pytest.raises(runtime.RuntimeDirError) as caught:
        runtime.ensure_dir(loose, key="modem.runtime_dir")
    message = str(caught.value)
    assert "modem.runtime_dir" in message and "chmod go-w" in message and "\n" not in message
    assert caught.value.exit_code == 2


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory away")
def test_a_directory_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "state"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 65534, 65534)
    with pytest.raises(runtime.RuntimeDirError, match="belongs to uid 65534.*modem.state_dir"):
        runtime.ensure_dir(theirs, key="modem.state_dir")


def test_a_symlinked_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    (tmp_path / "run").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(runtime.RuntimeDirError, match="symbolic link"):
        runtime.ensure_dir(tmp_path / "run", key="modem.runtime_dir")


def test_a_directory_under_a_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("")
    with pytest.raises(runtime.RuntimeDirError) as caught:
        runtime.ensure_dir(tmp_path / "plain" / "state", key="modem.state_dir")
    assert f"{tmp_path / 'plain'} is a file" in str(caught.value)
    assert "set modem.state_dir" in str(caught.value)


def test_the_pid_file_holds_exactly_the_pid(tmp_path: Path) -> None:
    paths = runtime.RuntimePaths(tmp_path)
    (tmp_path / "larappp.pid").write_bytes(b"\0" * 8 + b"99999\n")  # what the old code left
    runtime.write_pid(paths)
    assert (tmp_path / "larappp.pid").read_bytes() == f"{os.getpid()}\n".encode()


_HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
open(sys.argv[2], "w").write(f"{os.getpid()}\\n")
print("locked", flush=True)
time.sleep(60)
"""


def _lock_holder(paths: runtime.RuntimePaths) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(paths.lock), str(paths.pid)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def test_only_the_process_holding_the_lock_is_the_daemon(tmp_path: Path) -> None:
    paths = runtime.RuntimePaths(tmp_path)
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        # A stale pid file naming a live, unrelated process: not a daemon, never signalled.
        paths.pid.write_text(f"{bystander.pid}\n")
        assert runtime.Daemon.find(paths) is None
        paths.lock.touch()
        assert runtime.Daemon.find(paths) is None
        holder = _lock_holder(paths)
        try:
            with pytest.raises(runtime.AlreadyRunning, match=f"pid {holder.pid}"):
                runtime.acquire_lock(paths)
            # The lock is held but the pid file names the bystander: still not signalled.
            paths.pid.write_text(f"{bystander.pid}\n")
            assert runtime.Daemon.find(paths) is None
            paths.pid.write_text(f"{holder.pid}\n")
            daemon = runtime.Daemon.find(paths)
            assert daemon is not None and daemon.pid == holder.pid
            started = time.monotonic()
            daemon.signal(signal.SIGTERM)
            assert daemon.wait(5.0)  # the pidfd says it ended, before anyone reaped it
            assert time.monotonic() - started < 2
            daemon.close()
            # a zombie holds no lock: not a daemon
            assert runtime.Daemon.find(paths) is None
            assert runtime.lock_is_free(paths)
        finally:
            holder.kill()
            holder.wait()
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_status_exit_codes_are_up_degraded_down() -> None:
    up = {"state": "up", "sessions": [{"state": "up"}, {"state": "up"}]}
    assert status_exit_code(up, running=True) == STATUS_UP == 0
    one_lost = {"state": "up", "sessions": [{"state": "up"}, {"state": "failed"}]}
    assert status_exit_code(one_lost, running=True) == STATUS_DEGRADED
    assert status_exit_code({"state": "bringing-up", "sessions": []}, running=True) == STATUS_DEGRADED
    assert status_exit_code(up, running=False) == STATUS_DOWN
    # apart from every error code larappp exits with
    assert {STATUS_DEGRADED, STATUS_DOWN}.isdisjoint({1, 2, 3, 4, 5, 6, 7, 8, 70, 130})
