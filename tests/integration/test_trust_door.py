"""Only members get an answer: whole nodes against a stranger's frames, a stranger's network,
and a certificate of its own making; members of one network form a ring, also after a restart
without --network-key."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from overlay.network_key import NetworkKey
from overlay.node import Node
from ring.errors import PeerUnreachable
from ring.membership import Member
from ring.messages import Join
from ring.wire import Message, encode
from sync.messages import FileRequest, ManifestRequest
from tests.credentials import key_file, member_door
from tests.nodes import own_folder, settings_for, stop_all
from tests.test_ring_door import any_server
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

SECRET = b"for members only"


@pytest.fixture
async def victim(tmp_path: Path) -> AsyncIterator[Node]:
    """A member node sharing one file, alone in its ring."""
    node = Node(settings_for(tmp_path, "victim", interval=0.3))
    own = tmp_path / "victim" / "Shared" / "victim"
    own.mkdir(parents=True)
    (own / "secret.txt").write_bytes(SECRET)
    await node.start()
    yield node
    await node.close()


def frames(node: Node) -> list[Message]:
    """What a stranger tries first: read the manifest, fetch a file, join the ring."""
    sha = hashlib.sha256(SECRET).hexdigest()
    thief = Member("thief", "thief", "127.0.0.1", 9)
    return [ManifestRequest({}), FileRequest(sha, "victim", "secret.txt"), Join(thief.to_wire())]


def exchange(port: int, data: bytes, wrap: ssl.SSLContext | None = None) -> bytes:
    """Every byte that comes back for `data` until the node closes the connection."""
    got = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        conn: socket.socket = wrap.wrap_socket(sock) if wrap is not None else sock
        try:
            conn.sendall(data)
            while chunk := conn.recv(65536):
                got += chunk
        except (ssl.SSLError, ConnectionError):
            pass
    return got


class TestStrangers:
    @pytest.mark.parametrize("which", ["MANIFEST", "FILE", "JOIN"])
    async def test_a_valid_frame_in_the_clear_gets_no_frame_back(
        self, victim: Node, which: str
    ) -> None:
        msg = next(m for m in frames(victim) if m.TYPE == which)
        got = await asyncio.to_thread(exchange, victim.port, encode(msg))
        assert got == b"", f"{which} in the clear was answered: {got[:60]!r}"
        assert [m.name for m in victim.view.members] == ["victim"]

    @pytest.mark.parametrize("shows_a_certificate", [True, False])
    async def test_tls_with_a_self_made_certificate_gets_nothing(
        self, victim: Node, tmp_path: Path, shows_a_certificate: bool
    ) -> None:
        ctx = any_server(tmp_path if shows_a_certificate else None)
        for msg in frames(victim):
            got = await asyncio.to_thread(exchange, victim.port, encode(msg), ctx)
            assert SECRET not in got and b"JOIN_OK" not in got and b"MANIFEST_DATA" not in got
        assert [m.name for m in victim.view.members] == ["victim"]

    async def test_a_member_of_another_network_gets_no_reply(self, victim: Node) -> None:
        stranger = member_door(NetworkKey.generate())
        for msg in frames(victim):
            with pytest.raises(PeerUnreachable):
                await stranger.request("127.0.0.1", victim.port, msg)

    async def test_a_node_with_another_network_key_cannot_join(
        self, victim: Node, tmp_path: Path
    ) -> None:
        other = NetworkKey.generate()
        peers = (("127.0.0.1", victim.port),)
        outsider = Node(settings_for(tmp_path, "outsider", peers, network_key=key_file(other)))
        await outsider.start()
        try:
            await asyncio.sleep(4)  # more than one retry of the configured peer
            assert [m.name for m in victim.view.members] == ["victim"]
            assert [m.name for m in outsider.view.members] == ["outsider"]
            assert not (outsider.settings.shared / "victim").exists()
        finally:
            await outsider.close()


class TestMembers:
    async def test_members_form_a_ring_keyed_by_their_node_keys(self, tmp_path: Path) -> None:
        first = Node(settings_for(tmp_path, "first", interval=0.3))
        await first.start()
        second = Node(settings_for(tmp_path, "second", (("127.0.0.1", first.port),)))
        nodes = [first, second]
        try:
            await second.start()
            await wait_for(lambda: all(len(n.view.members) == 2 for n in nodes), 15)
            keys = {n.credentials.key for n in nodes if n.credentials is not None}
            assert {m.key for m in first.view.members} == keys and len(keys) == 2
        finally:
            await stop_all(nodes)

    async def test_a_restart_without_the_flag_keeps_the_network(self, tmp_path: Path) -> None:
        shared = settings_for(tmp_path, "keeper", interval=0.3)
        keeper = Node(shared)
        await keeper.start()
        assert keeper.credentials is not None
        key, network = keeper.credentials.key, keeper.credentials.network
        await keeper.close()
        again = Node(settings_for(tmp_path, "keeper", interval=0.3, network_key=None))
        await again.start()
        joiner = Node(settings_for(tmp_path, "joiner", (("127.0.0.1", again.port),)))
        nodes = [again, joiner]
        try:
            assert again.credentials is not None
            assert (again.credentials.key, again.credentials.network) == (key, network)
            await joiner.start()
            await wait_for(lambda: all(len(n.view.members) == 2 for n in nodes), 15)
            (own_folder(again) / "kept.txt").write_bytes(b"still ours")
            kept = joiner.settings.shared / "keeper" / "kept.txt"
            await wait_for(lambda: kept.exists() and kept.read_bytes() == b"still ours", 20)
        finally:
            await stop_all(nodes)
