"""scripts/measure.py against the simulator: iperf3 both ways over IPv4 and IPv6 and ping
over a session `larappp up` brought up, written as JSON lines, CSV and (with matplotlib) PNG.

The rig (scripts/simrig.py) runs the simulator as its own process and larappp in a
namespace of its own; it removes both namespaces and every process on exit.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.root


def _simrig():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("simrig", ROOT / "scripts" / "simrig.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_measure_writes_jsonl_csv_and_plots_per_family_and_direction(tmp_path: Path) -> None:
    simrig = _simrig()
    out = tmp_path / "out"
    with simrig.SimRig(sessions=1) as rig:
        rig.up()
        server = rig.iperf_server()
        try:
            run = subprocess.run(
                [sys.executable, str(ROOT / "scripts" / "measure.py"), "--v4", simrig.SERVER_V4,
                 "--v6", simrig.SERVER_V6, "--netns", rig.dte, "--config", str(rig.config),
                 "--seconds", "3", "--rate", "2M", "--out", str(out)],
                capture_output=True, text=True, timeout=120, check=False,
            )
        finally:
            simrig.stop(server)
    assert run.returncode == 0, run.stdout + run.stderr
    runs = {"ipv4-up", "ipv4-down", "ipv6-up", "ipv6-down"}
    # progress on the way, one line per counter sample
    assert {line.split()[0] for line in run.stdout.splitlines() if "larappp packets/s" in line} == runs

    records = [json.loads(line) for line in (out / "measure.jsonl").read_text().splitlines()]
    for name in runs:
        kinds = {r["kind"] for r in records if r["run"] == name}
        assert kinds == {"iperf3", "ping", "larappp"}, (name, kinds)
    assert all(r["rtt_ms"] > 0 for r in records if r["kind"] == "ping")

    with (out / "measure.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {row["run"] for row in rows} == runs
    for name in runs:
        mine = [row for row in rows if row["run"] == name]
        assert [int(row["second"]) for row in mine] == [1, 2, 3]
        # 2 Mbit/s offered, carried whole by the simulator (no radio model limits it)
        assert all(1.5 < float(row["iperf_mbit_s"]) < 2.5 for row in mine), mine
        assert all(float(row["iperf_lost_percent"]) < 5 for row in mine), mine
        # larappp's own counters beside iperf3's: the packets went through the session
        sent = sum(int(row["larappp_packets_out"]) for row in mine)
        received = sum(int(row["larappp_packets_in"]) for row in mine)
        assert (sent if name.endswith("-up") else received) > 100, mine

    if importlib.util.find_spec("matplotlib") is not None:
        for name in runs:
            assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_status_json_asks_the_daemon_for_current_counters() -> None:
    simrig = _simrig()
    with simrig.SimRig(sessions=1) as rig:
        rig.up()
        for _ in range(3):
            asked = time.time()
            state = rig.status()
            # written for this call (the daemon's own refresh comes only every 2 s), and the
            # daemon lives on: SIGUSR1 is handled, not its default (termination)
            assert state["state"] == "up" and state["updated"] >= asked, (asked, state["updated"])
            time.sleep(0.3)
        pinged = subprocess.run(["ip", "netns", "exec", rig.dte, "ping", "-c", "3", "-i", "0.2", simrig.SERVER_V4],
                                capture_output=True, text=True, check=False)
        assert pinged.returncode == 0, pinged.stdout
        before = state["sessions"][0]
        after = rig.status()["sessions"][0]
        assert after["packets_out"] >= before["packets_out"] + 3
        assert after["packets_in"] >= before["packets_in"] + 3
