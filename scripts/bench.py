#!/usr/bin/env python3
"""larappp's data-path benchmarks, each with a baseline measured in the same run.

    python3 scripts/bench.py [--only a,b,c,d,e] [--seconds 10] [--json-out FILE]

(a) TCP ceiling through the built-in engine vs a raw pty copy (os.read/os.write);
(b) the daemon's CPU share at LTE Cat 1 full duplex (UDP 10.3 Mbit/s down and 5.2 up at
    once) from psutil's cpu_times of the daemon over the run, and its CPU seconds per GB;
    the simulator doing the same framing on the other side is the baseline;
(c) `larappp up` until IPv4 and global IPv6 are usable;
(e) peak RSS (VmHWM) of the daemon with three sessions, vs a bare interpreter.
(d) uplink overload through the simulator's LTE Cat 1 radio (`--radio cat1`): UDP at 2x
    and 4x the uplink and a TCP upload, module-side drops (its uplink buffer overflowing),
    TCP goodput as a share of the uplink and ping under load, with larappp's pacing off and
    (where it has `[modem] uplink_kbit`) on.

The simulator runs as its own process, larappp's daemon in a namespace of its own, iperf3
across (scripts/simrig.py). The machine may be loaded: the ratios are what count.
Prints a table and one JSON object (also to --json-out).
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import re
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from simrig import SERVER_V4, SERVER_V6, SimRig, stop

CAT1_DOWN_MBIT = 10.3  # LTE Cat 1 peak (FACTS.md)
CAT1_UP_MBIT = 5.2


@dataclass
class Row:
    """One benchmark line: the figure, its in-run baseline, their ratio and the goal."""

    name: str
    value: float
    unit: str
    baseline: float
    baseline_what: str
    ratio: float
    goal: str


def raw_pty_copy_mbit(seconds: float) -> float:
    """One-way copy through a pty with 64 KiB os.write/os.read, Mbit/s (the ceiling a pty allows)."""
    master, slave = pty.openpty()
    import tty

    tty.setraw(slave)
    chunk = bytes(65536)
    done = 0
    stop_at = time.monotonic() + seconds

    def reader() -> None:
        nonlocal done
        while True:
            try:
                data = os.read(slave, 65536)
            except OSError:  # EIO once the master is closed
                return
            if not data:
                return
            done += len(data)

    thread = threading.Thread(target=reader, daemon=True)
    start = time.monotonic()
    thread.start()
    while time.monotonic() < stop_at:
        os.write(master, chunk)
    elapsed = time.monotonic() - start
    os.close(master)
    thread.join(2)
    os.close(slave)
    return done * 8 / elapsed / 1e6


def iperf_mbit(result: dict[str, object]) -> float:
    end = result["end"]
    assert isinstance(end, dict)
    summary = end.get("sum_received") or end["sum"]
    return float(summary["bits_per_second"]) / 1e6


def bench_tcp(rig: SimRig, seconds: float) -> list[Row]:
    raw = raw_pty_copy_mbit(min(seconds, 3.0))
    server = rig.iperf_server()
    rows = []
    try:
        for label, extra in (("up", ()), ("down", ("-R",))):
            client = rig.iperf_client(SERVER_V4, "-t", str(seconds), *extra)
            out, _err = client.communicate(timeout=seconds + 30)
            mbit = iperf_mbit(json.loads(out))
            rows.append(Row(f"(a) TCP {label} via built-in engine", mbit, "Mbit/s", raw, "raw pty copy Mbit/s",
                            mbit / raw, f">= 0.30 and >= {20 * CAT1_DOWN_MBIT:.0f} Mbit/s"))
    finally:
        stop(server)
    return rows


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def system_seconds(pid: int) -> float:
    return float(psutil.Process(pid).cpu_times().system)


def bench_cpu(rig: SimRig, seconds: float) -> list[Row]:
    servers = [rig.iperf_server(5201), rig.iperf_server(5202)]
    daemon, sim = rig.daemon_pid(), rig.sim_pid()
    try:
        kernel_before = system_seconds(daemon)
        before = (cpu_seconds(daemon), cpu_seconds(sim), time.monotonic())
        down = rig.iperf_client(SERVER_V4, "-u", "-b", f"{CAT1_DOWN_MBIT}M", "-l", "1400", "-R",
                                "-t", str(seconds), port=5201)
        up = rig.iperf_client(SERVER_V6, "-u", "-b", f"{CAT1_UP_MBIT}M", "-l", "1400", "-t", str(seconds),
                              port=5202)
        results = [json.loads(p.communicate(timeout=seconds + 30)[0]) for p in (down, up)]
        after = (cpu_seconds(daemon), cpu_seconds(sim), time.monotonic())
        kernel_share = (system_seconds(daemon) - kernel_before) / (after[2] - before[2])
    finally:
        for server in servers:
            stop(server)
    wall = after[2] - before[2]
    daemon_share = (after[0] - before[0]) / wall
    sim_share = (after[1] - before[1]) / wall
    carried_bits = sum(iperf_mbit(r) * 1e6 * seconds for r in results)
    gigabytes = carried_bits / 8 / 1e9
    per_gb = (after[0] - before[0]) / gigabytes if gigabytes else float("inf")
    sim_per_gb = (after[1] - before[1]) / gigabytes if gigabytes else float("inf")
    return [
        Row("(b) daemon CPU, Cat 1 full duplex", 100 * daemon_share, "% of a core", 100 * sim_share,
            "simulator % of a core", daemon_share / sim_share if sim_share else float("inf"), "<= 3 %"),
        Row("(b) of which in the kernel (system time)", 100 * kernel_share, "% of a core", 100 * daemon_share,
            "daemon % of a core", kernel_share / daemon_share if daemon_share else float("inf"), ""),
        Row("(b) daemon CPU per GB carried", per_gb, "CPU s/GB", sim_per_gb, "simulator CPU s/GB",
            per_gb / sim_per_gb if sim_per_gb else float("inf"), ""),
        Row("(b) carried (down + up)", sum(iperf_mbit(r) for r in results), "Mbit/s",
            CAT1_DOWN_MBIT + CAT1_UP_MBIT, "offered Mbit/s",
            sum(iperf_mbit(r) for r in results) / (CAT1_DOWN_MBIT + CAT1_UP_MBIT), ""),
    ]


def ping_ms(rig: SimRig, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(["ip", "netns", "exec", rig.dte, "ping", "-n", "-c", str(count), "-i", "0.2", SERVER_V4],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def median_rtt(pinger: subprocess.Popen[str]) -> float:
    out = pinger.communicate(timeout=60)[0]
    rtts = sorted(float(m) for m in re.findall(r"time=([\d.]+) ms", out))
    return rtts[len(rtts) // 2] if rtts else float("nan")


def uplink_dropped(rig: SimRig) -> tuple[int, int]:
    """(packets carried, packets dropped) by the simulated module's uplink buffer so far."""
    uplink = rig.sim_status()["radio"]["uplink"]
    return int(uplink["packets"]), int(uplink["dropped"])


