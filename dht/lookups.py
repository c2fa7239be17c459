"""Lookups: who holds a key, one key at a time or many keys in one pass.

One key (`Lookups.one`, what `who-has` uses): an iterative `HolderCrawl` on `holders` that asks
the k nearest live nodes of the key and merges every record it meets: exact, at most N - 1
requests.

Many keys (`Lookups.many`, what sync's fetch planning uses): a lookup per key would cost about
k + alpha requests each, so a pass fetching 1,000 new files paid 3,000 requests. Instead the
keys are sorted by their place in the keyspace and walked in regions, as a sweep walks own
entries (`dht/sweep.py`): one `find_node` lookup for 2k nodes around the first key of a region
(none when the ring's census says the routing table holds every node: `dht/regions.py`)
proves which nodes are the true k nearest of every key it covers; each of those nodes is then
asked `holders_many` for all of its keys at once (up to `MAX_LOOKUP_KEYS` a request, and again
for the keys a reply had no room for). A key whose nearest nodes all failed to answer, or whose
record does not fit a reply, is looked up alone. docs/DHT.md gives the bound.

Either way, the entries one of the k nearest nodes lacked are queued for it as repairs.
"""

from __future__ import annotations

import asyncio
import logging

from kademlia.node import Node

from dht.backlog import Backlog
from dht.batch import MAX_LOOKUP_KEYS
from dht.crawling import HolderCrawl
from dht.errors import LookupFailed
from dht.pacing import REPAIR
from dht.protocol import HolderProtocol
from dht.records import Record, changed_entries, merge
from dht.regions import Nearest, Regions
from dht.sweep import position

log = logging.getLogger(__name__)

MANY_IN_FLIGHT = 8
"""`holders_many` requests of one batched lookup in flight at once. Their replies (up to
`REPLY_BUDGET` bytes each) arrive together: more of them at once overflowed the default UDP
receive buffer (about 208 KiB) on loopback, and a reply lost that way costs the node its
place in the routing table."""
ALONE_AT_ONCE = 16
"""Keys looked up alone at once when a batched lookup could not answer them."""

Answers = dict[bytes, dict[bytes, Record]]
"""key -> node id -> the record that node stores for the key."""


