"""Downloads in progress, as data for the operator: `status`, progress bars, finish lines.

Workers (threads) bump byte counters on a `Transfer`; readers on the event loop take
`Transfers.snapshot()`, a list of frozen `TransferInfo`. A bare int add is atomic enough for
a display, so the hot path takes no lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TransferInfo:
    """One download as the operator sees it."""

    owner: str
    path: str
    size: int
    done: int
    rate: float
    """Bytes per second since this run of the download started."""
    eta: float | None
    """Seconds left at the current rate (None while no rate is known)."""
    sources: tuple[str, ...]
    resumed: int
    """Bytes already verified from an earlier, interrupted run."""


class Transfer:
    """A running download's counters (written by worker threads)."""

    def __init__(self, owner: str, path: str, size: int, clock: Callable[[], float]) -> None:
        self.owner, self.path, self.size = owner, path, size
        self.done = 0
        self.resumed = 0
        self.sources: tuple[str, ...] = ()
        self._clock = clock
        self.started = clock()

    def add(self, count: int) -> None:
        """`count` more bytes arrived (verified or not: this is for display)."""
        self.done += count

    def info(self) -> TransferInfo:
        """A snapshot for readers."""
        done = min(self.done, self.size)
        elapsed = self._clock() - self.started
        fresh = done - self.resumed
        rate = fresh / elapsed if elapsed > 0 and fresh > 0 else 0.0
        eta = (self.size - done) / rate if rate > 0 else None
        return TransferInfo(
            self.owner, self.path, self.size, done, rate, eta, self.sources, self.resumed
        )


class Transfers:
    """Every download running on this node."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._running: dict[int, Transfer] = {}
        self._lock = threading.Lock()

    def begin(self, owner: str, path: str, size: int) -> Transfer:
        """Register a download; pair with `end`."""
        transfer = Transfer(owner, path, size, self._clock)
        with self._lock:
            self._running[id(transfer)] = transfer
        return transfer

    def end(self, transfer: Transfer, ok: bool) -> None:
        """The download stopped; a finished one gets a log line (the non-terminal display)."""
        with self._lock:
            self._running.pop(id(transfer), None)
        if ok:
            info = transfer.info()
            elapsed = max(self._clock() - transfer.started, 1e-9)
            log.info(
                "fetched %s/%s: %d bytes in %.2f s (%.1f MB/s) from %s",
                info.owner,
                info.path,
                info.size,
                elapsed,
                (info.size - info.resumed) / elapsed / 1e6,
                ", ".join(info.sources) or "?",
            )

    def snapshot(self) -> list[TransferInfo]:
        """Every running download, oldest first."""
        with self._lock:
            running = sorted(self._running.values(), key=lambda t: t.started)
        return [t.info() for t in running]
