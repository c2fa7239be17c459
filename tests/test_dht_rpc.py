"""The datagram layer: C msgpack bytes equal umsgpack's, stock nodes understand ours, bad input."""

from __future__ import annotations

import asyncio
import random
import socket
from typing import Any

import pytest
import umsgpack
from kademlia.network import Server
from kademlia.node import Node

from dht.batch import encode_batches
from dht.index import Holder, HolderIndex
from dht.pacing import LOOKUP, WORK
from dht.protocol import HolderProtocol
from dht.records import Entry
from dht.rpc import pack, unpack
from dht.sealing import Clear, address_aad
from dht.storage import HolderStorage
from tests.credentials import dht_seal
from tests.helpers_dht import stop_all

RNG = random.Random(8)
NODE_ID, KEY = RNG.randbytes(20), RNG.randbytes(20)
RECORD = {
    "f" * 64: ["10.0.0.7", 8091, 1712345678.125, True, 599.5],
    "n-é": ["h", 1, 1.0, False, 0.0],
}
CONTACTS = [(RNG.randbytes(20), "127.0.0.1", 40000 + i) for i in range(8)]
BATCH = next(
    encode_batches(
        [
            (RNG.randbytes(20), {"f" * 64: Entry("10.0.0.7", 8091, 1.7e9 + i, True, 600.0)})
            for i in range(50)
        ],
        0.0,
    )
)
SHAPES: list[Any] = [
    ["ping", [NODE_ID]],
    ["find_node", [NODE_ID, KEY]],
    ["holders", [NODE_ID, KEY]],
    ["announce", [NODE_ID, KEY, RECORD]],
    ["announce_many", [NODE_ID, *BATCH]],
    NODE_ID,
    CONTACTS,
    [RECORD, CONTACTS],
    [{}, []],
    {"value": b"x"},
    True,
    False,
    None,
]


class TestSameBytesAsUmsgpack:
    @pytest.mark.parametrize("shape", SHAPES, ids=range(len(SHAPES)))
    def test_packed_bytes_are_identical(self, shape: Any) -> None:
        assert pack(shape) == umsgpack.packb(shape)

    @pytest.mark.parametrize("shape", SHAPES, ids=range(len(SHAPES)))
    def test_each_side_decodes_the_others_bytes_to_equal_values(self, shape: Any) -> None:
        assert unpack(umsgpack.packb(shape)) == umsgpack.unpackb(pack(shape))


class TestAgainstStockNodes:
    async def test_a_stock_kademlia_node_and_ours_join_each_other(self) -> None:
        """Inside the seal our datagrams are rpcudp's: unsealed (`Clear`), they join."""
        stock = Server(ksize=8, node_id=RNG.randbytes(20))
        ours = HolderIndex(RNG.randbytes(20), Holder("ours", "127.0.0.1", 1), sealer=Clear())
        await stock.listen(0, interface="127.0.0.1")
        await ours.listen(0, interface="127.0.0.1")
        stock_port = stock.transport.get_extra_info("sockname")[1]
        try:
            assert [n.id for n in await ours.bootstrap([("127.0.0.1", stock_port)])] == [
                stock.node.id
            ]
            found = await stock.bootstrap([("127.0.0.1", ours.port)])
            assert [n.id for n in found] == [ours.node.id]
        finally:
            await stop_all([ours])
            stock.stop()
            await asyncio.sleep(0)


