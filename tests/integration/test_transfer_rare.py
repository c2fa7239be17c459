"""A full holder beside partial ones is asked only for blocks no partial holder has or is
fetching, from the middle of the longest stretch of them: receivers fetching from the owner
then fetch different blocks and pass them on, and the owner sends each block about once
(bench/lab_swarm_bench.py)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from pathlib import Path

from ring.wire import Connection, Handler, Message
from sync.blocks import DIGEST, LARGE_FILE, STALL, BlockPlan, block_count, block_size_for
from sync.engine import Peer
from sync.holder import Download, HolderWorker
from sync.manifest import FileRecord
from sync.messages import BlocksData, BlocksRequest, FileRequest
from sync.resume import Partial, bitmap, have_set
from sync.tracker import Transfers
from tests.integration.test_transfer_blocks import MiB, big_file, receivers_of_one_file, sha_of
from tests.sync_harness import make_node, stop_all
from tests.wire_client import connect


class TestRareBlocks:
    def test_the_owner_is_asked_inside_the_longest_stretch_nobody_has(self) -> None:
        plan = BlockPlan(16, start=0)
        plan.holds("part", {0, 1, 2, 3})
        assert [plan.claim("owner") for _ in range(3)] == [5, 6, 7]  # then on in order

    def test_a_run_stops_where_a_partial_holder_has_the_blocks(self) -> None:
        plan = BlockPlan(16, start=0)
        plan.holds("part", {0, 1, 2, 3, 12})
        assert plan.claim_run("owner", workers=1, most=16, least=16) == [5, 6, 7, 8, 9, 10, 11]
        assert plan.claim("owner") == 13  # 13-15 is the longest stretch left
        assert plan.claim_run("part", workers=2, most=16, allowed={0, 1, 2}) == [0, 1, 2]

    def test_receivers_start_at_different_points_of_a_stretch(self) -> None:
        firsts = []
        for start in range(0, 64, 8):
            plan = BlockPlan(64, start=start)
            plan.holds("part", {0})
            firsts.append(plan.claim("owner"))
        assert firsts == [8, 14, 20, 26, 32, 38, 44, 50]  # 1/8 to 7/8 in: not at its ends

    def test_blocks_a_partial_holder_has_are_left_to_it(self) -> None:
        now = [0.0]
        plan = BlockPlan(4, clock=lambda: now[0])
        plan.holds("part", {0, 1})
        assert [plan.claim("owner") for _ in range(3)] == [2, 3, None]
        assert plan.left_to_partials()
        assert plan.claim("part", allowed={0, 1}) == 0

    def test_the_owner_takes_them_once_nothing_has_come_for_a_while(self) -> None:
        now = [0.0]
        plan = BlockPlan(4, clock=lambda: now[0])
        plan.holds("part", {0, 1})
        assert [plan.claim("owner") for _ in range(3)] == [2, 3, None]
        now[0] = STALL / 2
        assert plan.done(2, "owner", 1)
        now[0] = STALL
        assert plan.claim("owner") is None  # a block came STALL / 2 ago
        now[0] = 2 * STALL
        assert plan.claim("owner") == 0

    def test_a_partial_holder_is_waited_for_only_while_it_keeps_up(self) -> None:
        now = [0.0]
        plan = BlockPlan(6, clock=lambda: now[0])
        plan.holds("slow", {0, 1})
        plan.holds("fast", {2})
        plan.measured("owner", 1_000_000, 1.0)
        assert [plan.claim("owner") for _ in range(4)] == [3, 4, 5, None]
        now[0] = STALL + 0.5
        assert plan.done(2, "fast", 1_500_000)  # 600 kB/s: more than half the owner's rate
        assert plan.claim("owner") is None
        plan.gone("fast")  # the slow one alone: nothing delivered in 2.5 s
        assert plan.claim("owner") == 0

    def test_or_once_the_partial_holder_is_gone(self) -> None:
        plan = BlockPlan(4)
        plan.holds("part", {0, 1})
        assert [plan.claim("owner") for _ in range(3)] == [2, 3, None]
        plan.gone("part")
        assert not plan.left_to_partials()
        assert plan.claim("owner") == 0

    def test_blocks_a_partial_holder_is_fetching_are_left_to_it_too(self) -> None:
        plan = BlockPlan(8)
        plan.holds("part", {0}, coming={1, 2, 3})
        taken = [plan.claim("owner") for _ in range(5)]
        assert taken[4] is None and sorted(i for i in taken if i is not None) == [4, 5, 6, 7]
        assert plan.claim("part", allowed={0}) == 0
        assert plan.claim("part", allowed={0}) is None  # not before it has them

    def test_what_a_stuck_holder_is_fetching_is_not_waited_for_long(self) -> None:
        now = [0.0]
        plan = BlockPlan(4, clock=lambda: now[0])
        plan.holds("part", {0}, coming={1, 2, 3})
        assert plan.claim("owner") is None
        now[0] = STALL / 2
        plan.holds("part", {0}, coming={1, 2, 3})  # what it has did not grow
        assert plan.elsewhere == {0, 1, 2, 3}
        now[0] = STALL
        assert plan.elsewhere == {0}
        plan.holds("part", {0, 1}, coming={2, 3})  # it grew again
        assert plan.elsewhere == {0, 1, 2, 3}

    def test_a_partial_holder_that_has_the_whole_file_now_is_no_partial_holder(
        self, tmp_path: Path
    ) -> None:
        rec = FileRecord("owner", "big.bin", 4 * 65536, 0, "ab" * 32, 1, False)
        hashes = bytes(32 * 4)
        plan = BlockPlan(4)
        partial = Partial(tmp_path, rec.sha256, rec.size, 65536, hashes)
        run = Download(rec, plan, partial, Transfers().begin("owner", "big.bin", rec.size))
        worker = HolderWorker(Peer("part", "127.0.0.1", 1), run, None, None)  # type: ignore[arg-type]
        bits = bitmap({0, 1}, 4)
        assert worker._holds(BlocksData(rec.sha256, rec.size, 65536, hashes, bits)) == {0, 1}
        assert plan.elsewhere == {0, 1}
        assert worker._holds(BlocksData(rec.sha256, rec.size, 65536, hashes)) is None
        assert plan.elsewhere == set()

    def test_what_this_node_fetches_is_what_it_says_is_coming(self) -> None:
        plan = BlockPlan(8)
        plan.claim_run("owner", workers=1, most=3)
        assert plan.in_flight() == {0, 1, 2}
        plan.done(1, "owner", 1)
        assert plan.in_flight() == {0, 2}


def uplink(bytes_per_second: float) -> Callable[[Handler], Handler]:
    """One uplink of `bytes_per_second` shared by every FILE reply of a server: each reply waits
    until the bytes queued before it and its own would have left (loopback is not the limit a
    LAN uplink is, so the owner's sending is what it can be measured by)."""
    free_at = 0.0

    def wrap(handler: Handler) -> Handler:
        async def paced(msg: Message, conn: Connection) -> Message | None:
            nonlocal free_at
            if isinstance(msg, FileRequest):
                now = time.monotonic()
                free_at = max(now, free_at) + (msg.length or 0) / bytes_per_second
                await asyncio.sleep(free_at - now)
            return await handler(msg, conn)

        return paced

    return wrap


async def test_four_receivers_of_a_new_file_ask_the_owner_for_it_about_once(
    tmp_path: Path,
) -> None:
    """Receivers that see each other as partial holders leave to each other what one of them
    has: the owner, behind a slow uplink, sends the file not much more than once."""
    size = 32 * MiB
    owner, nodes, sha = await receivers_of_one_file(tmp_path, size, 4, uplink(16 * MiB), True)
    try:
        await asyncio.gather(*(n.engine.pull_once() for n in nodes))
        for node in nodes:
            assert sha_of(node.root / "owner" / "big.bin") == sha
        assert owner.engine.server.sent < 1.5 * size, owner.engine.server.sent / size
    finally:
        await stop_all([owner, *nodes])


async def test_a_holder_asked_again_answers_without_its_list(tmp_path: Path) -> None:
    """A receiver asks each partial holder what it has every 0.2 s: after the first answer,
    with `have_only`, the answers leave out the list (32 KiB for a 256 MiB file) and tell
    what the holder has and is fetching."""
    node = await make_node(tmp_path, "holder", interval=3600.0)
    size = 2 * LARGE_FILE
    sha = big_file(node.own / "big.bin", size)
    block = block_size_for(size)
    zeros = hashlib.sha256(bytes(block)).digest()
    partial = Partial(tmp_path / "partials", "cd" * 32, 4 * block, block, zeros * 4)
    partial.open()
    partial.write(1, bytes(block))
    partial.fetching = lambda: {2, 3}
    node.engine.server.partials["cd" * 32] = partial
    await node.engine.start()
    conn = await connect("127.0.0.1", node.peer.port)
    try:
        first = await conn.exchange(BlocksRequest(sha, "holder", "big.bin", block))
        again = await conn.exchange(BlocksRequest(sha, "holder", "big.bin", block, True))
        assert isinstance(first, BlocksData) and isinstance(again, BlocksData)
        assert len(first.hashes) == DIGEST * block_count(size, block) and first.have is None
        assert (again.hashes, again.have, again.size) == (b"", None, size)
        fetching = await conn.exchange(BlocksRequest("cd" * 32, "holder", "x.bin", block, True))
        assert isinstance(fetching, BlocksData) and fetching.hashes == b""
        assert fetching.have is not None and fetching.coming is not None
        assert have_set(fetching.have, 4) == {1} and have_set(fetching.coming, 4) == {2, 3}
    finally:
        await conn.close()
        partial.close()
        await stop_all([node])
