"""Ending asyncio tasks for sure, shared by every layer that owns background tasks."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel tasks and wait until every one has ended, cancelling again any that goes on.

    On Python 3.11 `asyncio.wait_for` can swallow a cancellation that arrives just as the
    awaited operation finishes (gh-86296, fixed in 3.12); a task caught that way would run
    on, and a plain cancel-then-gather would wait for it forever.
    """
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.1)
