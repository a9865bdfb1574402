"""The template unit: `systemd-analyze verify`, an exposure of 4.0 or less, and larappp
speaking the notify protocol with the directories systemd gives it."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, Cli

UNIT = ROOT / "systemd" / "larappp@.service"
INSTALLED_AT = "/usr/local/bin/larappp"
MAX_EXPOSURE = 4.0
needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed (Debian package systemd)"
)


def _instance(tmp_path: Path) -> Path:
    """The template as instance wwan0, its ExecStart pointing at this machine's larappp.

    verify checks that the program exists; where larappp is installed is the only change.
    """
    text = UNIT.read_text()
    assert f"ExecStart={INSTALLED_AT} up --foreground" in text
    here = shutil.which("larappp") or sys.executable
    path = tmp_path / "larappp@wwan0.service"
    path.write_text(text.replace(INSTALLED_AT, here))
    return path


@needs_analyze
def test_the_template_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    out = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(_instance(tmp_path))],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stderr.strip() == "", out.stderr  # no warnings either


@needs_analyze
def test_the_template_exposure_is_at_most_4(tmp_path: Path) -> None:
    out = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(_instance(tmp_path))],
        capture_output=True, text=True, timeout=60, check=False,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d)", out.stdout)
    assert match, out.stdout + out.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, out.stdout


def test_the_template_keeps_what_larappp_needs() -> None:
    """The sandbox must still let the daemon work: its devices, capabilities and directories."""
    text = UNIT.read_text()
    settings = [line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#")]
    values: dict[str, list[str]] = {}
    for key, value in settings:
        values.setdefault(key, []).append(value)
    assert values["Type"] == ["notify"]
    assert values["Environment"] == ["LARAPPP_CONFIG=/etc/larappp/%i.toml"]
    assert values["RuntimeDirectory"] == ["larappp/%i"] and values["StateDirectory"] == ["larappp/%i"]
    assert set(values["CapabilityBoundingSet"][0].split()) == {"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_SYS_ADMIN"}
    devices = {d.split()[0] for d in values["DeviceAllow"]}
    assert {"/dev/net/tun", "/dev/ppp", "char-ttyACM", "/dev/ptmx", "char-pts"} <= devices
    assert "/proc/sys/net" in values["ReadWritePaths"][0].split()
    # metrics_file: node_exporter's textfile directory (Debian's prometheus-node-exporter)
    assert "-/var/lib/prometheus/node-exporter" in values["ReadWritePaths"][0].split()
    assert "network-pre.target" in values["After"][0].split()
    assert "network.target" in values["Before"][0].split()


def _wait_catching(pid: int, sig: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = Path(f"/proc/{pid}/status").read_text()
        caught = int(re.search(r"^SigCgt:\s*([0-9a-f]+)", status, re.MULTILINE).group(1), 16)  # type: ignore[union-attr]
        if caught & (1 << (sig - 1)):
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} never installed a handler for signal {sig}")


def test_up_in_the_foreground_notifies_and_uses_the_service_directories(
    cli: Cli, sim_factory, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    sim = sim_factory(ports=1)
    cfg = cli.write_config(f'[modem]\nport = "{sim.ptys[0]}"\nregistration_timeout = 20\n', '[[session]]\ncid = 1\napn = "internet"\n')
    runtime, state = tmp_path / "unit-run", tmp_path / "unit-state"
    runtime.mkdir()
    state.mkdir()
    notify_path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind(str(notify_path))
        manager.settimeout(60)
        env = dict(
            os.environ, PYTHONPATH=str(ROOT), LARAPPP_NO_PPP="1", NOTIFY_SOCKET=str(notify_path),
            RUNTIME_DIRECTORY=str(runtime), STATE_DIRECTORY=str(state), WATCHDOG_USEC="1000000",
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "larappp.cli", "--config", str(cfg), "up", "--foreground"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        try:
            statuses = []
            while "READY=1" not in (message := manager.recv(4096).decode()).splitlines():
                statuses.append(message)
            ready = message
            # Bring-up is readable in `systemctl status` while it happens.
            assert any(m.startswith("STATUS=waiting for registration") for m in statuses), statuses
            assert all("EXTEND_TIMEOUT_USEC=200000000" in m.splitlines() for m in statuses), statuses
            assert any(m.startswith("STATUS=registered") for m in statuses), statuses
            assert any(m.startswith("STATUS=dialing cid 1") for m in statuses), statuses
            assert "cid 1 connected" in ready
            assert (runtime / "larappp.pid").read_text().strip() == str(proc.pid)
            assert (runtime / "state.json").exists()
            assert not (tmp_path / "run" / "state.json").exists()  # the config's runtime_dir lost
            assert manager.recv(4096).decode() == "WATCHDOG=1"  # every 0.5 s, the session being up
            # READY goes out just before the supervisor installs its SIGTERM handler: wait for it
            # (a SIGTERM in between would end the process without teardown).
            _wait_catching(proc.pid, signal.SIGTERM)
            proc.send_signal(signal.SIGTERM)
            while (message := manager.recv(4096).decode()) == "WATCHDOG=1":
                pass  # pings sent before the signal arrived
            assert "STOPPING=1" in message.splitlines(), message
            assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
