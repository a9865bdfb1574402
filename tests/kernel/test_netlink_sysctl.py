"""larappp.transport.sysctl: on a fake /proc/sys tree, and per namespace on the real one."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import TypeVar

import pytest

from larappp.errors import ConfigError, NetworkSetupError
from larappp.transport.sysctl import Sysctl, SysctlChange
from larappp.transport.tun import Tun
from tests.nshelp import in_netns

T = TypeVar("T")


@pytest.fixture
def fake_root(tmp_path: Path) -> Path:
    for ifname in ("ppp0", "all"):
        conf = tmp_path / "net" / "ipv6" / "conf" / ifname
        conf.mkdir(parents=True)
        for key, value in (
            ("accept_ra", "1"),
            ("addr_gen_mode", "0"),
            ("autoconf", "1"),
            ("disable_ipv6", "0"),
            ("forwarding", "0"),
        ):
            (conf / key).write_text(value + "\n")
    (tmp_path / "net" / "ipv4").mkdir(parents=True)
    (tmp_path / "net" / "ipv4" / "ip_forward").write_text("0\n")
    return tmp_path


def test_write_remembers_the_first_old_value_and_undo_restores(fake_root: Path) -> None:
    sysctl = Sysctl(fake_root)
    sysctl.set_ipv6_conf("ppp0", "accept_ra", 2)
    sysctl.set_ipv6_conf("ppp0", "accept_ra", 0)
    sysctl.set_forwarding(4, True)
    sysctl.set_forwarding(6, True, "all")
    assert sysctl.get_ipv6_conf("ppp0", "accept_ra") == "0"
    assert sysctl.read("net/ipv4/ip_forward") == "1"
    assert sysctl.changes == [
        SysctlChange("net/ipv6/conf/ppp0/accept_ra", "1", "2"),
        SysctlChange("net/ipv4/ip_forward", "0", "1"),
        SysctlChange("net/ipv6/conf/all/forwarding", "0", "1"),
    ]
    assert sysctl.undo() == []
    assert sysctl.get_ipv6_conf("ppp0", "accept_ra") == "1"
    assert sysctl.read("net/ipv4/ip_forward") == "0"
    assert sysctl.get_ipv6_conf("all", "forwarding") == "0"
    assert sysctl.changes == []


def test_prepare_ipv6_link_both_modes(fake_root: Path) -> None:
    sysctl = Sysctl(fake_root)
    sysctl.prepare_ipv6_link("ppp0", kernel_slaac=True)
    values = {
        k: sysctl.get_ipv6_conf("ppp0", k)
        for k in ("accept_ra", "addr_gen_mode", "autoconf", "disable_ipv6")
    }
    assert values == {"accept_ra": "2", "addr_gen_mode": "1", "autoconf": "1", "disable_ipv6": "0"}
    sysctl.prepare_ipv6_link("ppp0", kernel_slaac=False)
    assert sysctl.get_ipv6_conf("ppp0", "accept_ra") == "0"
    assert sysctl.get_ipv6_conf("ppp0", "autoconf") == "0"
    sysctl.undo()
    assert sysctl.get_ipv6_conf("ppp0", "addr_gen_mode") == "0"


def test_vanished_interface_is_skipped_by_undo(fake_root: Path) -> None:
    sysctl = Sysctl(fake_root)
    sysctl.set_ipv6_conf("ppp0", "accept_ra", 0)
    sysctl.set_ipv6_conf("all", "forwarding", 1)
    for child in (fake_root / "net/ipv6/conf/ppp0").iterdir():
        child.unlink()
    (fake_root / "net/ipv6/conf/ppp0").rmdir()
    assert sysctl.undo() == []
    assert sysctl.get_ipv6_conf("all", "forwarding") == "0"
    sysctl.set_ipv6_conf("all", "forwarding", 1)
    sysctl.forget_interface("all")
    assert sysctl.changes == []


def test_bad_keys_and_missing_values(fake_root: Path) -> None:
    sysctl = Sysctl(fake_root)
    for bad in ("kernel/hostname", "net/../../etc/passwd", "net//ipv4"):
        with pytest.raises(ConfigError):
            sysctl.read(bad)
    with pytest.raises(ConfigError):
        sysctl.set_ipv6_conf("../x", "accept_ra", 0)
    with pytest.raises(ConfigError):
        sysctl.set_ipv6_conf("ppp0", "a/b", 0)
    with pytest.raises(NetworkSetupError, match="check the interface name"):
        sysctl.set_ipv6_conf("ppp9", "accept_ra", 0)
    with pytest.raises(ValueError):
        sysctl.set_forwarding(5, True)
    assert sysctl.changes == []


def ns_read(namespace: str, key: str) -> str:
    done = subprocess.run(
        ["ip", "netns", "exec", namespace, "cat", f"/proc/sys/{key}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces")
def test_real_sysctls_follow_the_thread_namespace(netns: str) -> None:
    root_value = Path("/proc/sys/net/ipv6/conf/all/forwarding").read_text().strip()
    flipped = "0" if root_value == "1" else "1"

    def scenario() -> dict[str, str]:
        sysctl = Sysctl()
        with Tun.open("ppp0") as tun:
            sysctl.prepare_ipv6_link(tun.name, kernel_slaac=True)
            sysctl.set_ipv6_conf("all", "forwarding", flipped)
            during = {
                "accept_ra": ns_read(netns, "net/ipv6/conf/ppp0/accept_ra"),
                "addr_gen_mode": ns_read(netns, "net/ipv6/conf/ppp0/addr_gen_mode"),
                "forwarding": ns_read(netns, "net/ipv6/conf/all/forwarding"),
                # /proc/sys opened from this thread shows the thread's namespace
                "thread_view": Path("/proc/sys/net/ipv6/conf/all/forwarding").read_text().strip(),
            }
        failures = sysctl.undo()  # ppp0 is gone: skipped; "all" restored
        during["failures"] = ",".join(failures)
        during["after"] = ns_read(netns, "net/ipv6/conf/all/forwarding")
        return during

    seen = in_netns(netns, scenario)
    assert seen["accept_ra"] == "2" and seen["addr_gen_mode"] == "1"
    assert seen["forwarding"] == flipped == seen["thread_view"] and seen["failures"] == ""
    assert seen["after"] != flipped
    # the root namespace never changed (read from this thread, which stayed there)
    assert Path("/proc/sys/net/ipv6/conf/all/forwarding").read_text().strip() == root_value
