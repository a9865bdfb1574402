#!/usr/bin/env python3
"""The main job against the built-in simulator: larappp up, status, down."""

from __future__ import annotations

import subprocess
import sys


def run(*args: str) -> int:
    print("$ larappp " + " ".join(args), flush=True)
    return subprocess.call([sys.executable, "-m", "larappp.cli", *args])


def main() -> int:
    code = run("check")
    code = run("up")
    if code != 0:
        return code
    run("status")
    return run("down")


if __name__ == "__main__":
    sys.exit(main())
