"""One bad record, one bad peer: what they may cost a node is bounded, and the rest syncs.

A fake previous node (a FrameServer with handlers of the test's own) serves a page with one
absurd record among good ones, a record claiming a gigabyte it never sends, or manifest pages
without end; a real owner pushes a file meanwhile.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest

from ring.wire import Connection, FrameServer, Message
from sync.blocks import DIGEST, LARGE_FILE, block_count
from sync.engine import Peer
from sync.manifest import FileRecord
from sync.messages import (
    BlocksData,
    BlocksRequest,
    FileData,
    FileRequest,
    ManifestData,
    ManifestRequest,
)
from sync.resume import PARTIAL_DIR
from tests.credentials import member_door
from tests.sync_harness import SyncNode, make_node, make_ring, signed_entry, start_all, stop_all
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

GOOD = b"good bytes"
GOOD_SHA = hashlib.sha256(GOOD).hexdigest()


async def fake_peer(name: str, routes: dict[type[Message], object]) -> tuple[FrameServer, Peer]:
    server = FrameServer("127.0.0.1", 0, door=member_door())
    for cls, handler in routes.items():
        server.route(cls, handler)  # type: ignore[arg-type]
    return server, Peer(name, "127.0.0.1", await server.start())


async def serve_good(msg: Message, conn: Connection) -> None:
    await conn.send(FileData(GOOD_SHA, len(GOOD), 0, len(GOOD)))
    conn.writer.write(GOOD)
    await conn.writer.drain()


@pytest.fixture
async def node(tmp_path: Path) -> SyncNode:  # type: ignore[misc]
    n = await make_node(tmp_path, "victim", interval=3600.0, timeout=1.0)
    await n.engine.start()
    yield n
    await stop_all([n])


class TestOneBadRecord:
    async def test_the_good_records_of_its_page_land(self, node: SyncNode) -> None:
        def entry(path: str, seq: int, mtime_ns: int = 1) -> dict:  # type: ignore[type-arg]
            rec = FileRecord("evil", path, len(GOOD), 1, GOOD_SHA, seq, False)
            return signed_entry(rec, True) | {"mtime_ns": mtime_ns}

        page = [entry("first.txt", 1), entry("absurd.txt", 2, 2**64 - 1), entry("last.txt", 3)]

        async def manifest(msg: Message, conn: Connection) -> Message:
            return ManifestData(page)

        server, evil = await fake_peer("evil", {ManifestRequest: manifest, FileRequest: serve_good})
        try:
            node.engine.set_topology(evil, {"evil": evil})
            assert await node.engine.pull_once() == 2
            assert (node.root / "evil" / "first.txt").read_bytes() == GOOD
            assert (node.root / "evil" / "last.txt").read_bytes() == GOOD
            assert not (node.root / "evil" / "absurd.txt").exists()
        finally:
            await server.close()


class TestAClaimNobodySends:
    async def test_it_costs_no_disk(self, node: SyncNode) -> None:
        size = 1 << 30
        sha = "ab" * 32
        rec = FileRecord("evil", "huge.bin", size, 1, sha, 1, False)

        async def manifest(msg: Message, conn: Connection) -> Message:
            return ManifestData([signed_entry(rec, True)])

        async def blocks(msg: Message, conn: Connection) -> Message:
            assert isinstance(msg, BlocksRequest)
            hashes = os.urandom(block_count(size, msg.block_size) * DIGEST)
            return BlocksData(sha, size, msg.block_size, hashes)

        async def never(msg: Message, conn: Connection) -> None:
            await asyncio.sleep(3600)

        server, evil = await fake_peer(
            "evil", {ManifestRequest: manifest, BlocksRequest: blocks, FileRequest: never}
        )
        partial = node.root / PARTIAL_DIR / f"{sha}.part"
        most = 0

        def allocated() -> bool:
            nonlocal most
            if partial.exists():
                most = max(most, os.stat(partial).st_blocks * 512)
            return False

        try:
            node.engine.set_topology(evil, {"evil": evil})
            pull = asyncio.create_task(node.engine.pull_once())
            await wait_for(lambda: partial.exists() or pull.done(), 10)
            while not pull.done():
                allocated()
                await asyncio.sleep(0.05)
            await pull
            allocated()
            assert most < LARGE_FILE, f"{most} bytes of disk reserved for bytes nobody sent"
        finally:
            await server.close()


class TestEndlessManifestPages:
    async def test_the_round_ends_and_a_push_lands_meanwhile(self, tmp_path: Path) -> None:
        owner, victim = await make_ring(tmp_path, 2, interval=3600.0)
        pages = 0

        async def endless(msg: Message, conn: Connection) -> Message:
            nonlocal pages
            pages += 1
            seqs = range(pages * 100, pages * 100 + 100)
            tombs = [FileRecord("evil", f"f{seq}", 0, 1, "", seq, True) for seq in seqs]
            page = [signed_entry(tomb, False) for tomb in tombs]
            return ManifestData(page, True, ["evil", seqs[-1]])

        server, evil = await fake_peer("evil", {ManifestRequest: endless})
        await start_all([owner, victim])
        try:
            peers = {"node0": owner.peer, "evil": evil}
            victim.engine.set_topology(evil, peers)
            owner.engine.set_topology(victim.peer, {"node1": victim.peer}, next=victim.peer)
            pull = asyncio.create_task(victim.engine.pull_once())
            await wait_for(lambda: pages >= 20, 10)
            (owner.own / "pushed.txt").write_bytes(b"pushed meanwhile")
            await owner.engine.rescan()
            landed = victim.root / "node0" / "pushed.txt"
            await wait_for(lambda: landed.exists(), 10)
            done, _ = await asyncio.wait({pull}, timeout=30)
            assert pull in done, f"the round still runs after {pages} pages"
            assert landed.read_bytes() == b"pushed meanwhile"
        finally:
            await server.close()
            await stop_all([owner, victim])

    async def test_a_slow_endless_peer_is_cut_off_by_time(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr("sync.pull.ROUND_SECONDS", 1.0)
        victim = await make_node(tmp_path, "victim", interval=3600.0)
        pages = 0

        async def slow(msg: Message, conn: Connection) -> Message:
            nonlocal pages
            pages += 1
            await asyncio.sleep(0.1)
            tomb = FileRecord("evil", f"f{pages}", 0, 1, "", pages, True)
            return ManifestData([signed_entry(tomb, False)], True, ["evil", pages])

        server, evil = await fake_peer("evil", {ManifestRequest: slow})
        await victim.engine.start()
        try:
            victim.engine.set_topology(evil, {"evil": evil})
            await asyncio.wait_for(victim.engine.pull_once(), 5)
            assert 5 <= pages <= 15
            assert victim.engine.state.counter("evil") == pages  # the next round goes on from here
        finally:
            await server.close()
            await stop_all([victim])
