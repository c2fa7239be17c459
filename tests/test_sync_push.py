"""Pushed updates and deletes (NOTIFY round the ring), tombstones against stale peers, the trash.

The decisions (`held_deletes`, `merge_pushed`, `replica_changes`, `Change.text`) are tested
as plain functions; the rest runs four real engines on loopback with the pull interval set to
an hour, so whatever arrives arrived by push.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ring.errors import RemoteError
from ring.wire import Connection, Message, Ok
from sync.engine import Change, FileRecord
from sync.manifest import held_deletes, record_to_entry
from sync.messages import BatchRequest, FileRequest, Notify
from sync.push import merge_pushed
from sync.reports import replica_changes
from sync.state import State
from tests.sync_harness import (
    SyncNode,
    converged,
    make_node,
    make_ring,
    pull_until,
    signed_entry,
    start_all,
    stop_all,
    tree,
)
from tests.waiting import wait_for
from tests.wire_client import request

SHA_A, SHA_B = "a" * 64, "b" * 64


def rec(
    path: str, seq: int, sha: str = SHA_A, deleted: bool = False, owner: str = "o"
) -> FileRecord:
    return FileRecord(owner, path, 0 if deleted else 3, 1, "" if deleted else sha, seq, deleted)


def wire_push_ring(nodes: list[SyncNode]) -> None:
    """Ring order 0, 1, ...: each node's prev is i-1 and its next i+1 (wrapping)."""
    peers = {n.peer.name: n.peer for n in nodes}
    for i, node in enumerate(nodes):
        prev, after = nodes[i - 1].peer, nodes[(i + 1) % len(nodes)].peer
        node.engine.set_topology(prev, peers, next=after)


class Served:
    """Counts FILE and BATCH requests a node serves and the bytes of content they ask for."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0

    def wrap(self, node: SyncNode) -> None:
        server = node.engine.server
        for cls, handler in node.engine.routes():
            if cls not in (FileRequest, BatchRequest):
                continue

            async def counted(msg: Message, conn: Connection, handler=handler) -> Message | None:  # type: ignore[no-untyped-def]
                self.requests += 1
                shas = (
                    [msg.sha256]
                    if isinstance(msg, FileRequest)
                    else [
                        f.get("sha256", "")
                        for f in msg.files  # type: ignore[attr-defined]
                    ]
                )
                for sha in shas:
                    found = server.open_local(sha)
                    self.bytes += found.size if found else 0
                    if found:
                        found.file.close()
                reply: Message | None = await handler(msg, conn)
                return reply

            node.server.route(cls, counted)


@pytest.fixture
async def ring4(tmp_path: Path) -> AsyncIterator[list[SyncNode]]:
    nodes = await make_ring(tmp_path, 4, interval=3600.0, watch=True, settle=0.5)
    wire_push_ring(nodes)
    yield nodes
    await stop_all(nodes)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def content(path: Path) -> bytes | None:
    """The file's bytes, or None while it is missing (a replace happens in two steps)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


