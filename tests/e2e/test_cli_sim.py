"""The real `larappp` CLI against the LARA-R6 simulator, over a pty and over RFC 2217.

These are AT-level tests: `up` stops at CONNECT (`ppp=False`); test_ppp_e2e.py dials
through PPP in namespaces.
"""

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


def test_up_runs_ppp_unless_a_test_says_it_stops_at_connect(cli: Cli) -> None:
    """The helper's default is the whole dial; PPP outside a test namespace is refused."""
    cfg = cli.write_config(_modem("/dev/null-not-a-modem"), SESSION)
    with pytest.raises(AssertionError, match="give it a netns, or say ppp=False"):
        cli.run(cfg, "up")
    assert cli.started_up == []


@pytest.mark.parametrize("transport", ["pty", "rfc2217"])
def test_up_reaches_connect_and_down_returns_to_command_mode(cli: Cli, sim_factory, transport: str) -> None:  # type: ignore[no-untyped-def]
    sim = sim_factory()
    port = sim.ptys[0] if transport == "pty" else sim.urls[0]
    cfg = cli.write_config(_modem(port, 'embpf = "6000-6200"\n'), SESSION)
    up = cli.run(cfg, "up", ppp=False)
    assert up.returncode == 0, up.stderr + up.stdout
    state = _status(cli, cfg)
    assert state["state"] == "up"
    assert state["sessions"][0]["cid"] == 1
    assert state["sessions"][0]["state"] == "connected"
    assert state["modem"]["embpf"] == "6000-6200"
    down = cli.run(cfg, "down")
    assert down.returncode == 0, down.stderr + down.stdout
    assert _status(cli, cfg)["state"] == "down"


