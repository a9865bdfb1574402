"""A measuring rig: the simulator as its own process serving an internet namespace, and
larappp's daemon in a DTE namespace of its own, with helpers to run tools on either side.

Used by scripts/bench.py and by the test of scripts/measure.py. Every namespace and
process it creates is removed by `close()` (also on failure, when used as a context
manager); traffic never leaves the two namespaces it creates.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any, Self

ROOT = Path(__file__).resolve().parents[1]
SERVER_V4 = "198.51.100.1"  # the simulator's internet host (larappp/sim/network.py)
SERVER_V6 = "2001:db8:ffff::1"
_PORT_LINE = re.compile(r"port (\d+): pty (\S+)")


def ns_argv(netns: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", netns, *argv]


class SimRig:
    """Simulator process + DTE namespace + larappp daemon; `up()` brings sessions up."""

    def __init__(self, sessions: int = 1, *, ports: int = 3, sim_args: tuple[str, ...] = (),
                 modem_extra: str = "", realtime_sim: bool = False) -> None:
        """`realtime_sim`: run the simulator at real-time priority (SCHED_FIFO, as root): it
        stands for hardware, which the host's load never makes late. A simulator scheduled
        20-30 ms late hands its radio what larappp wrote meanwhile at one instant."""
        tag = uuid.uuid4().hex[:6]
        self.dte, self.inet = f"lp-bench-{tag}", f"lp-binet-{tag}"
        self.tmp = Path(tempfile.mkdtemp(prefix="larappp-rig-"))
        self.sessions = sessions
        self.ports = max(ports, sessions)
        self.sim: subprocess.Popen[str] | None = None
        self.ptys: list[str] = []
        self.config = self.tmp / "larappp.toml"
        self._up = False
        self.sim_args = sim_args
        self.modem_extra = modem_extra
        self.realtime_sim = realtime_sim and os.geteuid() == 0 and shutil.which("chrt") is not None
        self.control = self.tmp / "control.sock"
        self._env = dict(os.environ, PYTHONPATH=str(ROOT))

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def start(self) -> None:
        subprocess.run(["ip", "netns", "add", self.dte], check=True)
        subprocess.run(["ip", "-n", self.dte, "link", "set", "lo", "up"], check=True)
        argv = [*(["chrt", "-f", "10"] if self.realtime_sim else []), sys.executable, "-m", "larappp.cli", "sim", "--pty-dir", str(self.tmp / "sim"),
                "--rfc2217-port", "none", "--control", str(self.control), "--ports", str(self.ports),
                "--reboot-time", "0.3", "--registration-delay", "0.3", "--network", self.inet, *self.sim_args]
        self.sim = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    cwd=ROOT, env=self._env)
        assert self.sim.stdout is not None
        deadline = time.monotonic() + 30
        seen: list[str] = []
        while len(self.ptys) < self.ports and time.monotonic() < deadline:
            line = self.sim.stdout.readline()
            if not line:
                break
            seen.append(line)
            if m := _PORT_LINE.search(line):
                self.ptys.append(m.group(2))
        if len(self.ptys) < self.ports:
            raise RuntimeError("the simulator did not announce its ports: " + "".join(seen))
        sessions = "".join(
            f'[[session]]\ncid = {cid}\napn = "{"internet" if cid == 1 else f"apn{cid}.example"}"\nport = "{self.ptys[cid - 1]}"\nteardown = "lcp"\n'
            f'default_route = {"true" if cid == 1 else "false"}\n'
            for cid in range(1, self.sessions + 1)
        )
        self.config.write_text(
            f'[modem]\nport = "{self.ptys[0]}"\nregistration_timeout = 20\nreboot_timeout = 20\n'
            f'runtime_dir = "{self.tmp / "run"}"\nstate_dir = "{self.tmp / "state"}"\n{self.modem_extra}{sessions}'
        )

    def larappp(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        argv = ns_argv(self.dte, sys.executable, "-m", "larappp.cli", "--config", str(self.config), *args)
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=self._env,
                              check=False)

    def up(self) -> tuple[float, float]:
        """Bring every session up: seconds `larappp up` took, and from the first ATD (its
        "dialing" progress line) until the last session had IPv4 and global IPv6 usable."""
        self._up = True
        argv = ns_argv(self.dte, sys.executable, "-m", "larappp.cli", "--config", str(self.config), "up")
        start = time.monotonic()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                                env=self._env)
        assert proc.stderr is not None
        dialled = usable = 0.0
        lines = []
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("dialing cid") and not dialled:
                dialled = time.monotonic()
            if " up, IPv4 " in line:
                usable = time.monotonic()
        out = proc.communicate(timeout=120)[0]
        elapsed = time.monotonic() - start
        if proc.returncode != 0:
            raise RuntimeError(f"larappp up failed ({proc.returncode}): {''.join(lines)}{out}")
        return elapsed, usable - dialled if dialled and usable else float("nan")

    def status(self) -> dict[str, Any]:
        out = self.larappp("status", "--json", timeout=30)
        result: dict[str, Any] = json.loads(out.stdout)
        return result

    def sim_status(self) -> dict[str, Any]:
        """The simulator's own status (`larappp sim fault status`): its radio counters among them."""
        out = subprocess.run([sys.executable, "-m", "larappp.cli", "sim", "fault", "--socket", str(self.control),
                              "status"], capture_output=True, text=True, timeout=30, cwd=ROOT, env=self._env,
                             check=False)
        if out.returncode != 0:
            raise RuntimeError(f"larappp sim fault status failed: {out.stderr}")
        result: dict[str, Any] = json.loads(out.stdout)
        return result

    def daemon_pid(self) -> int:
        return int((self.tmp / "run" / "larappp.pid").read_text().strip())

    def sim_pid(self) -> int:
        assert self.sim is not None
        return self.sim.pid

    def close(self) -> None:
        try:
            if self._up:
                self._up = False
                self.larappp("down", timeout=90)
        finally:
            if self.sim is not None and self.sim.poll() is None:
                self.sim.send_signal(signal.SIGTERM)
                try:
                    self.sim.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.sim.kill()
                    self.sim.wait()
            for ns in (self.dte, self.inet):
                subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- tools on either side ---------------------------------------------------------------
    def iperf_server(self, port: int = 5201) -> subprocess.Popen[bytes]:
        server = subprocess.Popen(ns_argv(self.inet, "iperf3", "-s", "-p", str(port)),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        return server

    def iperf_client(self, target: str, *extra: str, port: int = 5201) -> subprocess.Popen[str]:
        return subprocess.Popen(ns_argv(self.dte, "iperf3", "-c", target, "-p", str(port), "-J", *extra),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop(proc: subprocess.Popen[Any]) -> None:
    """End a child this rig started (by its own handle, never by name)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
