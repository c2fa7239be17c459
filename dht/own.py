"""OwnEntries: the part of `HolderIndex` that keeps this node's own entries in the index.

What this node holds (announce, withdraw, re-announce), and what it is downloading (partial
entries, renewed while the download runs): each change is written locally and joins the backlog,
which the publisher sweeps in rounds with every other change of the moment. A mixin, so that
`dht/index.py` keeps the node's wiring and lookups and stays readable; it uses the index's
storage, backlog, publisher and holder.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from dht.backlog import Backlog
from dht.pacing import STEP
from dht.publisher import Publisher
from dht.records import Entry, dht_key
from dht.storage import HolderStorage

log = logging.getLogger(__name__)

STAMP_STEP = 1e-6
"""Least step between two stamps of this node (the wall clock may give one value twice). Small,
because stamps given in a burst run ahead of the clock by a step each, and a node restarted
before the clock catches up (it remembers no stamp) would stamp its new entries below the
withdrawals it sent when leaving: at 1 ms a step, 10,000 withdrawals ran 10 s ahead. At 1 µs
they run 10 ms ahead. A float of today's Unix time still tells apart values 0.25 µs apart."""
PARTIAL_TTL = 120.0
"""Seconds a partial entry lives after its holder last renewed it."""
PARTIAL_RENEW = 40.0
"""Seconds between two renewals of the partial entries of the downloads running."""
WITHDRAW_WAIT = 2.0
"""Seconds a withdrawal waits for a sweep that runs anyway before it starts one of its own.
An announce makes a holder findable, and fetches may be waiting for it; a withdrawal only stops
lookups from naming a holder that would answer "not here", and a fetch then asks the next
source. When a file is deleted, every holder withdraws it the moment the ring's push reaches
it, while the push is still going round: sweeping at once put that work on the event loops the
push needs (docs/DHT.md has the figures). Waiting lets the push finish first, and a sweep that
runs meanwhile (a file added or edited) carries the withdrawal at no extra cost. A caller that
waits for the withdrawal (`withdraw`, `withdraw_all` when the node leaves) has it sent at once."""


@dataclass(frozen=True)
class Holder:
    """Where a holder serves files: its id and its TCP host and port; ``partial``: it is
    downloading the content and serves the blocks it has so far."""

    holder_id: str
    host: str
    port: int
    partial: bool = False


