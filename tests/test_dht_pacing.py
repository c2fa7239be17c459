"""Pacing: the token bucket's schedule, and a pacer's bound on requests in flight."""

from __future__ import annotations

import asyncio

import pytest

from dht.pacing import Budget, Pacer, TokenBucket


class TestTokenBucket:
    def test_a_burst_goes_at_once_then_one_token_per_interval(self) -> None:
        bucket = TokenBucket(rate=10.0, burst=3, now=0.0)
        waits = [bucket.reserve(0.0) for _ in range(6)]
        assert waits == pytest.approx([0.0, 0.0, 0.0, 0.1, 0.2, 0.3])

    def test_tokens_accrue_with_time_up_to_the_burst(self) -> None:
        bucket = TokenBucket(rate=10.0, burst=2, now=0.0)
        assert [bucket.reserve(0.0) for _ in range(2)] == [0.0, 0.0]
        assert bucket.reserve(0.1) == 0.0
        assert [bucket.reserve(100.0) for _ in range(3)] == pytest.approx([0.0, 0.0, 0.1])

    def test_rate_and_burst_must_be_positive(self) -> None:
        with pytest.raises(ValueError):
            TokenBucket(rate=0.0, burst=1, now=0.0)


class TestPacer:
    async def test_never_more_in_flight_than_the_budget(self) -> None:
        pacer = Pacer(Budget(in_flight=3, per_second=1e6, burst=100))
        peak = 0

        async def request() -> None:
            nonlocal peak
            async with pacer.slot():
                peak = max(peak, pacer.in_flight)
                await asyncio.sleep(0.01)

        await asyncio.gather(*(request() for _ in range(20)))
        assert peak == 3 and pacer.in_flight == 0

    async def test_requests_past_the_burst_wait_for_their_tokens(self) -> None:
        loop = asyncio.get_running_loop()
        pacer = Pacer(Budget(in_flight=100, per_second=50.0, burst=5), clock=loop.time)
        started: list[float] = []

        async def request() -> None:
            async with pacer.slot():
                started.append(loop.time())

        begin = loop.time()
        await asyncio.gather(*(request() for _ in range(10)))
        assert max(started) - begin >= 5 / 50.0 * 0.9
