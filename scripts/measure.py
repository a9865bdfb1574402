#!/usr/bin/env python3
"""Throughput, loss and RTT over a session larappp brought up, kept as JSON lines, CSV and plots.

    python3 scripts/measure.py --v4 SERVER --v6 SERVER6 [--netns NS] [--config FILE]
                               [--seconds 10] [--rate 4M | --tcp] [--out DIR]

For each family given and each direction (up: this host sends; down: iperf3 -R) it runs
iperf3 (--json, 1 s intervals) with ping alongside, and samples larappp's own counters
(`larappp status --json`) every second, printing a progress line per second. It writes
DIR/measure.jsonl (every iperf3 interval, ping reply and counter sample, as it came),
DIR/measure.csv (one row per second: iperf3's figures beside larappp's counters) and, with
matplotlib installed (`pip install larappp[plot]`), DIR/<family>-<direction>.png.
An iperf3 server (`iperf3 -s`) must listen on the far side.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parents[1]
PING_LINE = re.compile(r"^\[(\d+\.\d+)\].*icmp_seq=(\d+).*time=([\d.]+) ms")
CSV_COLUMNS = (
    "run", "family", "direction", "second", "iperf_mbit_s", "iperf_lost_percent", "iperf_retransmits",
    "ping_rtt_ms", "ping_lost", "larappp_packets_in", "larappp_packets_out", "larappp_bad_frames",
)


@dataclass
class Run:
    """One iperf3 run (family, direction) and what was sampled while it ran."""

    family: int
    direction: str
    started: float = 0.0
    intervals: list[dict[str, Any]] = field(default_factory=list)
    pings: list[tuple[float, int, float]] = field(default_factory=list)  # (time, seq, rtt ms)
    counters: list[tuple[float, dict[str, int]]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"ipv{self.family}-{self.direction}"


class Measure:
    """Runs the tools (in `netns` if given) and writes every sample to the JSON lines file."""

    def __init__(self, args: argparse.Namespace, jsonl: TextIO) -> None:
        self.args = args
        self.jsonl = jsonl
        self.lock = threading.Lock()

    def argv(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.args.netns, *argv] if self.args.netns else list(argv)

    def record(self, kind: str, run: Run, **values: Any) -> None:
        with self.lock:
            self.jsonl.write(json.dumps({"time": time.time(), "kind": kind, "run": run.name, **values}) + "\n")
            self.jsonl.flush()

    def counters(self) -> dict[str, int]:
        """larappp's counters of the session measured (summed over sessions if there are several)."""
        argv = [sys.executable, "-m", "larappp.cli"]
        if self.args.config:
            argv += ["--config", str(self.args.config)]
        out = subprocess.run(self.argv(*argv, "status", "--json"), capture_output=True, text=True, check=False,
                             env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=10)
        try:
            state = json.loads(out.stdout)
        except ValueError:
            return {}
        totals: dict[str, int] = {}
        for session in state.get("sessions") or []:
            for key, value in session.items():
                if isinstance(value, int) and not isinstance(value, bool) and key not in ("cid", "attempt", "mtu"):
                    totals[key] = totals.get(key, 0) + value
        return totals

    def run(self, run: Run, server: str) -> None:
        args = self.args
        iperf = ["iperf3", "-c", server, "-p", str(args.port), "-t", str(args.seconds), "-i", "1", "--json"]
        if run.direction == "down":
            iperf.append("-R")
        if not args.tcp:
            iperf += ["-u", "-b", args.rate, "--get-server-output"]
        ping = ["ping", f"-{run.family}", "-D", "-n", "-i", "0.2", "-w", str(args.seconds + 1), server]
        run.started = time.time()
        client = subprocess.Popen(self.argv(*iperf), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        pinger = subprocess.Popen(self.argv(*ping), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        reader = threading.Thread(target=self._read_ping, args=(run, pinger), daemon=True)
        reader.start()
        while client.poll() is None:
            sample = self.counters()
            now = time.time()
            run.counters.append((now, sample))
            self.record("larappp", run, counters=sample)
            self._progress(run, now, sample)
            time.sleep(max(0.0, 1.0 - (time.time() - now)))
        output, errors = client.communicate()
        pinger.wait(timeout=args.seconds + 5)
        reader.join(5)
        final = self.counters()
        run.counters.append((time.time(), final))
        self.record("larappp", run, counters=final)
        try:
            result = json.loads(output)
        except ValueError:
            raise SystemExit(f"measure: iperf3 to {server} gave no result: {errors.strip()}") from None
        if "error" in result:
            raise SystemExit(f"measure: iperf3 to {server} failed: {result['error']}")
        run.intervals = _intervals(result, run.direction, args.tcp)
        for interval in run.intervals:
            self.record("iperf3", run, **interval)
        if sys.stdout.isatty():
            print()

    def _read_ping(self, run: Run, pinger: subprocess.Popen[str]) -> None:
        assert pinger.stdout is not None
        for line in pinger.stdout:
            if m := PING_LINE.match(line):
                at, seq, rtt = float(m.group(1)), int(m.group(2)), float(m.group(3))
                run.pings.append((at, seq, rtt))
                self.record("ping", run, at=at, seq=seq, rtt_ms=rtt)

    def _progress(self, run: Run, now: float, sample: dict[str, int]) -> None:
        taken, previous = run.counters[-2] if len(run.counters) > 1 else (run.started, sample)
        elapsed = max(now - taken, 1e-3)

        def rate(key: str) -> float:
            return (sample.get(key, 0) - previous.get(key, 0)) / elapsed

        rtt = f"{run.pings[-1][2]:.1f} ms" if run.pings else "-"
        line = (f"{run.name:<10} {now - run.started:5.1f}s  larappp packets/s in {rate('packets_in'):7.0f}"
                f" out {rate('packets_out'):7.0f}  ping {rtt}")
        if sys.stdout.isatty():
            print("\r" + line, end="", flush=True)
        else:
            print(line, flush=True)


def _intervals(result: dict[str, Any], direction: str, tcp: bool) -> list[dict[str, Any]]:
    """Per-second figures as the receiver saw them (the server's side for UDP sent up)."""
    intervals = result.get("intervals") or []
    if not tcp and direction == "up":
        intervals = (result.get("server_output_json") or {}).get("intervals") or intervals
    rows = []
    for interval in intervals:
        summary = interval["sum"]
        rows.append({
            "second": round(float(summary["end"])),
            "mbit_s": float(summary["bits_per_second"]) / 1e6,
            "lost_percent": float(summary.get("lost_percent", 0.0)),
            "retransmits": int(summary.get("retransmits", 0)),
        })
    return rows


def rows_of(run: Run) -> list[dict[str, Any]]:
    """One CSV row per second: iperf3's figures, ping's and larappp's counters of that second."""
    rows = []
    for interval in run.intervals:
        end = run.started + interval["second"]
        begin = end - 1.0
        rtts = [rtt for at, _, rtt in run.pings if begin <= at < end]
        before = _counters_at(run, begin)
        after = _counters_at(run, end)
        rows.append({
            "run": run.name, "family": run.family, "direction": run.direction, "second": interval["second"],
            "iperf_mbit_s": round(interval["mbit_s"], 3), "iperf_lost_percent": round(interval["lost_percent"], 3),
            "iperf_retransmits": interval["retransmits"],
            "ping_rtt_ms": round(sum(rtts) / len(rtts), 3) if rtts else "",
            "ping_lost": max(0, 5 - len(rtts)) if run.pings else "",
            "larappp_packets_in": round(after.get("packets_in", 0) - before.get("packets_in", 0)),
            "larappp_packets_out": round(after.get("packets_out", 0) - before.get("packets_out", 0)),
            "larappp_bad_frames": round(after.get("bad_frames", 0) - before.get("bad_frames", 0)),
        })
    return rows


def _counters_at(run: Run, at: float) -> dict[str, float]:
    """The counters at `at`, interpolated between the samples around it (each `larappp status`
    takes a while, so samples do not fall on the second)."""
    samples = run.counters
    if not samples:
        return {}
    if at <= samples[0][0]:
        return dict(samples[0][1])
    for (t0, c0), (t1, c1) in itertools.pairwise(samples):
        if t0 <= at <= t1:
            share = (at - t0) / (t1 - t0) if t1 > t0 else 1.0
            return {key: c0.get(key, 0) + share * (c1.get(key, 0) - c0.get(key, 0)) for key in c1}
    return dict(samples[-1][1])


def plot(run_rows: dict[str, list[dict[str, Any]]], out: Path) -> list[Path]:
    """One PNG per run: throughput, loss and RTT against time. Nothing without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("measure: matplotlib is not installed (pip install 'larappp[plot]'): no plots", file=sys.stderr)
        return []
    written = []
    for name, rows in run_rows.items():
        seconds = [row["second"] for row in rows]
        figure, (rate, loss, rtt) = plt.subplots(3, 1, sharex=True, figsize=(8, 7))
        rate.plot(seconds, [row["iperf_mbit_s"] for row in rows], label="iperf3")
        rate.set_ylabel("Mbit/s")
        loss.plot(seconds, [row["iperf_lost_percent"] for row in rows], label="iperf3 lost %")
        loss.plot(seconds, [row["larappp_bad_frames"] for row in rows], label="larappp bad frames")
        loss.set_ylabel("loss")
        loss.legend()
        rtt.plot(seconds, [row["ping_rtt_ms"] if row["ping_rtt_ms"] != "" else float("nan") for row in rows])
        rtt.set_ylabel("ping RTT ms")
        rtt.set_xlabel("s")
        figure.suptitle(f"larappp {name}")
        path = out / f"{name}.png"
        figure.savefig(path)
        plt.close(figure)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--v4", help="iperf3 server's IPv4 address (omit to skip IPv4)")
    parser.add_argument("--v6", help="iperf3 server's IPv6 address (omit to skip IPv6)")
    parser.add_argument("--netns", help="run iperf3, ping and larappp status in this network namespace")
    parser.add_argument("--config", type=Path, help="larappp's config (for larappp status)")
    parser.add_argument("--seconds", type=int, default=10, help="length of each run (default 10)")
    parser.add_argument("--rate", default="4M", help="UDP rate for iperf3 -b (default 4M)")
    parser.add_argument("--tcp", action="store_true", help="TCP instead of UDP (retransmits instead of loss)")
    parser.add_argument("--port", type=int, default=5201, help="iperf3 server port (default 5201)")
    parser.add_argument("--directions", default="up,down", help="up, down or both (default up,down)")
    parser.add_argument("--out", type=Path, default=Path("measure-out"), help="output directory")
    args = parser.parse_args(argv)
    servers = [(4, args.v4), (6, args.v6)]
    if not any(server for _, server in servers):
        parser.error("give --v4 and/or --v6: the iperf3 server to measure against")
    args.out.mkdir(parents=True, exist_ok=True)
    run_rows: dict[str, list[dict[str, Any]]] = {}
    with (args.out / "measure.jsonl").open("w") as jsonl:
        measure = Measure(args, jsonl)
        for family, server in servers:
            if not server:
                continue
            for direction in args.directions.split(","):
                run = Run(family, direction)
                measure.run(run, server)
                run_rows[run.name] = rows_of(run)
    with (args.out / "measure.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for rows in run_rows.values():
            writer.writerows(rows)
    plots = plot(run_rows, args.out)
    for name, rows in run_rows.items():
        mean = sum(row["iperf_mbit_s"] for row in rows) / len(rows) if rows else 0.0
        print(f"{name:<10} {mean:8.2f} Mbit/s mean over {len(rows)} s")
    print(f"wrote {args.out / 'measure.jsonl'}, {args.out / 'measure.csv'}" + "".join(f", {p}" for p in plots))
    return 0


if __name__ == "__main__":
    sys.exit(main())
