"""A path that is a folder on a replica becomes a file, or the reverse: applied without losing
the user's side, and with the replica's state matching its disk at every step.

Two real engines on loopback; where a record must arrive before the deletes that go with it (a
page or push boundary), a fake previous node serves the manifest that has only that record.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ring.wire import Connection, FrameServer, Message, Ok
from sync.engine import Change, Peer
from sync.manifest import record_to_entry
from sync.messages import ManifestData, ManifestRequest, Notify
from tests.credentials import member_door
from tests.sync_harness import SyncNode, held_on_disk, make_ring, pull_until, start_all, stop_all
from tests.wire_client import request

pytestmark = pytest.mark.integration


def kept_files(node: SyncNode) -> dict[str, bytes]:
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


async def manifest_of(entries: list[dict]) -> tuple[FrameServer, Peer]:  # type: ignore[type-arg]
    """A previous node whose manifest holds only `entries` (and which serves no file)."""

    async def manifest(msg: Message, conn: Connection) -> Message:
        return ManifestData(entries)

    server = FrameServer("127.0.0.1", 0, door=member_door())
    server.route(ManifestRequest, manifest)
    return server, Peer("partial-view", "127.0.0.1", await server.start())


class TestAFolderBecomesAFile:
    async def test_the_file_waits_for_the_deletes_and_nothing_held_goes_to_the_trash(
        self, tmp_path: Path
    ) -> None:
        owner, recv = await synced_pair(tmp_path, {"x/a": b"a", "x/b": b"b"})
        try:
            shutil.rmtree(owner.own / "x")
            (owner.own / "x").write_bytes(b"x is a file now")
            assert await owner.engine.rescan() == 3
            (new,) = owner.engine.find("node0/x")
            server, partial = await manifest_of([record_to_entry(new, False)])
            try:
                recv.engine.set_topology(partial, {"node0": owner.peer})
                await recv.engine.pull_once()
                assert held_on_disk(recv) == []
                assert kept_files(recv) == {}
            finally:
                await server.close()
            recv.engine.set_topology(owner.peer, {"node0": owner.peer})
            await pull_until([owner, recv], 10)
            assert (recv.root / "node0" / "x").read_bytes() == b"x is a file now"
            assert kept_files(recv) == {}
            assert held_on_disk(recv) == []
        finally:
            await stop_all([owner, recv])

    async def test_the_users_own_files_in_the_folder_are_kept(self, tmp_path: Path) -> None:
        owner, recv = await synced_pair(tmp_path, {"x/a": b"a"})
        try:
            heard: list[Change] = []
            recv.engine.add_change_listener(heard.append)
            (recv.root / "node0" / "x" / "mine.txt").write_bytes(b"my notes")
            shutil.rmtree(owner.own / "x")
            (owner.own / "x").write_bytes(b"x is a file now")
            await owner.engine.rescan()
            await recv.engine.pull_once()
            assert (recv.root / "node0" / "x").read_bytes() == b"x is a file now"
            assert list(kept_files(recv).values()) == [b"my notes"]
            assert held_on_disk(recv) == []
            assert any(c.kind == "kept" and c.path == "x" for c in heard), heard
        finally:
            await stop_all([owner, recv])


class TestAFileBecomesAFolder:
    async def test_a_users_file_where_a_folder_must_go_is_kept(self, tmp_path: Path) -> None:
        owner, recv = await synced_pair(tmp_path, {"a.txt": b"a"})
        try:
            heard: list[Change] = []
            recv.engine.add_change_listener(heard.append)
            (recv.root / "node0" / "y").write_bytes(b"my own file, named y")
            (owner.own / "y").mkdir()
            (owner.own / "y" / "b").write_bytes(b"the owner's y/b")
            await owner.engine.rescan()
            await recv.engine.pull_once()
            assert (recv.root / "node0" / "y" / "b").read_bytes() == b"the owner's y/b"
            assert list(kept_files(recv).values()) == [b"my own file, named y"]
            assert any(c.kind == "kept" for c in heard), heard
            assert held_on_disk(recv) == []
        finally:
            await stop_all([owner, recv])

    async def test_the_owners_file_is_deleted_before_its_folder_lands(self, tmp_path: Path) -> None:
        owner, recv = await synced_pair(tmp_path, {"y": b"y was a file"})
        try:
            (owner.own / "y").unlink()
            (owner.own / "y").mkdir()
            (owner.own / "y" / "b").write_bytes(b"the owner's y/b")
            await owner.engine.rescan()
            (new,) = owner.engine.find("node0/y/b")
            push = Notify("node0", [record_to_entry(new, True)], 0)  # y/b before y's delete
            assert isinstance(await request("127.0.0.1", recv.peer.port, push), Ok)
            await pull_until([owner, recv], 10)
            assert (recv.root / "node0" / "y" / "b").read_bytes() == b"the owner's y/b"
            assert kept_files(recv) == {}
            assert held_on_disk(recv) == []
        finally:
            await stop_all([owner, recv])
