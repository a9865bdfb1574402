"""Fixtures shared by every test tier."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator

import pytest


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh network namespace, deleted afterwards even when the test fails."""
    name = f"lpt-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
