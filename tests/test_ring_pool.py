"""Kept connections and resumed sessions: what makes the ring's many small requests cheap over
TLS, without ever handing a request a connection that cannot carry it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from overlay.credentials import Credentials
from ring.wire import Connection, FrameServer, Message, message
from ring.wire.pool import Pool
from ring.wire.sessions import Sessions
from tests.credentials import member


@message("TEST_CONN")
class WhichConnection(Message):
    """Ask the server which of its connections carried this request."""


@message("TEST_CONN_IS")
class ConnectionIs(Message):
    number: int
    identity: str
    resumed: bool


class Counting:
    """A member's server that numbers its connections as they carry requests."""

    def __init__(self, creds: Credentials) -> None:
        self.creds = creds
        self.connections: list[Connection] = []
        self.server = FrameServer("127.0.0.1", 0, door=creds.door())
        self.server.route(WhichConnection, self.on_request)

    async def on_request(self, msg: Message, conn: Connection) -> Message:
        if conn not in self.connections:
            self.connections.append(conn)
        ssl_object = conn.writer.get_extra_info("ssl_object")
        resumed = bool(ssl_object and ssl_object.session_reused)
        return ConnectionIs(self.connections.index(conn), conn.identity, resumed)


@pytest.fixture
async def counting() -> AsyncIterator[Counting]:
    it = Counting(member())
    await it.server.start()
    yield it
    await it.server.close()


class TestKeptConnections:
    async def test_reuse_sends_on_one_connection(self, counting: Counting) -> None:
        client = member()
        door = client.door()
        port = counting.server.port
        replies = [
            await door.request("127.0.0.1", port, WhichConnection(), reuse=True) for _ in range(3)
        ]
        assert replies == [ConnectionIs(0, client.key, False)] * 3
        await door.close()

    async def test_without_reuse_every_request_has_its_own(self, counting: Counting) -> None:
        door = member().door()
        for expected in range(3):
            reply = await door.request("127.0.0.1", counting.server.port, WhichConnection())
            assert isinstance(reply, ConnectionIs) and reply.number == expected

    async def test_a_connection_the_server_closed_is_not_reused(self, counting: Counting) -> None:
        door = member().door()
        port = counting.server.port
        await door.request("127.0.0.1", port, WhichConnection(), reuse=True)
        await counting.server.close()  # cuts every connection, the kept one too
        handler = counting.server.handler(WhichConnection)
        assert handler is not None
        again = FrameServer("127.0.0.1", port, door=counting.creds.door())
        again.route(WhichConnection, handler)
        await again.start()
        try:
            await asyncio.sleep(0.1)  # the loop sees the end of the kept connection
            reply = await door.request("127.0.0.1", port, WhichConnection(), reuse=True)
            assert isinstance(reply, ConnectionIs) and reply.number == 1
        finally:
            await again.close()
            await door.close()

    async def test_an_idle_connection_is_dropped_after_kept_idle(self, counting: Counting) -> None:
        now = [0.0]
        pool = Pool(idle=30.0, clock=lambda: now[0])
        conn = await member().door().open("127.0.0.1", counting.server.port)
        peer = ("127.0.0.1", counting.server.port)
        pool.give(peer, conn)
        now[0] = 31.0
        assert pool.take(peer) is None
        await asyncio.sleep(0.05)
        assert conn.writer.is_closing()

    async def test_one_kept_per_peer_and_none_after_close(self, counting: Counting) -> None:
        door = member().door()
        peer = ("127.0.0.1", counting.server.port)
        first, second = await door.open(*peer), await door.open(*peer)
        pool = Pool()
        pool.give(peer, first)
        pool.give(peer, second)
        assert second.writer.is_closing() and pool.take(peer) is first
        pool.give(peer, first)
        await pool.close()
        assert first.writer.is_closing() and pool.take(peer) is None


class TestResumedSessions:
    async def test_the_next_connection_resumes_and_both_sides_still_know_who(
        self, counting: Counting
    ) -> None:
        client = member()
        door = client.door()
        port = counting.server.port
        first = await door.request("127.0.0.1", port, WhichConnection())
        second_conn = await door.open("127.0.0.1", port)
        try:
            second = await second_conn.exchange(WhichConnection())
            ssl_object = second_conn.writer.get_extra_info("ssl_object")
            assert ssl_object.session_reused and second_conn.identity == counting.creds.key
        finally:
            await second_conn.close()
        assert first == ConnectionIs(0, client.key, False)
        assert second == ConnectionIs(1, client.key, True)

    async def test_a_worker_thread_channel_resumes_too(self, counting: Counting) -> None:
        client = member()
        door = client.door()

        def twice() -> list[Message]:
            replies = []
            for _ in range(2):
                channel = door.open_blocking("127.0.0.1", counting.server.port, 5)
                try:
                    replies.append(channel.exchange(WhichConnection()))
                finally:
                    channel.close()
            return replies

        assert await asyncio.to_thread(twice) == [
            ConnectionIs(0, client.key, False),
            ConnectionIs(1, client.key, True),
        ]

    async def test_only_sessions_with_a_ticket_are_kept_and_the_oldest_go_first(
        self, counting: Counting
    ) -> None:
        door = member().door()
        made = []
        for _ in range(3):
            conn = await door.open("127.0.0.1", counting.server.port)
            await conn.exchange(WhichConnection())  # the ticket comes before the reply
            made.append(conn.writer.get_extra_info("ssl_object").session)
            await conn.close()
        sessions = Sessions(limit=2)
        sessions.keep(("none", 1), None)
        for i, session in enumerate(made):
            sessions.keep(("peer", i), session)
        assert sessions.get(("none", 1)) is None and sessions.get(("peer", 0)) is None
        assert sessions.get(("peer", 1)) is made[1] and sessions.get(("peer", 2)) is made[2]


class TestServingBodies:
    async def test_a_body_goes_out_while_the_default_executor_is_full(
        self, counting: Counting, tmp_path: Path
    ) -> None:
        """Downloads run on the loop's default executor and wait for servers; a server that
        needed that executor to read the body it sends would wait for them in turn."""
        body = tmp_path / "body.bin"
        body.write_bytes(b"x" * (3 << 20))

        async def on_request(msg: Message, conn: Connection) -> None:
            await conn.send(ConnectionIs(0, "", False))
            with open(body, "rb") as f:
                await conn.sendfile(f, 0, 3 << 20)

        counting.server.route(WhichConnection, on_request)
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(2))
        release = threading.Event()
        busy = [loop.run_in_executor(None, release.wait) for _ in range(2)]
        conn = await member().door().open("127.0.0.1", counting.server.port)
        try:
            assert isinstance(await conn.exchange(WhichConnection()), ConnectionIs)
            got = await asyncio.wait_for(conn.reader.readexactly(3 << 20), 5)
            assert got == body.read_bytes()
        finally:
            release.set()
            await asyncio.gather(*busy)
            await conn.close()