class TestDecisions:
    def test_a_mass_delete_is_held_but_a_small_one_is_not(self) -> None:
        known = {f"f{i}": rec(f"f{i}", i + 1, sha=f"{i:064x}") for i in range(10)}
        six = [rec(f"f{i}", 20 + i, deleted=True) for i in range(6)]
        assert held_deletes(known, six, 0.5, 10) == six
        assert held_deletes(known, six[:5], 0.5, 10) == []
        assert held_deletes(dict(list(known.items())[:9]), six, 0.5, 10) == []

    def test_moves_are_not_deletes(self) -> None:
        known = {f"f{i}": rec(f"f{i}", i + 1, sha=f"{i:064x}") for i in range(10)}
        changes = [rec(f"f{i}", 20 + i, deleted=True) for i in range(10)]
        changes += [rec(f"new/f{i}", 40 + i, sha=f"{i:064x}") for i in range(10)]
        assert held_deletes(known, changes, 0.5, 10) == []

    def test_pushed_records_advance_the_counter_only_without_a_gap(self, tmp_path: Path) -> None:
        state = State(tmp_path)
        state.set_counter("o", 4)
        fresh = merge_pushed(state, "o", "me", [record_to_entry(rec("x", 6), True)])
        assert [r.seq for r in fresh] == [6] and state.counter("o") == 4  # seq 5 missed: pull it
        entries = [
            record_to_entry(rec("y", 5), True),
            record_to_entry(rec("x", 7), True),
        ]
        merge_pushed(state, "o", "me", entries)
        assert state.counter("o") == 5
        assert merge_pushed(state, "o", "me", [record_to_entry(rec("x", 6), True)]) == []
        state.close()

    def test_pushed_entries_of_another_owner_or_broken_are_skipped(self, tmp_path: Path) -> None:
        state = State(tmp_path)
        other = record_to_entry(rec("x", 1, owner="mallory"), True)
        mine = record_to_entry(rec("x", 1, owner="me"), True)
        bad = {**record_to_entry(rec("../x", 1), True)}
        assert merge_pushed(state, "o", "me", [other, mine, bad, "junk"]) == []
        assert state.records_of("mallory") == {} and state.records_of("o") == {}
        state.close()

    def test_the_journal_notes_changed_paths_and_pending_rows_need_work(
        self, tmp_path: Path
    ) -> None:
        state = State(tmp_path)
        state.put_record(rec("held", 1), SHA_A)
        state.put_record(rec("missing", 2), None)
        state.put_record(rec("gone", 3, deleted=True), SHA_B)
        state.put_record(rec("mine", 1, owner="me"), None)
        pending = sorted(r.path for r, _have in state.pending_rows("me"))
        assert pending == ["gone", "missing"]
        state.start_journal()
        state.set_have("o", "missing", SHA_A)
        state.set_have("o", "missing", SHA_B)
        state.set_have("o", "gone", None)
        paths = [("o", "missing"), ("o", "gone"), ("o", "held")]
        assert state.take_journal(paths) == {("o", "missing"): None, ("o", "gone"): SHA_B}
        state.end_journal()
        state.set_have("o", "held", None)
        assert state.take_journal(paths) == {}
        state.close()

    def test_change_lines(self) -> None:
        assert Change("updated", "alice", "report.pdf").text() == "~ alice/report.pdf updated"
        assert Change("deleted", "alice", "old.txt").text() == "- alice/old.txt deleted"
        assert Change("added", "alice", "a b/ü.txt").text() == "+ alice/a b/ü.txt added"
        assert Change("warning", "alice", "", "gone").text() == "! alice: gone"

    def test_replica_changes_from_before_and_after(self) -> None:
        before = {("o", "a"): SHA_A, ("o", "b"): SHA_A, ("o", "c"): None}
        after = [
            (rec("a", 2, SHA_B), SHA_B),
            (rec("b", 3, deleted=True), None),
            (rec("c", 1), SHA_A),
        ]
        kinds = [(c.kind, c.path) for c in replica_changes(before, after)]
        assert kinds == [("updated", "a"), ("deleted", "b"), ("added", "c")]


