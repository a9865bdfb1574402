"""The template unit under a real systemd as PID 1: the VM boots the host's systemd over
the host's root, starts larappp@simtest (the built-in simulator, AT level), and stops it.

The VM's init (scripts/vm/build.sh) runs a guest script; here a second init, the same
script with one branch more, is appended to the initramfs as /init-systemd and chosen
with rdinit=: it mounts the root as usual, copies the stage folder (units, config) over
it and hands PID 1 to systemd. build.sh and the cached initramfs stay as they are.

The unit runs as shipped, sandbox included; a drop-in only points ExecStart= at this
checkout's interpreter (under /root, hence ProtectHome=read-only) and stops the sessions
at CONNECT (the VM loads only the PPP and 9p modules: no TUN, no veth)."""

from __future__ import annotations

import dataclasses
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.vm.qemu import BUILD_SCRIPT, PppdVm, VmArtifacts

REPO = Path(__file__).resolve().parents[2]
INSTANCE = "simtest"
CONFIG = """
[modem]
port = "sim"
registration_timeout = 60
[sim]
network = ""
registration_delay = 0.3
[[session]]
cid = 1
apn = "internet"
"""
GUEST_TEST = f"""#!/bin/sh
unit=larappp@{INSTANCE}.service
systemctl start $unit; echo "start=$?" > /share/result.txt
systemctl show -p ActiveState -p SubState -p StatusText -p NRestarts $unit > /share/ready.txt
ls /run/larappp/{INSTANCE} > /share/rundir.txt 2>&1
systemctl stop $unit; echo "stop=$?" >> /share/result.txt
systemctl show -p ActiveState -p Result -p ExecMainStatus $unit > /share/stopped.txt
journalctl -o cat -u $unit --no-pager > /share/journal.txt 2>&1
echo 0 > /share/.exit-status
sync
systemctl poweroff --force --force
"""


#: inserted into the VM's init before it runs the guest script
SYSTEMD_BRANCH = """stage=""
for arg in $(cat /proc/cmdline); do case "$arg" in larappp.systemd=*) stage="${arg#larappp.systemd=}" ;; esac; done
if [ -n "$stage" ]; then
    cp -a "$N$stage/." $N/ || say "cannot copy $stage"
    # The host's root may be a container image: with this file systemd believes it runs in
    # Docker (and reads its settings from its own argv instead of the kernel command line).
    rm -f $N/.dockerenv
    say "guest start (systemd) $(cut -d' ' -f1 /proc/uptime)"
    exec switch_root $N /lib/systemd/systemd
fi
"""


def _newc(files: dict[str, tuple[int, bytes]]) -> bytes:
    """A cpio archive in the kernel's initramfs format ("newc"): name -> (mode, data)."""
    out = b""
    for ino, (name, (mode, data)) in enumerate([*files.items(), ("TRAILER!!!", (0, b""))], 1):
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0]
        header = b"070701" + b"".join(f"{f:08X}".encode() for f in fields) + name.encode() + b"\0"
        out += header + b"\0" * (-len(header) % 4) + data + b"\0" * (-len(data) % 4)
    return out + b"\0" * (-len(out) % 512)


@pytest.fixture
def systemd_artifacts(vm_artifacts: VmArtifacts, tmp_path: Path) -> VmArtifacts:
    """The VM's kernel with its initramfs plus /init-systemd (the kernel unpacks both archives)."""
    init = re.search(r"<<'INIT'\n(.*?)\nINIT\n", BUILD_SCRIPT.read_text(), re.DOTALL)
    assert init, f"no init script in {BUILD_SCRIPT}"
    anchor = 'say "guest start $(cut'
    assert anchor in init.group(1), "the VM's init changed: update SYSTEMD_BRANCH's anchor"
    script = init.group(1).replace(anchor, SYSTEMD_BRANCH + anchor, 1) + "\n"
    initrd = tmp_path / "initramfs-systemd.cpio"
    initrd.write_bytes(vm_artifacts.initrd.read_bytes() + _newc({"init-systemd": (0o100755, script.encode())}))
    return dataclasses.replace(vm_artifacts, initrd=initrd)


def _properties(text: str | None) -> dict[str, str]:
    return dict(line.split("=", 1) for line in (text or "").splitlines() if "=" in line)


GUEST_PACKAGE_DIR = "/opt/larappp-test"


@pytest.fixture
def stage() -> Iterator[Path]:
    """Files the guest's init copies over its root before systemd starts (a host folder
    outside /tmp, which the guest sees as its own tmpfs)."""
    folder = Path(tempfile.mkdtemp(prefix="larappp-systemd-", dir="/var/tmp"))
    units = folder / "etc/systemd/system"
    (units / "larappp@.service.d").mkdir(parents=True)
    shutil.copy(REPO / "systemd" / "larappp@.service", units / "larappp@.service")
    # The checkout may sit under /tmp, which the guest (and the unit's PrivateTmp) hides:
    # the guest imports a copy of the package from a path the unit can read.
    shutil.copytree(REPO / "larappp", folder / GUEST_PACKAGE_DIR.lstrip("/") / "larappp",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (units / "larappp@.service.d" / "vm.conf").write_text(
        "[Service]\n"
        f"Environment=PYTHONPATH={GUEST_PACKAGE_DIR} LARAPPP_NO_PPP=1\n"
        "ExecStart=\n"
        f"ExecStart={sys.executable} -m larappp.cli up --foreground\n"
        "ProtectHome=read-only\n"
    )
    (folder / "test.sh").write_text(GUEST_TEST)
    (units / "larappp-test.service").write_text(
        f"[Unit]\nDescription=larappp VM test\n[Service]\nType=oneshot\nExecStart=/bin/sh {folder}/test.sh\n"
        "StandardOutput=journal+console\n"
    )
    (units / "larappp-test.target").write_text(
        "[Unit]\nDescription=larappp VM test\nRequires=larappp-test.service\nAfter=larappp-test.service\nAllowIsolate=yes\n"
    )
    (folder / "etc/larappp").mkdir(parents=True)
    (folder / f"etc/larappp/{INSTANCE}.toml").write_text(CONFIG)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_the_template_starts_ready_and_stops_clean_under_systemd(systemd_artifacts: VmArtifacts, stage: Path) -> None:
    append = f"rdinit=/init-systemd larappp.systemd={stage} systemd.unit=larappp-test.target"
    with PppdVm("", artifacts=systemd_artifacts, memory_mb=512, extra_append=append) as vm:
        assert vm.wait(600) == 0
    journal = vm.read_share("journal.txt") or ""
    assert vm.read_share("result.txt") == "start=0\nstop=0\n", journal
    ready = _properties(vm.read_share("ready.txt"))
    assert (ready["ActiveState"], ready["SubState"]) == ("active", "running"), journal
    assert ready["StatusText"] == "cid 1 connected", journal
    assert "larappp.pid" in (vm.read_share("rundir.txt") or ""), journal
    stopped = _properties(vm.read_share("stopped.txt"))
    assert (stopped["ActiveState"], stopped["Result"], stopped["ExecMainStatus"]) == ("inactive", "success", "0"), journal
    assert "Traceback" not in journal
