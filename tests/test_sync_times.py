"""Time from the world is data: a modification time sqlite cannot hold (a file touched to the
year 2300, a peer's absurd record) is clamped where it enters from disk and refused per entry
where it enters from the network, and never stops a node publishing or starting.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ring.errors import BadRequest
from sync.manifest import (
    INT64_MAX,
    MTIME_MAX_NS,
    MTIME_MIN_NS,
    FileRecord,
    clamp_mtime,
    entry_to_record,
    record_to_entry,
)
from sync.pull import merge_page
from sync.push import merge_pushed
from sync.state import State
from tests.sync_harness import make_node, make_ring, pull_until, start_all, stop_all

YEAR_2300_NS = 10_413_792_000 * 10**9
"""2300-01-01 in ns since the epoch: past what a signed 64-bit integer holds (2262)."""

SHA = "a" * 64


def entry(n: int, **fields: int) -> dict:  # type: ignore[type-arg]
    out = record_to_entry(FileRecord("o", f"f{n}", 3, 1, SHA, n, False), True)
    out.update(fields)
    return out


class TestClamp:
    def test_a_time_sqlite_cannot_hold_is_clamped_to_the_nearest_it_can(self) -> None:
        assert clamp_mtime(YEAR_2300_NS) == MTIME_MAX_NS == INT64_MAX
        assert clamp_mtime(-(2**70)) == MTIME_MIN_NS
        assert clamp_mtime(1_700_000_000 * 10**9) == 1_700_000_000 * 10**9
        assert clamp_mtime(-(10**18)) == -(10**18)  # 1938: old, not absurd


class TestEntriesFromPeers:
    @pytest.mark.parametrize(
        "field, value",
        [
            ("mtime_ns", 2**64 - 1),
            ("mtime_ns", -(2**63) - 1),
            ("size", INT64_MAX + 1),
            ("seq", INT64_MAX + 1),
        ],
    )
    def test_a_value_sqlite_cannot_hold_is_refused(self, field: str, value: int) -> None:
        with pytest.raises(BadRequest):
            entry_to_record(entry(1, **{field: value}))

    def test_one_absurd_entry_leaves_the_rest_of_its_push(self, tmp_path: Path) -> None:
        state = State(tmp_path)
        try:
            page = [entry(1), entry(2, mtime_ns=2**64 - 1), entry(3)]
            fresh = merge_pushed(state, "o", "me", page)
            assert [rec.path for rec in fresh] == ["f1", "f3"]
            assert set(state.records_of("o")) == {"f1", "f3"}
        finally:
            state.close()


class TestOneBadEntryOfAPage:
    def test_the_rest_of_the_page_is_kept_and_counted(self, tmp_path: Path) -> None:
        state = State(tmp_path)
        try:
            page = [entry(1), entry(2, size=INT64_MAX + 1), {"junk": True}, entry(3)]
            holds = merge_page(state, "me", "prev", page)
            assert set(holds) == {("o", "f1"), ("o", "f3")}
            assert set(state.records_of("o")) == {"f1", "f3"} and state.counter("o") == 3
        finally:
            state.close()


class TestAFileFromTheFuture:
    async def test_it_is_shared_and_the_node_starts_again(self, tmp_path: Path) -> None:
        owner, recv = await make_ring(tmp_path, 2)
        future = owner.own / "future.txt"
        future.write_bytes(b"from 2300")
        os.utime(future, ns=(YEAR_2300_NS, YEAR_2300_NS))
        (owner.own / "plain.txt").write_bytes(b"plain")
        await start_all([owner, recv])
        try:
            await pull_until([owner, recv], 10)
            (rec,) = owner.engine.find("node0/future.txt")
            assert rec.mtime_ns == MTIME_MAX_NS
            assert (recv.root / "node0" / "future.txt").read_bytes() == b"from 2300"
            assert recv.engine.find("node0/plain.txt")
        finally:
            await stop_all([owner, recv])
        again = await make_node(tmp_path, "node0")
        await again.engine.start()
        try:
            assert await again.engine.rescan() == 0  # the clamped time is stable: no new seq
            found = again.engine.server.open_local(rec.sha256)  # and it is served
            assert found is not None
            found.file.close()
        finally:
            await stop_all([again])


class TestAnEditThatKeptItsMtime:
    """Issue 14: `cp -p`, `rsync -t` or a skewed clock can leave an edited file with its old
    size and mtime; its inode or ctime still tells, and the edit is published."""

    @pytest.mark.parametrize("how", ["cp -p", "rsync -t"])
    async def test_the_edit_is_noticed(self, tmp_path: Path, how: str) -> None:
        nodes = await make_ring(tmp_path, 2, interval=3600.0)
        owner = nodes[0]
        path = owner.own / "same.txt"
        path.write_bytes(b"first version")
        await start_all(nodes)
        try:
            await pull_until(nodes, 20)
            seq = owner.engine.state.counter("node0")
            mtime = os.stat(path).st_mtime_ns
            if how == "cp -p":  # written in place, then the old time put back
                path.write_bytes(b"other version")
                os.utime(path, ns=(mtime, mtime))
            else:  # a new file with the old time, renamed over the old one
                tmp = owner.own / ".same.txt.tmp"
                tmp.write_bytes(b"other version")
                os.utime(tmp, ns=(mtime, mtime))
                os.replace(tmp, path)
            assert os.stat(path).st_mtime_ns == mtime
            assert await owner.engine.rescan() == 1
            assert owner.engine.state.counter("node0") == seq + 1
            await pull_until(nodes, 20)
            assert (nodes[1].root / "node0" / "same.txt").read_bytes() == b"other version"
        finally:
            await stop_all(nodes)
