"""Issue 11, DHT datagrams: a stranger gets zero bytes back and leaves no trace; replays fail.

Before the seal, one 50-byte UDP ping from a fresh id made a node send 460 datagrams (2.9 MB)
to the ping's source address, and put the stranger in its routing table.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
from collections.abc import AsyncIterator

import pytest

from dht.index import HolderIndex
from dht.rpc import pack
from dht.sealing import address_aad
from overlay.network_key import NetworkKey
from tests.credentials import dht_seal
from tests.helpers_dht import content_hash, start_cluster, stop_all

pytestmark = pytest.mark.integration

STRANGER_ID = bytes(range(20))
LOGGERS = ("dht", "overlay", "kademlia", "rpcudp", "asyncio")


def ping(msg_id: bytes = b"i" * 20, sender: bytes = STRANGER_ID) -> bytes:
    return b"\x00" + msg_id + pack(["ping", [sender]])


@pytest.fixture
async def member() -> AsyncIterator[HolderIndex]:
    """A node of the test network that already holds a file and knows two others."""
    nodes = await start_cluster(3, seed=5, rpc_timeout=0.2)
    await nodes[0].announce(content_hash("held"))
    yield nodes[0]
    await stop_all(nodes)


def udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


async def received(sock: socket.socket, within: float) -> list[bytes]:
    """Every datagram that reaches `sock` within `within` seconds."""
    loop = asyncio.get_running_loop()
    got: list[bytes] = []
    deadline = time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        try:
            got.append(await asyncio.wait_for(loop.sock_recv(sock, 65536), left))
        except TimeoutError:
            break
    return got


def contacts(node: HolderIndex) -> set[bytes]:
    return {n.id for n in node.protocol.router.find_neighbors(node.node, 100)}


class TestStrangers:
    @pytest.mark.parametrize("how", ["clear", "another network's key", "our key, no seal"])
    async def test_a_strangers_ping_from_a_fresh_id_gets_zero_bytes_and_no_routing_entry(
        self, member: HolderIndex, how: str
    ) -> None:
        before = contacts(member)
        with udp_socket() as sock:
            own = address_aad(sock.getsockname())
            if how == "clear":
                datagram = ping()
            elif how == "another network's key":
                datagram = dht_seal(NetworkKey.generate()).seal(ping(), own)
            else:
                datagram = os.urandom(12) + ping() + os.urandom(16)
            for _ in range(20):
                sock.sendto(datagram, ("127.0.0.1", member.port))
            assert await received(sock, 1.0) == []
        assert contacts(member) == before
        assert STRANGER_ID not in contacts(member)
        assert member.protocol.refused >= 20

    async def test_a_members_ping_is_answered_the_positive_control(
        self, member: HolderIndex
    ) -> None:
        seal = dht_seal()
        with udp_socket() as sock:
            sock.sendto(
                seal.seal(ping(), address_aad(sock.getsockname())), ("127.0.0.1", member.port)
            )
            (reply,) = await received(sock, 1.0)
        assert seal.open(reply, address_aad(("127.0.0.1", member.port))) is not None
        assert STRANGER_ID in contacts(member)

    async def test_100000_garbage_datagrams_get_no_reply_and_no_log_line(
        self, member: HolderIndex, caplog: pytest.LogCaptureFixture
    ) -> None:
        rng = random.Random(11)
        seal = dht_seal()
        with caplog.at_level(logging.DEBUG), udp_socket() as sock:
            for _ in range(100_000):
                sock.sendto(rng.randbytes(rng.randrange(0, 200)), ("127.0.0.1", member.port))
                await asyncio.sleep(0)  # the node reads one datagram per loop step: let it
            await asyncio.sleep(0.5)
            assert await received(sock, 0.5) == []
            ours = [r for r in caplog.records if r.name.startswith(LOGGERS)]
            assert ours == [], "not one log line, at any level"
            ping_ = seal.seal(ping(), address_aad(sock.getsockname()))
            sock.sendto(ping_, ("127.0.0.1", member.port))
            assert len(await received(sock, 1.0)) == 1, "the node still answers members"
        assert member.protocol.refused > 90_000, "nearly all reached the node and were dropped"


class TestReplays:
    async def test_a_replayed_member_datagram_is_dropped(self, member: HolderIndex) -> None:
        seal = dht_seal()
        with udp_socket() as sock:
            datagram = seal.seal(ping(), address_aad(sock.getsockname()))
            sock.sendto(datagram, ("127.0.0.1", member.port))
            assert len(await received(sock, 0.5)) == 1
            for _ in range(5):
                sock.sendto(datagram, ("127.0.0.1", member.port))
            assert await received(sock, 1.0) == []

    async def test_a_captured_request_sent_to_another_member_from_another_address_is_dropped(
        self,
    ) -> None:
        """Replies go only to the address a datagram was sealed for: a capture replayed from a
        spoofed source (here: another socket) is aimed at nobody."""
        nodes = await start_cluster(2, seed=6, rpc_timeout=0.2)
        seal = dht_seal()
        try:
            with udp_socket() as victim, udp_socket() as sender:
                captured = seal.seal(ping(), address_aad(sender.getsockname()))
                sender.sendto(captured, ("127.0.0.1", nodes[0].port))
                assert len(await received(sender, 0.5)) == 1
                for node in nodes:
                    victim.sendto(captured, ("127.0.0.1", node.port))
                assert await received(victim, 1.0) == []
                assert await received(sender, 0.2) == []
        finally:
            await stop_all(nodes)

    async def test_members_still_find_holders_through_sealed_datagrams(self) -> None:
        nodes = await start_cluster(6, seed=7, rpc_timeout=0.3)
        try:
            h = content_hash("shared")
            await nodes[2].announce(h)
            found = await nodes[5].holders(h)
            assert [x.holder_id for x in found] == ["holder-2"]
            assert all(n.protocol.refused == 0 for n in nodes)
        finally:
            await stop_all(nodes)