class OwnEntries:
    """This node's own entries; mixed into `HolderIndex`, which sets every attribute below."""

    storage: HolderStorage
    holder: Holder
    publisher: Publisher | None
    ttl: float
    reannounce: float
    partial_ttl: float
    partial_renew: float
    _backlog: Backlog
    _held: set[str]
    _fetching: set[str]
    _last_stamp: float
    _stamp_clock: Callable[[], float]

    def _next_stamp(self) -> float:
        """A stamp above every stamp this node gave before, even if the wall clock stepped back."""
        self._last_stamp = max(self._stamp_clock(), self._last_stamp + STAMP_STEP)
        return self._last_stamp

    # -- this node's own entries -------------------------------------------------------------

    def queue(
        self, sha256_hex: str, held: bool, *, urgent: bool = False
    ) -> asyncio.Future[None] | None:
        """Record that this node holds (or dropped) ``sha256_hex``; the next round publishes it
        (a withdrawal: the next sweep, or the first round `WITHDRAW_WAIT` s on; ``urgent``: the
        next round).

        Returns at once: the entry is written locally and joins the backlog, to be swept with
        every other change of the same round (one lookup per region, many keys per request).
        The future returned is done when that round ends (None before `listen`).

        Raises:
            InvalidKey: not a SHA-256 hex digest.
        """
        key = dht_key(sha256_hex)
        self._fetching.discard(sha256_hex)  # a full entry or a withdrawal replaces a partial one
        if held:
            self._held.add(sha256_hex)
        else:
            self._held.discard(sha256_hex)
        return self._queue(key, held, urgent=urgent)

    def fetching(self, sha256_hex: str, active: bool) -> None:
        """A block download of ``sha256_hex`` started (True) or ended (False) here.

        Started: unless this node holds the content already, a partial entry is queued, and
        renewed every ``partial_renew`` seconds until the download ends. Ended: unless the file
        was placed (its full entry, queued by `queue`, replaces the partial one), the partial
        entry is withdrawn. Either way the next round publishes it, with every other change.

        Raises:
            InvalidKey: not a SHA-256 hex digest.
        """
        key = dht_key(sha256_hex)
        if active:
            if sha256_hex in self._held or sha256_hex in self._fetching:
                return
            self._fetching.add(sha256_hex)
            self._queue(key, True, partial=True)
        elif sha256_hex in self._fetching:
            self._fetching.discard(sha256_hex)
            if sha256_hex not in self._held:
                self._queue(key, False, partial=True)

    def _queue(
        self, key: bytes, present: bool, partial: bool = False, urgent: bool = False
    ) -> asyncio.Future[None] | None:
        """Write this node's entry for ``key`` locally and queue it, due at once if it is an
        announce or ``urgent``, else `WITHDRAW_WAIT` s later; a partial entry, and the
        withdrawal of one, live ``partial_ttl`` seconds (the withdrawal must only outlive it)."""
        now = self.storage.clock()
        h = self.holder
        ttl = self.partial_ttl if partial else self.ttl
        entry = Entry(h.host, h.port, self._next_stamp(), present, now + ttl, partial and present)
        self.storage.merge(key, {h.holder_id: entry})
        self._backlog.own(key, entry, now if present or urgent else now + WITHDRAW_WAIT)
        return self.publisher.sent(key) if self.publisher is not None else None

    async def announce(self, sha256_hex: str) -> None:
        """Record that this node holds ``sha256_hex`` and wait for the round that publishes it.

        Unreachable storing nodes are logged, not raised: the re-announce loop tries again.

        Raises:
            InvalidKey: not a SHA-256 hex digest.
        """
        await _done(self.queue(sha256_hex, True))

    async def withdraw(self, sha256_hex: str) -> None:
        """Record that this node no longer holds ``sha256_hex``, stop re-announcing it, and
        wait for the round that publishes the withdrawal.

        Raises:
            InvalidKey: not a SHA-256 hex digest.
        """
        await _done(self.queue(sha256_hex, False, urgent=True))

    async def withdraw_all(self, hashes: Iterable[str]) -> None:
        """Withdraw many hashes at once (a node leaving), and wait until they are published.

        Raises:
            InvalidKey: one of them is not a SHA-256 hex digest (those before it are queued).
        """
        await self._queue_many(list(hashes), present=False)

    def hold(self, hashes: Iterable[str]) -> None:
        """Count these hashes as held, to be published by the next `reannounce_all` round.

        A node starting with thousands of files registers them at once and lets one
        re-announce sweep publish them when it has met the network.

        Raises:
            InvalidKey: one of them is not a SHA-256 hex digest (none is registered then).
        """
        wanted = list(hashes)
        for sha256_hex in wanted:
            dht_key(sha256_hex)
        self._held.update(wanted)

    async def reannounce_all(self) -> None:
        """Announce again every hash this node holds, in sweeps, and wait until they are sent."""
        await self._queue_many(list(self._held), present=True)

    async def _queue_many(self, hashes: list[str], present: bool) -> None:
        """Queue many own entries, due at once, yielding to the event loop every `STEP`, then
        wait for the rounds that carry them.

        Each entry's future is taken as it is queued: a round may carry the first entries
        while the last are being queued, and a future asked for after its round would wait
        for a round that never comes.
        """
        sent: set[asyncio.Future[None]] = set()
        for start in range(0, len(hashes), STEP):
            for sha256_hex in hashes[start : start + STEP]:
                future = self.queue(sha256_hex, present, urgent=True)
                if future is not None:
                    sent.add(future)
            await asyncio.sleep(0)
        await asyncio.gather(*sent)

    async def _renew_loop(self) -> None:
        """Renew the partial entries of the downloads running (one sweep for all of them)."""
        while True:
            await asyncio.sleep(self.partial_renew)
            for sha256_hex in sorted(self._fetching):
                self._queue(dht_key(sha256_hex), True, partial=True)

    async def _reannounce_loop(self) -> None:
        while True:
            await asyncio.sleep(self.reannounce)
            try:
                await self.reannounce_all()
            except Exception:
                log.exception("re-announce round failed; trying again in %.0f s", self.reannounce)


async def _done(sent: asyncio.Future[None] | None) -> None:
    """Wait for the round that carries an entry (nothing to wait for before `listen`)."""
    if sent is not None:
        await sent
