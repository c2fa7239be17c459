"""Delta transfer without sockets: block sizes, one-pass hashing, stamps, the block store and
where a download's blocks may come from on this node (`blocks.py`, `hashing.py`,
`blockstore.py`, `reuse.py`)."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgpack
import pytest

from sync.blocks import (
    DIGEST,
    FIRST_BLOCK,
    LARGE_FILE,
    MAX_BLOCK,
    BlockPlan,
    block_count,
    block_size_for,
    hash_blocks,
)
from sync.blockstore import BlockStore, Place, block_key
from sync.hashing import fresh, hash_file, stamp_of
from sync.resume import Partial
from sync.reuse import Run, candidates, copy_blocks, runs
from sync.state import State

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


def digests(data: bytes, block_size: int) -> bytes:
    return b"".join(
        hashlib.sha256(data[o : o + block_size]).digest() for o in range(0, len(data), block_size)
    )


class TestBlockSize:
    def test_blocks_grow_with_the_file_as_syncthings_do(self) -> None:
        assert block_size_for(0) == FIRST_BLOCK == 128 * KiB
        assert block_size_for(64 * MiB) == 128 * KiB
        assert block_size_for(250 * MiB - 1) == 128 * KiB
        assert block_size_for(250 * MiB) == 256 * KiB
        assert block_size_for(256 * MiB) == 256 * KiB
        assert block_size_for(1 * GiB) == 1 * MiB
        assert block_size_for(1 << 50) == MAX_BLOCK

    @pytest.mark.parametrize("size", [64 * MiB, 100 * MiB, 300 * MiB, 999 * MiB, 1 * GiB])
    def test_a_one_mib_change_costs_at_most_three_mib(self, size: int) -> None:
        block = block_size_for(size)
        assert (MiB // block + 1) * block <= 3 * MiB  # an unaligned MiB touches one block more
        assert 1000 <= block_count(size, block) < 2000 or block == FIRST_BLOCK


class TestHashOnce:
    def test_one_read_gives_the_hash_and_the_block_list(self, tmp_path: Path) -> None:
        data = os.urandom(LARGE_FILE + 3 * FIRST_BLOCK + 17)
        path = tmp_path / "f"
        path.write_bytes(data)
        got = hash_file(path)
        assert got.sha256 == hashlib.sha256(data).hexdigest()
        assert got.block_size == block_size_for(len(data))
        assert got.hashes == digests(data, got.block_size)
        assert got.hashes == hash_blocks(path, len(data), got.block_size)
        assert got.stamp == stamp_of(os.stat(path))

    def test_a_small_file_has_no_list(self, tmp_path: Path) -> None:
        (tmp_path / "f").write_bytes(b"x" * 1000)
        got = hash_file(tmp_path / "f")
        assert (got.block_size, got.hashes, got.size) == (0, b"", 1000)


class TestStamps:
    def test_an_edit_keeping_size_and_mtime_is_not_fresh(self, tmp_path: Path) -> None:
        path = tmp_path / "f"
        path.write_bytes(b"one")
        before = stamp_of(os.stat(path))
        path.write_bytes(b"two")
        os.utime(path, ns=(before[1], before[1]))
        after = stamp_of(os.stat(path))
        assert after[:2] == before[:2]
        assert not fresh(before, after)
        assert fresh(before, after, ctime=False)  # serving looks at size, mtime and inode only
        assert fresh(after, after)

    def test_an_entry_with_no_inode_is_judged_by_size_and_mtime(self) -> None:
        assert fresh((3, 4, 0, 0), (3, 4, 99, 100))
        assert not fresh((3, 5, 0, 0), (3, 4, 99, 100))
        assert not fresh((3, 4, 98, 100), (3, 4, 99, 100), ctime=False)

    def test_the_state_keeps_stamps(self, tmp_path: Path) -> None:
        state = State(tmp_path)
        state.cache_put("me/a", 3, 4, "5" * 64, (6, 7))
        assert state.cache_get("me/a", (3, 4, 6, 7)) == (3, 4, "5" * 64)
        assert state.cache_get("me/a", (3, 4, 6, 8)) is None
        assert state.cached("me/") == {"me/a": ((3, 4, 6, 7), "5" * 64)}

    def test_a_cache_from_before_stamps_is_kept(self, tmp_path: Path) -> None:
        db = sqlite3.connect(tmp_path / "sync.db")
        db.execute(
            "CREATE TABLE hash_cache(rel TEXT PRIMARY KEY, size INTEGER NOT NULL, "
            "mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL)"
        )
        db.execute("INSERT INTO hash_cache VALUES ('me/a', 3, 4, ?)", ("5" * 64,))
        db.commit()
        db.close()
        state = State(tmp_path)
        assert state.cache_get("me/a", (3, 4, 6, 7)) == (3, 4, "5" * 64)


class TestBlockStore:
    def test_lists_are_kept_indexed_and_pruned_with_their_content(self, tmp_path: Path) -> None:
        state = State(tmp_path)
        store = state.blocks
        data = os.urandom(3 * FIRST_BLOCK)
        hashes = digests(data, FIRST_BLOCK)
        state.cache_put("me/a", len(data), 1, "a" * 64)
        store.put("a" * 64, len(data), FIRST_BLOCK, hashes)
        store.put("a" * 64, len(data), FIRST_BLOCK, hashes)  # kept once
        listed = store.get("a" * 64)
        assert listed is not None and listed.hashes == hashes
        key = block_key(hashes[DIGEST : 2 * DIGEST])
        assert store.places({key}) == {key: [Place("a" * 64, len(data), FIRST_BLOCK, 1)]}
        assert store.prune() == 0
        state.cache_drop("me/a")
        assert store.prune() == 1
        assert store.get("a" * 64) is None and store.places({key}) == {}

    def test_a_list_of_the_wrong_length_is_refused(self, tmp_path: Path) -> None:
        store = BlockStore(sqlite3.connect(":memory:"))
        with pytest.raises(ValueError):
            store.put("a" * 64, 3 * FIRST_BLOCK, FIRST_BLOCK, b"\x00" * DIGEST)

    def test_a_common_block_is_looked_up_once_in_a_few_lists_only(self, tmp_path: Path) -> None:
        store = BlockStore(sqlite3.connect(":memory:"))
        for i in range(6):
            zeros = digests(bytes(10 * FIRST_BLOCK), FIRST_BLOCK) + digests(bytes([i]), FIRST_BLOCK)
            store.put(f"{i}" * 64, 10 * FIRST_BLOCK + 1, FIRST_BLOCK, zeros)
        key = block_key(zeros[:DIGEST])
        found = store.places({key})[key]
        assert len(found) == 4 and len({p.sha256 for p in found}) == 4
        assert all(p.index == 0 for p in found)  # a list's first place for the block


class TestCandidates:
    BS = FIRST_BLOCK

    def test_the_old_version_at_the_same_offset_comes_first(self) -> None:
        data = os.urandom(4 * self.BS)
        hashes = digests(data, self.BS)
        key = block_key(hashes[DIGEST : 2 * DIGEST])
        elsewhere = Place("e" * 64, 9 * self.BS, self.BS, 7)
        shifted = Place("o" * 64, 4 * self.BS, self.BS, 3)
        same = Place("o" * 64, 4 * self.BS, self.BS, 1)
        found = candidates(
            hashes, len(data), self.BS, set(), {key: [elsewhere, shifted, same]}, "o" * 64
        )
        assert found == {1: [same, shifted, elsewhere]}

    def test_blocks_had_or_of_another_length_are_left_out(self) -> None:
        data = os.urandom(2 * self.BS + 10)
        hashes = digests(data, self.BS)
        last = block_key(hashes[2 * DIGEST :])
        first = block_key(hashes[:DIGEST])
        places = {
            last: [Place("x" * 64, 5 * self.BS, self.BS, 0)],  # a whole block: wrong length
            first: [Place("x" * 64, 5 * self.BS, self.BS, 2)],
        }
        assert candidates(hashes, len(data), self.BS, {0}, places, None) == {}

    def test_runs_join_neighbours_in_one_source(self) -> None:
        size, bs = 10 * self.BS, self.BS
        chosen = {
            2: Place("a" * 64, size, bs, 2),
            3: Place("a" * 64, size, bs, 3),
            4: Place("a" * 64, size, bs, 9),  # not next to 3 in the source
            5: Place("b" * 64, size, bs, 6),
            7: Place("b" * 64, size, bs, 8),  # not next to 5 in the download
        }
        assert runs(chosen, size, bs) == [
            Run(2, 2, "a" * 64, 2 * bs),
            Run(4, 1, "a" * 64, 9 * bs),
            Run(5, 1, "b" * 64, 6 * bs),
            Run(7, 1, "b" * 64, 8 * bs),
        ]
        whole = {i: Place("a" * 64, size, bs, i) for i in range(10)}
        assert [r.count for r in runs(whole, size, bs, most=4 * bs)] == [4, 4, 2]


class TestCopy:
    def test_only_blocks_that_still_match_are_copied(self, tmp_path: Path) -> None:
        bs = FIRST_BLOCK
        old = os.urandom(6 * bs)
        new = bytearray(old)
        new[2 * bs + 5] ^= 1  # block 2 changed
        state = State(tmp_path / "state")
        (tmp_path / "me").mkdir()
        (tmp_path / "me" / "f").write_bytes(old)
        fh = hash_file(tmp_path / "me" / "f")
        state.cache_put("me/f", fh.size, fh.mtime_ns, fh.sha256, fh.stamp[2:])
        places = {
            block_key(d): [Place(fh.sha256, len(old), bs, i)]
            for i, d in enumerate(
                digests(old, bs)[k : k + DIGEST] for k in range(0, 6 * DIGEST, DIGEST)
            )
        }
        sha = hashlib.sha256(new).hexdigest()
        part = Partial(tmp_path / "partial", sha, len(new), bs, digests(bytes(new), bs))
        part.open()
        found = candidates(part.hashes, len(new), bs, set(), places, fh.sha256)
        assert sorted(found) == [0, 1, 3, 4, 5]
        with open(tmp_path / "me" / "f", "r+b") as f:  # changed since, size and mtime kept
            f.seek(4 * bs)
            f.write(bytes(2 * bs))
        os.utime(tmp_path / "me" / "f", ns=(fh.mtime_ns, fh.mtime_ns))
        rows = state.cache_by_hashes({fh.sha256})
        got = copy_blocks(tmp_path, rows, "me/f", part, found)
        assert got == {0, 1, 3}
        assert part.verified == {0, 1, 3}
        part.close()


class TestRunsInBytes:
    def test_a_measured_holder_asks_for_at_least_the_least(self) -> None:
        plan = BlockPlan(100)
        plan.measured("a", 100, 1.0)
        assert len(plan.claim_run("a", workers=1, most=64, least=40)) == 49  # half of 99 left
        assert len(plan.claim_run("a", workers=1, most=64, least=40)) == 40  # 25 wanted
        assert len(plan.claim_run("a", workers=1, most=64, least=40)) == 11  # what is left

    def test_duplicates_start_where_the_tail_begins(self) -> None:
        plan = BlockPlan(20, set(range(10)), tail=10)
        assert plan.claim_run("slow", workers=2, most=64, least=10) == list(range(10, 20))
        assert plan.claim("fast") == 10


class TestPartialRuns:
    def test_a_run_of_blocks_is_written_at_once_and_hashed_beside(self, tmp_path: Path) -> None:
        bs = FIRST_BLOCK
        data = os.urandom(5 * bs + 3)
        sha = hashlib.sha256(data).hexdigest()
        with ThreadPoolExecutor(2) as digester:
            part = Partial(tmp_path, sha, len(data), bs, digests(data, bs), digester)
            part.open()
            assert part.write(3, data[3 * bs :]) == 2 * bs + 3
            assert part.write(0, data[: 4 * bs]) == 3 * bs  # block 3 was there already
            assert part.write(1, data[bs : 2 * bs]) == 0
            assert part.whole_ok
        assert part.finish(0).read_bytes() == data

    def test_the_record_is_rewritten_once_a_second_and_at_close(self, tmp_path: Path) -> None:
        bs = FIRST_BLOCK
        data = os.urandom(3 * bs)
        part = Partial(tmp_path, hashlib.sha256(data).hexdigest(), len(data), bs, digests(data, bs))
        part.open()
        part.write(0, data[:bs])
        part.write(1, data[bs : 2 * bs])
        assert msgpack.unpackb(part.record.read_bytes())["verified"] == [0]
        part.close()
        assert msgpack.unpackb(part.record.read_bytes())["verified"] == [0, 1]
