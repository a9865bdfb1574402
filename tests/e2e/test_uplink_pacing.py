"""End to end: the uplink pacing of issue 10 against a simulator whose radio uplink is
slower than the line (app note §4: the module drops what its radio cannot send).

With pacing on, a TCP upload loses nothing inside the module and a UDP flood at 4x the
uplink drops in the host's queue (tc), where `larappp status --json` counts it; with
pacing off the module's buffer overflows.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from larappp.sim import CONTROL_NAME
from larappp.sim.control import request
from larappp.transport.netns import create_netns, delete_netns
from tests.e2e.conftest import Cli
from tests.e2e.test_ppp_e2e import SERVER_V4, Net, _config, _session, _up, net  # noqa: F401

pytestmark = pytest.mark.root

#: the simulated radio's uplink: slower than the pty, quick to fill; the buffer leaves room
#: for the simulator's own scheduling (a process starved of CPU reads a burst at once)
RADIO_UPLINK_KBIT = 1500
MODULE_BUFFER = 32768
#: the host's pace, a little under the radio's rate
PACED_KBIT = 1400


def _radio_uplink(tmp_path: Path) -> dict[str, int]:
    answer = request(str(tmp_path / "sim" / CONTROL_NAME), {"fault": "status"})
    assert answer["ok"], answer
    counters: dict[str, int] = answer["radio"]["uplink"]
    return counters


def _start(cli: Cli, make_net, tmp_path: Path, uplink_kbit: int) -> tuple[Net, Path]:  # type: ignore[no-untyped-def]
    n: Net = make_net("--uplink-kbit", str(RADIO_UPLINK_KBIT), "--uplink-buffer", str(MODULE_BUFFER))
    cfg = _config(cli, n, _session(n.sim.ptys[0], 1, "internet"),
                  modem_extra=f"uplink_kbit = {uplink_kbit}\n")
    _up(cli, cfg, n)
    return n, cfg


def _session_status(cli: Cli, cfg: Path, n: Net) -> dict[str, Any]:
    status = json.loads(cli.run(cfg, "status", "--json", netns=n.dte).stdout)
    session: dict[str, Any] = status["sessions"][0]
    return session


def test_paced_tcp_upload_loses_nothing_in_the_module(cli: Cli, net, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    n, cfg = _start(cli, net, tmp_path, PACED_KBIT)
    before = _radio_uplink(tmp_path)
    result = n.iperf()
    after = _radio_uplink(tmp_path)
    goodput = result["end"]["sum_received"]["bits_per_second"] / 1000
    print(f"paced TCP upload: {goodput:.0f} kbit/s through a {RADIO_UPLINK_KBIT} kbit/s radio, "
          f"module drops {after['dropped'] - before['dropped']}, peak backlog {after['peak_backlog']}")
    assert after["dropped"] == before["dropped"], (before, after)
    assert goodput > 0.7 * PACED_KBIT, goodput
    time.sleep(3.0)  # see below: the counters in the state file are up to 3 s old
    session = _session_status(cli, cfg, n)
    assert session["uplink"]["paced_kbit"] == PACED_KBIT, session
    assert session["uplink"]["host_queue"]["sent_packets"] > 100, session
    assert session["drops"]["engine_queue"] == 0, session


def test_unpaced_udp_flood_overflows_the_module_buffer(cli: Cli, net, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """The control for the paced tests: with pacing off, what the host sends faster than the
    radio drains overflows the module's buffer (app note §4). A TCP upload shows it only
    now and then here: with the engine's rests between wakeups (COALESCE_S) its ACKs come
    in small batches and it overflowed the 32 kB buffer in one run of two (8 drops, then
    0, at 1.43 Mbit/s through the 1.5 Mbit/s radio); a UDP flood always does."""
    n, cfg = _start(cli, net, tmp_path, 0)
    before = _radio_uplink(tmp_path)
    result = n.iperf("-u", "-b", f"{4 * RADIO_UPLINK_KBIT}K", "-l", "1200", seconds=3)
    after = _radio_uplink(tmp_path)
    lost = after["dropped"] - before["dropped"]
    print(f"unpaced UDP flood at {4 * RADIO_UPLINK_KBIT} kbit/s: {result['end']['sum']['lost_percent']:.0f}% lost, "
          f"module drops {lost}")
    assert lost > 100, (before, after)
    session = _session_status(cli, cfg, n)
    assert session["uplink"]["paced_kbit"] == 0 and session["uplink"]["host_queue"] == {}, session


def test_paced_udp_flood_drops_in_the_host_queue_not_the_module(cli: Cli, net, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    n, cfg = _start(cli, net, tmp_path, PACED_KBIT)
    before = _radio_uplink(tmp_path)
    result = n.iperf("-u", "-b", f"{4 * RADIO_UPLINK_KBIT}K", "-l", "1200", seconds=3)
    after = _radio_uplink(tmp_path)
    time.sleep(3.0)  # the engine reads the qdisc's counters each second, the daemon writes its state each 2 s
    session = _session_status(cli, cfg, n)
    sent = result["end"]["sum"]
    print(f"paced UDP flood at {4 * RADIO_UPLINK_KBIT} kbit/s: {sent['lost_percent']:.0f}% lost, host queue drops "
          f"{session['drops']['host_queue']}, engine drops {session['drops']['engine_queue']}, "
          f"module drops {after['dropped'] - before['dropped']}")
    assert after["dropped"] == before["dropped"], (before, after)
    assert session["drops"]["host_queue"] > 100, session
    assert sent["lost_percent"] > 50, sent


def test_embedded_simulator_radio_from_the_config_shows_in_status(cli: Cli, tmp_path: Path) -> None:
    """`[sim]` radio knobs reach the built-in simulator; its counters are in `status --json`."""
    tag = uuid.uuid4().hex[:6]
    dte, inet = f"lp-dte-{tag}", f"lp-inet-{tag}"
    create_netns(dte)
    create_netns(inet)
    try:
        cfg = cli.write_config(
            '[modem]\nport = "sim"\nregistration_timeout = 20\nuplink_kbit = 900\n',
            '[[session]]\ncid = 1\napn = "internet"\n'
            f'[sim]\nnetwork = "{inet}"\nregistration_delay = 0.2\nreboot_time = 0.2\n'
            "uplink_kbit = 1000\ndownlink_kbit = 2000\nlatency_ms = 15\nbaud = 921600\n",
        )
        up = cli.run(cfg, "up", netns=dte, timeout=120)
        assert up.returncode == 0, up.stderr + up.stdout
        ping = subprocess.run(["ip", "netns", "exec", dte, "ping", "-c", "3", "-i", "0.2", "-W", "3", SERVER_V4],
                              capture_output=True, text=True, timeout=30, check=True).stdout
        rtt_min = float(ping.rsplit("=", 1)[1].split("/")[0])
        time.sleep(2.5)  # the daemon writes its state every 2 s
        state = json.loads(cli.run(cfg, "status", "--json", netns=dte).stdout)
        radio = state["radio"]
        assert (radio["uplink_kbit"], radio["downlink_kbit"], radio["latency"]) == (1000, 2000, 0.015), radio
        assert radio["uplink"]["packets"] >= 3 and radio["uplink"]["dropped"] == 0, radio
        assert rtt_min >= 30, ping  # 15 ms each way
        assert state["sessions"][0]["uplink"]["paced_kbit"] == 900, state
        line = state["sim_lines"][0]  # port 0 is a 921600 baud line ([sim] baud): AT went over it
        assert line["baud"] == 921600 and line["from_dte"]["bytes"] > 0 and line["to_dte"]["bytes"] > 0, state
    finally:
        cli.cleanup()
        delete_netns(dte)
        delete_netns(inet)
