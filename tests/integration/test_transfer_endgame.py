"""A slow holder beside a fast one (the lab's TestSlowHolder, on loopback): once every block is
in, the fetch ends at once, cutting the slow holder's requests; and the slow holder, cut
mid-request, logs nothing loud and keeps serving."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ring.wire import Connection, Handler, Message, expect
from sync.blocks import BlockPlan
from sync.messages import FileData, FileRequest
from tests.integration.test_transfer_blocks import MiB, holders_and_receiver, sha_of
from tests.sync_harness import stop_all
from tests.waiting import wait_for
from tests.wire_client import request

pytestmark = pytest.mark.integration


class Uplink:
    """A holder's slow uplink: each FILE reply waits until a link of `rate` bytes/s would have
    carried it (the replies share the link), plus `delay`; counts the replies begun and ended."""

    def __init__(self, rate: float, delay: float = 0.0) -> None:
        self.rate, self.delay = rate, delay
        self.free_at = 0.0
        self.begun = self.ended = 0

    def __call__(self, handler: Handler) -> Handler:
        async def serve(msg: Message, conn: Connection) -> Message | None:
            if not isinstance(msg, FileRequest):
                return await handler(msg, conn)
            self.begun += 1
            try:
                now = time.monotonic()
                self.free_at = max(now, self.free_at) + (msg.length or 0) / self.rate
                await asyncio.sleep(self.free_at - now + self.delay)
                return await handler(msg, conn)
            finally:
                self.ended += 1

        return serve


class TestSlowHolderOnLoopback:
    @pytest.mark.parametrize(
        ("size", "uplink"),
        [
            (6 * MiB, lambda: Uplink(rate=1e9, delay=2.0)),  # two blocks, a late holder
            (24 * MiB, lambda: Uplink(rate=1e6)),  # six blocks, 8 Mbit/s
        ],
        ids=["6MiB-late", "24MiB-8mbit"],
    )
    async def test_the_fetch_ends_with_the_fast_holder(
        self,
        tmp_path: Path,
        caplog: pytest.LogCaptureFixture,
        size: int,
        uplink: Callable[[], Uplink],
    ) -> None:
        holders, recv, sha = await holders_and_receiver(tmp_path, size, 2)
        fast, slow = holders
        slowness = uplink()
        slow.server.wrap(slowness)
        caplog.set_level(logging.INFO)
        try:
            started = time.monotonic()
            await asyncio.wait_for(recv.engine.pull_once(), 30)
            took = time.monotonic() - started
            assert sha_of(recv.root / "owner" / "big.bin") == sha
            assert took < 1.5, took
            assert fast.engine.server.sent >= size
            assert slow.engine.server.sent == 0

            # the slow holder's cut replies end quietly, and it still serves
            await wait_for(lambda: slowness.ended == slowness.begun, 20)
            loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
            assert not loud, [r.getMessage() for r in loud]
            slowness.delay, slowness.rate = 0.0, 1e9
            ask = FileRequest(sha, "holder1", "copy.bin", 0, 1000)
            reply = expect(await request(slow.peer.host, slow.peer.port, ask, 10), FileData)
            assert reply.size == 1000
        finally:
            await stop_all([*holders, recv])


class Clock:
    """A clock tests move by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class TestEndgameRules:
    def test_a_slow_holder_leaves_a_fast_ones_blocks_alone_until_it_goes_quiet(self) -> None:
        clock = Clock()
        plan = BlockPlan(2, clock=clock)
        assert [plan.claim("fast"), plan.claim("fast")] == [0, 1]
        plan.measured("fast", 4 * MiB, 0.02)
        assert plan.claim("slow") is None
        clock.now += 1.0
        assert plan.claim("slow") is None
        clock.now += 1.5  # nothing from fast for 2.5 s
        assert plan.claim("slow") == 0

    def test_a_faster_holder_duplicates_a_slow_ones_block(self) -> None:
        plan = BlockPlan(2, clock=Clock())
        assert plan.claim("slow") == 0
        assert plan.claim("fast") == 1
        plan.measured("fast", 4 * MiB, 0.02)
        assert plan.done(1, "fast", 4 * MiB)
        assert plan.claim("fast") == 0  # slow is not measured: counts as slowest
        plan.measured("slow", 4 * MiB, 4.0)
        assert plan.claim("slow") is None

    def test_measured_holders_never_duplicate_a_faster_ones_block(self) -> None:
        plan = BlockPlan(3, {0}, clock=Clock())
        plan.measured("a", 100, 1.0)
        plan.measured("b", 50, 1.0)
        assert [plan.claim("a"), plan.claim("b")] == [1, 2]
        assert plan.claim("b") is None
        assert plan.claim("a") == 2

    def test_runs_follow_measured_rates(self) -> None:
        plan = BlockPlan(200, clock=Clock())
        plan.measured("fast", 90, 1.0)
        plan.measured("slow", 10, 1.0)
        slow = plan.claim_run("slow", workers=2, most=64)
        fast = plan.claim_run("fast", workers=2, most=64)
        assert len(slow) == 9  # 199 left: 10% of it, halved
        assert len(fast) == 64  # 90% of it, halved (89), capped by most
