"""The background tasks of one node's ring: started together, logged if they fail, stopped
together (on leave and crash), so that no task outlives the membership that started it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from ring.wire import cancel_and_wait

log = logging.getLogger(__name__)


class Tasks:
    """The tasks one owner (named `owner` in the log) runs in the background."""

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
            log.error("%s: ring task failed", self.owner, exc_info=task.exception())

    async def stop(self) -> None:
        """Cancel every task of this owner but the caller's own, and wait until each has ended."""
        current = asyncio.current_task()
        await cancel_and_wait(t for t in self._running if t is not current)