class Lookups:
    """Holder lookups of one node over its protocol; see the module docstring.

    Args:
        holder_id: this node's holder id (its own entries answer nothing for it).
        nearest: ``(target, count)`` -> known contacts nearest ``target``, re-joining through
            the seeds when none is left (`HolderIndex._nearest`).
        regions: draws the regions of the batched lookups (`dht/regions.py`).
        stall: seconds after which an unanswered request of a crawl stops holding a slot.
    """

    def __init__(
        self,
        protocol: HolderProtocol,
        backlog: Backlog,
        holder_id: str,
        nearest: Nearest,
        regions: Regions,
        *,
        ksize: int,
        alpha: int,
        stall: float,
    ) -> None:
        self.protocol = protocol
        self.storage = protocol.storage
        self.backlog = backlog
        self.holder_id = holder_id
        self.nearest = nearest
        self.keyspace = regions
        self.ksize = ksize
        self.alpha = alpha
        self.stall = stall
        self.batches = 0
        """Batched lookups made (`many` calls that asked the network)."""
        self.regions = 0
        """Regions the batched lookups walked (`dht/regions.py`: from the census or a lookup)."""
        self.keys = 0
        """Keys the batched lookups were asked for."""
        self.local = 0
        """Keys of batched lookups answered from this node's own copy (`_stored_here`)."""

    async def one(self, key: bytes) -> Record:
        """Every entry the k nearest live nodes of ``key`` store, merged with this node's copy.

        Raises:
            LookupFailed: no node answered (or none is known).
        """
        nearest = await self.nearest(Node(key), self.ksize)
        if not nearest:
            raise LookupFailed("no DHT contact to ask")
        crawl = HolderCrawl(self.protocol, key, nearest, self.ksize, self.alpha, self.stall)
        merged = merge(self.storage.record(key), await crawl.find())
        for node, missing in crawl.stale_nearest(merged):
            self.backlog.parcel(REPAIR, node, key, missing)
        return merged

    async def many(self, keys: list[bytes]) -> dict[bytes, Record]:
        """`one` for every key, in one pass of batched requests.

        Returns:
            Every key's merged record (this node's copy included).

        Raises:
            LookupFailed: no node answered for any key.
        """
        ordered = sorted(set(keys), key=position)
        self.batches += 1
        self.keys += len(ordered)
        answers, nodes = await self._survey(ordered)
        if ordered and not any(answers.values()):
            raise LookupFailed(f"no DHT node answered for {len(ordered)} keys")
        out: dict[bytes, Record] = {}
        alone = []
        for key in ordered:
            per_node = answers.get(key, {})
            if not per_node:
                alone.append(key)
                continue
            merged = self.storage.record(key)
            for record in per_node.values():
                merged = merge(merged, record)
            out[key] = merged
            for node_id, record in per_node.items():
                missing = changed_entries(record, merged)
                if missing:
                    self.backlog.parcel(REPAIR, nodes[node_id], key, missing)
        if alone:
            log.info("%d of %d keys looked up alone", len(alone), len(ordered))
            out.update(await self._alone(alone))
        return out

    async def _survey(self, ordered: list[bytes]) -> tuple[Answers, dict[bytes, Node]]:
        """Find the k nearest nodes of every key, region by region, and ask each of them for
        its keys, but for the keys this node stores itself (`_stored_here`), which its own
        copy answers; returns what each node answered per key (this node's copy under its own
        id), and the nodes by id."""
        plan, regions, _covered = await self.keyspace.plan(ordered)
        self.regions += regions
        answers: Answers = {}
        me = self.protocol.source_node
        replicas: dict[bytes, list[Node]] = {}
        for node, keys in plan.values():
            for key in keys:
                replicas.setdefault(key, []).append(node)
        here = {key for key, near in replicas.items() if self._stored_here(key, near, me)}
        for key in here:
            answers[key] = {me.id: self.storage.record(key)}
        self.local += len(here)
        slots = asyncio.Semaphore(MANY_IN_FLIGHT)
        await asyncio.gather(
            *(
                self._ask(node, [key for key in keys if key not in here], answers, slots)
                for node, keys in plan.values()
            )
        )
        return answers, {node.id: node for node, _keys in plan.values()}

    def _stored_here(self, key: bytes, near: list[Node], me: Node) -> bool:
        """Whether this node is one of the k nearest of ``key`` (``near``: the k nearest other
        nodes) and its copy of the record has entries of other holders: then it is one of the
        replicas the lookup would ask, and as good as any of them (as in Kademlia, a node that
        stores the value answers with it). One that restarted, or has heard nothing of the key
        yet, asks the others."""
        if not any(holder != self.holder_id for holder in self.storage.record(key)):
            return False
        at = position(key)
        return sum(1 for node in near if node.long_id ^ at < me.long_id ^ at) < self.ksize

    async def _ask(
        self, node: Node, keys: list[bytes], answers: Answers, slots: asyncio.Semaphore
    ) -> None:
        """Ask ``node`` for its records of ``keys``, a request at a time, into ``answers``.

        A node that fails a request is asked nothing more: its keys rest on the other nearest
        nodes. A key whose record alone overflows a reply is left to `_alone`.
        """
        pending = keys
        while pending:
            try:
                async with slots:
                    records, answered = await self.protocol.call_holders_many(
                        node, pending[:MAX_LOOKUP_KEYS]
                    )
            except LookupFailed as exc:
                log.debug("batched lookup: %s", exc)
                return
            for key, record in records.items():
                answers.setdefault(key, {})[node.id] = record
            pending = pending[max(answered, 1) :]

    async def _alone(self, keys: list[bytes]) -> dict[bytes, Record]:
        """`one` for each key, `ALONE_AT_ONCE` at a time; a key nobody answers for gets this
        node's own copy."""
        slots = asyncio.Semaphore(ALONE_AT_ONCE)

        async def lookup(key: bytes) -> tuple[bytes, Record]:
            async with slots:
                try:
                    return key, await self.one(key)
                except LookupFailed as exc:
                    log.info("lookup of %s: %s", key.hex()[:12], exc)
                    return key, self.storage.record(key)

        return dict(await asyncio.gather(*(lookup(key) for key in keys)))
