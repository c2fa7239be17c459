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
import heapq
import logging

from kademlia.crawling import NodeSpiderCrawl
from kademlia.node import Node, NodeHeap

from dht.errors import LookupFailed
from dht.protocol import HolderProtocol
from dht.records import Record, changed_entries, merge

log = logging.getLogger(__name__)


class HolderCrawl:
    """One lookup of one key: alpha requests in flight, nearest first, until the k nearest answered.

    Unlike the library's crawl, which waits for a whole round, a reply frees its slot at once,
    and a request unanswered after ``stall`` seconds (far above a LAN round trip, far below the
    RPC timeout) stops holding a slot and widens the window of candidates by one, as if that
    node were dead. Dead nodes then wait out their timeouts side by side while the lookup goes
    on: a lookup that meets several dead nodes costs about one RPC timeout, not one per node.
    """

    def __init__(
        self,
        protocol: HolderProtocol,
        key: bytes,
        peers: list[Node],
        ksize: int,
        alpha: int,
        stall: float,
    ) -> None:
        self.protocol = protocol
        self.key = key
        self.ksize = ksize
        self.alpha = alpha
        self.stall = stall
        self.nearest = NodeHeap(Node(key), ksize)
        self.nearest.push(peers)
        self.answers: dict[bytes, Record] = {}
        self.merged: Record = {}

    async def find(self) -> Record:
        """Run the lookup.

        Returns:
            Every entry met, merged (expired entries already dropped by decoding).

        Raises:
            LookupFailed: not one node answered.
        """
        loop = asyncio.get_running_loop()
        pending: dict[asyncio.Task[tuple[Record, list[Node]]], Node] = {}
        started: dict[asyncio.Task[tuple[Record, list[Node]]], float] = {}
        while True:
            now = loop.time()
            stalled = sum(1 for task in pending if now - started[task] >= self.stall)
            fresh = len(pending) - stalled
            for peer in self._candidates(stalled)[: max(0, self.alpha - fresh)]:
                self.nearest.mark_contacted(peer)
                task = asyncio.ensure_future(self.protocol.call_holders(peer, self.key))
                task.add_done_callback(_retrieve)
                pending[task], started[task] = peer, now
            nearest_ids = set(self.nearest.get_ids())
            waiting = any(peer.id in nearest_ids for peer in pending.values())
            if not waiting and not self.nearest.get_uncontacted():
                # Every one of the k nearest has answered or failed; replies still due from
                # nodes pushed out of the k nearest are not needed (they finish on their own).
                break
            done, _ = await asyncio.wait(
                pending, timeout=self.stall, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                self._take(pending.pop(task), task)
        if not self.answers:
            raise LookupFailed(f"no DHT node answered for key {self.key.hex()}")
        log.debug(
            "lookup of %s: %d answers, %d entries",
            self.key.hex(),
            len(self.answers),
            len(self.merged),
        )
        return self.merged

    def _candidates(self, extra: int) -> list[Node]:
        """Uncontacted nodes among the k + ``extra`` nearest known, nearest first."""
        window = heapq.nsmallest(self.ksize + extra, self.nearest.heap)
        return [node for _, node in window if node.id not in self.nearest.contacted]

    def _take(self, peer: Node, task: asyncio.Task[tuple[Record, list[Node]]]) -> None:
        exc = task.exception()
        if isinstance(exc, LookupFailed):
            self.nearest.remove([peer.id])
            return
        if exc is not None:
            raise exc
        record, contacts = task.result()
        self.answers[peer.id] = record
        self.merged = merge(self.merged, record)
        self.nearest.push([c for c in contacts if not self.protocol.is_silent(c)])

    def stale_nearest(self, merged: Record) -> list[tuple[Node, Record]]:
        """The k nearest live nodes that lack part of ``merged``, with the entries they lack."""
        out = []
        for node in self.nearest:
            if node.id in self.answers:
                missing = changed_entries(self.answers[node.id], merged)
                if missing:
                    out.append((node, missing))
        return out


def _retrieve(task: asyncio.Task[tuple[Record, list[Node]]]) -> None:
    """Fetch a finished request's outcome so asyncio never reports it as never retrieved."""
    if not task.cancelled():
        task.exception()


async def find_region(
    protocol: HolderProtocol, origin: bytes, seeds: list[Node], width: int, alpha: int
) -> list[Node]:
    """The ``width`` nodes nearest ``origin`` that a `find_node` lookup from ``seeds`` finds
    (all of them, if there are fewer): the region of a sweep or of a batched lookup."""
    if not seeds:
        return []
    found: list[Node] = await NodeSpiderCrawl(protocol, Node(origin), seeds, width, alpha).find()
    return found