def test_xlat_switched_on_for_tmobile_ipv6_only_and_back_when_roaming(cli: Cli, sim_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    nvm = tmp_path / "nvm.json"
    sim = sim_factory("--scenario", "tmobile-us-ipv6", "--nvm", str(nvm))
    cfg = cli.write_config(_modem(sim.ptys[0]), SESSION)
    up = cli.run(cfg, "up", ppp=False)
    assert up.returncode == 0, up.stderr
    state = _status(cli, cfg)
    assert state["modem"]["xlat_enabled"] is True
    assert state["modem"]["plmn"] == "310260"
    assert state["modem"]["reboots"] >= 1
    assert cli.run(cfg, "down").returncode == 0
    sim.stop()
    assert json.loads(nvm.read_text())["xlat"] == 1

    # A restart on the same network keeps XLAT and does not reboot again.
    sim = sim_factory("--scenario", "tmobile-us-ipv6", "--nvm", str(nvm))
    cfg = cli.write_config(_modem(sim.ptys[0]), SESSION)
    assert cli.run(cfg, "up", ppp=False).returncode == 0
    state = _status(cli, cfg)
    assert state["modem"]["xlat_enabled"] is True and state["modem"]["reboots"] == 0
    assert cli.run(cfg, "down").returncode == 0
    sim.stop()

    # Roaming right after the switch: the guard refuses to undo it at once (no reboot loop).
    sim = sim_factory("--scenario", "roaming", "--nvm", str(nvm))
    cfg = cli.write_config(_modem(sim.ptys[0]), SESSION)
    assert cli.run(cfg, "up", ppp=False).returncode == 0
    state = _status(cli, cfg)
    assert state["modem"]["xlat_enabled"] is True and state["modem"]["reboots"] == 0
    assert any("XLAT" in n for n in state["modem"]["notes"])
    assert cli.run(cfg, "down").returncode == 0
    sim.stop()

    # An hour later, roaming with IPv4 reverts XLAT (app note §2.5).
    history_path = tmp_path / "state" / "xlat.json"
    history = json.loads(history_path.read_text())
    history_path.write_text(json.dumps(_backdate(history, 3 * 3600)))
    sim = sim_factory("--scenario", "roaming", "--nvm", str(nvm))
    cfg = cli.write_config(_modem(sim.ptys[0]), SESSION)
    up = cli.run(cfg, "up", ppp=False)
    assert up.returncode == 0, up.stderr
    state = _status(cli, cfg)
    assert state["modem"]["xlat_enabled"] is False
    assert state["modem"]["roaming"] is True
    assert state["modem"]["reboots"] >= 1
    assert cli.run(cfg, "down").returncode == 0
    sim.stop()
    assert json.loads(nvm.read_text())["xlat"] == 0


def _backdate(value, seconds: float):  # type: ignore[no-untyped-def]
    """Move every timestamp in the XLAT history back by `seconds`."""
    if isinstance(value, dict):
        return {k: _backdate(v, seconds) for k, v in value.items()}
    if isinstance(value, list):
        return [_backdate(v, seconds) for v in value]
    if isinstance(value, float) and value > 1e9:
        return value - seconds
    return value


def test_uembpf_is_set_and_verified_across_the_reboot(cli: Cli, sim_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    nvm = tmp_path / "nvm.json"
    sim = sim_factory("--nvm", str(nvm))
    cfg = cli.write_config(_modem(sim.ptys[0], 'embpf = "7000-7099"\n'), SESSION)
    up = cli.run(cfg, "up", ppp=False)
    assert up.returncode == 0, up.stderr
    state = _status(cli, cfg)
    assert state["modem"]["embpf"] == "7000-7099"
    assert state["modem"]["reboots"] == 1
    assert cli.run(cfg, "down").returncode == 0
    sim.stop()
    assert json.loads(nvm.read_text())["embpf"] == [7000, 7099]
    # Already applied: the next bring-up reads it back and does not reboot.
    sim = sim_factory("--nvm", str(nvm))
    cfg = cli.write_config(_modem(sim.ptys[0], 'embpf = "7000-7099"\n'), SESSION)
    assert cli.run(cfg, "up", ppp=False).returncode == 0
    assert _status(cli, cfg)["modem"]["reboots"] == 0


def test_apn_with_a_quote_is_refused_before_anything_is_sent(cli: Cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = cli.write_config(_modem("/dev/null-not-a-modem"), '[[session]]\ncid = 2\napn = \'bad"apn\'\n')
    up = cli.run(cfg, "up", ppp=False)
    assert up.returncode == 2
    assert "quote" in up.stderr and "bad" in up.stderr
    assert len(up.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "state.json").exists()


def test_a_module_that_never_registers_gives_a_clear_timeout(cli: Cli, sim_factory) -> None:  # type: ignore[no-untyped-def]
    sim = sim_factory("--never-register")
    cfg = cli.write_config(_modem(sim.ptys[0]).replace("registration_timeout = 20", "registration_timeout = 2"), SESSION)
    up = cli.run(cfg, "up", ppp=False)
    assert up.returncode == 5, up.stderr
    assert "did not register within 2 s" in up.stderr
    assert _status(cli, cfg)["state"] == "failed"


def test_the_port_vanishing_mid_command_gives_a_clear_error(cli: Cli, sim_factory) -> None:  # type: ignore[no-untyped-def]
    sim = sim_factory("--vanish-on", "AT+CGDCONT?")
    cfg = cli.write_config(_modem(sim.ptys[0]), SESSION)
    up = cli.run(cfg, "up", ppp=False)
    assert up.returncode == 3, up.stderr
    assert "vanished" in up.stderr and "AT+CGDCONT" in up.stderr


@pytest.mark.parametrize(("transport", "teardown"), [("rfc2217", "dtr"), ("pty", "dtr"), ("pty", "ath")])
def test_teardown_methods_return_the_port_to_command_mode(cli: Cli, sim_factory, transport: str, teardown: str) -> None:  # type: ignore[no-untyped-def]
    sim = sim_factory()
    port = sim.ptys[0] if transport == "pty" else sim.urls[0]
    cfg = cli.write_config(_modem(port), SESSION.replace('"escape"', f'"{teardown}"'))
    assert cli.run(cfg, "up", ppp=False).returncode == 0
    down = cli.run(cfg, "down")
    assert down.returncode == 0, down.stderr + down.stdout
