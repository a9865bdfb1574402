"""The template unit under a real systemd as PID 1: the VM boots the host's systemd over
the host's root, starts larappp@simtest against the simulator, drops its call, and stops it.

The VM's init (scripts/vm/build.sh) runs a guest script; here a second init, the same
script with one branch more, is appended to the initramfs as /init-systemd and chosen
with rdinit=: it mounts the root as usual, copies the stage folder (units, config) over
it and hands PID 1 to systemd. build.sh and the cached initramfs stay as they are.

The unit runs as shipped, sandbox included; a drop-in only points ExecStart= at this
checkout's interpreter (under /root, hence ProtectHome=read-only). The simulator runs
beside it as its own process with its simulated network (a namespace with a TUN), as a
module sits beside the unit: larappp runs PPP with the built-in engine over the
simulator's pty and puts its link on the guest's host side. The guest script drops the
call through the simulator's control socket and polls `systemctl show` while larappp
recovers."""

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
SIM_DIR = "/run/larappp-sim"
METRICS_FILE = f"/var/lib/prometheus/node-exporter/larappp-{INSTANCE}.prom"
#: the session's own port and a control port of its own (it hears +CGEV and +CEREG), as on a
#: router; a hold-off before the redial longer than the guest's polls of `systemctl show` are
#: apart (up to ~3 s under TCG on a busy host), so that one of them sees the waiting status
CONFIG = f"""
[modem]
port = "{SIM_DIR}/ttyLARA1"
registration_timeout = 60
metrics_file = "{METRICS_FILE}"
[[session]]
cid = 1
apn = "internet"
port = "{SIM_DIR}/ttyLARA0"
backend = "{{backend}}"
dns = "file"
holdoff = 5
lcp_echo_interval = 2
lcp_echo_failure = 3
"""
#: how each backend learns of the dropped call on a pty (no DCD): the built-in engine reads the
#: module's NO CARRIER between the frames; pppd does not, and ends when its Echo-Requests come
#: back to it (the module in command mode echoes them)
CAUSE = {"builtin": "NO CARRIER", "pppd": "Echo-Requests came back"}
#: `systemctl show` of the unit, one property a line
SHOW = "systemctl show -p ActiveState -p SubState -p StatusText -p NRestarts -p Result -p WatchdogTimestampMonotonic"
GUEST_TEST = f"""#!/bin/sh
unit=larappp@{INSTANCE}.service
export PYTHONPATH={{package}}
larappp="{sys.executable} -m larappp.cli"
show() {{{{ {SHOW} $unit; }}}}
links() {{{{ ip -o link | cut -d: -f2 | tr -d ' ' | sort; }}}}
# the simulator beside the unit (started by this script: a module is not the unit's either)
$larappp sim --pty-dir {SIM_DIR} --rfc2217-port none --ports 2 --registration-delay 0.3 --network larappp-sim-inet \\
    > /share/sim.log 2>&1 &
i=0; while [ ! -S {SIM_DIR}/control.sock ] && [ $i -lt 600 ]; do sleep 0.2; i=$((i+1)); done
links > /share/links-before.txt

systemctl start $unit; echo "start=$?" > /share/result.txt
show > /share/ready.txt
ls /run/larappp/{INSTANCE} > /share/rundir.txt 2>&1
links > /share/links-up.txt
i=0; while ! grep -qx 'larappp_up 1' {METRICS_FILE} 2>/dev/null && [ $i -lt 150 ]; do sleep 0.2; i=$((i+1)); done
cp {METRICS_FILE} /share/metrics-up.prom

# The network drops the call; poll the unit's status until it says up again after something else.
$larappp sim fault --socket {SIM_DIR}/control.sock drop --cid 1 > /share/fault.txt 2>&1
left_up=0; i=0
while [ $i -lt 1200 ]; do
    now=$(show)
    echo "$(cut -d' ' -f1 /proc/uptime) $(printf '%s' "$now" | tr '\\n' '|')" >> /share/recovery.txt
    if printf '%s\\n' "$now" | grep -qx 'StatusText=cid 1 up'; then
        [ $left_up = 1 ] && break
    else
        left_up=1
    fi
    i=$((i+1)); sleep 0.1
done
show > /share/recovered.txt
# WATCHDOG=1 again once every session is up: the ping's timestamp moves on.
back=$(systemctl show -p WatchdogTimestampMonotonic --value $unit)
i=0; while [ "$(systemctl show -p WatchdogTimestampMonotonic --value $unit)" = "$back" ] && [ $i -lt 100 ]; do sleep 0.2; i=$((i+1)); done
show > /share/pinged.txt

systemctl stop $unit; echo "stop=$?" >> /share/result.txt
show > /share/stopped.txt
systemctl show -p ExecMainStatus $unit >> /share/stopped.txt
ls -d /run/larappp/{INSTANCE} > /share/rundir-after.txt 2>&1
links > /share/links-after.txt
cp {METRICS_FILE} /share/metrics-down.prom
journalctl -o cat -u $unit --no-pager > /share/journal.txt 2>&1
$larappp sim fault --socket {SIM_DIR}/control.sock status > /share/sim-status.txt 2>&1
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
        f"Environment=PYTHONPATH={GUEST_PACKAGE_DIR}\n"
        "ExecStart=\n"
        f"ExecStart={sys.executable} -m larappp.cli up --foreground\n"
        "ProtectHome=read-only\n"
    )
    (folder / "test.sh").write_text(GUEST_TEST.format(package=GUEST_PACKAGE_DIR))
    # Debian's prometheus-node-exporter makes its textfile directory (root's, 0755)
    (folder / Path(METRICS_FILE).parent.relative_to("/")).mkdir(parents=True)
    (units / "larappp-test.service").write_text(
        f"[Unit]\nDescription=larappp VM test\n[Service]\nType=oneshot\nExecStart=/bin/sh {folder}/test.sh\n"
        "StandardOutput=journal+console\n"
    )
    (units / "larappp-test.target").write_text(
        "[Unit]\nDescription=larappp VM test\nRequires=larappp-test.service\nAfter=larappp-test.service\nAllowIsolate=yes\n"
    )
    (folder / "etc/larappp").mkdir(parents=True)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _recovery(text: str | None) -> list[tuple[float, dict[str, str]]]:
    """recovery.txt: (guest uptime, the unit's properties) for each poll of `systemctl show`."""
    polls = []
    for line in (text or "").splitlines():
        stamp, _, props = line.partition(" ")
        polls.append((float(stamp), _properties(props.replace("|", "\n"))))
    return polls


def _metrics(text: str | None) -> dict[str, str]:
    return dict(line.rsplit(" ", 1) for line in (text or "").splitlines() if line and not line.startswith("#"))


@pytest.mark.parametrize("backend", ["builtin", "pppd"])
def test_the_template_starts_recovers_a_dropped_call_and_stops_clean_under_systemd(
    systemd_artifacts: VmArtifacts, stage: Path, backend: str
) -> None:
    (stage / f"etc/larappp/{INSTANCE}.toml").write_text(CONFIG.format(backend=backend))
    append = f"rdinit=/init-systemd larappp.systemd={stage} systemd.unit=larappp-test.target"
    with PppdVm("", artifacts=systemd_artifacts, memory_mb=512, extra_append=append) as vm:
        assert vm.wait(900) == 0
    journal = vm.read_share("journal.txt") or ""
    context = f"{journal}\n--- simulator:\n{vm.read_share('sim.log')}"
    assert vm.read_share("result.txt") == "start=0\nstop=0\n", context
    # start -> READY, with PPP up: the link's interface is on the host
    ready = _properties(vm.read_share("ready.txt"))
    assert (ready["ActiveState"], ready["SubState"]) == ("active", "running"), context
    assert ready["StatusText"] == "cid 1 up", context
    assert "larappp.pid" in (vm.read_share("rundir.txt") or ""), context
    before = set((vm.read_share("links-before.txt") or "").split())
    assert set((vm.read_share("links-up.txt") or "").split()) - before == {"lara1"}, context
    # metrics_file is writable under the sandbox (node_exporter's textfile directory)
    metrics = _metrics(vm.read_share("metrics-up.prom"))
    assert metrics.get("larappp_up") == "1", vm.read_share("metrics-up.prom")

    # the call dropped -> recovery, readable in the unit's status while it happens
    assert '"ok": true' in (vm.read_share("fault.txt") or ""), vm.read_share("fault.txt")
    polls = _recovery(vm.read_share("recovery.txt"))
    recovering = [(t, p) for t, p in polls if p["StatusText"] != "cid 1 up"]
    assert recovering, f"no status other than up seen while recovering: {polls}"
    texts = [p["StatusText"] for _, p in recovering]
    # the hold-off before the redial: "cid 1 lost (the module left data mode: it sent NO CARRIER
    # between the PPP frames), redial 1 at 23:10:05"
    assert any(t.startswith("cid 1 lost (") and CAUSE[backend] in t and ", redial 1 at " in t for t in texts), texts
    # back on the session's own port in command mode: no bring-up of the module again
    assert "bringing the module up again" not in journal, context
    print("\n".join(dict.fromkeys(texts)))
    # the unit stayed active the whole time: no restart by systemd
    assert all((p["ActiveState"], p["SubState"], p["NRestarts"]) == ("active", "running", "0") for _, p in polls), polls
    recovered = _properties(vm.read_share("recovered.txt"))
    assert (recovered["StatusText"], recovered["ActiveState"], recovered["NRestarts"]) == ("cid 1 up", "active", "0"), context
    # the watchdog: no ping while the session was lost or redialling (larappp's own lines for
    # those states), pings again once it is back
    down = [p["WatchdogTimestampMonotonic"] for _, p in recovering
            if p["StatusText"].startswith(("cid 1: lost (", "cid 1 lost (", "cid 1 redialling"))]
    assert down and len(set(down)) == 1, polls
    pinged = _properties(vm.read_share("pinged.txt"))
    assert int(pinged["WatchdogTimestampMonotonic"]) / 1e6 > recovering[-1][0], (pinged, recovering[-1])
    assert pinged["NRestarts"] == "0" and "watchdog" not in journal.lower(), context

    # stop -> clean: inactive with success, no interface, no runtime directory (pid file), metrics down
    stopped = _properties(vm.read_share("stopped.txt"))
    assert (stopped["ActiveState"], stopped["Result"], stopped["ExecMainStatus"]) == ("inactive", "success", "0"), context
    assert set((vm.read_share("links-after.txt") or "").split()) == before, context
    assert "No such file" in (vm.read_share("rundir-after.txt") or ""), vm.read_share("rundir-after.txt")
    assert _metrics(vm.read_share("metrics-down.prom")).get("larappp_up") == "0", vm.read_share("metrics-down.prom")
    assert "Traceback" not in journal
