"""Blocks without sockets: the plan that hands out blocks, block hashing, partial files."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest

from sync.blocks import (
    DIGEST,
    MIN_BLOCK,
    BlockCache,
    BlockPlan,
    block_count,
    block_range,
    hash_blocks,
    valid_block_size,
)
from sync.resume import Partial, prune_partials

BS = MIN_BLOCK


def blob(size: int, seed: int = 1) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}-{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


class TestBlockMath:
    def test_counts_and_ranges(self) -> None:
        assert block_count(0, BS) == 0
        assert block_count(1, BS) == 1
        assert block_count(BS, BS) == 1
        assert block_count(BS + 1, BS) == 2
        assert block_range(1, BS + 5, BS) == (BS, 5)

    def test_valid_sizes(self) -> None:
        assert valid_block_size(4 << 20)
        assert not valid_block_size(3 << 20)
        assert not valid_block_size(MIN_BLOCK // 2)
        assert not valid_block_size(32 << 20)

    def test_hash_blocks_matches_per_block_sha256(self, tmp_path: Path) -> None:
        data = blob(2 * BS + 10)
        path = tmp_path / "f"
        path.write_bytes(data)
        hashes = hash_blocks(path, len(data), BS)
        assert len(hashes) == 3 * DIGEST
        for i in range(3):
            offset, length = block_range(i, len(data), BS)
            want = hashlib.sha256(data[offset : offset + length]).digest()
            assert hashes[i * DIGEST : (i + 1) * DIGEST] == want

    def test_hash_blocks_refuses_a_short_file(self, tmp_path: Path) -> None:
        path = tmp_path / "f"
        path.write_bytes(b"x" * 10)
        with pytest.raises(OSError):
            hash_blocks(path, 20, BS)


class TestBlockPlan:
    def test_holders_take_the_next_block_in_turn(self) -> None:
        plan = BlockPlan(4)
        assert [plan.claim("a"), plan.claim("b"), plan.claim("a")] == [0, 1, 2]
        assert plan.done(0, "a", 10)
        assert plan.claim("a") == 3
        assert plan.served["a"] == 10

    def test_verified_blocks_are_never_handed_out(self) -> None:
        plan = BlockPlan(3, {0, 2})
        assert plan.claim("a") == 1
        assert plan.claim("b") == 1  # endgame: shared with a
        assert plan.claim("c") is None  # at most two fetchers per block

    def test_a_released_block_goes_to_another_holder(self) -> None:
        plan = BlockPlan(3)
        assert plan.claim("a") == 0
        assert plan.claim("a") == 1
        plan.release(0, "a")
        assert plan.claim("b") == 0

    def test_a_bad_block_bans_its_holder_and_frees_the_block(self) -> None:
        plan = BlockPlan(2)
        assert plan.claim("evil") == 0
        plan.failed(0, "evil")
        assert plan.claim("evil") is None
        assert plan.claim("good") == 0
        assert "evil" in plan.bad

    def test_runs_shrink_as_the_file_runs_out(self) -> None:
        plan = BlockPlan(40)
        first = plan.claim_run("a", workers=2, most=16)
        assert first == list(range(9))  # a quarter of what is left (39 // 4), capped by most
        second = plan.claim_run("b", workers=2, most=16)
        assert second[0] == 9 and len(second) == 7
        sizes = []
        while run := plan.claim_run("a", workers=2, most=16):
            sizes.append(len(run))
        assert sizes == sorted(sizes, reverse=True) and sizes[-1] == 1

    def test_a_run_stops_at_a_verified_block(self) -> None:
        plan = BlockPlan(40, {3})
        assert plan.claim_run("a", workers=1, most=16) == [0, 1, 2]

    def test_a_plan_may_start_mid_file_and_wrap(self) -> None:
        plan = BlockPlan(4, start=2)
        assert [plan.claim("a") for _ in range(4)] == [2, 3, 0, 1]
        plan.release(3, "a")
        assert plan.claim("b") == 3

    def test_a_partial_holder_claims_only_what_it_has(self) -> None:
        plan = BlockPlan(6)
        assert plan.claim_run("part", workers=1, most=16, allowed={2, 3, 5}) == [2, 3]
        assert plan.claim("full") == 0
        assert plan.claim("part", allowed={2, 3, 5}) == 5
        assert plan.claim("part", allowed={2, 3, 5}) is None  # endgame: 2, 3 and 5 are its own
        assert plan.claim_run("full", workers=1, most=16) == [1]

    def test_endgame_duplicate_counts_once(self) -> None:
        plan = BlockPlan(1)
        assert plan.claim("slow") == 0
        assert plan.claim("fast") == 0
        assert plan.done(0, "fast", 5)
        assert not plan.done(0, "slow", 5)
        assert plan.complete and plan.served == {"fast": 5}
        assert not plan.busy()


class TestBlockCache:
    async def test_concurrent_asks_hash_once(self, tmp_path: Path) -> None:
        data = blob(3 * BS)
        path = tmp_path / "f"
        path.write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        cache = BlockCache()
        lists = await asyncio.gather(*(cache.get(sha, BS, path, len(data)) for _ in range(5)))
        assert all(lst == lists[0] for lst in lists) and cache.computed == 1
        await cache.get(sha, BS, path, len(data))
        assert cache.computed == 1

    async def test_a_missing_file_raises_and_is_not_cached(self, tmp_path: Path) -> None:
        cache = BlockCache()
        with pytest.raises(OSError):
            await cache.get("0" * 64, BS, tmp_path / "gone", 10)
        with pytest.raises(OSError):
            await cache.get("0" * 64, BS, tmp_path / "gone", 10)


def make_partial(folder: Path, data: bytes) -> Partial:
    sha = hashlib.sha256(data).hexdigest()
    return Partial(folder, sha, len(data), BS, b"".join(block_hashes(data)))


def block_hashes(data: bytes) -> list[bytes]:
    return [
        hashlib.sha256(data[o : o + n]).digest()
        for o, n in (block_range(i, len(data), BS) for i in range(block_count(len(data), BS)))
    ]


def piece(data: bytes, index: int) -> memoryview:
    offset, length = block_range(index, len(data), BS)
    return memoryview(data[offset : offset + length])


class TestPartial:
    def test_out_of_order_blocks_make_the_whole_file(self, tmp_path: Path) -> None:
        data = blob(3 * BS + 7)
        part = make_partial(tmp_path, data)
        assert part.open() == set()
        for index in (2, 0, 3, 1):
            assert part.write(index, piece(data, index))
        assert not part.write(1, piece(data, 1))
        assert part.whole_ok
        path = part.finish(1_000_000_000)
        assert path.read_bytes() == data
        assert os.stat(path).st_mtime_ns == 1_000_000_000
        assert not part.record.exists()

    def test_resume_keeps_only_blocks_that_still_match(self, tmp_path: Path) -> None:
        data = blob(4 * BS)
        part = make_partial(tmp_path, data)
        part.open()
        for index in (0, 1, 3):
            part.write(index, piece(data, index))
        part.close()
        with open(part.data, "r+b") as f:  # damage block 1 behind the record's back
            f.seek(BS + 5)
            f.write(b"\xff")
        again = make_partial(tmp_path, data)
        assert again.open() == {0, 3}
        for index in (1, 2):
            again.write(index, piece(data, index))
        assert again.whole_ok
        assert again.finish(0).read_bytes() == data

    def test_a_record_for_other_content_is_ignored(self, tmp_path: Path) -> None:
        data = blob(2 * BS)
        part = make_partial(tmp_path, data)
        part.open()
        part.write(0, piece(data, 0))
        part.close()
        other = Partial(tmp_path, part.sha256, len(data), BS, b"\x00" * (2 * DIGEST))
        assert other.open() == set()
        other.discard()
        assert not other.data.exists() and not other.record.exists()

    def test_a_damaged_record_starts_over(self, tmp_path: Path) -> None:
        data = blob(2 * BS)
        part = make_partial(tmp_path, data)
        part.open()
        part.write(0, piece(data, 0))
        part.close()
        part.record.write_bytes(b"\xc1 not msgpack")
        assert make_partial(tmp_path, data).open() == set()

    def test_wrong_content_fails_the_whole_check(self, tmp_path: Path) -> None:
        data = blob(2 * BS)
        wrong = blob(2 * BS, seed=2)
        part = Partial(tmp_path, hashlib.sha256(data).hexdigest(), len(wrong), BS, b"")
        part.open()
        part.write(0, piece(wrong, 0))
        part.write(1, piece(wrong, 1))
        assert not part.whole_ok

    def test_prune_removes_unwanted_content_only(self, tmp_path: Path) -> None:
        for name in ("a" * 64 + ".part", "a" * 64 + ".blocks", "b" * 64 + ".part"):
            (tmp_path / name).write_bytes(b"x")
        prune_partials(tmp_path, {"a" * 64})
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "a" * 64 + ".blocks",
            "a" * 64 + ".part",
        ]
        prune_partials(tmp_path / "missing", set())
