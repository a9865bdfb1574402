"""Running a test's asyncio scenario: in a fresh loop, never longer than a bound."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def run_bounded(scenario: Callable[[], Awaitable[T]], timeout: float = 20.0) -> T:
    """`asyncio.run(scenario())`, failing with TimeoutError after `timeout` s: no test hangs."""

    async def bounded() -> T:
        return await asyncio.wait_for(scenario(), timeout)

    return asyncio.run(bounded())
