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
from sync.blocks import BLOCK_SIZE, DIGEST, block_count
from sync.engine import Peer
from sync.manifest import FileRecord, record_to_entry
from sync.messages import (
    BlocksData,
    BlocksRequest,
    FileData,
    FileRequest,
    ManifestData,
    ManifestRequest,
)
from sync.resume import PARTIAL_DIR
from tests.sync_harness import SyncNode, make_node, stop_all
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

GOOD = b"good bytes"
GOOD_SHA = hashlib.sha256(GOOD).hexdigest()


async def fake_peer(name: str, routes: dict[type[Message], object]) -> tuple[FrameServer, Peer]:
    server = FrameServer("127.0.0.1", 0)
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


class TestAClaimNobodySends:
    async def test_it_costs_no_disk(self, node: SyncNode) -> None:
        size = 1 << 30
        sha = "ab" * 32
        rec = FileRecord("evil", "huge.bin", size, 1, sha, 1, False)

        async def manifest(msg: Message, conn: Connection) -> Message:
            return ManifestData([record_to_entry(rec, True)])

        async def blocks(msg: Message, conn: Connection) -> Message:
            hashes = os.urandom(block_count(size, BLOCK_SIZE) * DIGEST)
            return BlocksData(sha, size, BLOCK_SIZE, hashes)

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
            assert most < BLOCK_SIZE, f"{most} bytes of disk reserved for bytes nobody sent"
        finally:
            await server.close()