def bench_overload(seconds: float, pacing: bool) -> list[Row]:
    """(d): the simulator's LTE Cat 1 radio; UDP at 2x and 4x its uplink, then a TCP upload with ping."""
    mode = "pacing on" if pacing else "pacing off"
    extra = f"uplink_kbit = {int(CAT1_UP_MBIT * 1000)}\n" if pacing else "uplink_kbit = 0\n" if pacing_supported() else ""
    rows = []
    # The simulated module must not be late: its radio would see what larappp wrote at the
    # paced rate meanwhile arrive at one instant (a drop that is the rig's, not larappp's).
    with SimRig(sessions=1, sim_args=("--radio", "cat1"), modem_extra=extra, realtime_sim=True) as rig:
        rig.up()
        server = rig.iperf_server()
        try:
            idle = median_rtt(ping_ms(rig, 10))
            for factor in (2, 4):
                carried0, dropped0 = uplink_dropped(rig)
                client = rig.iperf_client(SERVER_V4, "-u", "-b", f"{factor * CAT1_UP_MBIT}M", "-l", "1400",
                                          "-t", str(seconds))
                json.loads(client.communicate(timeout=seconds + 30)[0])
                time.sleep(0.5)
                carried1, dropped1 = uplink_dropped(rig)
                offered = (carried1 - carried0) + (dropped1 - dropped0)
                dropped = dropped1 - dropped0
                rows.append(Row(f"(d) UDP {factor}x uplink, {mode}: module drops", dropped, "packets", offered,
                                "packets reaching the module", dropped / offered if offered else 0.0,
                                "0 with pacing on"))
            carried0, dropped0 = uplink_dropped(rig)
            pinger = ping_ms(rig, int(seconds * 5) - 5)
            client = rig.iperf_client(SERVER_V4, "-t", str(seconds))
            upload = iperf_mbit(json.loads(client.communicate(timeout=seconds + 30)[0]))
            loaded = median_rtt(pinger)
            carried1, dropped1 = uplink_dropped(rig)
        finally:
            stop(server)
    rows += [
        Row(f"(d) TCP upload, {mode}: goodput", upload, "Mbit/s", CAT1_UP_MBIT, "radio uplink Mbit/s",
            upload / CAT1_UP_MBIT, ">= 0.90"),
        Row(f"(d) TCP upload, {mode}: module drops", dropped1 - dropped0, "packets", carried1 - carried0,
            "packets carried", (dropped1 - dropped0) / max(carried1 - carried0, 1), "0 with pacing on"),
        Row(f"(d) ping during TCP upload, {mode}", loaded - idle, "ms above idle", idle, "idle ms",
            loaded / idle if idle else float("inf"), "< 100 ms above idle"),
    ]
    return rows


