"""Hook scripts (larappp.hooks) in a temporary directory: which run, in what order, with what
environment, their output logged, a hung one killed with its children."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from larappp.hooks import HookDispatcher, HookEvent, hook_scripts, run_hook
from tests.aio import run_bounded

UP_SESSION = {
    "cid": 1, "apn": "internet", "port": "/dev/ttyACM0", "state": "up", "ifname": "wwan0",
    "ipv4": "10.0.0.2", "ipv4_peer": "10.64.64.64", "ipv6_global": ["2001:db8::2"],
    "dns": ["192.0.2.53", "2001:db8::53"], "user": "alice", "password": "s3cret",
}
RECORDER = """#!/bin/sh
env | grep -E '^(LARAPPP_|PATH=|HOME=|USER=)' | sort > "{out}/$(basename "$0").$LARAPPP_EVENT.$LARAPPP_IPV4"
echo "ran $LARAPPP_EVENT"
"""


def _hook(directory: Path, name: str, text: str, mode: int = 0o755) -> Path:
    path = directory / name
    path.write_text(text)
    path.chmod(mode)
    return path


def _env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def test_only_safe_executables_with_run_parts_names_run_in_name_order(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    hooks = tmp_path / "hooks.d"
    hooks.mkdir()
    for name in ("20-second", "10-first"):
        _hook(hooks, name, "#!/bin/sh\n")
    _hook(hooks, "30-backup~", "#!/bin/sh\n")  # editor backup: not a run-parts name
    _hook(hooks, "40-x.dpkg-old", "#!/bin/sh\n")
    _hook(hooks, "50-not-executable", "#!/bin/sh\n", mode=0o644)
    _hook(hooks, "60-group-writable", "#!/bin/sh\n", mode=0o775)
    (hooks / "70-directory").mkdir()
    with caplog.at_level(logging.WARNING, logger="larappp.hooks"):
        assert [p.name for p in hook_scripts(hooks)] == ["10-first", "20-second"]
    assert "60-group-writable skipped" in caplog.text
    assert hook_scripts(tmp_path / "missing") == []


def test_up_lost_and_down_reach_the_hooks_with_the_documented_environment(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    hooks, out = tmp_path / "hooks.d", tmp_path / "out"
    hooks.mkdir()
    out.mkdir()
    _hook(hooks, "50-record", RECORDER.format(out=out))

    async def scenario() -> None:
        dispatcher = HookDispatcher(hooks, timeout=10)
        dispatcher.observe([{**UP_SESSION, "state": "connecting"}])
        dispatcher.observe([UP_SESSION])
        dispatcher.observe([UP_SESSION])  # still up: no second event
        dispatcher.observe([{"cid": 1, "apn": "internet", "state": "lost", "last_loss_cause": "NO CARRIER"}])
        dispatcher.observe([{**UP_SESSION, "ipv4": "10.0.0.3"}])
        dispatcher.observe([{"cid": 1, "apn": "internet", "state": "hanging-up"}], stopping=True)
        await dispatcher.drain()

    with caplog.at_level(logging.INFO, logger="larappp.hooks"):
        run_bounded(scenario)
    assert sorted(p.name for p in out.iterdir()) == [
        "50-record.down.10.0.0.3", "50-record.lost.10.0.0.2", "50-record.up.10.0.0.2", "50-record.up.10.0.0.3",
    ]
    up, lost, down = (_env(out / f"50-record.{name}") for name in ("up.10.0.0.2", "lost.10.0.0.2", "down.10.0.0.3"))
    assert up == {
        "LARAPPP_APN": "internet", "LARAPPP_CAUSE": "", "LARAPPP_CID": "1", "LARAPPP_DNS": "192.0.2.53 2001:db8::53",
        "LARAPPP_EVENT": "up", "LARAPPP_IFACE": "wwan0", "LARAPPP_IPV4": "10.0.0.2", "LARAPPP_IPV4_PEER": "10.64.64.64",
        "LARAPPP_IPV6": "2001:db8::2", "LARAPPP_PORT": "/dev/ttyACM0",
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    }
    # lost and down tell what the link was while it was up, and why it ended.
    assert (lost["LARAPPP_IFACE"], lost["LARAPPP_IPV4"], lost["LARAPPP_CAUSE"]) == ("wwan0", "10.0.0.2", "NO CARRIER")
    assert (down["LARAPPP_EVENT"], down["LARAPPP_IPV4"], down["LARAPPP_CAUSE"]) == ("down", "10.0.0.3", "larappp down")
    assert "s3cret" not in caplog.text and all("s3cret" not in p.read_text() and "alice" not in p.read_text()
                                                for p in out.iterdir())
    assert "hook 50-record (up, cid 1): ran up" in caplog.text
    # One event per change: the "up" seen twice in a row ran the hook once.
    assert [r.getMessage() for r in caplog.records if ": ran " in r.getMessage()] == [
        "hook 50-record (up, cid 1): ran up", "hook 50-record (lost, cid 1): ran lost",
        "hook 50-record (up, cid 1): ran up", "hook 50-record (down, cid 1): ran down",
    ]


def test_a_hung_hook_is_killed_with_its_children_and_a_failing_one_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pidfile = tmp_path / "child.pid"
    hung = _hook(tmp_path, "hung", f"#!/bin/sh\nsleep 60 &\necho $! > {pidfile}\nwait\n")
    failing = _hook(tmp_path, "failing", "#!/bin/sh\necho broken >&2\nexit 3\n")
    event = HookEvent.of("up", UP_SESSION)

    async def scenario() -> tuple[int | None, int | None, float]:
        started = time.monotonic()
        killed = await run_hook(hung, event, timeout=0.5)
        elapsed = time.monotonic() - started
        return killed, await run_hook(failing, event, timeout=5), elapsed

    with caplog.at_level(logging.INFO, logger="larappp.hooks"):
        killed, failed, elapsed = run_bounded(scenario)
    assert killed is None and elapsed < 5
    # The hook's own background child went with it (gone, or a zombie for init to reap).
    stat = Path(f"/proc/{int(pidfile.read_text())}/stat")
    assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    assert failed == 3
    assert "hook hung (up, cid 1) killed after 0.5 s (modem.hooks_timeout)" in caplog.text
    assert "hook failing (up, cid 1): broken" in caplog.text
    assert "hook failing (up, cid 1) exited with status 3" in caplog.text
