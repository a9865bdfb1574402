"""Helpers shared by tests that use the kernel inside temporary network namespaces."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any, TypeVar

from larappp.transport.netns import call_in_netns

T = TypeVar("T")


def in_netns(name: str, function: Callable[[], T]) -> T:
    """Run `function` in a thread that entered namespace `name`; re-raise its exception."""
    return call_in_netns(name, function)


def ip_json(namespace: str, *args: str) -> Any:
    """`ip -n <namespace> -j ...` parsed; [] when the device asked for does not exist."""
    done = subprocess.run(["ip", "-n", namespace, "-j", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        assert "does not exist" in done.stderr or "Cannot find device" in done.stderr, done.stderr
        return []
    return json.loads(done.stdout or "[]")