def pacing_supported() -> bool:
    """Whether this larappp paces its uplink (`uplink_kbit` under [modem])."""
    from larappp.config import ModemConfig

    return "uplink_kbit" in ModemConfig.__dataclass_fields__


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bare_interpreter_rss_mb() -> float:
    code = "import larappp.cli, pathlib; print(pathlib.Path('/proc/self/status').read_text())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1])))
    for line in out.stdout.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="a,b,c,d,e", help="which benchmarks, comma separated (default all)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each traffic run")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)
    which = set(args.only.split(","))
    rows: list[Row] = []
    if which & {"a", "c"}:
        # The ceiling of the data path: larappp's uplink pacing (Cat 1 rate by default) off.
        with SimRig(sessions=1, modem_extra="uplink_kbit = 0\n" if pacing_supported() else "") as rig:
            up_s, dial_s = rig.up()
            if "c" in which:
                rows.append(Row("(c) ATD to IPv4 + global IPv6 usable", dial_s, "s", up_s,
                                "whole larappp up s", dial_s / up_s, "< 1 s"))
            if "a" in which:
                rows += bench_tcp(rig, args.seconds)
    if "b" in which:
        # The cost as a user runs it: the default configuration, pacing included.
        with SimRig(sessions=1) as rig:
            rig.up()
            rows += bench_cpu(rig, args.seconds)
    notes = []
    if "d" in which:
        rows += bench_overload(args.seconds, pacing=False)
        if pacing_supported():
            rows += bench_overload(args.seconds, pacing=True)
        else:
            notes.append("(d) pacing on: this larappp has no [modem] uplink_kbit yet; only pacing off was measured")
    if "e" in which:
        with SimRig(sessions=3) as rig:
            rig.up()
            rss = peak_rss_mb(rig.daemon_pid())
            bare = bare_interpreter_rss_mb()
            rows.append(Row("(e) daemon peak RSS, three sessions", rss, "MB", bare, "bare interpreter + larappp MB",
                            rss / bare, "< 60 MB"))
    width = max(len(r.name) for r in rows)
    print(f"{'benchmark':<{width}}  {'value':>10} {'unit':<12} {'baseline':>10}  {'ratio':>7}  goal")
    for r in rows:
        print(f"{r.name:<{width}}  {r.value:>10.2f} {r.unit:<12} {r.baseline:>10.2f}  {r.ratio:>7.3f}  {r.goal}"
              f"   (baseline: {r.baseline_what})")
    for note in notes:
        print("note:", note)
    document = {"rows": [asdict(r) for r in rows], "notes": notes}
    print(json.dumps(document))
    if args.json_out:
        args.json_out.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
