"""Hostile and broken peers: bad names get ERROR, bad manifests write nothing outside, cut
transfers never show under their final name, and local write errors are retried."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import pytest

from ring.errors import RemoteError
from ring.wire import Connection, FrameServer, Message
from sync.engine import Peer
from sync.manifest import FileRecord
from sync.messages import BatchRequest, FileData, FileRequest, ManifestData, ManifestRequest
from tests.credentials import member_door
from tests.sync_harness import (
    SyncNode,
    make_node,
    make_ring,
    pull_until,
    signed_entry,
    start_all,
    stop_all,
    tree,
)
from tests.wire_client import connect, request

pytestmark = pytest.mark.integration

SECRET = b"not for the network"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def fake_peer(name: str, **handlers: object) -> tuple[FrameServer, Peer]:
    """A FrameServer speaking the sync protocol with the given handlers (by message class name)."""
    server = FrameServer("127.0.0.1", 0, door=member_door())
    for cls in (ManifestRequest, FileRequest, BatchRequest):
        if cls.__name__ in handlers:
            server.route(cls, handlers[cls.__name__])  # type: ignore[arg-type]
    port = await server.start()
    return server, Peer(name, "127.0.0.1", port)


@pytest.fixture
async def node(tmp_path: Path) -> SyncNode:  # type: ignore[misc]
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_bytes(SECRET)
    n = await make_node(tmp_path, "victim")
    (n.own / "fine.txt").write_bytes(b"fine")
    (n.own / "sub").mkdir()
    os.symlink(tmp_path / "outside", n.own / "sub" / "link")
    await n.engine.start()
    yield n
    await n.engine.stop()
    await n.server.close()


class TestHostileRequests:
    @pytest.mark.parametrize(
        "owner, path",
        [
            ("victim", "../../etc/passwd"),
            ("victim", "/etc/passwd"),
            ("/etc", "passwd"),
            ("..", "outside/secret"),
            ("victim", "sub/link/secret"),
            ("victim", "a\x00b"),
            ("victim", "a\\..\\..\\x"),
        ],
    )
    async def test_bad_names_get_an_error_and_the_node_keeps_serving(
        self, node: SyncNode, owner: str, path: str
    ) -> None:
        with pytest.raises(RemoteError) as err:
            await request(node.peer.host, node.peer.port, FileRequest(sha(SECRET), owner, path))
        assert err.value.code == "bad_path"
        with pytest.raises(RemoteError):
            await request(
                node.peer.host,
                node.peer.port,
                BatchRequest([{"sha256": sha(SECRET), "owner": owner, "path": path}]),
            )
        await self.assert_still_serving(node)

    @pytest.mark.parametrize(
        "msg",
        [
            ManifestRequest({"victim": "high"}),
            ManifestRequest({}, 10, ["only one"]),
            BatchRequest(["not a map"]),
            BatchRequest(
                [{"sha256": "0" * 64, "owner": "victim", "path": f"f{i}"} for i in range(513)]
            ),
            FileRequest("NOT-HEX", "victim", "fine.txt"),
            FileRequest(sha(b"fine"), "victim", "fine.txt", offset=5),
        ],
    )
    async def test_malformed_requests_get_an_error(self, node: SyncNode, msg: Message) -> None:
        with pytest.raises(RemoteError) as err:
            await request(node.peer.host, node.peer.port, msg)
        assert err.value.code == "bad_request"
        await self.assert_still_serving(node)

    async def test_content_not_held_gets_not_found(self, node: SyncNode) -> None:
        with pytest.raises(RemoteError) as err:
            await request(
                node.peer.host, node.peer.port, FileRequest(sha(SECRET), "victim", "fine.txt")
            )
        assert err.value.code == "not_found"

    async def test_a_file_changed_since_hashing_is_not_served(self, node: SyncNode) -> None:
        (node.own / "fine.txt").write_bytes(b"changed")
        with pytest.raises(RemoteError) as err:
            await request(
                node.peer.host, node.peer.port, FileRequest(sha(b"fine"), "victim", "fine.txt")
            )
        assert err.value.code == "stale"

    async def assert_still_serving(self, node: SyncNode) -> None:
        conn = await connect(node.peer.host, node.peer.port)
        try:
            header = await conn.exchange(FileRequest(sha(b"fine"), "victim", "fine.txt"))
            assert header == FileData(sha(b"fine"), 4, 0, 4)
            assert await conn.reader.readexactly(4) == b"fine"
        finally:
            await conn.close()


async def test_a_hostile_manifest_writes_nothing_outside_and_good_entries_apply(
    node: SyncNode, tmp_path: Path
) -> None:
    good = b"good bytes"
    tmp_target = f"/tmp/lanshare-hostile-{uuid.uuid4().hex}"
    bad_paths = ["../x", tmp_target, "a/../../x", "../../outside/secret", "sub/../../y", ""]
    entries = [
        signed_entry(FileRecord("evil", p, len(good), 0, sha(good), i + 1, False), True)
        for i, p in enumerate(bad_paths)
    ]
    entries += [
        signed_entry(FileRecord("..", "x", len(good), 0, sha(good), 1, False), True),
        signed_entry(FileRecord(".lanshare-tmp", "x", len(good), 0, sha(good), 1, False), True),
        {"owner": "evil", "path": "junk"},
        signed_entry(FileRecord("evil", "good.txt", len(good), 0, sha(good), 50, False), True),
    ]

    async def manifest(msg: Message, conn: Connection) -> Message:
        return ManifestData(entries)

    async def serve_file(msg: Message, conn: Connection) -> None:
        await conn.send(FileData(sha(good), len(good), 0, len(good)))
        conn.writer.write(good)
        await conn.writer.drain()

    before = set(tree(tmp_path / "outside")) | {p.name for p in tmp_path.iterdir()}
    server, evil = await fake_peer("evil", ManifestRequest=manifest, FileRequest=serve_file)
    try:
        node.engine.set_topology(evil, {"evil": evil})
        assert await node.engine.pull_once() == 1
        assert (node.root / "evil" / "good.txt").read_bytes() == good
        assert set(tree(node.root)) == {"victim/fine.txt", "evil/good.txt"}
        assert set(tree(tmp_path / "outside")) | {p.name for p in tmp_path.iterdir()} == before
        assert (tmp_path / "outside" / "secret").read_bytes() == SECRET
        assert not os.path.exists(tmp_target)
        await TestHostileRequests().assert_still_serving(node)
    finally:
        await server.close()


@pytest.mark.parametrize("how", ["cut", "corrupt"])
async def test_a_transfer_cut_half_way_never_shows_and_the_next_round_completes(
    tmp_path: Path, how: str
) -> None:
    nodes = await make_ring(tmp_path, 2)
    body = os.urandom(3_000_000)
    (nodes[0].own / "big.bin").write_bytes(body)

    async def cut(msg: Message, conn: Connection) -> None:
        await conn.send(FileData(sha(body), len(body), 0, len(body)))
        if how == "cut":
            conn.writer.write(body[: len(body) // 2])
            await conn.writer.drain()
            conn.writer.transport.abort()
        else:
            conn.writer.write(body[:-1] + b"?")
            await conn.writer.drain()

    async def manifest(msg: Message, conn: Connection) -> Message:
        return ManifestData([signed_entry(r, True) for r in nodes[0].engine.find("big.bin")])

    await start_all(nodes)
    server, liar = await fake_peer("liar", FileRequest=cut, ManifestRequest=manifest)
    try:
        nodes[1].engine.set_topology(liar, {})
        await nodes[1].engine.pull_once()
        assert not (nodes[1].root / "node0" / "big.bin").exists()
        assert not list((nodes[1].root / ".lanshare-tmp").iterdir())
        assert nodes[1].engine.summary() == {}
        nodes[1].engine.set_topology(liar, {"node0": nodes[0].peer})
        assert await nodes[1].engine.pull_once() == 1
        assert (nodes[1].root / "node0" / "big.bin").read_bytes() == body
    finally:
        await server.close()
        await stop_all(nodes)


async def test_a_local_write_error_is_retried_and_serving_goes_on(tmp_path: Path) -> None:
    nodes = await make_ring(tmp_path, 2)
    (nodes[0].own / "a.bin").write_bytes(os.urandom(200_000))
    (nodes[1].own / "mine.txt").write_bytes(b"mine")
    await start_all(nodes)
    try:
        tmp_dir = nodes[1].root / ".lanshare-tmp"
        tmp_dir.rmdir()
        tmp_dir.write_bytes(b"in the way: every temp file open fails")
        assert await nodes[1].engine.pull_once() == 0
        assert await nodes[0].engine.pull_once() == 1
        assert not (nodes[1].root / "node0" / "a.bin").exists()
        tmp_dir.unlink()
        tmp_dir.mkdir()
        await pull_until(nodes, 10)
    finally:
        await stop_all(nodes)