class TestPushRing:
    async def test_edit_delete_rename_and_subfolder_reach_everyone_by_push(
        self, ring4: list[SyncNode]
    ) -> None:
        a = ring4[0]
        (a.own / "edit.txt").write_bytes(b"v1")
        (a.own / "gone.txt").write_bytes(b"bye")
        big = os.urandom(200_000)
        (a.own / "old name.bin").write_bytes(big)
        heard: list[str] = []
        ring4[3].engine.add_change_listener(lambda c: heard.append(c.text()))
        await start_all(ring4)
        await pull_until(ring4, 20)
        heard.clear()
        served = Served()
        for node in ring4:
            served.wrap(node)

        (a.own / "edit.txt").write_bytes(b"v2, longer")
        (a.own / "gone.txt").unlink()
        os.rename(a.own / "old name.bin", a.own / "new name.bin")
        (a.own / "sub" / "deeper").mkdir(parents=True)
        (a.own / "sub" / "deeper" / "new.txt").write_bytes(b"fresh")
        await wait_for(lambda: converged(ring4), 15)
        for node in ring4[1:]:
            assert tree(node.root / "node0") == {
                "edit.txt": sha(b"v2, longer"),
                "new name.bin": sha(big),
                "sub/deeper/new.txt": sha(b"fresh"),
            }
        assert served.bytes < 1000, "the renamed file was sent again"
        assert sum(n.engine.pusher.sent for n in ring4) >= 3
        told = {
            "- node0/gone.txt deleted",
            "~ node0/edit.txt updated",
            "+ node0/new name.bin added",
        }
        await wait_for(lambda: told <= set(heard), 5)  # each told as its path is done
        assert "- node0/old name.bin deleted" in heard

    async def test_a_rename_learned_by_pull_is_copied_not_sent(self, tmp_path: Path) -> None:
        nodes = await make_ring(tmp_path, 2, interval=3600.0)
        body = os.urandom(300_000)
        (nodes[0].own / "before.bin").write_bytes(body)
        await start_all(nodes)
        try:
            await pull_until(nodes, 20)
            served = Served()
            served.wrap(nodes[0])
            (nodes[0].own / "sub").mkdir()
            os.rename(nodes[0].own / "before.bin", nodes[0].own / "sub" / "after.bin")
            await nodes[0].engine.rescan()
            await pull_until(nodes, 20)  # no next node wired: only the pull carries it
            assert (nodes[1].root / "node0" / "sub" / "after.bin").read_bytes() == body
            assert served.requests == 0 and served.bytes == 0
        finally:
            await stop_all(nodes)

    async def test_a_rename_is_applied_as_a_rename(self, tmp_path: Path) -> None:
        """The replica's file itself moves (same inode): no byte copied, and no moment in which
        the replica shows both names."""
        nodes = await make_ring(tmp_path, 2, interval=3600.0)
        (nodes[0].own / "one.bin").write_bytes(os.urandom(100_000))
        await start_all(nodes)
        try:
            await pull_until(nodes, 20)
            replica = nodes[1].root / "node0"
            inode = (replica / "one.bin").stat().st_ino
            both: list[bool] = []

            def look() -> bool:
                names = {p.name for p in replica.iterdir()}
                both.append(names == {"one.bin", "two.bin"})
                return names == {"two.bin"}

            os.rename(nodes[0].own / "one.bin", nodes[0].own / "two.bin")
            await nodes[0].engine.rescan()
            pull = asyncio.create_task(pull_until(nodes, 20))
            await wait_for(look, 20, step=0.001)
            await pull
            assert (replica / "two.bin").stat().st_ino == inode
            assert not any(both)
        finally:
            await stop_all(nodes)

    async def test_a_push_stops_before_its_origin(self, ring4: list[SyncNode]) -> None:
        await start_all(ring4)
        (ring4[1].own / "x.txt").write_bytes(b"x")
        await wait_for(lambda: converged(ring4), 10)
        await wait_for(lambda: sum(n.engine.pusher.sent for n in ring4) == 3, 5)
        assert [n.engine.pusher.sent for n in ring4] == [
            0,
            1,
            1,
            1,
        ]  # node0's next is node1
        assert "node1" in ring4[0].engine.pusher.received
        assert ring4[1].engine.pusher.received == {}

    async def test_pushes_to_the_next_node_share_one_kept_connection(
        self, ring4: list[SyncNode]
    ) -> None:
        """A fresh TLS connection per NOTIFY cost every hop a handshake, on both ends."""
        await start_all(ring4)
        nxt = ring4[1]
        handler = nxt.server.handler(Notify)
        assert handler is not None
        seen: list[Connection] = []

        async def noted(msg: Message, conn: Connection) -> Message | None:
            if msg.origin == "node0":  # type: ignore[attr-defined]
                seen.append(conn)
            return await handler(msg, conn)

        nxt.server.route(Notify, noted)
        for n in range(3):
            (ring4[0].own / f"f{n}.txt").write_bytes(b"x" * n)
            await wait_for(lambda: converged(ring4), 10)
        assert len(seen) >= 3
        assert len({id(conn) for conn in seen}) == 1

    async def test_changes_made_before_joining_are_pushed_on_joining(self, tmp_path: Path) -> None:
        nodes = await make_ring(tmp_path, 2, interval=3600.0)
        for node in nodes:
            node.engine.set_topology(None, {})
        await start_all(nodes)
        try:
            (nodes[0].own / "early.txt").write_bytes(b"made while alone")
            assert await nodes[0].engine.rescan() == 1
            wire_push_ring(nodes)
            await wait_for(lambda: (nodes[1].root / "node0" / "early.txt").exists(), 10)
        finally:
            await stop_all(nodes)

    async def test_holdings_follow_an_edit_for_the_dht(self, ring4: list[SyncNode]) -> None:
        a = ring4[0]
        (a.own / "f.txt").write_bytes(b"old")
        await start_all(ring4)
        await pull_until(ring4, 20)
        events: list[tuple[str, bool]] = []
        a.engine.add_holding_listener(lambda h, held: events.append((h, held)))
        (a.own / "f.txt").write_bytes(b"new")
        await wait_for(lambda: len(events) == 2, 10)
        assert events == [(sha(b"new"), True), (sha(b"old"), False)]


