"""The module's port range on the host: `up` reserves it itself with modem.fix_host_ports,
and `check --fix-ports --persist` keeps it across reboots in a sysctl.d drop-in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from larappp.transport.hostports import DROPIN_NAME, write_reserved_ports_dropin
from tests.e2e.conftest import ROOT, Cli

SESSION = '[[session]]\ncid = 1\napn = "internet"\n'


def _in_ns(ns: str, *argv: str) -> str:
    out = subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, check=True, timeout=60)
    return out.stdout


def _overlap(ns: str) -> None:
    """The ephemeral range covers the module's 6000-6200, as on hosts that widened it."""
    _in_ns(ns, "sh", "-c", "echo '5000 65000' > /proc/sys/net/ipv4/ip_local_port_range")


def _reserved(ns: str) -> str:
    return _in_ns(ns, "cat", "/proc/sys/net/ipv4/ip_local_reserved_ports").strip()


def test_up_reserves_the_module_range_when_fix_host_ports_is_set(cli: Cli, sim_factory, netns: str) -> None:  # type: ignore[no-untyped-def]
    _overlap(netns)
    sim = sim_factory(ports=1)
    cfg = cli.write_config(
        f'[modem]\nport = "{sim.ptys[0]}"\nembpf = "6000-6200"\nfix_host_ports = true\nregistration_timeout = 20\n', SESSION
    )
    up = cli.run(cfg, "up", netns=netns, ppp=False)
    assert up.returncode == 0, up.stderr + up.stdout
    assert "host ports: reserved 6000-6200 in ip_local_reserved_ports" in up.stderr
    assert _reserved(netns) == "6000-6200"
    assert _in_ns(netns, "cat", "/proc/sys/net/ipv4/ip_local_port_range").split() == ["5000", "65000"]


def test_up_without_fix_host_ports_says_what_to_change_and_reserves_nothing(cli: Cli, sim_factory, netns: str) -> None:  # type: ignore[no-untyped-def]
    _overlap(netns)
    sim = sim_factory(ports=1)
    cfg = cli.write_config(f'[modem]\nport = "{sim.ptys[0]}"\nembpf = "6000-6200"\nregistration_timeout = 20\n', SESSION)
    up = cli.run(cfg, "up", netns=netns, ppp=False)
    assert up.returncode == 0, up.stderr + up.stdout
    assert "set modem.fix_host_ports = true or run 'larappp check --fix-ports'" in up.stderr
    assert _reserved(netns) == ""


def test_check_persist_writes_a_dropin_that_sysctl_applies(cli: Cli, netns: str, tmp_path: Path) -> None:
    """In a private mount namespace whose /etc/sysctl.d is a tmpfs: the host's stays untouched."""
    _overlap(netns)
    _in_ns(netns, "sh", "-c", "echo 1000-1005 > /proc/sys/net/ipv4/ip_local_reserved_ports")
    cfg = cli.write_config('[modem]\nport = "sim"\nembpf = "6000-6200"\n', SESSION)
    copy = tmp_path / "dropin.conf"
    script = (
        'mount -t tmpfs larappp-test /etc/sysctl.d && "$@" && cp /etc/sysctl.d/' + DROPIN_NAME + f' {copy}'
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        ["ip", "netns", "exec", netns, "unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
         sys.executable, "-m", "larappp.cli", "--config", str(cfg), "check", "--persist"],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env=env, check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"wrote /etc/sysctl.d/{DROPIN_NAME}" in out.stdout
    assert "net.ipv4.ip_local_reserved_ports = 1000-1005,6000-6200" in copy.read_text().splitlines()
    assert not Path("/etc/sysctl.d", DROPIN_NAME).exists()

    # What systemd-sysctl does at boot, in a namespace that starts with nothing reserved.
    _in_ns(netns, "sh", "-c", "echo > /proc/sys/net/ipv4/ip_local_reserved_ports")
    _in_ns(netns, "sysctl", "-q", "-p", str(copy))
    assert _reserved(netns) == "1000-1005,6000-6200"


def test_the_dropin_is_replaced_whole(tmp_path: Path) -> None:
    first = write_reserved_ports_dropin("6000-6200", tmp_path / "sysctl.d")
    second = write_reserved_ports_dropin("6000-6300", tmp_path / "sysctl.d")
    assert first == second == tmp_path / "sysctl.d" / DROPIN_NAME
    assert [p.name for p in (tmp_path / "sysctl.d").iterdir()] == [DROPIN_NAME]
    lines = [line for line in second.read_text().splitlines() if not line.startswith("#")]
    assert lines == ["net.ipv4.ip_local_reserved_ports = 6000-6300"]
