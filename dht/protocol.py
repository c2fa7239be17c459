"""HolderProtocol: kademlia's UDP protocol with LAN timeouts and the holder RPCs.

Fixes of kademlia 2.2.3 made here, each in a subclass hook rather than a copy of the library:
- the RPC timeout is a parameter (the library always waits 5 s);
- `HolderRoutingTable.find_neighbors` returns the k nearest contacts, not the first k walked;
- `welcome_if_new` no longer hands every stored record to every contact it thinks is new, one
  request per key, on the spot: it queues the contact, and `dht/publisher.py` plans its
  hand-over (`dht/handover.py`, the stored key used as the key) once per contact per ttl and
  sends it in `announce_many` batches, paced.

The datagram layer (C msgpack, pacing, counting) is `dht/rpc.py`. New RPCs come in
`rpc_*`/`call_*` pairs. rpcudp reports a timeout as ``(False, None)``, so callers use only the
`call_*` methods here, which raise `LookupFailed` when a peer does not answer properly.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable
from typing import Any

from kademlia.node import Node
from kademlia.protocol import KademliaProtocol
from kademlia.routing import RoutingTable

from dht.backlog import Backlog
from dht.batch import (
    MAX_LOOKUP_KEYS,
    WireBatch,
    decode_batch,
    decode_reply,
    encode_reply,
)
from dht.errors import BadRecord, LookupFailed
from dht.pacing import Budget
from dht.records import KEY_SIZE, Record, decode_record, encode_record
from dht.rpc import Address, PackedRPC
from dht.sealing import Sealer
from dht.storage import HolderStorage

log = logging.getLogger(__name__)

# How long a node that failed to answer is skipped without asking. Peers keep naming a dead
# node in their replies until they too time out on it; without this every lookup would pay
# one RPC timeout per round for it, for as long as any peer remembers it.
SILENT_FOR = 30.0


class HolderRoutingTable(RoutingTable):  # type: ignore[misc]
    """A routing table whose neighbour query really returns the k nearest (upstream #28)."""

    def find_neighbors(
        self, node: Node, k: int | None = None, exclude: Node | None = None
    ) -> list[Node]:
        """The ``k`` contacts nearest to ``node`` by XOR distance, over every bucket."""
        k = k or self.ksize
        self.buckets[self.get_bucket_for(node)].touch_last_updated()
        contacts = [
            contact
            for bucket in self.buckets
            for contact in bucket.get_nodes()
            if contact.id != node.id and (exclude is None or not contact.same_home_as(exclude))
        ]
        return heapq.nsmallest(k, contacts, key=node.distance_to)


def _is_node_id(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == KEY_SIZE


def _check_key(key: object) -> bytes:
    if not isinstance(key, bytes) or len(key) != KEY_SIZE:
        raise BadRecord(f"bad key {key!r}")
    return key


def parse_node_list(raw: object) -> list[Node]:
    """Turn a peer's ``[[id, ip, port], ...]`` into nodes, skipping malformed triples."""
    if not isinstance(raw, (list, tuple)):
        raise BadRecord("node list is not a list")
    nodes = []
    for item in raw:
        if (
            isinstance(item, (list, tuple))
            and len(item) == 3
            and _is_node_id(item[0])
            and isinstance(item[1], str)
            and isinstance(item[2], int)
        ):
            nodes.append(Node(item[0], item[1], item[2]))
        else:
            log.warning("dropping a malformed contact %r", item)
    return nodes


class HolderProtocol(PackedRPC):
    """The node's UDP protocol: stock find_node/ping plus ``holders``, ``holders_many``,
    ``announce`` and ``announce_many``."""

    storage: HolderStorage

    def __init__(
        self,
        source_node: Node,
        storage: HolderStorage,
        ksize: int,
        rpc_timeout: float,
        sealer: Sealer,
        backlog: Backlog | None = None,
        budgets: dict[str, Budget] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Build the protocol of one node (the library calls it when the port is bound).

        Args:
            sealer: seals and opens every datagram (`dht/sealing.py`).
            backlog: where contacts met for the first time are queued for their hand-over
                (a private one when not given, as in tests of the handlers alone).
            budgets: in-flight and per-second bounds per kind of work (`dht.pacing.BUDGETS`).
            clock: monotonic clock of the pacers.
        """
        PackedRPC.__init__(self, source_node, storage, ksize, rpc_timeout, sealer, budgets, clock)
        self.router = HolderRoutingTable(self, ksize, source_node)
        self.backlog = backlog if backlog is not None else Backlog()
        self._silent: dict[bytes, tuple[float, Node]] = {}

    def _welcome_sender(self, sender: Address, nodeid: object) -> Node:
        if not _is_node_id(nodeid):
            raise BadRecord(f"bad node id from {sender}")
        source = Node(nodeid, sender[0], sender[1])
        self.welcome_if_new(source)
        return source

    # -- served RPCs -------------------------------------------------------------------------

    def rpc_ping(self, sender: Address, nodeid: object) -> bytes | None:
        """Answer this node's id (the library's ping, with the sender's id checked)."""
        try:
            self._welcome_sender(sender, nodeid)
        except BadRecord as exc:
            log.warning("refusing a ping from %s: %s", sender, exc)
            return None
        node_id: bytes = self.source_node.id
        return node_id

    def rpc_find_node(self, sender: Address, nodeid: object, key: object) -> list[Any] | None:
        """Answer the k contacts nearest ``key`` (the library's find_node, with checked fields)."""
        try:
            source = self._welcome_sender(sender, nodeid)
            dkey = _check_key(key)
        except BadRecord as exc:
            log.warning("refusing a find_node from %s: %s", sender, exc)
            return None
        return [tuple(n) for n in self.router.find_neighbors(Node(dkey), exclude=source)]

    def rpc_holders(self, sender: Address, nodeid: object, key: object) -> list[Any] | None:
        """Answer ``[record, neighbours]``: what this node stores for ``key``, and its k nearest."""
        try:
            source = self._welcome_sender(sender, nodeid)
            dkey = _check_key(key)
        except BadRecord as exc:
            log.warning("refusing a holders request from %s: %s", sender, exc)
            return None
        record = encode_record(self.storage.record(dkey), self.storage.clock())
        neighbours = self.router.find_neighbors(Node(dkey), exclude=source)
        return [record, [tuple(n) for n in neighbours]]

    def rpc_holders_many(self, sender: Address, nodeid: object, keys: object) -> list[Any] | None:
        """Answer ``[holders, items, answered]``: what this node stores for the first
        ``answered`` of ``keys`` (`dht.batch.encode_reply`); no neighbours (a batched lookup
        found its nodes before asking)."""
        try:
            self._welcome_sender(sender, nodeid)
            if not isinstance(keys, list) or not 0 < len(keys) <= MAX_LOOKUP_KEYS:
                raise BadRecord(f"keys must be a list of 1 to {MAX_LOOKUP_KEYS}")
            asked = [_check_key(key) for key in keys]
        except BadRecord as exc:
            log.warning("refusing a holders_many request from %s: %s", sender, exc)
            return None
        holders, items, answered = encode_reply(
            [(key, self.storage.record(key)) for key in asked], self.storage.clock()
        )
        return [holders, items, answered]

    def rpc_announce(self, sender: Address, nodeid: object, key: object, record: object) -> bool:
        """Merge a peer's entries for ``key`` into storage; answer whether they were taken."""
        try:
            self._welcome_sender(sender, nodeid)
            dkey = _check_key(key)
            self.storage.merge(dkey, decode_record(record, self.storage.clock(), self.storage.ttl))
        except BadRecord as exc:
            log.warning("refusing an announce from %s: %s", sender, exc)
            return False
        return True

    def rpc_announce_many(
        self, sender: Address, nodeid: object, holders: object, items: object
    ) -> bool:
        """Merge a peer's entries for many keys (`dht/batch.py`); answer whether they were taken.

        A malformed request is refused whole; malformed single entries are dropped.
        """
        try:
            self._welcome_sender(sender, nodeid)
            batch = decode_batch(holders, items, self.storage.clock(), self.storage.ttl)
        except BadRecord as exc:
            log.warning("refusing an announce_many from %s: %s", sender, exc)
            return False
        if batch.dropped:
            log.warning("dropped %d bad entries of an announce_many from %s", batch.dropped, sender)
        for key, record in batch.records:
            self.storage.merge(key, record)
        return True

    def rpc_store(self, sender: Address, nodeid: object, key: object, value: object) -> bool:
        """Refuse the stock store: it replaces a value, and holder records must be merged."""
        log.warning("refusing a stock store RPC from %s", sender)
        return False

    def rpc_find_value(self, sender: Address, nodeid: object, key: object) -> Any:
        """Answer only neighbours: holder records travel through ``holders`` alone."""
        return self.rpc_find_node(sender, nodeid, key)

    # -- RPCs sent ---------------------------------------------------------------------------

    async def holders(self, address: Address, *args: Any) -> tuple[bool, Any]:
        return await self._call("holders", address, *args)

    async def announce(self, address: Address, *args: Any) -> tuple[bool, Any]:
        return await self._call("announce", address, *args)

    async def holders_many(self, address: Address, *args: Any) -> tuple[bool, Any]:
        return await self._call("holders_many", address, *args)

    async def announce_many(self, address: Address, *args: Any) -> tuple[bool, Any]:
        return await self._call("announce_many", address, *args)

    def is_silent(self, node: Node) -> bool:
        """Whether ``node`` failed to answer lately (within `SILENT_FOR` s) and not spoken since."""
        until, _ = self._silent.get(node.id, (None, None))
        if until is None:
            return False
        if until <= self.storage.clock():
            del self._silent[node.id]
            return False
        return True

    async def call_find_node(self, node_to_ask: Node, node_to_find: Node) -> Any:
        if self.is_silent(node_to_ask):
            return (False, None)
        return await KademliaProtocol.call_find_node(self, node_to_ask, node_to_find)

    async def call_find_value(self, node_to_ask: Node, node_to_find: Node) -> Any:
        if self.is_silent(node_to_ask):
            return (False, None)
        return await KademliaProtocol.call_find_value(self, node_to_ask, node_to_find)

    def answered_late(self, address: Address) -> None:
        """A node whose reply came after the RPC timeout is busy, not dead: stop skipping it
        and take it back into the routing table (the library dropped it on the timeout)."""
        late = [node for _, node in self._silent.values() if (node.ip, node.port) == address]
        for node in late:
            self.welcome_if_new(node)

    def handle_call_response(self, result: Any, node: Node) -> Any:
        """The library's bookkeeping, plus: a node that did not answer is skipped for a while."""
        if not result[0]:
            self._silent[node.id] = (self.storage.clock() + SILENT_FOR, node)
        return KademliaProtocol.handle_call_response(self, result, node)

    async def ping_address(self, address: Address) -> bytes:
        """Ping an address whose node id is not known yet (bootstrap).

        Returns:
            The peer's node id.

        Raises:
            LookupFailed: no answer within the RPC timeout, or not a node id.
        """
        ok, node_id = await self.ping(address, self.source_node.id)
        if not ok or not _is_node_id(node_id):
            raise LookupFailed(f"no DHT node answered at {address[0]}:{address[1]}")
        self._silent.pop(node_id, None)
        return bytes(node_id)

    async def call_holders(self, node_to_ask: Node, key: bytes) -> tuple[Record, list[Node]]:
        """Ask one node for its record of ``key`` and its neighbours of ``key``.

        Raises:
            LookupFailed: the node did not answer in time or answered with a bad shape.
        """
        if self.is_silent(node_to_ask):
            raise LookupFailed(f"{node_to_ask} did not answer lately; not asked")
        address = (node_to_ask.ip, node_to_ask.port)
        result = await self.holders(address, self.source_node.id, key)
        self.handle_call_response(result, node_to_ask)
        ok, reply = result
        if not ok:
            raise LookupFailed(f"{node_to_ask} did not answer")
        try:
            if not isinstance(reply, (list, tuple)) or len(reply) != 2:
                raise BadRecord("holders reply is not [record, nodes]")
            record = decode_record(reply[0], self.storage.clock(), self.storage.ttl)
            return record, parse_node_list(reply[1])
        except BadRecord as exc:
            raise LookupFailed(f"{node_to_ask} answered badly: {exc}") from exc

    async def call_holders_many(
        self, node_to_ask: Node, keys: list[bytes]
    ) -> tuple[dict[bytes, Record], int]:
        """Ask one node for its records of up to `MAX_LOOKUP_KEYS` keys at once.

        Returns:
            The records of the first ``answered`` keys (each maybe empty), and ``answered``.

        Raises:
            LookupFailed: the node is silent, did not answer, or answered with a bad shape.
        """
        if self.is_silent(node_to_ask):
            raise LookupFailed(f"{node_to_ask} did not answer lately; not asked")
        address = (node_to_ask.ip, node_to_ask.port)
        result = await self.holders_many(address, self.source_node.id, keys)
        self.handle_call_response(result, node_to_ask)
        ok, reply = result
        if not ok:
            raise LookupFailed(f"{node_to_ask} did not answer")
        try:
            return decode_reply(reply, keys, self.storage.clock(), self.storage.ttl)
        except BadRecord as exc:
            raise LookupFailed(f"{node_to_ask} answered badly: {exc}") from exc

    async def call_announce_many(self, node_to_ask: Node, batch: WireBatch) -> None:
        """Send one `announce_many` request (built by `dht.batch.encode_batches`).

        Raises:
            LookupFailed: the node is silent, did not answer, or refused the request.
        """
        if self.is_silent(node_to_ask):
            raise LookupFailed(f"{node_to_ask} did not answer lately; not asked")
        address = (node_to_ask.ip, node_to_ask.port)
        result = await self.announce_many(address, self.source_node.id, *batch)
        self.handle_call_response(result, node_to_ask)
        if result != (True, True):
            raise LookupFailed(f"{node_to_ask} did not take an announce_many")

    # -- library hooks -----------------------------------------------------------------------

    def welcome_if_new(self, node: Node) -> None:
        """Add a contact met for the first time, and queue it for its hand-over.

        Called for every request and reply, so it does no more than that: planning which
        records the newcomer is owed walks every stored key, which `dht/publisher.py` does
        later, in steps, once per contact per ttl. A node heard from is no longer skipped;
        a known node heard from a new address (restarted on another port) is moved there.
        """
        self._silent.pop(node.id, None)
        if not self.router.is_new_node(node):
            bucket = self.router.buckets[self.router.get_bucket_for(node)]
            if not bucket.nodes[node.id].same_home_as(node):
                self.router.add_contact(node)
            return
        log.debug("new contact %s", node)
        self.router.add_contact(node)
        self.backlog.welcome(node)
