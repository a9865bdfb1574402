"""End to end: a session lost while ping runs is undone on the host and redialled by itself.

Faults are injected the way the network or a user would cause them, on another port of the
simulated module: `AT+CFUN=16` reboots the module (every port goes away and comes back),
and a simulator killed for good leaves ports that never return (maxfail).
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import serial

from tests.e2e import test_ppp_e2e
from tests.e2e.conftest import Cli
from tests.e2e.test_ppp_e2e import (
    SERVER_V4,
    SERVER_V6,
    Net,
    _assert_clean_after_down,
    _config,
    _session,
)

#: the `net` fixture (DTE namespace, simulator with its internet namespace), shared with test_ppp_e2e
net = test_ppp_e2e.net

pytestmark = pytest.mark.root


def _status(cli: Cli, cfg: Path, n: Net) -> dict[str, Any]:
    out = cli.run(cfg, "status", "--json", netns=n.dte)
    state: dict[str, Any] = json.loads(out.stdout)
    return state


def _send_at(port: str, command: str) -> bytes:
    """A command typed on another port of the module, as a user or a test would."""
    with serial.Serial(port, 115200, timeout=0.5) as ser:
        ser.reset_input_buffer()
        ser.write(command.encode() + b"\r")
        answer = b""
        deadline = time.monotonic() + 5
        while b"OK" not in answer and b"ERROR" not in answer and time.monotonic() < deadline:
            try:
                answer += ser.read(64)
            except serial.SerialException:
                break  # the port went away (a reboot), maybe before its OK could be read
        return answer


def _wait_for(what: str, check: Any, timeout: float, log: Path | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            said = log.read_text()[-4000:] if log is not None and log.exists() else ""
            raise AssertionError(f"{what} did not happen within {timeout} s; the daemon's log:\n{said}")
        time.sleep(0.1)


def _host_state(n: Net) -> tuple[list[tuple[str, int]], list[str], list[str]]:
    addrs = json.loads(n.dte_run("ip", "-j", "addr", "show", "dev", "lara1").stdout)
    addresses = sorted((a["local"], a["prefixlen"]) for link in addrs for a in link["addr_info"])
    v4 = [r.strip() for r in n.dte_run("ip", "route").stdout.splitlines() if r.strip()]
    # a route's remaining lifetime ("expires 2591998sec") changes by the second
    v6 = [re.sub(r" expires \d+sec", "", r.strip()) for r in n.dte_run("ip", "-6", "route").stdout.splitlines() if r.strip()]
    return addresses, v4, v6


def test_module_reboot_while_ping_runs_is_undone_and_redialled(cli: Cli, net, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    n: Net = net()
    cfg = _config(cli, n, _session(n.sim.ptys[0], 1, "internet", extra="holdoff = 0.5\n"))
    up = cli.run(cfg, "up", netns=n.dte, timeout=120)
    assert up.returncode == 0, up.stderr + up.stdout
    before = _host_state(n)
    ping = subprocess.Popen(["ip", "netns", "exec", n.dte, "ping", "-n", "-i", "0.2", SERVER_V4],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(1)
        injected = time.monotonic()
        assert b"ERROR" not in _send_at(n.sim.ptys[2], "AT+CFUN=16")

        lost = _wait_for("the loss", lambda: (s := _status(cli, cfg, n)["sessions"][0])["losses"] >= 1 and s, 10)
        detected = time.monotonic() - injected
        assert "port" in lost["last_loss_cause"], lost
        # Nothing routes into the dead link while the module reboots ("lost": being undone).
        waiting = _wait_for("the hold-off", lambda: (s := _status(cli, cfg, n)["sessions"][0])["state"] != "lost" and s, 10)
        if waiting["state"] == "waiting":
            assert waiting["attempt"] >= 1 and waiting["next_attempt_at"], waiting
            links = json.loads(n.dte_run("ip", "-j", "link").stdout)
            assert [link["ifname"] for link in links] == ["lo"], links

        back = _wait_for("the redial", lambda: (s := _status(cli, cfg, n)["sessions"][0])["state"] == "up" and s, 60,
                         log=cfg.parent / "run" / "larappp.log")
        recovered = time.monotonic() - injected
        assert back["redials"] == 1 and back["losses"] == 1, back
        assert back["ipv4"] and back["ipv6_global"], back
        assert back["up_since"] is not None and back["error"] == "", back
        n.dte_run("ping", "-c", "1", "-W", "3", SERVER_V4)
        n.dte_run("ping", "-6", "-c", "1", "-W", "3", SERVER_V6)
        # Exactly what was there before: no stale or duplicate address or route.
        assert _host_state(n) == before
        fragments = list((cfg.parent / "run" / "resolv.conf.d").iterdir())
        assert len(fragments) == 1, fragments
    finally:
        ping.terminate()
        output = ping.communicate(timeout=10)[0]
    replies = [line for line in output.splitlines() if "bytes from" in line]
    assert replies, output
    print(f"reboot: detected after {detected:.2f} s, usable again after {recovered:.2f} s")
    _assert_clean_after_down(cli, cfg, n, [n.sim.ptys[0]])


def test_ports_that_never_return_give_up_after_maxfail(cli: Cli, net, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    n: Net = net()
    cfg = _config(
        cli, n, _session(n.sim.ptys[0], 1, "internet", extra="holdoff = 0.2\nmaxfail = 2\n"),
    ).read_text().replace("reboot_timeout = 20", "reboot_timeout = 1")
    path = tmp_path / "maxfail.toml"
    path.write_text(cfg)
    # In the foreground, as under systemd: the exit status is the daemon's own.
    done: list[subprocess.CompletedProcess[str]] = []
    runner = threading.Thread(target=lambda: done.append(cli.run(path, "up", "--foreground", netns=n.dte, timeout=120)))
    runner.start()
    state_file = path.parent / "run" / "state.json"
    _wait_for("the session", lambda: state_file.exists() and json.loads(state_file.read_text())["state"] == "up", 60)

    n.sim.proc.kill()  # the module is gone for good: its ports never come back
    n.sim.proc.wait()
    for port in n.sim.ptys:
        # As an unplugged module's device nodes go: a killed simulator's links would point at
        # /dev/pts numbers that other ptys reuse.
        Path(port).unlink(missing_ok=True)
    started = time.monotonic()
    runner.join(60)
    took = time.monotonic() - started
    assert done, "larappp up --foreground did not end"
    assert done[0].returncode == 8, done[0].stderr  # GaveUp, as README documents
    state = json.loads(state_file.read_text())
    session = state["sessions"][0]
    assert state["state"] == "given-up" and session["state"] == "given-up", state
    assert "maxfail = 2" in state["error"], state
    assert session["losses"] == 1 and session["redials"] == 2, session
    assert "2 redials failed in a row" in done[0].stderr, done[0].stderr
    # Log and progress share stderr here (as under journald): each loss and redial once.
    lines = done[0].stderr.splitlines()
    logged = {line.split(" WARNING ", 1)[1] for line in lines if " WARNING " in line}
    shown = {line for line in lines if "redial" in line and " WARNING " not in line}
    assert shown and not shown & logged, lines
    links = json.loads(n.dte_run("ip", "-j", "link").stdout)
    assert [link["ifname"] for link in links] == ["lo"]
    assert n.dte_run("ip", "route").stdout.strip() == ""
    print(f"gave up {took:.2f} s after the module vanished")


def test_network_ending_one_context_redials_it_and_leaves_the_other_alone(cli: Cli, net) -> None:  # type: ignore[no-untyped-def]
    """The control port (no session on it) hears +CGEV: only that session is undone and redialled."""
    n: Net = net(ports=4)
    control, free = n.sim.ptys[2], n.sim.ptys[3]
    sessions = "".join(
        _session(n.sim.ptys[i], cid, f"apn{cid}.example", extra=f"metric = {100 * cid}\nholdoff = 0.3\n")
        for i, cid in enumerate((2, 3))
    )
    cfg = _config(cli, n, sessions).read_text().replace(f'port = "{n.sim.ptys[0]}"', f'port = "{control}"', 1)
    path = cli.tmp_path / "two.toml"
    path.write_text(cfg)
    up = cli.run(path, "up", netns=n.dte, timeout=120)
    assert up.returncode == 0, up.stderr + up.stdout
    before = {s["cid"]: s for s in _status(cli, path, n)["sessions"]}
    assert before[2]["state"] == before[3]["state"] == "up", before

    injected = time.monotonic()
    assert b"OK" in _send_at(free, "AT+CGACT=0,2")  # the network ends cid 2's context
    lost = _wait_for("the loss", lambda: (s := _status(cli, path, n)["sessions"][0])["losses"] >= 1 and s, 10)
    detected = time.monotonic() - injected
    # whichever comes first: +CGEV on the control port, or NO CARRIER among the frames
    cause = lost["last_loss_cause"]
    assert ("+CGEV" in cause and "DEACT 2" in cause) or "NO CARRIER" in cause, lost
    back = _wait_for("the redial", lambda: (s := _status(cli, path, n)["sessions"][0])["state"] == "up" and s, 60)
    recovered = time.monotonic() - injected
    assert back["redials"] == 1 and back["ipv4"] == before[2]["ipv4"], back
    n.dte_run("ping", "-c", "1", "-W", "3", "-I", "lara2", SERVER_V4)
    n.dte_run("ping", "-6", "-c", "1", "-W", "3", "-I", "lara2", SERVER_V6)
    # The other session never noticed.
    other = _status(cli, path, n)["sessions"][1]
    assert other["state"] == "up" and other["losses"] == 0 and other["up_since"] == before[3]["up_since"], other
    n.dte_run("ping", "-c", "1", "-W", "3", "-I", "lara3", SERVER_V4)
    print(f"+CGEV deactivation: detected after {detected:.2f} s, usable again after {recovered:.2f} s")
    _assert_clean_after_down(cli, path, n, n.sim.ptys[:2])


#: each fault of the simulator's control socket, and how larappp may say it noticed
FAULTS: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "drop": ({"fault": "drop", "cid": 1}, ("NO CARRIER",)),
    "deactivate": ({"fault": "deactivate", "cid": 1}, ("NO CARRIER", "+CGEV")),
    "silence": ({"fault": "silence", "cid": 1, "seconds": 30}, ("Echo", "echo")),
    "reboot": ({"fault": "reboot", "seconds": 1}, ("port",)),
    "unplug": ({"fault": "unplug", "seconds": 2}, ("port",)),
    # the radio stays off until a redial's bring-up switches it on again (AT+CFUN=1)
    "radio-off": ({"fault": "radio-off"}, ("NO CARRIER", "+CGEV", "+CEREG")),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_while_ping_runs_is_detected_undone_and_recovered(cli: Cli, net, fault: str) -> None:  # type: ignore[no-untyped-def]
    """The simulator's fault control socket: each fault ends the call its own way."""
    from larappp.sim.control import request

    n: Net = net()
    message, causes = FAULTS[fault]
    cfg = _config(cli, n, _session(
        n.sim.ptys[0], 1, "internet", extra="holdoff = 0.3\nlcp_echo_interval = 1\nlcp_echo_failure = 3\n",
    ))
    up = cli.run(cfg, "up", netns=n.dte, timeout=120)
    assert up.returncode == 0, up.stderr + up.stdout
    before = _host_state(n)
    log = cfg.parent / "run" / "larappp.log"
    ping = subprocess.Popen(["ip", "netns", "exec", n.dte, "ping", "-n", "-i", "0.2", SERVER_V4],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(0.5)
        injected = time.monotonic()
        answer = request(str(n.sim.ptys[0].rsplit("/", 1)[0] + "/control.sock"), message)
        assert answer["ok"], answer
        lost = _wait_for("the loss", lambda: (s := _status(cli, cfg, n)["sessions"][0])["losses"] >= 1 and s, 15, log)
        detected = time.monotonic() - injected
        assert any(c in lost["last_loss_cause"] for c in causes), lost
        back = _wait_for("the redial", lambda: (s := _status(cli, cfg, n)["sessions"][0])["state"] == "up" and s, 60, log)
        recovered = time.monotonic() - injected
        assert back["losses"] == 1 and back["redials"] >= 1, back
        n.dte_run("ping", "-c", "1", "-W", "3", SERVER_V4)
        n.dte_run("ping", "-6", "-c", "1", "-W", "3", SERVER_V6)
        assert _host_state(n) == before
    finally:
        ping.terminate()
        ping.communicate(timeout=10)
    print(f"{fault}: detected after {detected:.2f} s, usable again after {recovered:.2f} s")
    _assert_clean_after_down(cli, cfg, n, [n.sim.ptys[0]])


def test_one_dropped_call_of_three_is_redialled_alone(cli: Cli, net) -> None:  # type: ignore[no-untyped-def]
    from larappp.sim.control import request

    n: Net = net()
    sessions = "".join(
        _session(n.sim.ptys[i], cid, f"apn{cid}.example", extra=f"metric = {100 * cid}\nholdoff = 0.3\n")
        for i, cid in enumerate((1, 2, 3))
    )
    cfg = _config(cli, n, sessions)
    up = cli.run(cfg, "up", netns=n.dte, timeout=120)
    assert up.returncode == 0, up.stderr + up.stdout
    before = {s["cid"]: s for s in _status(cli, cfg, n)["sessions"]}
    log = cfg.parent / "run" / "larappp.log"

    answer = request(n.sim.ptys[0].rsplit("/", 1)[0] + "/control.sock", {"fault": "drop", "cid": 2})
    assert answer["ok"], answer
    _wait_for("the loss", lambda: _status(cli, cfg, n)["sessions"][1]["losses"] >= 1, 15, log)
    back = _wait_for("the redial", lambda: (s := _status(cli, cfg, n)["sessions"][1])["state"] == "up" and s, 60, log)
    assert back["redials"] == 1 and back["ipv4"] == before[2]["ipv4"], back
    after = {s["cid"]: s for s in _status(cli, cfg, n)["sessions"]}
    for cid in (1, 3):  # never noticed
        assert after[cid]["state"] == "up" and after[cid]["losses"] == 0, after[cid]
        assert after[cid]["up_since"] == before[cid]["up_since"], after[cid]
    for cid in (1, 2, 3):
        n.dte_run("ping", "-c", "1", "-W", "3", "-I", f"lara{cid}", SERVER_V4)
        n.dte_run("ping", "-6", "-c", "1", "-W", "3", "-I", f"lara{cid}", SERVER_V6)
    _assert_clean_after_down(cli, cfg, n, n.sim.ptys)
