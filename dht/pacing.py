"""Pacing: how many RPCs of one kind of DHT work may be in flight, and how many may start a second.

Theory of operation. Every RPC this node sends belongs to one kind of work, read from the
context variable `WORK` (asyncio copies it into every task a piece of work starts, so a lookup's
crawl or a sweep's region lookups inherit their kind). Each kind has a `Budget`: a semaphore
bounds the requests in flight, a token bucket the requests started per second. One kind of work
running hot (a backlog of thousands of announcements) then waits for its own tokens and never
takes the slots of another (a `who-has` lookup). Loops over many keys hand the event loop back
every `STEP` keys, so that no kind of work holds it for long. See docs/DHT.md for the figures.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass

LOOKUP = "lookup"
"""Iterative `holders` lookups (who-has, sync's "who holds H?")."""
SWEEP = "sweep"
"""This node's own entries: announce, withdraw, re-announce, in region sweeps."""
HAND_OVER = "hand-over"
"""Records handed to a contact met for the first time (Kademlia section 2.5)."""
REPAIR = "repair"
"""Entries a lookup found missing at one of the k nearest nodes, written back."""
UPKEEP = "upkeep"
"""Joining (ping, find_node), the routing table's own pings and refreshes."""

KINDS = (LOOKUP, SWEEP, HAND_OVER, REPAIR, UPKEEP)

STEP = 256
"""Keys handled between two yields to the event loop."""

WORK: ContextVar[str] = ContextVar("dht_work", default=UPKEEP)
"""The kind of work the RPCs sent from the current task belong to."""


@dataclass(frozen=True)
class Budget:
    """Bounds of one kind of work: requests in flight, requests started per second, burst."""

    in_flight: int
    per_second: float
    burst: int


BUDGETS: dict[str, Budget] = {
    LOOKUP: Budget(in_flight=48, per_second=2000.0, burst=200),
    SWEEP: Budget(in_flight=8, per_second=200.0, burst=50),
    HAND_OVER: Budget(in_flight=2, per_second=50.0, burst=10),
    REPAIR: Budget(in_flight=4, per_second=100.0, burst=20),
    UPKEEP: Budget(in_flight=16, per_second=100.0, burst=64),
}
"""The default budgets (docs/DHT.md, "Bounds"); a LAN answers an RPC in well under 1 ms."""


class TokenBucket:
    """A token bucket by reservation: `reserve` takes a token at once and says how long to wait.

    Tokens may go negative: each caller is told the time at which its own token accrues, so
    callers that arrive together are spread at ``1 / rate`` intervals, in arrival order.
    """

    def __init__(self, rate: float, burst: int, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = now

    def reserve(self, now: float) -> float:
        """Take one token; returns the seconds to wait before using it (0 if one was there)."""
        elapsed = max(0.0, now - self._stamp)
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)
        self._stamp = max(self._stamp, now)
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


class Pacer:
    """The asyncio side of one `Budget`: ``async with pacer.slot():`` around each request."""

    def __init__(self, budget: Budget, clock: Callable[[], float] = time.monotonic) -> None:
        self.budget = budget
        self.clock = clock
        self.in_flight = 0
        self._slots = asyncio.Semaphore(budget.in_flight)
        self._bucket = TokenBucket(budget.per_second, budget.burst, clock())

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait for a free slot and a token, hold the slot for the body."""
        async with self._slots:
            delay = self._bucket.reserve(self.clock())
            if delay > 0:
                await asyncio.sleep(delay)
            self.in_flight += 1
            try:
                yield
            finally:
                self.in_flight -= 1
