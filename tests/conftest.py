"""Fixtures shared by every test tier."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

TIERS = ("cores", "pairs", "kernel", "sim", "e2e", "vm")
_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test with its tier, the directory under tests/ it lives in (`-m kernel`)."""
    for item in items:
        path = Path(str(item.path)).resolve()
        if _HERE in path.parents and path.relative_to(_HERE).parts[0] in TIERS:
            item.add_marker(path.relative_to(_HERE).parts[0])


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh network namespace, deleted afterwards even when the test fails."""
    name = f"lpt-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
