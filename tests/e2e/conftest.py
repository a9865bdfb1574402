"""Fixtures for end-to-end tests: the real `larappp` CLI against a simulator process."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PORT_LINE = re.compile(r"port (\d+): pty (\S+)(?: (rfc2217://\S+))?")


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SimProcess:
    """A `larappp sim` child process and where its ports are."""

    proc: subprocess.Popen[str]
    ptys: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    output: list[str] = field(default_factory=list)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_sim(tmp_path: Path, *args: str, ports: int = 3, netns: str | None = None) -> SimProcess:
    """`netns`: run the simulator there (its RFC 2217 ports then listen on that namespace's lo)."""
    base = free_tcp_port()
    argv = [
        *(["ip", "netns", "exec", netns] if netns else []),
        sys.executable, "-m", "larappp.cli", "sim",
        "--pty-dir", str(tmp_path / "sim"),
        "--rfc2217-port", str(base),
        "--ports", str(ports),
        "--reboot-time", "0.3",
        "--registration-delay", "0.3",
        *args,
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    sim = SimProcess(proc)
    deadline = time.monotonic() + 20
    assert proc.stdout is not None
    while len(sim.ptys) < ports and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        sim.output.append(line)
        m = PORT_LINE.search(line)
        if m:
            sim.ptys.append(m.group(2))
            if m.group(3):
                sim.urls.append(m.group(3))
    if len(sim.ptys) < ports:
        sim.stop()
        raise AssertionError("simulator did not announce its ports: " + "".join(sim.output))
    return sim


@pytest.fixture
def sim_factory(tmp_path: Path) -> Iterator[object]:
    started: list[SimProcess] = []

    def factory(*args: str, ports: int = 3) -> SimProcess:
        sim = start_sim(tmp_path, *args, ports=ports)
        started.append(sim)
        return sim

    yield factory
    for sim in started:
        sim.stop()


@dataclass
class Cli:
    """Runs the real `larappp` command with a config in a temporary runtime dir."""

    tmp_path: Path
    started_up: list[tuple[Path, str | None]] = field(default_factory=list)

    def write_config(self, modem: str, sessions: str, name: str = "larappp.toml") -> Path:
        runtime = self.tmp_path / "run"
        state = self.tmp_path / "state"
        text = textwrap.dedent(modem).strip() + "\n"
        text += f'runtime_dir = "{runtime}"\nstate_dir = "{state}"\n'
        text += textwrap.dedent(sessions)
        path = self.tmp_path / name
        path.write_text(text)
        return path

    def run(
        self, config: Path | None, *args: str, timeout: float = 90, netns: str | None = None, ppp: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run larappp. `up` runs PPP after CONNECT, in `netns` (a test namespace); a test of
        the AT level that wants `up` to stop at CONNECT says `ppp=False`."""
        if args and args[0] == "up" and ppp and netns is None:
            raise AssertionError("`up` with PPP configures interfaces: give it a netns, or say ppp=False")
        argv = [sys.executable, "-m", "larappp.cli"]
        if config is not None:
            argv += ["--config", str(config)]
        argv += list(args)
        if netns:
            argv = ["ip", "netns", "exec", netns, *argv]
        if args and args[0] == "up" and config is not None:
            self.started_up.append((config, netns))
        env = dict(os.environ, PYTHONPATH=str(ROOT), LARAPPP_NO_PPP="0" if ppp else "1")
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env, check=False)

    def cleanup(self) -> None:
        """`down` every config this test brought up; kill what `down` could not stop."""
        started, self.started_up = self.started_up, []
        for config, netns in started:
            self.run(config, "down", timeout=60, netns=netns)
            kill_lock_holder(config.parent / "run")


def kill_lock_holder(run_dir: Path) -> None:
    """SIGKILL the larappp that still holds the lock of `run_dir`, if one does: never a pid
    read from a file, which may by now name an unrelated process."""
    from larappp import runtime

    if not run_dir.is_dir():
        return
    daemon = runtime.Daemon.find(runtime.RuntimePaths(run_dir))
    if daemon is not None:
        daemon.signal(signal.SIGKILL)
        daemon.wait(10)
        daemon.close()


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    c = Cli(tmp_path)
    yield c
    c.cleanup()
