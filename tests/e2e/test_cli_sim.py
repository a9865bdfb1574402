"""The real `larappp` CLI against the LARA-R6 simulator, over a pty and over RFC 2217."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import Cli

SESSION = """
[[session]]
cid = 1
apn = "internet"
teardown = "escape"
"""


def _modem(port: str, extra: str = "") -> str:
    return f'[modem]\nport = "{port}"\nregistration_timeout = 20\nreboot_timeout = 20\ncommand_timeout = 5\n{extra}'


def _status(cli: Cli, config) -> dict:  # type: ignore[no-untyped-def,type-arg]
    out = cli.run(config, "status", "--json")
    return json.loads(out.stdout)


@pytest.mark.parametrize("transport", ["pty", "rfc2217"])
def test_up_reaches_connect_and_down_returns_to_command_mode(cli: Cli, sim_factory, transport: str) -> None:  # type: ignore[no-untyped-def]
    sim = sim_factory()
    port = sim.ptys[0] if transport == "pty" else sim.urls[0]
    cfg = cli.write_config(_modem(port, 'embpf = "6000-6200"\n'), SESSION)
    up = cli.run(cfg, "up")
    assert up.returncode == 0, up.stderr + up.stdout
    state = _status(cli, cfg)
    assert state["state"] == "up"
    assert state["sessions"][0]["cid"] == 1
    assert state["sessions"][0]["state"] == "connected"
    assert state["modem"]["embpf"] == "6000-6200"
    down = cli.run(cfg, "down")
    assert down.returncode == 0, down.stderr + down.stdout
    assert _status(cli, cfg)["state"] == "down"
