"""Hook scripts through the real daemon: `up` runs them with the link's figures once PPP is up,
`down` runs them after the teardown; their output lands in the daemon's log."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_daemon_life import Larappp, in_netns  # noqa: F401 - the fixture is used by name

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@pytest.fixture
def with_hooks(in_netns: Larappp, tmp_path: Path) -> Iterator[tuple[Larappp, Path]]:  # noqa: F811
    hooks, out = tmp_path / "hooks.d", tmp_path / "out"
    hooks.mkdir()
    out.mkdir()
    hook = hooks / "10-record"
    hook.write_text(f'#!/bin/sh\nenv | grep ^LARAPPP_ | sort > "{out}/$LARAPPP_EVENT"\necho "recorded $LARAPPP_EVENT"\n')
    hook.chmod(0o755)
    text = in_netns.config.read_text().replace("[modem]\n", f'[modem]\nhooks_dir = "{hooks}"\nhooks_timeout = 5\n', 1)
    in_netns.config.write_text(text)
    yield in_netns, out


def _env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def test_up_and_down_run_the_hooks_with_the_link_figures(with_hooks: tuple[Larappp, Path]) -> None:
    larappp, out = with_hooks
    up = larappp.run("up", "--log-level", "info")  # hook output is logged at info
    assert up.returncode == 0, up.stderr
    _, state = larappp.status()
    session = state["sessions"][0]
    deadline = time.monotonic() + 10
    while not (out / "up").exists():
        assert time.monotonic() < deadline, "the up hook did not run"
        time.sleep(0.1)
    env = _env(out / "up")
    assert env["LARAPPP_EVENT"] == "up" and env["LARAPPP_CID"] == "1" and env["LARAPPP_APN"] == "internet"
    assert env["LARAPPP_IFACE"] == session["ifname"] and env["LARAPPP_IPV4"] == session["ipv4"]
    assert env["LARAPPP_DNS"].split() == session["dns"]
    assert larappp.run("down").returncode == 0
    down = _env(out / "down")  # the daemon waited for its hooks before it exited
    assert down["LARAPPP_EVENT"] == "down" and down["LARAPPP_IFACE"] == session["ifname"]
    assert "hook 10-record (down, cid 1): recorded down" in (larappp.run_dir / "larappp.log").read_text()