class TestBadInput:
    @pytest.mark.parametrize(
        "datagram",
        [
            b"\x00",
            b"\x00" + bytes(20) + b"\xc1",  # 0xc1 is never used in msgpack
            b"\x00" + bytes(20) + pack("not a request"),
            b"\x00" + bytes(20) + pack(["ping", "not a list"]),
            b"\x00" + bytes(20) + pack(["no_such_rpc", []]),
            b"\x00" + bytes(20) + pack(["ping", [1, 2, 3, 4]]),  # does not fit the handler
            b"\x01" + bytes(20) + pack(True),  # a reply nobody asked for
            b"\x07" + bytes(20) + pack(True),
        ],
    )
    async def test_a_bad_datagram_gets_no_reply_and_raises_nothing(self, datagram: bytes) -> None:
        """Sealed by a member, so that it reaches the parser."""
        index = HolderIndex(RNG.randbytes(20), Holder("x", "127.0.0.1", 1), sealer=dht_seal())
        member = dht_seal()
        await index.listen(0, interface="127.0.0.1")
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.bind(("127.0.0.1", 0))
                sock.setblocking(False)
                own = address_aad(sock.getsockname())
                sock.sendto(member.seal(datagram, own), ("127.0.0.1", index.port))
                ping = b"\x00" + b"i" * 20 + pack(["ping", [NODE_ID]])
                sock.sendto(member.seal(ping, own), ("127.0.0.1", index.port))
                sealed = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 1024), 2)
            reply = member.open(sealed, address_aad(("127.0.0.1", index.port)))
            assert reply is not None
            assert reply[:21] == b"\x01" + b"i" * 20, "only the good ping is answered"
            assert unpack(reply[21:]) == index.node.id
        finally:
            await stop_all([index])

    def test_an_unknown_attribute_is_an_error_not_a_remote_call(self) -> None:
        protocol = HolderProtocol(
            Node(bytes(20)), HolderStorage(), 8, rpc_timeout=0.5, sealer=dht_seal()
        )
        with pytest.raises(AttributeError):
            protocol.call_annonce  # noqa: B018  (the typo is the point)


class TestCounting:
    async def test_requests_are_counted_by_kind_of_work(self) -> None:
        a = HolderIndex(RNG.randbytes(20), Holder("a", "127.0.0.1", 1), sealer=dht_seal())
        b = HolderIndex(RNG.randbytes(20), Holder("b", "127.0.0.1", 2), sealer=dht_seal())
        await a.listen(0, interface="127.0.0.1")
        await b.listen(0, interface="127.0.0.1")
        try:
            await a.bootstrap([("127.0.0.1", b.port)])
            joined = a.rpc_counts
            token = WORK.set(LOOKUP)
            try:
                await a.protocol.ping_address(("127.0.0.1", b.port))
            finally:
                WORK.reset(token)
            assert a.rpc_counts == {**joined, LOOKUP: 1}
            assert a.rpc_count == sum(a.rpc_counts.values())
        finally:
            await stop_all([a, b])


class TestLateReplies:
    async def test_a_node_that_answers_late_is_taken_back_not_skipped(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        asker = HolderIndex(
            RNG.randbytes(20), Holder("asker", "127.0.0.1", 1), sealer=dht_seal(), rpc_timeout=0.05
        )
        busy = HolderIndex(RNG.randbytes(20), Holder("busy", "127.0.0.1", 2), sealer=dht_seal())
        await asker.listen(0, interface="127.0.0.1")
        await busy.listen(0, interface="127.0.0.1")
        try:
            await asker.bootstrap([("127.0.0.1", busy.port)])
            contact = Node(busy.node.id, "127.0.0.1", busy.port)
            answer = busy.protocol.rpc_ping

            async def slow_ping(sender: tuple[str, int], nodeid: object) -> bytes | None:
                await asyncio.sleep(0.2)  # a loaded event loop: the reply comes, but late
                return answer(sender, nodeid)

            monkeypatch.setattr(busy.protocol, "rpc_ping", slow_ping)
            assert await asker.protocol.call_ping(contact) == (False, None)
            assert asker.protocol.is_silent(contact)
            assert asker.protocol.router.find_neighbors(asker.node) == []
            await asyncio.sleep(0.3)
            assert asker.protocol.late_replies == 1
            assert not asker.protocol.is_silent(contact)
            assert [n.id for n in asker.protocol.router.find_neighbors(asker.node)] == [
                busy.node.id
            ]
        finally:
            await stop_all([asker, busy])

    def test_a_known_node_heard_from_a_new_port_is_moved_there(self) -> None:
        protocol = HolderProtocol(
            Node(bytes(20)), HolderStorage(), 8, rpc_timeout=0.5, sealer=dht_seal()
        )
        old = Node(b"\x01" * 20, "127.0.0.1", 4000)
        protocol.welcome_if_new(old)
        protocol.welcome_if_new(Node(b"\x01" * 20, "127.0.0.1", 4001))
        assert [(n.ip, n.port) for n in protocol.router.find_neighbors(Node(bytes(20)))] == [
            ("127.0.0.1", 4001)
        ]
        assert len(protocol.backlog.take_newcomers()) == 1, "moving is not meeting again"
