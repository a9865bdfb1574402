"""The daemon's own life through the real CLI: its files, `down` and `status` liveness,
Ctrl-C and `down` during the bring-up, and what a larappp killed with SIGKILL leaves.

The simulator runs inside larappp (port = "sim"); tests that bring PPP up do it in a
network namespace of their own, removed at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from larappp.transport.netns import create_netns, delete_netns
from tests.e2e.conftest import ROOT, kill_lock_holder

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

STATUS_UP, STATUS_DOWN = 0, 11


class Larappp:
    """One config (simulator inside larappp) and the CLI run against it."""

    def __init__(
        self, tmp_path: Path, *, registration_delay: float = 0.3, netns: str | None = None, inet: str = ""
    ) -> None:
        self.run_dir = tmp_path / "run"
        self.netns = netns
        self.config = tmp_path / "larappp.toml"
        self.config.write_text(
            f'[modem]\nport = "sim"\nruntime_dir = "{self.run_dir}"\nstate_dir = "{tmp_path / "state"}"\n'
            "registration_timeout = 60\n"
            '[[session]]\ncid = 1\napn = "internet"\nteardown = "lcp"\ndns = "file"\n'
            f'[sim]\nregistration_delay = {registration_delay}\nreboot_time = 0.3\nnetwork = "{inet}"\n'
        )
        self.env = dict(os.environ, PYTHONPATH=str(ROOT), LARAPPP_NO_PPP="0" if netns else "1")

    def argv(self, *args: str) -> list[str]:
        argv = [sys.executable, "-m", "larappp.cli", "--config", str(self.config), *args]
        return ["ip", "netns", "exec", self.netns, *argv] if self.netns else argv

    def run(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout, env=self.env, cwd=ROOT, check=False)

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env, cwd=ROOT)

    def status(self) -> tuple[int, dict]:  # type: ignore[type-arg]
        done = self.run("status", "--json")
        return done.returncode, json.loads(done.stdout)

    def pid(self) -> int:
        return int((self.run_dir / "larappp.pid").read_text())

    def files(self) -> set[str]:
        return {p.name for p in self.run_dir.iterdir()} if self.run_dir.exists() else set()

    def cleanup(self) -> None:
        """`down`; then kill only a process that still holds the lock (never a pid from a file)."""
        self.run("down", timeout=60)
        kill_lock_holder(self.run_dir)


@pytest.fixture
def larappp(tmp_path: Path) -> Iterator[Larappp]:
    instance = Larappp(tmp_path)
    yield instance
    instance.cleanup()


@pytest.fixture
def slow_registration(tmp_path: Path) -> Iterator[Larappp]:
    instance = Larappp(tmp_path, registration_delay=30)
    yield instance
    instance.cleanup()


@pytest.fixture
def in_netns(tmp_path: Path) -> Iterator[Larappp]:
    tag = uuid.uuid4().hex[:6]
    name, inet = f"lp-life-{tag}", f"lp-lifei-{tag}"
    create_netns(name)
    create_netns(inet)  # the simulator's network, made here: larappp runs under `ip netns exec`
    instance = Larappp(tmp_path, netns=name, inet=inet)
    try:
        yield instance
    finally:
        instance.cleanup()
        delete_netns(name)
        delete_netns(inet)


def _wait_for(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _read_until(stream, text: str) -> str:  # type: ignore[no-untyped-def]
    seen = ""
    for line in stream:
        seen += line
        if text in line:
            return seen
    raise AssertionError(f"never saw {text!r} in {seen!r}")


def test_the_pid_file_holds_the_pid_and_status_codes_follow_the_daemon(larappp: Larappp) -> None:
    up = larappp.run("up")
    assert up.returncode == 0, up.stderr
    code, state = larappp.status()
    assert code == STATUS_UP and state["state"] == "up"
    # exactly the pid and a newline: what pkill -F and systemd's PIDFile= read
    assert (larappp.run_dir / "larappp.pid").read_bytes() == f"{state['pid']}\n".encode()
    assert larappp.run_dir.stat().st_mode & 0o022 == 0
    assert larappp.run("down").returncode == 0
    code, state = larappp.status()
    assert code == STATUS_DOWN and state["state"] == "down"
    assert "larappp.pid" not in larappp.files()


def test_down_never_signals_a_pid_from_a_stale_state_file(larappp: Larappp) -> None:
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        larappp.run_dir.mkdir(mode=0o755)
        stale = {"pid": bystander.pid, "state": "up", "error": "", "sessions": []}
        (larappp.run_dir / "state.json").write_text(json.dumps(stale))
        (larappp.run_dir / "larappp.pid").write_text(f"{bystander.pid}\n")
        code, state = larappp.status()
        assert code == STATUS_DOWN and state["state"] == "dead"
        down = larappp.run("down")
        assert down.returncode == 0, down.stderr
        assert "not running" in down.stdout
        time.sleep(0.2)
        assert bystander.poll() is None  # the old code sent it SIGTERM
        assert larappp.files() <= {"larappp.lock"}  # the stale files are gone
    finally:
        bystander.kill()
        bystander.wait()


def test_a_killed_zombie_daemon_is_not_up(larappp: Larappp) -> None:
    # In the foreground the daemon is our child: killed and not reaped, it is a zombie.
    daemon = larappp.start("up", "--foreground")
    try:
        _wait_for(lambda: larappp.status()[0] == STATUS_UP)
        os.kill(daemon.pid, signal.SIGKILL)
        _wait_for(lambda: Path(f"/proc/{daemon.pid}/stat").read_text().split()[2] == "Z", 10)
        code, state = larappp.status()
        assert code == STATUS_DOWN, state
        assert state["state"] == "dead" and all(s["state"] != "up" for s in state["sessions"])
    finally:
        daemon.kill()
        daemon.communicate()


def test_ctrl_c_on_a_waiting_up_stops_the_bring_up_and_undoes_it(slow_registration: Larappp) -> None:
    larappp = slow_registration
    up = larappp.start("up")
    assert up.stderr is not None
    _read_until(up.stderr, "simulator: LARA-R6")
    pid = larappp.pid()
    time.sleep(0.5)  # inside the registration wait
    started = time.monotonic()
    up.send_signal(signal.SIGINT)
    _, err = up.communicate(timeout=30)
    assert up.returncode == 130, err
    assert "stopped by SIGTERM during the bring-up" in err and "undone" in err
    assert time.monotonic() - started < 10
    assert not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    code, state = larappp.status()
    assert code == STATUS_DOWN and state["state"] == "down", state
    assert larappp.files() <= {"larappp.lock", "larappp.log", "state.json", "sim"}


def test_down_during_the_bring_up_stops_it_and_undoes_it(slow_registration: Larappp) -> None:
    larappp = slow_registration
    up = larappp.start("up")
    assert up.stderr is not None
    _read_until(up.stderr, "simulator: LARA-R6")
    time.sleep(0.5)
    down = larappp.run("down", timeout=30)
    assert down.returncode == 0, down.stderr
    assert down.stdout.strip() == "larappp is down"
    _, err = up.communicate(timeout=30)
    assert up.returncode == 130 and "stopped by SIGTERM during the bring-up" in err
    code, state = larappp.status()
    assert code == STATUS_DOWN and state["state"] == "down"


@pytest.mark.parametrize("cleaner", ["down", "up"])
def test_what_a_sigkilled_daemon_left_is_removed_by_the_next_command(in_netns: Larappp, cleaner: str) -> None:
    larappp = in_netns
    up = larappp.run("up")
    assert up.returncode == 0, up.stderr
    fragment = larappp.run_dir / "resolv.conf.d" / "lara1.conf"
    assert fragment.exists()
    assert "host.json" in larappp.files()
    os.kill(larappp.pid(), signal.SIGKILL)
    _wait_for(lambda: larappp.status()[0] == STATUS_DOWN, 10)
    assert larappp.status()[1]["state"] == "dead"
    after = larappp.run(cleaner)
    assert after.returncode == 0, after.stderr
    assert "left when it was killed" in after.stderr and "DNS of lara1" in after.stderr
    if cleaner == "up":
        assert larappp.status()[0] == STATUS_UP
        assert larappp.run("down").returncode == 0
    assert not fragment.exists()
    assert larappp.files() <= {"larappp.lock", "larappp.log", "state.json", "resolv.conf.d", "sim"}
    assert "larappp.pid" not in larappp.files() and "host.json" not in larappp.files()
    routes = subprocess.run(["ip", "-n", larappp.netns or "", "-j", "route"], capture_output=True, text=True, check=True)
    assert json.loads(routes.stdout or "[]") == []


def test_down_is_quick_when_the_module_answers_the_terminate_request(in_netns: Larappp) -> None:
    from larappp import runtime

    larappp = in_netns
    up = larappp.run("up")
    assert up.returncode == 0, up.stderr
    daemon = runtime.Daemon.find(runtime.RuntimePaths(larappp.run_dir))
    assert daemon is not None
    try:
        started = time.monotonic()
        daemon.signal(signal.SIGTERM)  # what `larappp down` sends
        assert daemon.wait(10)
        took = time.monotonic() - started
    finally:
        daemon.close()
    # Before: 3 s more, waiting for the NO CARRIER the module sends after its Restart period.
    assert took < 1.0, f"the daemon took {took:.2f} s to tear down"
    state = json.loads((larappp.run_dir / "state.json").read_text())
    assert state["state"] == "down" and not state["error"]
    assert [s["state"] for s in state["sessions"]] == ["down"]
    assert "host.json" not in larappp.files() and "larappp.pid" not in larappp.files()


def test_status_works_for_another_user_and_down_says_to_be_root() -> None:
    public = Path(tempfile.mkdtemp(prefix="larappp-life-"))  # pytest's tmp_path is private to root
    public.chmod(0o755)
    larappp = Larappp(public)
    try:
        assert larappp.run("up").returncode == 0
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        status = subprocess.run([*nobody, *larappp.argv("status")], capture_output=True, text=True, env=larappp.env, cwd="/", check=False)
        assert status.returncode == STATUS_UP, status.stderr
        down = subprocess.run([*nobody, *larappp.argv("down")], capture_output=True, text=True, env=larappp.env, cwd="/", check=False)
        assert down.returncode == 1 and "permission denied: run larappp as root" in down.stderr
        assert len(down.stderr.strip().splitlines()) == 1
        assert larappp.status()[0] == STATUS_UP  # still up: nothing was signalled
    finally:
        larappp.cleanup()
        shutil.rmtree(public, ignore_errors=True)


def test_down_trusts_no_host_record_in_a_directory_others_can_write(larappp: Larappp, tmp_path: Path) -> None:
    victim_dir = tmp_path / "elsewhere"
    victim_dir.mkdir()
    victim = victim_dir / "lara1.conf"
    victim.write_text("precious\n")
    larappp.run_dir.mkdir(mode=0o755)
    larappp.run_dir.chmod(0o777)
    planted = {"pid": 1, "interfaces": {"lara1": {"dns": {"mode": "file", "directory": str(victim_dir)}}}}
    (larappp.run_dir / "host.json").write_text(json.dumps(planted))
    down = larappp.run("down")
    assert down.returncode == 2 and "writable by group or others" in down.stderr
    assert len(down.stderr.strip().splitlines()) == 1
    assert victim.read_text() == "precious\n"
    # once the directory is private again, the record is used, but only with larappp's own DNS directory
    larappp.run_dir.chmod(0o755)
    down = larappp.run("down")
    assert down.returncode == 0, down.stderr
    assert victim.read_text() == "precious\n"
    assert "host.json" not in larappp.files()


def test_a_daemon_that_gave_up_by_itself_is_not_taken_for_a_killed_one(larappp: Larappp) -> None:
    larappp.run_dir.mkdir(mode=0o755)
    ended = {"pid": 1, "state": "given-up", "error": "maxfail = 2 reached", "sessions": [{"cid": 1, "apn": "internet", "port": "p", "state": "given-up"}]}
    (larappp.run_dir / "state.json").write_text(json.dumps(ended))
    code, state = larappp.status()
    assert code == STATUS_DOWN and state["state"] == "given-up" and state["error"] == "maxfail = 2 reached"
    down = larappp.run("down")
    assert down.returncode == 0 and down.stdout.strip() == "larappp is not running" and down.stderr == ""


def test_ctrl_c_on_up_in_the_foreground_undoes_the_bring_up(slow_registration: Larappp) -> None:
    larappp = slow_registration
    up = larappp.start("up", "--foreground")
    assert up.stderr is not None
    _read_until(up.stderr, "simulator: LARA-R6")
    time.sleep(0.5)
    up.send_signal(signal.SIGINT)
    _, err = up.communicate(timeout=30)
    assert up.returncode == 130, err
    assert "stopped by SIGINT during the bring-up" in err and "Traceback" not in err
    code, state = larappp.status()
    assert code == STATUS_DOWN and state["state"] == "down", state
    assert "larappp.pid" not in larappp.files()
