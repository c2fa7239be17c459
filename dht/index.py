"""HolderIndex: the node's view of the DHT, content hash -> the holders of that content.

A `kademlia.network.Server` subclass: it swaps in `HolderProtocol` (LAN timeouts, fixed
neighbour search, the ``holders``/``announce`` RPCs) and `HolderStorage` (merged records), and
adds announce/withdraw/holders plus the re-announce loop that keeps this node's own entries
alive. Stored entries expire ``ttl`` seconds after their holder last announced them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from kademlia.crawling import NodeSpiderCrawl
from kademlia.network import Server
from kademlia.node import Node

from dht.crawling import HolderCrawl
from dht.errors import LookupFailed
from dht.protocol import HolderProtocol
from dht.records import KEY_SIZE, Entry, dht_key, merge
from dht.storage import HolderStorage

log = logging.getLogger(__name__)

STAMP_STEP = 1e-3
REANNOUNCE_CONCURRENCY = 16
MAX_SEEDS = 64
# A lookup request unanswered after this share of the RPC timeout stops holding a slot.
STALL_SHARE = 0.2


@dataclass(frozen=True)
class Holder:
    """Where a holder serves files: its id and its TCP host and port."""

    holder_id: str
    host: str
    port: int


class HolderIndex(Server):  # type: ignore[misc]
    """One node of the holder index; see the module docstring."""

    protocol_class = HolderProtocol
    protocol: HolderProtocol
    storage: HolderStorage

    def __init__(
        self,
        node_id: bytes,
        holder: Holder,
        *,
        ksize: int = 8,
        alpha: int = 3,
        rpc_timeout: float = 0.5,
        ttl: float = 600.0,
        reannounce: float = 240.0,
        clock: Callable[[], float] = time.monotonic,
        stamp_clock: Callable[[], float] = time.time,
    ) -> None:
        """Build a node; nothing is bound until `listen`.

        Args:
            node_id: 20 bytes, this node's DHT id (persist it: see kademlia-notes).
            holder: how this node is reached for files (TCP host/port), written into its entries.
            rpc_timeout: seconds to wait for one UDP reply (the library's fixed 5 s is for WANs).
            ttl: seconds a stored entry lives after its holder last announced it.
            reannounce: seconds between this node's re-announcements; must be below ``ttl``.
            clock: monotonic clock for expiry (injectable for tests).
            stamp_clock: wall clock for this holder's entry stamps; only ever compared with
                stamps of the same holder, so clocks of different hosts need not agree.
        """
        if not isinstance(node_id, bytes) or len(node_id) != KEY_SIZE:
            raise ValueError("node_id must be 20 bytes")
        if not 0 < reannounce < ttl:
            raise ValueError("reannounce must be positive and shorter than ttl")
        super().__init__(
            ksize=ksize, alpha=alpha, node_id=node_id, storage=HolderStorage(ttl, clock)
        )
        self.holder = holder
        self.rpc_timeout = rpc_timeout
        self.ttl = ttl
        self.reannounce = reannounce
        self._stamp_clock = stamp_clock
        self._last_stamp = 0.0
        self._held: set[str] = set()
        self._seeds: list[tuple[str, int]] = []
        self._reannounce_task: asyncio.Task[None] | None = None

    def _create_protocol(self) -> HolderProtocol:
        return self.protocol_class(self.node, self.storage, self.ksize, self.rpc_timeout)

    @property
    def rpc_count(self) -> int:
        """RPCs this node has sent so far (every kind: ping, find_node, holders, announce)."""
        return self.protocol.rpc_count if self.protocol is not None else 0

    @property
    def port(self) -> int:
        """The UDP port bound by `listen` (useful after ``listen(0, ...)``)."""
        if self.transport is None:
            raise RuntimeError("not listening")
        return int(self.transport.get_extra_info("sockname")[1])

    @property
    def held(self) -> frozenset[str]:
        """The content hashes this node announces and keeps re-announcing."""
        return frozenset(self._held)

    async def listen(self, port: int, interface: str) -> None:
        """Bind the UDP port on ``interface`` only, and start the re-announce loop."""
        await super().listen(port, interface)
        self._reannounce_task = asyncio.ensure_future(self._reannounce_loop())

    async def bootstrap(self, addrs: Sequence[tuple[str, int]]) -> list[Node]:
        """Join through the given (IP, UDP port) pairs, e.g. the ring's members.

        The addresses are added to the seeds kept (the latest `MAX_SEEDS`): a node whose every
        contact timed out (the library then drops them all from its table) joins through the
        seeds again at its next announce or lookup.

        Returns:
            The nodes nearest to this one found while joining (empty if nobody answered).
        """
        self._seeds = list(dict.fromkeys([*self._seeds, *addrs]))[-MAX_SEEDS:]
        return list(await super().bootstrap(list(addrs)))

    async def _nearest(self, target: Node) -> list[Node]:
        """The known contacts nearest ``target``, re-joining through the seeds if none is left."""
        nearest: list[Node] = self.protocol.router.find_neighbors(target)
        if not nearest and self._seeds:
            log.info("no DHT contacts left; joining again through %d seeds", len(self._seeds))
            await self.bootstrap(self._seeds)
            nearest = self.protocol.router.find_neighbors(target)
        return nearest

    async def bootstrap_node(self, addr: tuple[str, int]) -> Node | None:
        try:
            node_id = await self.protocol.ping_address(addr)
        except LookupFailed as exc:
            log.info("bootstrap: %s", exc)
            return None
        return Node(node_id, addr[0], addr[1])

    def _next_stamp(self) -> float:
        """A stamp above every stamp this node gave before, even if the wall clock stepped back."""
        self._last_stamp = max(self._stamp_clock(), self._last_stamp + STAMP_STEP)
        return self._last_stamp

    async def announce(self, sha256_hex: str) -> None:
        """Record that this node holds ``sha256_hex``; it is re-announced until withdrawn.

        Unreachable storing nodes are logged, not raised: the re-announce loop tries again.

        Raises:
            InvalidKey: not a SHA-256 hex digest.
        """
        key = dht_key(sha256_hex)
        self._held.add(sha256_hex)
        await self._publish(key, present=True)

    def hold(self, hashes: Iterable[str]) -> None:
        """Count these hashes as held, to be published by the next `reannounce_all` round.

        A node starting with thousands of files registers them at once and lets one bounded
        round publish them, instead of starting thousands of lookups at the same moment.

        Raises:
            InvalidKey: one of them is not a SHA-256 hex digest (none is registered then).
        """
        wanted = list(hashes)
        for sha256_hex in wanted:
            dht_key(sha256_hex)
        self._held.update(wanted)

    async def withdraw(self, sha256_hex: str) -> None:
        """Record that this node no longer holds ``sha256_hex``, and stop re-announcing it.

        Raises:
            InvalidKey: not a SHA-256 hex digest.
        """
        key = dht_key(sha256_hex)
        self._held.discard(sha256_hex)
        await self._publish(key, present=False)

    async def _publish(self, key: bytes, present: bool) -> None:
        """Write this node's entry for ``key`` locally and to the k nodes nearest the key."""
        now = self.storage.clock()
        h = self.holder
        record = {h.holder_id: Entry(h.host, h.port, self._next_stamp(), present, now + self.ttl)}
        self.storage.merge(key, record)
        target = Node(key)
        nearest = await self._nearest(target)
        if not nearest:
            log.warning("no DHT peers known; %s kept locally until one appears", key.hex())
            return
        crawl = NodeSpiderCrawl(self.protocol, target, nearest, self.ksize, self.alpha)
        nodes = await crawl.find()
        if not nodes:
            log.warning("no DHT peer answered for %s; the re-announce loop will retry", key.hex())
            return
        results = await asyncio.gather(
            *(self.protocol.call_announce(n, key, record) for n in nodes), return_exceptions=True
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        for exc in failed:
            if not isinstance(exc, LookupFailed):
                raise exc
        if len(failed) == len(results):
            log.warning("no storing node took %s; the re-announce loop will retry", key.hex())

    async def holders(self, sha256_hex: str) -> list[Holder]:
        """Who holds ``sha256_hex`` now: present, unexpired entries, sorted by holder id.

        Asks the k nodes nearest the key, merges every record met (and this node's own copy),
        and writes the merged entries back to any of those nodes that lacked them. A node that
        has no contact and was never given a bootstrap address is a one-node network: its own
        copy is the whole index, and that is the answer.

        Raises:
            InvalidKey: not a SHA-256 hex digest.
            LookupFailed: no DHT peer answered, the bootstrap addresses included.
        """
        key = dht_key(sha256_hex)
        nearest = await self._nearest(Node(key))
        if nearest:
            crawl = HolderCrawl(
                self.protocol, key, nearest, self.ksize, self.alpha, self.rpc_timeout * STALL_SHARE
            )
            merged = merge(self.storage.record(key), await crawl.find())
            await self._write_back(key, crawl, merged)
        elif self._seeds:
            raise LookupFailed(
                f"no DHT peer answered, {len(self._seeds)} bootstrap addresses included"
            )
        else:
            merged = self.storage.record(key)
        now = self.storage.clock()
        return sorted(
            (
                Holder(hid, e.host, e.port)
                for hid, e in merged.items()
                if e.present and e.expires_at > now
            ),
            key=lambda holder: holder.holder_id,
        )

    async def _write_back(self, key: bytes, crawl: HolderCrawl, merged: dict[str, Entry]) -> None:
        stale = crawl.stale_nearest(merged)
        results = await asyncio.gather(
            *(self.protocol.call_announce(node, key, missing) for node, missing in stale),
            return_exceptions=True,
        )
        for exc in results:
            if isinstance(exc, LookupFailed):
                log.info("write-back of %s failed: %s", key.hex(), exc)
            elif isinstance(exc, BaseException):
                raise exc

    async def reannounce_all(self) -> None:
        """Announce again every hash this node holds (what the loop does every ``reannounce`` s)."""
        limit = asyncio.Semaphore(REANNOUNCE_CONCURRENCY)

        async def one(sha256_hex: str) -> None:
            async with limit:
                if sha256_hex in self._held:
                    await self._publish(dht_key(sha256_hex), present=True)

        await asyncio.gather(*(one(h) for h in list(self._held)))

    async def _reannounce_loop(self) -> None:
        while True:
            await asyncio.sleep(self.reannounce)
            try:
                await self.reannounce_all()
            except Exception:
                log.exception("re-announce round failed; trying again in %.0f s", self.reannounce)

    async def get(self, key: object) -> None:
        """Not served: one value per key loses holders; use `holders`."""
        raise NotImplementedError("HolderIndex keeps holder records; use holders()")

    async def set(self, key: object, value: object) -> None:
        """Not served: one value per key loses holders; use `announce`."""
        raise NotImplementedError("HolderIndex keeps holder records; use announce()")

    async def set_digest(self, dkey: bytes, value: object) -> None:
        """Not served: storing nodes never republish (see `HolderStorage.iter_older_than`)."""
        raise NotImplementedError("HolderIndex keeps holder records; use announce()")

    def stop(self) -> None:
        """Close the UDP port and stop the loops (synchronous, like the library's).

        Sends nothing: peers notice through timeouts. The port is free again after one more
        event-loop step (``await asyncio.sleep(0)``).
        """
        if self._reannounce_task is not None:
            self._reannounce_task.cancel()
            self._reannounce_task = None
        super().stop()
