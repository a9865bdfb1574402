#!/usr/bin/env python3
"""larappp's main job against the built-in simulator, with real traffic across.

larappp runs in a network namespace of its own (the DTE), so nothing on this machine's
own interfaces changes; the simulator's operator network and internet are a second
namespace. Steps: check, up (bring-up, CONNECT, PPP, SLAAC), ping, ping6, DNS, iperf3,
status, down, and a check that nothing is left behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "demo.toml"
DTE = "larappp-demo"
INET = "larappp-sim-inet"


def sh(*argv: str, check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess[str]:
    if not quiet:
        print("$ " + " ".join(argv), flush=True)
    out = subprocess.run(argv, text=True, capture_output=quiet, check=False)
    if check and out.returncode != 0:
        raise SystemExit(f"demo: '{' '.join(argv)}' failed with status {out.returncode}")
    return out


def larappp(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return sh("ip", "netns", "exec", DTE, sys.executable, "-m", "larappp.cli", "--config", str(CONFIG), *args,
              check=check)


def iperf(target: str, *extra: str) -> str:
    server = subprocess.Popen(["ip", "netns", "exec", INET, "iperf3", "-s", "-1", "-p", "5201"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        out = sh("ip", "netns", "exec", DTE, "iperf3", "-c", target, "-p", "5201", "-t", "2", "-J", *extra,
                 quiet=True)
        result = json.loads(out.stdout)
        if "error" in result:
            return f"failed: {result['error']}"
        end = result["end"]
        received = end.get("sum_received") or end["sum"]
        return f"{received['bits_per_second'] / 1e6:.1f} Mbit/s"
    finally:
        if server.poll() is None:
            server.kill()
        server.wait()


def main() -> int:
    for ns in (DTE, INET):
        sh("ip", "netns", "del", ns, check=False, quiet=True)
        sh("ip", "netns", "add", ns)
    try:
        sh("ip", "-n", DTE, "link", "set", "lo", "up")
        larappp("check")
        larappp("up")
        try:
            sh("ip", "netns", "exec", DTE, "ping", "-c", "3", "198.51.100.1")
            sh("ip", "netns", "exec", DTE, "ping", "-6", "-c", "3", "2001:db8:ffff::1")
            sh("ip", "netns", "exec", DTE, "dig", "+short", "@198.51.100.53", "server.larappp.test", "AAAA")
            print("iperf3 TCP over PPP (pty, built-in engine):", flush=True)
            for label, target, extra in (("IPv4 up  ", "198.51.100.1", ()), ("IPv4 down", "198.51.100.1", ("-R",)),
                                         ("IPv6 up  ", "2001:db8:ffff::1", ()),
                                         ("IPv6 down", "2001:db8:ffff::1", ("-R",))):
                print(f"  {label} {iperf(target, *extra)}", flush=True)
            larappp("status")
        finally:
            larappp("down")
        left = sh("ip", "-n", DTE, "-br", "addr", quiet=True).stdout.split()
        print("left behind in the DTE namespace:", "nothing" if left[:1] == ["lo"] and len(left) <= 4 else left)
    finally:
        for ns in (DTE, INET):
            sh("ip", "netns", "del", ns, check=False, quiet=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
