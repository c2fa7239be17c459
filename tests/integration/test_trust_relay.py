"""A host between two members (a TCP relay, as a router or a host running ARP spoofing would be)
sees only ciphertext, and one that answers with a certificate of its own making gets nothing.

On loopback: the relay is a plain TCP proxy in the test; the members are a real node and a
real member's door.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from overlay.network_key import NetworkKey
from overlay.node import Node
from ring.errors import PeerUnreachable
from ring.wire import FrameServer, Message, encode, expect
from sync.messages import ManifestData, ManifestRequest
from tests.credentials import member_door
from tests.integration.test_trust_door import exchange
from tests.nodes import settings_for
from tests.test_ring_door import any_server
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

SECRET = b"the plan, for members only"
NAME = "quarterly-plan.txt"


class Relay:
    """A TCP proxy on 127.0.0.1 to `port` that keeps a copy of every byte it passes."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.seen = bytearray()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                self.seen += data
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


@pytest.fixture
async def owner(tmp_path: Path) -> AsyncIterator[Node]:
    """A member node sharing one file."""
    node = Node(settings_for(tmp_path, "owner", interval=0.3))
    own = tmp_path / "owner" / "Shared" / "owner"
    own.mkdir(parents=True)
    (own / NAME).write_bytes(SECRET)
    await node.start()
    sync = node.sync
    assert sync is not None
    await wait_for(lambda: sync.status().own_files == 1, 10)  # published, past its settle time
    yield node
    await node.close()


async def test_a_relay_between_members_sees_only_ciphertext(owner: Node) -> None:
    relay = Relay(owner.port)
    port = await relay.start()
    door = member_door()
    try:
        reply = await door.request("127.0.0.1", port, ManifestRequest({}), 10)
        paths = [entry["path"] for entry in expect(reply, ManifestData).entries]
        assert paths == [NAME]  # the member got its answer through the relay
    finally:
        await door.close()
        await relay.close()
    seen = bytes(relay.seen)
    assert len(seen) > 1000  # a handshake and a page went through it
    sha = hashlib.sha256(SECRET).hexdigest()
    for plain in (NAME.encode(), b"owner", b"MANIFEST", sha.encode(), bytes.fromhex(sha)):
        assert plain not in seen, plain


async def test_a_relay_with_a_certificate_of_its_own_gets_nothing_from_either_side(
    owner: Node, tmp_path: Path
) -> None:
    """The relay ends TLS itself: toward the member as a server of another network, toward
    the node as a client with a self-made certificate. Neither side completes a handshake."""
    ctx = any_server(tmp_path)  # its own self-made client certificate
    impostor = FrameServer("127.0.0.1", 0, door=member_door(NetworkKey.generate()))
    answered: list[Message] = []

    async def answer(msg: Message, conn: object) -> Message:
        answered.append(msg)
        return ManifestData([], False)

    impostor.route(ManifestRequest, answer)
    port = await impostor.start()
    door = member_door()
    try:
        with pytest.raises(PeerUnreachable):
            await door.request("127.0.0.1", port, ManifestRequest({}), 5)
        assert answered == []
    finally:
        await door.close()
        await impostor.close()
    got = await asyncio.to_thread(exchange, owner.port, encode(ManifestRequest({})), ctx)
    assert got == b""
