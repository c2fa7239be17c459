"""A user's edit of a replica is never lost, whenever it lands: while the owner's update of
that file downloads, while the replica is being checked before a delete or a rename, or under a
name so long that the kept copy's name has to be shortened.

Two real engines on loopback, the pull interval an hour: rounds are started by hand. An edit
"while checking" is made from inside the replica's hasher, after it has read the old bytes, so
the check passes and the edit lands between the check and the change on disk.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest

from ring.wire import Connection, Handler, Message
from sync.blocks import LARGE_FILE
from sync.engine import Change
from sync.hashing import FileHash
from sync.messages import BatchRequest, BlocksRequest, FileRequest
from tests.sync_harness import (
    SyncNode,
    held_on_disk,
    make_ring,
    pull_until,
    start_all,
    stop_all,
)

pytestmark = pytest.mark.integration

SLOW = 1.5
"""Seconds the owner sits on each request for the content being raced."""


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hold_requests(node: SyncNode, sha256: str, asked: asyncio.Event) -> None:
    """Make `node` answer every request for content `sha256` SLOW seconds late; set `asked`
    when the first one comes."""

    def slow(handler: Handler) -> Handler:
        async def late(msg: Message, conn: Connection) -> Message | None:
            wanted = {getattr(msg, "sha256", None)}
            if isinstance(msg, BatchRequest):
                wanted = {f.get("sha256") for f in msg.files if isinstance(f, dict)}
            if isinstance(msg, (BlocksRequest, FileRequest, BatchRequest)) and sha256 in wanted:
                asked.set()
                await asyncio.sleep(SLOW)
            return await handler(msg, conn)

        return late

    node.server.wrap(slow)


def edit_while_hashing(node: SyncNode, target: Path, edit: bytes) -> None:
    """The next time `node` hashes `target`, write `edit` there once the hash is taken."""
    hasher = node.engine.hasher
    real = hasher.hash

    async def hash_then_edit(path: Path) -> FileHash:
        result = await real(path)
        if Path(path) == target:
            hasher.hash = real  # type: ignore[method-assign]
            target.write_bytes(edit)
        return result

    hasher.hash = hash_then_edit  # type: ignore[method-assign]


def kept_files(node: SyncNode) -> dict[str, bytes]:
    """Name -> bytes of every file in the node's trash (what it kept of local edits)."""
    trash = node.state / "trash"
    return {
        p.relative_to(trash).as_posix(): p.read_bytes() for p in trash.rglob("*") if p.is_file()
    }


async def synced_pair(tmp_path: Path, files: dict[str, bytes]) -> tuple[SyncNode, SyncNode]:
    owner, recv = await make_ring(tmp_path, 2, interval=3600.0)
    for name, body in files.items():
        (owner.own / name).parent.mkdir(parents=True, exist_ok=True)
        (owner.own / name).write_bytes(body)
    await start_all([owner, recv])
    await pull_until([owner, recv], 20)
    return owner, recv


def listen(node: SyncNode) -> list[Change]:
    heard: list[Change] = []
    node.engine.add_change_listener(heard.append)
    return heard


class TestAnEditDuringADownloadIsKept:
    @pytest.mark.parametrize("size", [1000, 2 * LARGE_FILE + 1000], ids=["batch", "blocks"])
    async def test_the_edit_is_kept_and_the_update_lands(self, tmp_path: Path, size: int) -> None:
        owner, recv = await synced_pair(tmp_path, {"doc.bin": os.urandom(size)})
        try:
            heard = listen(recv)
            v2 = os.urandom(size)
            (owner.own / "doc.bin").write_bytes(v2)
            await owner.engine.rescan()
            asked = asyncio.Event()
            hold_requests(owner, sha(v2), asked)
            pull = asyncio.create_task(recv.engine.pull_once())
            await asyncio.wait_for(asked.wait(), 10)
            replica = recv.root / "node0" / "doc.bin"
            replica.write_bytes(b"my edit, made while v2 was on its way")
            await asyncio.wait_for(pull, 30)
            assert replica.read_bytes() == v2
            assert list(kept_files(recv).values()) == [b"my edit, made while v2 was on its way"]
            assert any(c.kind == "kept" and c.path == "doc.bin" for c in heard), heard
            status = recv.engine.status()
            assert status.kept == 1 and status.newest_kept[0][0] == "node0/doc.bin"
            assert Path(status.newest_kept[0][1]).read_bytes() == kept_files(recv).popitem()[1]
        finally:
            await stop_all([owner, recv])


class TestAnEditWhileCheckingIsKept:
    async def test_before_a_delete(self, tmp_path: Path) -> None:
        owner, recv = await synced_pair(tmp_path, {"gone.txt": b"owner's bytes"})
        try:
            replica = recv.root / "node0" / "gone.txt"
            recv.engine.state.cache_drop("node0/gone.txt")  # the check has to read the file
            edit_while_hashing(recv, replica, b"my edit, made while the delete was checked")
            (owner.own / "gone.txt").unlink()
            await owner.engine.rescan()
            await recv.engine.pull_once()
            assert not replica.exists()
            assert list(kept_files(recv).values()) == [
                b"my edit, made while the delete was checked"
            ]
            assert recv.engine.summary() == {}
        finally:
            await stop_all([owner, recv])

    async def test_before_a_rename(self, tmp_path: Path) -> None:
        body = os.urandom(300_000)
        owner, recv = await synced_pair(tmp_path, {"before.bin": body})
        try:
            old = recv.root / "node0" / "before.bin"
            recv.engine.state.cache_drop("node0/before.bin")
            edit = os.urandom(len(body))  # the same size: only the bytes tell it from the owner's
            edit_while_hashing(recv, old, edit)
            os.rename(owner.own / "before.bin", owner.own / "after.bin")
            await owner.engine.rescan()
            await recv.engine.pull_once()
            assert held_on_disk(recv) == []
            await pull_until([owner, recv], 10)
            assert (recv.root / "node0" / "after.bin").read_bytes() == body
            assert not old.exists()
            assert list(kept_files(recv).values()) == [edit]
        finally:
            await stop_all([owner, recv])


class TestALongNameIsKept:
    async def test_an_update_of_a_255_byte_name_with_a_local_edit_lands(
        self, tmp_path: Path
    ) -> None:
        name = "é" * 124 + "xxx.txt"
        assert len(name.encode()) == 255
        owner, recv = await synced_pair(tmp_path, {name: b"v1"})
        try:
            heard = listen(recv)
            replica = recv.root / "node0" / name
            replica.write_bytes(b"my local edit")
            (owner.own / name).write_bytes(b"v2 from the owner")
            await owner.engine.rescan()
            await recv.engine.pull_once()
            assert replica.read_bytes() == b"v2 from the owner"
            kept = kept_files(recv)
            assert list(kept.values()) == [b"my local edit"]
            assert all(len(part.encode()) <= 255 for k in kept for part in k.split("/"))
            assert any(c.kind == "kept" for c in heard)
        finally:
            await stop_all([owner, recv])
