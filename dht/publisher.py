"""Publisher: drains the backlog in rounds, paced, and never holding the event loop for long.

One round (after `GATHER` seconds, so that changes arriving together travel together):
1. plan the hand-over of every contact met for the first time (`dht/handover.py`), at most
   once per contact per ttl, and queue the records owed as hand-over parcels;
2. once one of this node's own entries is due (a withdrawal is due later than an announce:
   `dht/own.py`), sweep up to `MAX_SWEEP_KEYS` of them, oldest first (`dht/sweep.py`): one
   region of the keyspace at a time (`dht/regions.py`: a lookup, or none when the ring's
   census says the routing table holds every node), then `announce_many` requests to each
   node of the region, each carrying every key that node is among the k nearest of;
3. send up to `MAX_ROUND_PARCEL_KEYS` keys of parcels (hand-over, repair), oldest first.
Requests go out under the pacer of their kind (`dht/pacing.py`); long loops over keys yield
to the event loop every `STEP` keys. The cost of all this is docs/DHT.md.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterable

from kademlia.node import Node

from dht.backlog import Backlog, Parcel
from dht.batch import encode_batches
from dht.errors import LookupFailed
from dht.handover import plan_hand_over
from dht.pacing import HAND_OVER, STEP, SWEEP, WORK
from dht.protocol import HolderProtocol
from dht.records import Entry, Record
from dht.regions import Regions
from dht.sweep import position

log = logging.getLogger(__name__)

GATHER = 0.25
"""Seconds between work arriving and the round that carries it, and so between two rounds."""
MAX_SWEEP_KEYS = 4096
"""Own entries one round sweeps; more wait for the next round, in order."""
MAX_ROUND_PARCEL_KEYS = 4096
"""Parcel keys (hand-over, repair) one round sends."""
MAX_WELCOMED = 4096
"""Contacts remembered as handed over to (the oldest are forgotten first)."""


class Publisher:
    """The asyncio shell that drains one node's `Backlog`; `run` is its task.

    Args:
        protocol: the node's protocol (requests, routing table).
        backlog: the queues to drain; its ``notify`` is set to wake this publisher.
        holder_id: this node's holder id, for its own entries.
        regions: draws the region of each sweep (`dht/regions.py`).
    """

    def __init__(
        self,
        protocol: HolderProtocol,
        backlog: Backlog,
        holder_id: str,
        regions: Regions,
        *,
        ksize: int,
        ttl: float,
    ) -> None:
        self.protocol = protocol
        self.storage = protocol.storage
        self.backlog = backlog
        self.holder_id = holder_id
        self.keyspace = regions
        self.ksize = ksize
        self.ttl = ttl
        self.rounds = 0
        self.regions = 0
        self._wake = asyncio.Event()
        backlog.notify = self._wake.set
        self._welcomed: dict[bytes, float] = {}
        self._waiting: dict[bytes, asyncio.Future[None]] = {}
        self._timer: asyncio.TimerHandle | None = None
        if backlog:
            self._wake.set()

    def sent(self, key: bytes) -> asyncio.Future[None]:
        """A future done once the next round that carries this node's entry for ``key`` ends."""
        future = self._waiting.get(key)
        if future is None:
            future = self._waiting[key] = asyncio.get_running_loop().create_future()
        return future

    def release(self) -> None:
        """Wake everyone waiting on `sent` (the node stops: nothing more will be sent)."""
        if self._timer is not None:
            self._timer.cancel()
        for future in self._waiting.values():
            if not future.done():
                future.set_result(None)
        self._waiting.clear()

    async def run(self) -> None:
        """Drain rounds for as long as the node runs. Own entries not due yet start no round
        of their own: the publisher sleeps until the first of them is due, unless other work
        wakes it first (and a sweep it runs then carries them along)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(GATHER)
            idle = self.backlog.due_in(self.storage.clock())
            if idle > 0:
                self._wake_in(idle)
                continue
            try:
                await self.drain_once()
            except Exception:
                log.exception("a DHT publishing round failed; the rest waits for the next")
            if self.backlog:
                self._wake.set()

    def _wake_in(self, seconds: float) -> None:
        """Wake the publisher in ``seconds``, replacing any wake-up set before (inf: none)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if seconds != math.inf:
            self._timer = asyncio.get_running_loop().call_later(seconds, self._wake.set)

    async def drain_once(self) -> None:
        """One round: hand-over plans, then own entries if one is due, then parcels."""
        self.rounds += 1
        await self.plan_hand_overs()
        due = self.backlog.own_due_in(self.storage.clock()) == 0
        own = self.backlog.take_own(MAX_SWEEP_KEYS) if due else []
        waiters = [self._waiting.pop(key) for key, _ in own if key in self._waiting]
        try:
            if own:
                await self._sweep(own)
            parcels = self.backlog.take_parcels(MAX_ROUND_PARCEL_KEYS)
            if parcels:
                await self._send_parcels(parcels)
        finally:
            for future in waiters:
                if not future.done():
                    future.set_result(None)

    # -- hand-over ---------------------------------------------------------------------------

    async def plan_hand_overs(self) -> None:
        """Queue what each contact met for the first time is owed, as hand-over parcels,
        unless that contact was handed records within the ttl."""
        newcomers = self.backlog.take_newcomers()
        if not newcomers:
            return
        now = self.storage.clock()
        self._welcomed = {k: t for k, t in self._welcomed.items() if t > now}
        fresh = [n for n in newcomers if n.id not in self._welcomed]
        if not fresh:
            return
        contacts = [c for bucket in self.protocol.router.buckets for c in bucket.get_nodes()]
        keys = self.storage.keys()
        plan: dict[bytes, list[bytes]] = {}
        me = self.protocol.source_node
        for start in range(0, len(keys), STEP):
            part = plan_hand_over(me, contacts, fresh, keys[start : start + STEP], self.ksize)
            for node_id, owed in part.items():
                plan.setdefault(node_id, []).extend(owed)
            await asyncio.sleep(0)
        for newcomer in fresh:
            owed = plan.get(newcomer.id, [])
            if not owed:
                continue
            log.debug("handing %d records over to %s", len(owed), newcomer)
            self._welcomed[newcomer.id] = now + self.ttl
            while len(self._welcomed) > MAX_WELCOMED:
                del self._welcomed[next(iter(self._welcomed))]
            for start in range(0, len(owed), STEP):
                for key in owed[start : start + STEP]:
                    record = self.storage.record(key)
                    if self.backlog.owes(key):  # the sweep of this round carries it
                        record = {h: e for h, e in record.items() if h != self.holder_id}
                    if record:
                        self.backlog.parcel(HAND_OVER, newcomer, key, record)
                await asyncio.sleep(0)

    # -- own entries -------------------------------------------------------------------------

    async def _sweep(self, own: list[tuple[bytes, Entry]]) -> None:
        """Send own entries to the k nearest nodes of each key, region by region."""
        token = WORK.set(SWEEP)
        try:
            entries = dict(own)
            keys = sorted(entries, key=position)
            plan, regions, covered = await self.keyspace.plan(keys)
            self.regions += regions
            if covered < len(keys):
                log.info("no DHT peer answered; %d entries kept here", len(keys) - covered)
            await asyncio.gather(
                *(
                    self._deliver(SWEEP, node, [(k, {self.holder_id: entries[k]}) for k in keys])
                    for node, keys in plan.values()
                )
            )
        finally:
            WORK.reset(token)

    # -- sending -----------------------------------------------------------------------------

    async def _send_parcels(self, parcels: list[Parcel]) -> None:
        await asyncio.gather(*(self._parcel(p) for p in parcels))

    async def _parcel(self, parcel: Parcel) -> None:
        token = WORK.set(parcel.kind)
        try:
            await self._deliver(parcel.kind, parcel.node, parcel.items)
        finally:
            WORK.reset(token)

    async def _deliver(self, kind: str, node: Node, items: Iterable[tuple[bytes, Record]]) -> None:
        """Send ``items`` to ``node`` in `announce_many` requests, one at a time.

        A node that fails one request is not sent the rest (it is skipped as silent for a
        while anyway); what it missed comes back with re-announcements and repairs.
        """
        sent = 0
        for batch in encode_batches(items, self.storage.clock()):
            try:
                await self.protocol.call_announce_many(node, batch)
            except LookupFailed as exc:
                log.info("%s: %s after %d requests; the rest is left out", kind, exc, sent)
                return
            sent += 1
            await asyncio.sleep(0)
