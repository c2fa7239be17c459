"""Change detection: file-system events, settling, and an own folder that goes away.

Real engines on loopback with the pull interval set to an hour: a change that arrives was
found by the watcher and pushed.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from watchdog.events import FileCreatedEvent

from sync.engine import Change
from sync.hashing import stamp_of
from sync.publishing import BURST_MAX, DEBOUNCE
from sync.scanner import folder_problem, unsettled
from sync.watcher import FolderWatcher
from tests.sync_harness import (
    SyncNode,
    make_node,
    make_ring,
    pull_until,
    start_all,
    stop_all,
    tree,
)
from tests.waiting import wait_for


def wire_push_ring(nodes: list[SyncNode]) -> None:
    peers = {n.peer.name: n.peer for n in nodes}
    for i, node in enumerate(nodes):
        node.engine.set_topology(nodes[i - 1].peer, peers, next=nodes[(i + 1) % len(nodes)].peer)


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[list[SyncNode]]:
    nodes = await make_ring(tmp_path, 2, interval=3600.0, watch=True, settle=0.5)
    wire_push_ring(nodes)
    yield nodes
    await stop_all(nodes)


class TestSettling:
    def test_recent_files_wait_unless_closed_since(self) -> None:
        now = 100 * 10**9
        disk = {
            "old": (1, now - 2 * 10**9, 0, 0),
            "fresh": (1, now - 10**8, 0, 0),
            "closed": (1, now - 10**8, 0, 0),
        }
        disk["future"] = (1, now + 3600 * 10**9, 0, 0)
        closed = {
            "closed": now - 5 * 10**7,
            "fresh": now - 2 * 10**8,
        }  # fresh: closed, then written
        assert unsettled(disk, now, 10**9, closed) == {"fresh"}
        assert unsettled(disk, now, 0, {}) == set()

    def test_a_missing_or_replaced_folder_is_a_problem(self, tmp_path: Path) -> None:
        assert folder_problem(tmp_path, "me") is not None
        (tmp_path / "me").mkdir()
        assert folder_problem(tmp_path, "me") is None
        assert folder_problem(tmp_path / "nope", "me") is not None
        (tmp_path / "me").rmdir()
        (tmp_path / "me").write_bytes(b"")
        assert "not a folder" in (folder_problem(tmp_path, "me") or "")


class TestWatcher:
    async def test_a_file_written_slowly_arrives_whole_and_once(self, tmp_path: Path) -> None:
        # settle 2 s: a busy machine may pause the writer, never long enough to send half a file
        pair = await make_ring(tmp_path, 2, interval=3600.0, watch=True, settle=2.0)
        wire_push_ring(pair)
        heard: list[Change] = []
        pair[1].engine.add_change_listener(heard.append)
        await start_all(pair)
        try:
            await self._write_slowly(pair, heard)
        finally:
            await stop_all(pair)

    async def _write_slowly(self, pair: list[SyncNode], heard: list[Change]) -> None:
        a, b = pair
        seq = a.engine.state.counter("node0")
        chunk = os.urandom(50_000)
        with open(a.own / "slow.bin", "wb") as f:  # noqa: ASYNC230 - a slow writer, on purpose
            for _ in range(20):  # two seconds, flushed as it goes
                f.write(chunk)
                f.flush()
                await asyncio.sleep(0.1)
                assert not (b.root / "node0" / "slow.bin").exists(), "a partial file was sent"
        await wait_for(lambda: (b.root / "node0" / "slow.bin").exists(), 10)
        assert (b.root / "node0" / "slow.bin").read_bytes() == chunk * 20
        await asyncio.sleep(1.0)  # room for a wrong second version to show up (none may)
        assert a.engine.state.counter("node0") == seq + 1
        assert [c.text() for c in heard] == ["+ node0/slow.bin added"]

    async def test_the_own_folder_renamed_away_deletes_nothing(self, pair: list[SyncNode]) -> None:
        a, b = pair
        for i in range(3):
            (a.own / f"f{i}.txt").write_bytes(b"%d" % i)
        heard: list[Change] = []
        a.engine.add_change_listener(heard.append)
        await start_all(pair)
        await pull_until(pair, 20)
        seq = a.engine.state.counter("node0")
        os.rename(a.own, a.root / "node0-unmounted")
        await a.engine.rescan()
        await wait_for(lambda: a.engine.status().problem is not None, 5)
        assert any("pushing no deletes" in c.text() for c in heard)
        await b.engine.pull_once()
        assert a.engine.state.counter("node0") == seq
        assert len(tree(b.root / "node0")) == 3
        os.rename(a.root / "node0-unmounted", a.own)
        await a.engine.rescan()
        assert a.engine.status().problem is None and a.engine.state.counter("node0") == seq
        (a.own / "after.txt").write_bytes(b"watched again")  # the watch follows the new folder
        await wait_for(lambda: (b.root / "node0" / "after.txt").exists(), 10)

    async def test_an_owner_starting_without_its_folder_deletes_nothing(
        self, tmp_path: Path
    ) -> None:
        nodes = await make_ring(tmp_path, 2, interval=3600.0)
        wire_push_ring(nodes)
        for i in range(3):
            (nodes[0].own / f"f{i}").write_bytes(b"%d" % i)
        await start_all(nodes)
        await pull_until(nodes, 20)
        seq = nodes[0].engine.state.counter("node0")
        await stop_all(nodes[:1])
        os.rename(nodes[0].own, tmp_path / "elsewhere")
        again = await make_node(tmp_path, "node0", interval=3600.0)
        os.rmdir(again.own)  # make_node creates it; a real unmounted folder is simply absent
        ring = [again, nodes[1]]
        wire_push_ring(ring)
        await again.engine.start()
        try:
            assert not again.own.exists(), "the engine must not create an unmounted folder"
            assert again.engine.state.counter("node0") == seq
            assert again.engine.status().problem is not None
            await nodes[1].engine.pull_once()
            assert len(tree(nodes[1].root / "node0")) == 3
        finally:
            await stop_all(ring)

    async def test_a_file_saved_in_one_go_need_not_settle(self, tmp_path: Path) -> None:
        pair = await make_ring(tmp_path, 2, interval=3600.0, watch=True, settle=5.0)
        wire_push_ring(pair)
        a, b = pair
        await start_all(pair)
        try:
            started = time.monotonic()
            (a.own / "quick.txt").write_bytes(b"saved in one go")
            await wait_for(lambda: (b.root / "node0" / "quick.txt").exists(), 10)
            assert time.monotonic() - started < 3.0  # closed: sent long before 5 s of quiet
        finally:
            await stop_all(pair)


class TestArrivingComplete:
    """Issue 14: a file renamed or moved into the folder is whole; it waits for no settling."""

    def test_a_folder_moved_in_settles_everything_below_it(self) -> None:
        now = 100 * 10**9
        disk = {
            "in/a": (1, now - 10**8, 0, 0),
            "in/deep/b": (1, now - 10**8, 0, 0),
            "other": (1, now - 10**8, 0, 0),
        }
        closed = {"in/": now - 5 * 10**7}
        assert unsettled(disk, now, 10**9, closed) == {"other"}

    @pytest.mark.parametrize("what", ["file", "folder"])
    async def test_a_renamed_in_file_is_sent_without_the_settle_wait(
        self, tmp_path: Path, what: str
    ) -> None:
        pair = await make_ring(tmp_path, 2, interval=3600.0, watch=True, settle=5.0)
        wire_push_ring(pair)
        a, b = pair
        outside = tmp_path / "outside"
        (outside / "sub").mkdir(parents=True)
        body = os.urandom(6 << 20)  # a large file: hashed in blocks, fetched in blocks
        (outside / "sub" / "big.bin").write_bytes(body)
        await start_all(pair)
        try:
            started = time.monotonic()
            if what == "file":
                os.rename(outside / "sub" / "big.bin", a.own / "big.bin")
                arrived = b.root / "node0" / "big.bin"
            else:
                os.rename(outside / "sub", a.own / "sub")
                arrived = b.root / "node0" / "sub" / "big.bin"
            await wait_for(lambda: arrived.exists(), 10)
            assert time.monotonic() - started < 2.5  # settle is 5 s: it was not waited for
            assert arrived.read_bytes() == body
        finally:
            await stop_all(pair)


class TestFilledNewFolder:
    """Files moved into a folder made a moment before: the moves beat the new folder's watch and
    make no event; watchdog reports what it then finds there as created."""

    async def test_a_file_changed_after_its_last_write_arrived_complete(
        self, tmp_path: Path
    ) -> None:
        watcher = FolderWatcher(tmp_path, lambda: None, asyncio.get_running_loop())
        moved, written, again = (tmp_path / n for n in ("moved", "written", "again"))
        for path in (moved, again):
            path.write_bytes(b"written a moment ago")
            back = time.time_ns() - 10**8
            os.utime(path, ns=(back, back))  # as a move or `cp -p` leaves it: ctime > mtime
        written.write_bytes(b"still open for writing, maybe")
        for path in (moved, written, again):
            watcher.on_any_event(FileCreatedEvent(str(path)))
        with open(again, "ab") as f:  # written again after it was noted
            f.write(b" and more")
        disk = {p.name: stamp_of(os.stat(p)) for p in (moved, written, again)}
        assert unsettled(disk, time.time_ns(), 5 * 10**9, watcher.closed) == {"written", "again"}

    async def test_files_moved_into_a_new_folder_need_not_settle(self, tmp_path: Path) -> None:
        pair = await make_ring(tmp_path, 2, interval=3600.0, watch=True, settle=5.0)
        wire_push_ring(pair)
        a, b = pair
        outside = tmp_path / "outside"
        outside.mkdir()
        names = [f"f{i:03d}.bin" for i in range(200)]
        for name in names:
            (outside / name).write_bytes(name.encode() * 100)
        await start_all(pair)
        try:
            started = time.monotonic()
            (a.own / "new").mkdir()
            for name in names:
                os.rename(outside / name, a.own / "new" / name)
            landed = b.root / "node0" / "new"
            await wait_for(lambda: len(tree(landed)) == len(names), 10)
            assert time.monotonic() - started < 2.5  # settle is 5 s: none waited for it
        finally:
            await stop_all(pair)


class TestBursts:
    """A burst of events is scanned once, after it (`DEBOUNCE`), or `BURST_MAX` after it began."""

    async def _scans(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, every: float, lasting: float
    ) -> list[float]:
        """Ask for a scan every `every` s for `lasting` s; when each scan began (seconds from
        the first ask)."""
        node = await make_node(tmp_path, "node0")
        publishing = node.engine.publishing
        loop = asyncio.get_running_loop()
        began: list[float] = []

        async def rescan() -> int:
            began.append(loop.time())
            return 0

        monkeypatch.setattr(publishing, "rescan", rescan)
        worker = asyncio.create_task(publishing.worker())
        try:
            start = loop.time()
            while loop.time() - start < lasting:
                publishing.wanted.set()
                await asyncio.sleep(every)
            await asyncio.sleep(DEBOUNCE * 4)
        finally:
            worker.cancel()
            await stop_all([node])
        return [t - start for t in began]

    async def test_a_burst_with_short_pauses_is_scanned_once_after_it(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        began = await self._scans(tmp_path, monkeypatch, DEBOUNCE / 5, 0.3)
        assert len(began) == 1, began
        assert began[0] >= 0.3 - DEBOUNCE / 5

    async def test_a_burst_that_never_pauses_is_scanned_by_burst_max(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        began = await self._scans(tmp_path, monkeypatch, DEBOUNCE / 5, BURST_MAX * 1.6)
        assert began, "no scan while the events never paused"
        assert BURST_MAX <= began[0] < BURST_MAX * 1.5