class TestStaleAndSafety:
    async def test_a_stale_replica_node_returns_and_deletes_and_edits_win(
        self, tmp_path: Path
    ) -> None:
        nodes = await make_ring(tmp_path, 4, interval=3600.0)
        wire_push_ring(nodes)
        own = nodes[0].own
        for i in range(4):
            (own / f"f{i}.txt").write_bytes(b"first %d" % i)
        await start_all(nodes)
        await pull_until(nodes, 20)
        stale = nodes[2]
        await stale.engine.stop()
        await stale.server.close()
        alive = [nodes[0], nodes[1], nodes[3]]
        wire_push_ring(alive)
        (own / "f0.txt").unlink()
        (own / "f1.txt").write_bytes(b"second 1")
        await nodes[0].engine.rescan()
        await pull_until(alive, 20)

        back = await make_node(tmp_path, "node2", interval=3600.0)
        assert (back.root / "node0" / "f0.txt").exists()  # stale copies still on its disk
        ring = [nodes[0], nodes[1], back, nodes[3]]
        wire_push_ring(ring)
        await back.engine.start()
        try:
            for _ in range(3):  # extra rounds: nothing may come back, in either direction
                await pull_until(ring, 20)
                for node in ring:
                    await node.engine.pull_once()
            for node in ring:
                assert not (node.root / "node0" / "f0.txt").exists()
                assert (node.root / "node0" / "f1.txt").read_bytes() == b"second 1"
        finally:
            await stop_all(ring)

    async def test_an_owner_restarting_after_deletes_uses_new_seqs(self, tmp_path: Path) -> None:
        nodes = await make_ring(tmp_path, 2, interval=3600.0)
        wire_push_ring(nodes)
        for i in range(3):
            (nodes[0].own / f"f{i}").write_bytes(b"%d" % i)
        await start_all(nodes)
        await pull_until(nodes, 20)
        before = nodes[0].engine.state.counter("node0")
        await nodes[0].engine.stop()
        await nodes[0].server.close()
        (nodes[0].own / "f1").unlink()
        again = await make_node(tmp_path, "node0", interval=3600.0)
        ring = [again, nodes[1]]
        wire_push_ring(ring)
        await again.engine.start()
        try:
            rec1 = again.engine.state.record("node0", "f1")
            assert rec1 is not None and rec1[0].deleted and rec1[0].seq == before + 1
            (again.own / "f2").write_bytes(b"edited")
            await again.engine.rescan()
            assert again.engine.state.counter("node0") == before + 2
            await pull_until(ring, 20)
            assert not (nodes[1].root / "node0" / "f1").exists()
        finally:
            await stop_all(ring)

    async def test_a_local_edit_on_a_replica_is_kept_in_the_trash(
        self, ring4: list[SyncNode]
    ) -> None:
        a, b = ring4[0], ring4[1]
        (a.own / "doc [1].txt").write_bytes(b"owner v1")
        heard: list[Change] = []
        b.engine.add_change_listener(heard.append)
        await start_all(ring4)
        await pull_until(ring4, 20)
        (b.root / "node0" / "doc [1].txt").write_bytes(b"my local notes")
        (a.own / "doc [1].txt").write_bytes(b"owner v2")
        await wait_for(lambda: content(b.root / "node0" / "doc [1].txt") == b"owner v2", 10)
        kept = list((b.state / "trash" / "node0").glob("doc [[]1] (conflict *).txt"))
        assert [p.read_bytes() for p in kept] == [b"my local notes"]
        await wait_for(lambda: any(c.kind == "kept" for c in heard), 5)
        assert str(kept[0]) in next(c.text() for c in heard if c.kind == "kept")

    async def test_a_mass_delete_waits_for_confirmation(self, ring4: list[SyncNode]) -> None:
        a = ring4[0]
        for i in range(12):
            (a.own / f"f{i:02}").write_bytes(b"%d" % i)
        heard: list[Change] = []
        a.engine.add_change_listener(heard.append)
        await start_all(ring4)
        await pull_until(ring4, 20)
        seq = a.engine.state.counter("node0")
        for i in range(8):
            (a.own / f"f{i:02}").unlink()
        await a.engine.rescan()
        assert a.engine.state.counter("node0") == seq
        assert a.engine.status().held_deletes == 8
        assert any("confirm-deletes" in c.text() for c in heard)
        for node in ring4[1:]:
            assert len(tree(node.root / "node0")) == 12
        assert await a.engine.confirm_deletes() == 8
        assert a.engine.status().held_deletes == 0
        await wait_for(lambda: all(len(tree(n.root / "node0")) == 4 for n in ring4), 10)

    async def test_deletes_wait_when_the_folder_is_on_another_device(
        self, ring4: list[SyncNode]
    ) -> None:
        a = ring4[0]
        for i in range(3):
            (a.own / f"f{i}").write_bytes(b"%d" % i)
        await start_all(ring4)
        await pull_until(ring4, 20)
        device = a.engine.state.meta("own_device")
        assert device == str(os.stat(a.own).st_dev)
        a.engine.state.set_meta("own_device", "12345")  # as if a disk was mounted there before
        (a.own / "f0").unlink()
        (a.own / "new").write_bytes(b"adds still go through")
        await a.engine.rescan()
        status = a.engine.status()
        assert status.held_deletes == 1 and "another device" in status.held_reason
        await wait_for(lambda: (ring4[2].root / "node0" / "new").exists(), 10)
        assert (ring4[2].root / "node0" / "f0").exists()
        assert await a.engine.confirm_deletes() == 1
        assert a.engine.state.meta("own_device") == device
        await wait_for(lambda: not (ring4[2].root / "node0" / "f0").exists(), 10)

    async def test_a_renamed_folder_is_not_a_mass_delete(self, ring4: list[SyncNode]) -> None:
        a = ring4[0]
        (a.own / "old").mkdir()
        for i in range(12):
            (a.own / "old" / f"f{i:02}").write_bytes(b"%d" % i)
        await start_all(ring4)
        await pull_until(ring4, 20)
        os.rename(a.own / "old", a.own / "new")
        await a.engine.rescan()
        assert a.engine.status().held_deletes == 0
        await wait_for(lambda: converged(ring4), 10)
        assert sorted(tree(ring4[2].root / "node0")) == [f"new/f{i:02}" for i in range(12)]


class TestNotifyWire:
    async def test_bad_notify_requests_get_error_codes(self, tmp_path: Path) -> None:
        node = await make_node(tmp_path, "me", interval=3600.0)
        await node.engine.start()
        try:
            host, port = node.peer.host, node.peer.port
            good = signed_entry(rec("x", 1), True)
            for msg, code in (
                (Notify("o", [good], -1), "bad_request"),
                (Notify("../o", [good], 0), "bad_path"),
                (Notify("o", [good] * 2001, 0), "bad_request"),
            ):
                with pytest.raises(RemoteError) as caught:
                    await request(host, port, msg, 5)
                assert caught.value.code == code
            assert isinstance(await request(host, port, Notify("me", [good], 0), 5), Ok)
            assert isinstance(await request(host, port, Notify("o", [good, "junk"], 0), 5), Ok)
            kept = node.engine.state.record("o", "x")
            assert kept is not None and kept[0].seq == 1 and node.engine.state.counter("o") == 1
            assert node.engine.state.records_of("me") == {}
        finally:
            await stop_all([node])
