"""HolderProtocol without sockets: the library bugs fixed, and the RPC handlers' checks."""

from __future__ import annotations

import asyncio
import random

from kademlia.node import Node
from kademlia.protocol import KademliaProtocol
from kademlia.routing import RoutingTable
from kademlia.storage import ForgetfulStorage

from dht.protocol import HolderProtocol, HolderRoutingTable
from dht.publisher import Publisher
from dht.records import Entry, Record
from dht.regions import Regions
from dht.storage import HolderStorage
from tests.credentials import dht_seal


class PingRecorder:
    """Stands in for the protocol a routing table pings when a bucket is full."""

    def __init__(self) -> None:
        self.pinged: list[Node] = []

    async def call_ping(self, node: Node) -> None:
        self.pinged.append(node)


def node_near(key: bytes, flip: int) -> Node:
    """A node id equal to ``key`` but for the low bits in ``flip``."""
    return Node(key[:-1] + bytes([key[-1] ^ flip]), "127.0.0.1", 10000 + flip)


async def plan_queued_hand_overs(protocol: HolderProtocol) -> None:
    """Plan the hand-over of the contacts `welcome_if_new` queued, as the publisher does."""

    async def no_lookups(target: Node, count: int) -> list[Node]:
        raise AssertionError("planning a hand-over looks nothing up")

    regions = Regions(protocol, no_lookups, ksize=8, alpha=3)
    publisher = Publisher(protocol, protocol.backlog, "me", regions, ksize=8, ttl=60)
    await publisher.plan_hand_overs()


def brute_force_nearest(table: RoutingTable, target: Node, k: int) -> list[bytes]:
    contacts = [n for b in table.buckets for n in b.get_nodes() if n.id != target.id]
    return [n.id for n in sorted(contacts, key=target.distance_to)[:k]]


class TestIssue28FindNeighbors:
    """Upstream #28: the library returns the first k contacts walked, not the k nearest."""

    async def test_returns_the_true_k_nearest(self) -> None:
        rng = random.Random(28)
        me = Node(rng.randbytes(20))
        ours = HolderRoutingTable(PingRecorder(), 8, me)
        stock = RoutingTable(PingRecorder(), 8, me)
        for i in range(300):
            contact = Node(rng.randbytes(20), "127.0.0.1", 20000 + i)
            ours.add_contact(contact)
            stock.add_contact(contact)
        stock_misses = 0
        for _ in range(100):
            target = Node(rng.randbytes(20))
            expected = brute_force_nearest(ours, target, 8)
            assert [n.id for n in ours.find_neighbors(target)] == expected
            stock_misses += [n.id for n in stock.find_neighbors(target)] != expected
        assert stock_misses > 0, "the stock table should show the bug this subclass fixes"

    async def test_exclude_leaves_out_the_asker(self) -> None:
        rng = random.Random(1)
        table = HolderRoutingTable(PingRecorder(), 8, Node(rng.randbytes(20)))
        contacts = [Node(rng.randbytes(20), "127.0.0.1", 30000 + i) for i in range(5)]
        for c in contacts:
            table.add_contact(c)
        found = table.find_neighbors(Node(rng.randbytes(20)), exclude=contacts[0])
        assert contacts[0].id not in {n.id for n in found} and len(found) == 4


class TestWelcomeIfNewDoubleHash:
    """The library hashes a stored key again before deciding who should get a copy."""

    KEY = bytes(range(100, 120))

    def setup_contacts(self, protocol: KademliaProtocol) -> None:
        for flip in (0x80, 0x90, 0xA0):
            protocol.router.add_contact(node_near(self.KEY, flip))

    async def test_new_node_near_the_key_is_handed_the_record(self) -> None:
        me = node_near(self.KEY, 0x01)
        storage = HolderStorage(ttl=60.0)
        protocol = HolderProtocol(me, storage, 8, rpc_timeout=0.5, sealer=dht_seal())
        self.setup_contacts(protocol)
        storage.merge(self.KEY, {"a": Entry("h", 1, 1.0, True, storage.clock() + 60.0)})
        handed: list[tuple[bytes, bytes, Record]] = []
        newcomer = node_near(self.KEY, 0x02)
        protocol.welcome_if_new(newcomer)
        await plan_queued_hand_overs(protocol)
        for parcel in protocol.backlog.take_parcels(100):
            handed += [(parcel.node.id, key, record) for key, record in parcel.items]
        assert [(n, k, set(r)) for n, k, r in handed] == [(newcomer.id, self.KEY, {"a"})]
        assert not protocol.router.is_new_node(newcomer)

    async def test_stock_library_misses_the_same_hand_over(self) -> None:
        me = node_near(self.KEY, 0x01)
        protocol = KademliaProtocol(me, ForgetfulStorage(), 8)
        self.setup_contacts(protocol)
        protocol.storage[self.KEY] = b"value"
        stored: list[bytes] = []

        async def record_store(node: Node, key: bytes, value: bytes) -> None:
            stored.append(node.id)

        protocol.call_store = record_store
        protocol.welcome_if_new(node_near(self.KEY, 0x02))
        await asyncio.sleep(0)
        assert stored == []


class TestHandlers:
    def make(self) -> HolderProtocol:
        return HolderProtocol(
            Node(bytes(20)), HolderStorage(ttl=60.0), 8, rpc_timeout=0.5, sealer=dht_seal()
        )

    async def test_announce_then_holders_round_trip(self) -> None:
        protocol = self.make()
        key, sender = bytes([7] * 20), ("127.0.0.1", 4000)
        assert protocol.rpc_announce(sender, bytes([1] * 20), key, {"a": ["h", 1, 1.0, True, 30.0]})
        reply = protocol.rpc_holders(("127.0.0.1", 4001), bytes([2] * 20), key)
        assert reply is not None
        record, contacts = reply
        assert list(record) == ["a"] and record["a"][:4] == ["h", 1, 1.0, True]
        assert contacts == [(bytes([1] * 20), "127.0.0.1", 4000)]

    async def test_bad_requests_are_refused_without_raising(self) -> None:
        protocol = self.make()
        sender = ("127.0.0.1", 4000)
        assert protocol.rpc_holders(sender, b"short", bytes(20)) is None
        assert protocol.rpc_holders(sender, bytes([1] * 20), "not bytes") is None
        assert protocol.rpc_announce(sender, bytes([1] * 20), bytes([7] * 20), [1, 2]) is False
        assert protocol.rpc_store(sender, bytes([1] * 20), bytes([7] * 20), b"v") is False
        assert protocol.rpc_ping(sender, 12345) is None
        assert protocol.rpc_find_node(sender, bytes([1] * 20), b"short") is None
        assert protocol.storage.get(bytes([7] * 20)) is None

    async def test_rpc_timeout_is_the_one_given(self) -> None:
        protocol = HolderProtocol(
            Node(bytes(20)), HolderStorage(), 8, rpc_timeout=0.25, sealer=dht_seal()
        )
        assert protocol._wait_timeout == 0.25

    async def test_node_that_timed_out_is_skipped_until_heard_from(self) -> None:
        protocol = self.make()
        dead = Node(bytes([9] * 20), "127.0.0.1", 4009)
        protocol.router.add_contact(dead)
        protocol.handle_call_response((False, None), dead)
        assert protocol.is_silent(dead)
        assert await protocol.call_find_node(dead, Node(bytes(20))) == (False, None)
        assert protocol.rpc_count == 0
        protocol.welcome_if_new(dead)
        assert not protocol.is_silent(dead)
