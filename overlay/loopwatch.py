"""LoopWatch: how late the event loop wakes, measured all the time, logged when it is too late.

One event loop runs the ring's heartbeats, the DHT, sync and the prompt. A callback that holds
it for long (a synchronous loop over thousands of keys, say) delays every other one: a PING
answered a second late looks like a dead node. A task that sleeps `interval` seconds and
measures by how much more it slept sees every such stall; a stall over `warn` seconds is logged
(at most once per `quiet` seconds, with how many were left unlogged), and the worst one seen is
kept for tests and `status`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

INTERVAL = 0.05
"""Seconds between two wake-ups of the watch."""
WARN = 0.1
"""A lag above this many seconds is logged as a WARNING."""
QUIET = 10.0
"""At most one lag WARNING per this many seconds."""


class LoopWatch:
    """Lag statistics of one event loop; `run` is the task that measures them."""

    def __init__(
        self,
        interval: float = INTERVAL,
        warn: float = WARN,
        quiet: float = QUIET,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.warn = warn
        self.quiet = quiet
        self.clock = clock
        self.worst = 0.0
        self.late = 0
        self._unlogged = 0
        self._logged_at: float | None = None

    def observe(self, lag: float, now: float) -> str | None:
        """Count one measured lag; returns the WARNING to log, if one is due now."""
        self.worst = max(self.worst, lag)
        if lag <= self.warn:
            return None
        self.late += 1
        if self._logged_at is not None and now - self._logged_at < self.quiet:
            self._unlogged += 1
            return None
        unlogged, self._unlogged, self._logged_at = self._unlogged, 0, now
        more = (
            f" ({unlogged} more over {self.warn * 1000:.0f} ms since the last)" if unlogged else ""
        )
        return f"event loop woke {lag * 1000:.0f} ms late{more}"

    def reset(self) -> None:
        """Forget the worst lag seen (e.g. to measure one phase of a test)."""
        self.worst = 0.0

    async def run(self) -> None:
        """Measure for as long as the task runs."""
        while True:
            started = self.clock()
            await asyncio.sleep(self.interval)
            now = self.clock()
            line = self.observe(max(0.0, now - started - self.interval), now)
            if line is not None:
                log.warning("%s", line)
