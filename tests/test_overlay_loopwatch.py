"""LoopWatch: the worst lag is kept, lags over the bound are logged, at most once per quiet span."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from overlay.loopwatch import LoopWatch


class TestObserve:
    def test_keeps_the_worst_lag_and_warns_only_above_the_bound(self) -> None:
        watch = LoopWatch(warn=0.1, quiet=10.0)
        assert watch.observe(0.05, now=0.0) is None
        assert watch.observe(0.25, now=1.0) == "event loop woke 250 ms late"
        assert watch.observe(0.02, now=2.0) is None
        assert watch.worst == 0.25 and watch.late == 1

    def test_warnings_are_rate_limited_and_say_how_many_were_left_out(self) -> None:
        watch = LoopWatch(warn=0.1, quiet=10.0)
        assert watch.observe(0.2, now=0.0) is not None
        assert watch.observe(0.3, now=1.0) is None
        assert watch.observe(0.4, now=9.9) is None
        assert watch.observe(0.15, now=10.5) == (
            "event loop woke 150 ms late (2 more over 100 ms since the last)"
        )
        assert watch.late == 4

    def test_reset_forgets_the_worst(self) -> None:
        watch = LoopWatch()
        watch.observe(0.5, now=0.0)
        watch.reset()
        assert watch.worst == 0.0


class TestRun:
    async def test_a_blocking_callback_is_measured_and_logged(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        watch = LoopWatch(interval=0.01, warn=0.1)
        task = asyncio.ensure_future(watch.run())
        try:
            await asyncio.sleep(0.05)
            assert watch.worst < 0.1
            with caplog.at_level(logging.WARNING, logger="overlay.loopwatch"):
                time.sleep(0.3)  # the stall under test: nothing else may run meanwhile
                await asyncio.sleep(0.05)
            assert watch.worst >= 0.25
            assert any("ms late" in r.getMessage() for r in caplog.records)
        finally:
            task.cancel()
