"""HolderIndex: the node's view of the DHT, content hash -> the holders of that content.

A `kademlia.network.Server` subclass: it swaps in `HolderProtocol` (LAN timeouts, fixed
neighbour search, the ``holders``/``announce_many`` RPCs) and `HolderStorage` (merged records),
and adds announce/withdraw/holders plus the re-announce loop that keeps this node's own entries
alive. Stored entries expire ``ttl`` seconds after their holder last announced them.

A node downloading a content in blocks is a partial holder of it (`fetching`): it announces a
partial entry with the short lifetime ``partial_ttl``, renewed every ``partial_renew`` seconds
while the download runs, so that others fetching the same content find it and trade blocks.
The file placed, its full entry replaces the partial one; a download given up withdraws it.

Announcements, withdrawals, hand-overs and repairs are not sent where they arise: they join
the `Backlog`, which the `Publisher` drains in rounds, many keys per request, paced. What that
costs, and the bounds it keeps, is docs/DHT.md.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Callable, Iterable, Sequence

from kademlia.network import Server
from kademlia.node import Node

from dht.backlog import Backlog, Depth
from dht.errors import LookupFailed
from dht.lookups import Lookups
from dht.own import PARTIAL_RENEW, PARTIAL_TTL, Holder, OwnEntries
from dht.pacing import LOOKUP, UPKEEP, WORK, Budget
from dht.protocol import HolderProtocol
from dht.publisher import Publisher
from dht.records import KEY_SIZE, Entry, dht_key
from dht.regions import Regions
from dht.sealing import Sealer
from dht.storage import HolderStorage

__all__ = ["Holder", "HolderIndex"]

log = logging.getLogger(__name__)

MAX_SEEDS = 64
KSIZE = 4
"""Replicas per key, and contacts per bucket and per reply (Kademlia's k). Every holder of
every file is announced to the k nodes nearest the file's hash, and every lookup asks them, so
the index's work per file placed grows with k; on a LAN of N <= k nodes every node stores
every key. Measured the same hour (`bench/dht_bench.py`, 16-64 nodes): k = 4 answers
`who-has` in 0.9-1.5 ms (median) against 1.9-2.8 ms for k = 8, with 4-5 requests per lookup
against 8, half the requests per announce, and exact answers with a quarter of the nodes
dead. With 8 nodes taking in 1,021 files on one machine, the extra CPU of `--dht` was 2.9 s
in one run at k = 4 against 5-7 s at k = 8, but 6.9 s in another: that gain is within the
noise. Four replicas outlive three nodes that crash at once, and holders re-announce every
240 s."""
# A lookup request unanswered after this share of the RPC timeout stops holding a slot.
STALL_SHARE = 0.2


class HolderIndex(OwnEntries, Server):  # type: ignore[misc]
    """One node of the holder index; see the module docstring."""

    protocol_class = HolderProtocol
    protocol: HolderProtocol
    storage: HolderStorage

    def __init__(
        self,
        node_id: bytes,
        holder: Holder,
        *,
        sealer: Sealer,
        ksize: int = KSIZE,
        alpha: int = 3,
        rpc_timeout: float = 0.5,
        ttl: float = 600.0,
        reannounce: float = 240.0,
        partial_ttl: float | None = None,
        partial_renew: float | None = None,
        budgets: dict[str, Budget] | None = None,
        clock: Callable[[], float] = time.monotonic,
        stamp_clock: Callable[[], float] = time.time,
    ) -> None:
        """Build a node; nothing is bound until `listen`. Long only for its arguments, their
        checks and the fields they fill.

        Args:
            node_id: 20 bytes, this node's DHT id (persist it: see kademlia-notes).
            holder: how this node is reached for files (TCP host/port), written into its entries.
            sealer: seals and opens every datagram (`dht/sealing.py`), built by the owner from
                the network's credentials.
            rpc_timeout: seconds to wait for one UDP reply (the library's fixed 5 s is for WANs).
            ttl: seconds a stored entry lives after its holder last announced it.
            reannounce: seconds between this node's re-announcements; must be below ``ttl``.
            partial_ttl: seconds a partial entry lives (default `PARTIAL_TTL`, at most ``ttl``).
            partial_renew: seconds between renewals of partial entries (default
                `PARTIAL_RENEW`, at most a third of ``partial_ttl``).
            budgets: requests in flight and per second, per kind of work (`dht.pacing`).
            clock: monotonic clock for expiry (injectable for tests).
            stamp_clock: wall clock for this holder's entry stamps; only ever compared with
                stamps of the same holder, so clocks of different hosts need not agree.
        """
        if not isinstance(node_id, bytes) or len(node_id) != KEY_SIZE:
            raise ValueError("node_id must be 20 bytes")
        if not 0 < reannounce < ttl:
            raise ValueError("reannounce must be positive and shorter than ttl")
        partial_ttl = min(PARTIAL_TTL, ttl) if partial_ttl is None else partial_ttl
        if partial_renew is None:
            partial_renew = min(PARTIAL_RENEW, partial_ttl / 3)
        if not 0 < partial_renew < partial_ttl <= ttl:
            raise ValueError("need 0 < partial_renew < partial_ttl <= ttl")
        super().__init__(
            ksize=ksize, alpha=alpha, node_id=node_id, storage=HolderStorage(ttl, clock)
        )
        self.holder = holder
        self.sealer = sealer
        self.rpc_timeout = rpc_timeout
        self.ttl = ttl
        self.reannounce = reannounce
        self.partial_ttl = partial_ttl
        self.partial_renew = partial_renew
        self.budgets = budgets
        self._clock = clock
        self._stamp_clock = stamp_clock
        self._last_stamp = 0.0
        self._held: set[str] = set()
        self._fetching: set[str] = set()
        self._seeds: list[tuple[str, int]] = []
        self._backlog = Backlog()
        self.lookups = 0
        """Keys looked up so far, one by one or in batches."""
        self.regions: Regions | None = None
        self.publisher: Publisher | None = None
        self.finder: Lookups | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def _create_protocol(self) -> HolderProtocol:
        return self.protocol_class(
            self.node,
            self.storage,
            self.ksize,
            self.rpc_timeout,
            self.sealer,
            backlog=self._backlog,
            budgets=self.budgets,
            clock=self._clock,
        )

    @property
    def rpc_count(self) -> int:
        """RPCs this node has sent so far (every kind: ping, find_node, holders, announce)."""
        return self.protocol.rpc_count if self.protocol is not None else 0

    @property
    def rpc_counts(self) -> dict[str, int]:
        """RPCs sent so far by kind of work (`dht.pacing.KINDS`)."""
        return dict(self.protocol.sent) if self.protocol is not None else {}

    def backlog(self) -> Depth:
        """What waits to be sent, by kind (what `status` shows)."""
        return self._backlog.depth()

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
        """Bind the UDP port on ``interface`` only; start the publisher and re-announce loop.

        Raises:
            ValueError: ``interface`` is a wildcard: datagrams are sealed for the address they
                come from (`dht/sealing.py`), so the node must know it.
        """
        if ipaddress.ip_address(interface).is_unspecified:
            raise ValueError(f"the DHT binds one address, not {interface}")
        await super().listen(port, interface)
        self.regions = Regions(self.protocol, self._nearest, ksize=self.ksize, alpha=self.alpha)
        self.publisher = Publisher(
            self.protocol,
            self._backlog,
            self.holder.holder_id,
            self.regions,
            ksize=self.ksize,
            ttl=self.ttl,
        )
        self.finder = Lookups(
            self.protocol,
            self._backlog,
            self.holder.holder_id,
            self._nearest,
            self.regions,
            ksize=self.ksize,
            alpha=self.alpha,
            stall=self.rpc_timeout * STALL_SHARE,
        )
        self._tasks = [
            asyncio.ensure_future(self.publisher.run()),
            asyncio.ensure_future(self._reannounce_loop()),
            asyncio.ensure_future(self._renew_loop()),
        ]

    def census(self, members: Iterable[tuple[bytes, str, int]]) -> None:
        """Every member of the ring's view: DHT node id (`dht.regions.node_id_of`), IP and UDP
        port. While the routing table holds them all, sweeps and batched lookups ask no one
        where the nodes nearest their keys are, and send to the view's addresses
        (`dht/regions.py`).

        Raises:
            RuntimeError: not listening yet.
        """
        if self.regions is None:
            raise RuntimeError("not listening")
        self.regions.census(members)

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

    async def _nearest(self, target: Node, count: int | None = None) -> list[Node]:
        """The ``count`` (default k) known contacts nearest ``target``, re-joining through the
        seeds if none is left."""
        nearest: list[Node] = self.protocol.router.find_neighbors(target, count)
        if not nearest and self._seeds:
            log.info("no DHT contacts left; joining again through %d seeds", len(self._seeds))
            token = WORK.set(UPKEEP)
            try:
                await self.bootstrap(self._seeds)
            finally:
                WORK.reset(token)
            nearest = self.protocol.router.find_neighbors(target, count)
        return nearest

    async def bootstrap_node(self, addr: tuple[str, int]) -> Node | None:
        try:
            node_id = await self.protocol.ping_address(addr)
        except LookupFailed as exc:
            log.info("bootstrap: %s", exc)
            return None
        return Node(node_id, addr[0], addr[1])

    # -- lookups -----------------------------------------------------------------------------

    async def holders(self, sha256_hex: str) -> list[Holder]:
        """Who holds ``sha256_hex`` now: present, unexpired entries, sorted by holder id, the
        partial holders among them marked.

        Asks the k nodes nearest the key, merges every record met (and this node's own copy),
        and queues the merged entries as repairs to any of those nodes that lacked them. A node
        that has no contact and was never given a bootstrap address is a one-node network: its
        own copy is the whole index, and that is the answer.

        Raises:
            InvalidKey: not a SHA-256 hex digest.
            LookupFailed: no DHT peer answered, the bootstrap addresses included.
        """
        key = dht_key(sha256_hex)
        self.lookups += 1
        token = WORK.set(LOOKUP)
        try:
            if await self._alone():
                return self._present(self.storage.record(key))
            assert self.finder is not None
            return self._present(await self.finder.one(key))
        finally:
            WORK.reset(token)

    async def holders_many(self, hashes: Iterable[str]) -> dict[str, list[Holder]]:
        """`holders` of many contents in one pass: each of the k nearest nodes of the keys is
        asked for all of its keys at once (`dht/lookups.py`; the cost is docs/DHT.md's). One
        content alone is looked up as `holders` does it, exactly.

        Returns:
            The holders of every hash given, as `holders` gives them.

        Raises:
            InvalidKey: one of them is not a SHA-256 hex digest (nothing is asked then).
            LookupFailed: no DHT peer answered, the bootstrap addresses included.
        """
        wanted = {sha256_hex: dht_key(sha256_hex) for sha256_hex in hashes}
        if not wanted:
            return {}
        self.lookups += len(wanted)
        token = WORK.set(LOOKUP)
        try:
            assert self.finder is not None
            if await self._alone():
                records = {key: self.storage.record(key) for key in wanted.values()}
            elif len(wanted) == 1:
                (key,) = wanted.values()
                records = {key: await self.finder.one(key)}
            else:
                records = await self.finder.many(list(wanted.values()))
        finally:
            WORK.reset(token)
        return {sha: self._present(records.get(key, {})) for sha, key in wanted.items()}

    async def _alone(self) -> bool:
        """Whether this node is a one-node network (no contact, never given an address).

        Raises:
            LookupFailed: it has no contact left, and joining through its seeds failed.
        """
        if await self._nearest(Node(self.node.id), 1):
            return False
        if self._seeds:
            raise LookupFailed(
                f"no DHT peer answered, {len(self._seeds)} bootstrap addresses included"
            )
        return True

    def _present(self, record: dict[str, Entry]) -> list[Holder]:
        """The holders a record lists as present and unexpired, sorted by holder id."""
        now = self.storage.clock()
        return sorted(
            (
                Holder(hid, e.host, e.port, e.partial)
                for hid, e in record.items()
                if e.present and e.expires_at > now
            ),
            key=lambda holder: holder.holder_id,
        )

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

        Sends nothing: peers notice through timeouts; whatever was still queued is dropped and
        its waiters released. The port is free again after one more event-loop step
        (``await asyncio.sleep(0)``).
        """
        for task in self._tasks:
            task.cancel()
        self._tasks = []
        if self.publisher is not None:
            self.publisher.release()
        super().stop()
