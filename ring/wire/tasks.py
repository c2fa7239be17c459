"""Background tasks that end for sure, shared by every layer that owns some."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable
from typing import Any

log = logging.getLogger(__name__)


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


class Tasks:
    """The tasks one owner (named `owner` in the log) runs in the background: started
    together, logged if they fail, stopped together, so that none outlives its owner."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._running: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run `coro` as a task of this owner; a failure is logged when the task ends."""
        task = asyncio.get_running_loop().create_task(coro)
        self._running.add(task)
        task.add_done_callback(self._reap)
        return task

    def _reap(self, task: asyncio.Task[Any]) -> None:
        self._running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: background task failed", self.owner, exc_info=task.exception())

    async def stop(self) -> None:
        """Cancel every task of this owner but the caller's own, and wait until each has ended."""
        current = asyncio.current_task()
        await cancel_and_wait(t for t in self._running if t is not current)
