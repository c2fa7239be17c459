"""The door's bounds on real sockets: the connection table (strangers closed before any
handshake, a member's connection pushing out an unproven one from its own address, members
refused only by members), the write timeout of asyncio connections, and the blocking Channel's."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator

import pytest

from ring.errors import PeerUnreachable
from ring.wire import Connection, Door, FrameServer, Message, message
from ring.wire.slots import Caps
from tests.credentials import member_door

CAPS = Caps(total=12, per_address=4)


@message("TEST_HI")
class Hi(Message):
    """A request answered with itself."""


async def echo(msg: Message, conn: Connection) -> Message:
    return msg


@pytest.fixture
async def server() -> AsyncIterator[FrameServer]:
    door = member_door()
    door.caps = CAPS
    it = FrameServer("127.0.0.1", 0, door=door)
    it.route(Hi, echo)
    await it.start()
    yield it
    await it.close()


def idle(port: int, count: int, source: str = "127.0.0.1") -> list[socket.socket]:
    """`count` connected TCP sockets from `source` that never send a byte."""
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
        socks.append(sock)
    return socks


def closed_by_peer(sock: socket.socket) -> bool:
    """Whether the node has closed `sock` (end of stream or a reset)."""
    sock.settimeout(2)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


class TestConnectionTable:
    async def test_a_member_pushes_out_the_oldest_unproven_connection_of_its_address(
        self, server: FrameServer
    ) -> None:
        strangers = await asyncio.to_thread(idle, server.port, CAPS.per_address)
        try:
            assert await member_door().request("127.0.0.1", server.port, Hi(), 3) == Hi()
            assert await asyncio.to_thread(closed_by_peer, strangers[0])
            assert not await asyncio.to_thread(closed_by_peer, strangers[-1])
            slots = server.door.slots
            assert slots is not None and slots.evicted["per_address"] == 1
        finally:
            for sock in strangers:
                sock.close()

    async def test_another_address_is_not_held_up_by_a_full_one(self, server: FrameServer) -> None:
        strangers = await asyncio.to_thread(idle, server.port, 3 * CAPS.per_address, "127.0.0.2")
        try:
            conn = await member_door().open("127.0.0.1", server.port, 3)
            assert await conn.exchange(Hi()) == Hi()
            await conn.close()
            slots = server.door.slots
            assert slots is not None and slots.from_address("127.0.0.2") == CAPS.per_address
        finally:
            for sock in strangers:
                sock.close()

    async def test_members_holding_an_address_share_refuse_the_next_before_its_handshake(
        self, server: FrameServer
    ) -> None:
        door = member_door()
        members = [await door.open("127.0.0.1", server.port, 3) for _ in range(CAPS.per_address)]
        try:
            for conn in members:
                assert await conn.exchange(Hi()) == Hi()
            with pytest.raises(PeerUnreachable):
                await door.open("127.0.0.1", server.port, 3)
            slots = server.door.slots
            assert slots is not None and slots.refused["per_address"] == 1
        finally:
            for conn in members:
                await conn.close()
        assert await door.request("127.0.0.1", server.port, Hi(), 3) == Hi()


class TestWriteTimeouts:
    async def test_a_connection_whose_peer_never_reads_is_aborted(self) -> None:
        door = member_door()
        door.write_timeout = 0.5
        done: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

        async def flood(conn: Connection) -> None:
            try:
                while True:
                    conn.writer.write(bytes(1 << 20))
                    await conn.writer.drain()
            except BaseException as exc:
                done.set_result(exc)

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        listening = await door.listen(sock, flood)
        client = await member_door().open("127.0.0.1", sock.getsockname()[1], 3)
        try:
            client.writer.transport.pause_reading()  # type: ignore[attr-defined]
            assert isinstance(await asyncio.wait_for(done, 10), TimeoutError)
        finally:
            client.writer.transport.abort()
            listening.close()

    async def test_a_channel_to_a_peer_that_never_reads_times_out(self) -> None:
        stalled = threading.Event()

        async def never_read(conn: Connection) -> None:
            await asyncio.sleep(30)

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        listening = await member_door().listen(sock, never_read)

        def send_forever() -> None:
            channel = Door.open_blocking(member_door(), "127.0.0.1", sock.getsockname()[1], 1.0)
            try:
                while True:
                    channel.sock.sendall(bytes(1 << 20))
            except TimeoutError:
                stalled.set()
            finally:
                channel.close()

        try:
            await asyncio.wait_for(asyncio.to_thread(send_forever), 20)
            assert stalled.is_set()
        finally:
            listening.close()
