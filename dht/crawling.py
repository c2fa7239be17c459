"""HolderCrawl: an iterative lookup that merges every holder record it meets.

The stock `ValueSpiderCrawl` stops at the first round that meets a value and keeps the most
common one (``Counter(values)``), so with one value per storing node it loses holders and can
return a stale copy. This crawl walks on until the k nearest live nodes of the key have all
answered, like `NodeSpiderCrawl`, merging the record of each one it asks. The price is a few
more RPCs per lookup; the gain is that a withdrawal or a new holder stored at any of the k
nearest nodes is seen by the very next lookup, from any node.
"""

from __future__ import annotations

import asyncio
import logging

from kademlia.node import Node, NodeHeap

from dht.errors import LookupFailed
from dht.protocol import HolderProtocol
from dht.records import Record, changed_entries, merge

log = logging.getLogger(__name__)


class HolderCrawl:
    """One lookup of one key: ask alpha nodes per round, nearest first, until the k nearest answered."""

    def __init__(self, protocol: HolderProtocol, key: bytes, peers: list[Node], ksize: int, alpha: int) -> None:
        self.protocol = protocol
        self.key = key
        self.alpha = alpha
        self.nearest = NodeHeap(Node(key), ksize)
        self.nearest.push(peers)
        self.answers: dict[bytes, Record] = {}
        self.merged: Record = {}
        self.rounds = 0

    async def find(self) -> Record:
        """Run the lookup.

        Returns:
            Every entry met, merged (expired entries already dropped by decoding).

        Raises:
            LookupFailed: not one node answered.
        """
        last_ids: list[bytes] | None = None
        while True:
            ids = self.nearest.get_ids()
            # A round that brought nobody nearer: ask every remaining candidate at once.
            count = len(self.nearest) if ids == last_ids else self.alpha
            last_ids = ids
            peers = self.nearest.get_uncontacted()[:count]
            if not peers:
                break
            for peer in peers:
                self.nearest.mark_contacted(peer)
            self.rounds += 1
            replies = await asyncio.gather(
                *(self.protocol.call_holders(peer, self.key) for peer in peers), return_exceptions=True
            )
            dead = []
            for peer, reply in zip(peers, replies):
                if isinstance(reply, LookupFailed):
                    dead.append(peer.id)
                    continue
                if isinstance(reply, BaseException):
                    raise reply
                record, contacts = reply
                self.answers[peer.id] = record
                self.merged = merge(self.merged, record)
                self.nearest.push(contacts)
            self.nearest.remove(dead)
            if self.nearest.have_contacted_all():
                break
        if not self.answers:
            raise LookupFailed(f"no DHT node answered for key {self.key.hex()}")
        return self.merged

    def stale_nearest(self, merged: Record) -> list[tuple[Node, Record]]:
        """The k nearest live nodes that lack part of ``merged``, with the entries they lack."""
        out = []
        for node in self.nearest:
            if node.id in self.answers:
                missing = changed_entries(self.answers[node.id], merged)
                if missing:
                    out.append((node, missing))
        return out
