"""Only changed bytes cross the wire (issue 14): a large file edited at its owner reaches a
replica as the blocks that changed; every other block is copied from the replica's old version
or from another local file. Bytes are counted by the serving side (`Server.sent`), and every
result is compared byte for byte."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from sync.blocks import block_size_for
from sync.manifest import FileRecord, record_to_entry
from sync.pull import merge_page
from tests.integration.test_transfer_blocks import MiB, big_file, evil_holder, locator
from tests.sync_harness import SyncNode, make_node, stop_all

pytestmark = pytest.mark.integration

SIZE = 64 * MiB
BLOCK = block_size_for(SIZE)


async def synced_pair(tmp_path: Path, files: dict[str, int]) -> tuple[SyncNode, SyncNode]:
    """An owner with files of these sizes and a replica that pulled them all."""
    owner = await make_node(tmp_path, "owner", interval=3600.0)
    recv = await make_node(tmp_path, "recv", interval=3600.0)
    for name, size in files.items():
        big_file(owner.own / name, size)
    everyone = {"owner": owner.peer, "recv": recv.peer}
    owner.engine.set_topology(None, everyone)
    recv.engine.set_topology(owner.peer, everyone)
    await asyncio.gather(owner.engine.start(), recv.engine.start())
    assert await recv.engine.pull_once() == len(files)
    return owner, recv


async def sent_for(owner: SyncNode, recv: SyncNode, name: str, body: bytes) -> int:
    """Write `body` as the owner's `name`, let the replica pull it; bytes the owner sent."""
    (owner.own / name).write_bytes(body)
    await owner.engine.rescan()
    before = owner.engine.server.sent
    assert await recv.engine.pull_once() == 1
    assert (recv.root / "owner" / name).read_bytes() == body
    return owner.engine.server.sent - before


@pytest.fixture
async def pair(tmp_path: Path) -> tuple[SyncNode, SyncNode]:  # type: ignore[misc]
    owner, recv = await synced_pair(tmp_path, {"big.bin": SIZE})
    yield owner, recv
    await stop_all([owner, recv])


class TestOnlyChangedBytesTravel:
    async def test_one_mib_overwritten_in_the_middle(self, pair: tuple[SyncNode, SyncNode]) -> None:
        owner, recv = pair
        body = bytearray((owner.own / "big.bin").read_bytes())
        at = SIZE // 2 + 12345  # not on a block boundary: the change touches one block more
        body[at : at + MiB] = os.urandom(MiB)
        sent = await sent_for(owner, recv, "big.bin", bytes(body))
        assert sent <= 3 * MiB, sent
        assert sent == MiB // BLOCK * BLOCK + BLOCK, sent  # exactly the blocks touched

    async def test_an_append_reuses_every_block_before_it(
        self, pair: tuple[SyncNode, SyncNode]
    ) -> None:
        owner, recv = pair
        body = (owner.own / "big.bin").read_bytes() + os.urandom(MiB + 1000)
        sent = await sent_for(owner, recv, "big.bin", body)
        assert sent == MiB + 1000, sent

    async def test_a_truncate_sends_at_most_the_last_block(
        self, pair: tuple[SyncNode, SyncNode]
    ) -> None:
        owner, recv = pair
        body = (owner.own / "big.bin").read_bytes()[: 40 * MiB + 777]
        sent = await sent_for(owner, recv, "big.bin", body)
        assert sent == 777, sent

    async def test_an_insert_at_the_front_arrives_whole(
        self, pair: tuple[SyncNode, SyncNode]
    ) -> None:
        owner, recv = pair
        body = os.urandom(1000) + (owner.own / "big.bin").read_bytes()
        sent = await sent_for(owner, recv, "big.bin", body)
        assert sent <= len(body), sent  # fixed offsets: every block moved, all may be sent

    async def test_an_insert_of_whole_blocks_sends_only_itself(
        self, pair: tuple[SyncNode, SyncNode]
    ) -> None:
        """Blocks are found wherever they are in the old version, not only at their offset."""
        owner, recv = pair
        body = os.urandom(MiB) + (owner.own / "big.bin").read_bytes()
        sent = await sent_for(owner, recv, "big.bin", body)
        assert sent == MiB, sent


class TestBlocksFromOtherFiles:
    async def test_a_new_file_takes_blocks_from_a_similar_one(self, tmp_path: Path) -> None:
        owner, recv = await synced_pair(tmp_path, {"v1.bin": SIZE})
        try:
            body = bytearray((owner.own / "v1.bin").read_bytes())
            body[5 * MiB : 6 * MiB] = os.urandom(MiB)
            sent = await sent_for(owner, recv, "v2.bin", bytes(body))
            assert sent <= 3 * MiB, sent
            assert recv.engine.fetcher.reuse.copied >= SIZE - 3 * MiB
        finally:
            await stop_all([owner, recv])

    async def test_blocks_come_from_the_version_held_now(self, tmp_path: Path) -> None:
        """The lists of content replaced since are no place to look (their blocks repeat in
        this test's files, so a lookup could fill up with them)."""
        owner, recv = await synced_pair(tmp_path, {"v1.bin": SIZE})
        try:
            old = (owner.own / "v1.bin").read_bytes()
            new = os.urandom(MiB) + old
            assert await sent_for(owner, recv, "v1.bin", new) == MiB
            edited = bytearray(old)
            edited[5 * MiB : 6 * MiB] = os.urandom(MiB)
            assert await sent_for(owner, recv, "v2.bin", bytes(edited)) == MiB
        finally:
            await stop_all([owner, recv])

    async def test_an_old_version_of_another_block_size_is_hashed_again(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A file that grows past a block size boundary (250 MiB, 500 MiB...) is fetched in
        larger blocks than its old version was listed in: the old version is hashed again."""
        owner, recv = await synced_pair(tmp_path, {"big.bin": SIZE})
        try:
            monkeypatch.setattr("sync.swarm.block_size_for", lambda size: 2 * BLOCK)
            body = (owner.own / "big.bin").read_bytes() + os.urandom(MiB)
            sent = await sent_for(owner, recv, "big.bin", body)
            assert sent == MiB, sent
        finally:
            await stop_all([owner, recv])


class TestALyingHolder:
    async def test_a_lone_holder_is_caught_at_its_first_bad_block(self, tmp_path: Path) -> None:
        source = tmp_path / "src" / "big.bin"
        sha = big_file(source, 48 * MiB)
        evil, evil_peer, asked = await evil_holder(source, "evil")
        recv = await make_node(tmp_path, "recv", interval=3600.0, locate=locator([evil_peer]))
        recv.engine.set_topology(None, {"recv": recv.peer})
        rec = FileRecord("owner", "big.bin", 48 * MiB, 1, sha, 1, False)
        merge_page(recv.engine.state, "recv", "owner", [record_to_entry(rec, True)])
        await recv.engine.start()
        try:
            assert await recv.engine.pull_once() == 0
            assert len(asked) == 1, asked  # one request: its first block was bad
            assert not (recv.root / "owner" / "big.bin").exists()
        finally:
            await evil.close()
            await stop_all([recv])
