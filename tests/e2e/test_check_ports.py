"""`larappp check` finds and fixes a host port range that overlaps the module's UEMBPF range."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from larappp.transport.netns import create_netns, delete_netns
from tests.e2e.conftest import Cli

CONFIG = '[modem]\nport = "sim"\nembpf = "6000-6200"\n'
SESSION = '[[session]]\ncid = 1\napn = "internet"\n'


@pytest.fixture
def overlapping_ns() -> Iterator[str]:
    name = "larappp-t-ports"
    delete_netns(name)
    create_netns(name)
    try:
        subprocess.run(
            ["ip", "netns", "exec", name, "sh", "-c", "echo '5000 65000' > /proc/sys/net/ipv4/ip_local_port_range"],
            check=True,
        )
        yield name
    finally:
        delete_netns(name)


def _sysctl(ns: str, key: str) -> str:
    out = subprocess.run(["ip", "netns", "exec", ns, "cat", f"/proc/sys/net/ipv4/{key}"], capture_output=True, text=True, check=True)
    return " ".join(out.stdout.split())


def test_overlap_is_reported_then_fixed_without_narrowing(cli: Cli, overlapping_ns: str) -> None:
    cfg = cli.write_config(CONFIG, SESSION)
    binder = subprocess.Popen(
        ["ip", "netns", "exec", overlapping_ns, sys.executable, "-c",
         ("import socket,time; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', 6100));"
          " print('bound', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert binder.stdout is not None and binder.stdout.readline().strip() == "bound"
        check = cli.run(cfg, "check", netns=overlapping_ns)
        assert check.returncode == 1, check.stdout + check.stderr
        assert "6000-6200" in check.stdout
        assert "6100" in check.stdout  # the socket already bound inside the module's range
        assert "--fix-ports" in check.stdout

        fixed = cli.run(cfg, "check", "--fix-ports", netns=overlapping_ns)
        assert "6000-6200" in _sysctl(overlapping_ns, "ip_local_reserved_ports")
        assert _sysctl(overlapping_ns, "ip_local_port_range") == "5000 65000"
        # The ephemeral range no longer hands out those ports; the bound socket is still reported.
        assert "6100" in fixed.stdout
    finally:
        binder.kill()
        binder.wait()

    again = cli.run(cfg, "check", netns=overlapping_ns)
    assert again.returncode == 0, again.stdout
    assert _sysctl(overlapping_ns, "ip_local_port_range") == "5000 65000"

