"""Waiting on a condition with a deadline: the readiness signal tests use instead of sleeping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def wait_for(
    cond: Callable[[], bool | Awaitable[bool]], timeout: float = 5.0, step: float = 0.02
) -> float:
    """Poll `cond` (plain or async) until true; return the seconds it took, or fail at `timeout`."""
    start = time.monotonic()
    while True:
        result = cond()
        if not isinstance(result, bool):
            result = await result
        if result:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition still false after {timeout} s")
        await asyncio.sleep(step)
