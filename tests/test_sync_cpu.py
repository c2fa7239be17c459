"""How busy the host was between two samples (`sync/cpu.py`): the share, and real readings."""

from __future__ import annotations

import pytest

from sync.cpu import CpuSample, busy_share, sample


class TestBusyShare:
    def test_the_share_of_the_time_between_two_samples_that_was_busy(self) -> None:
        assert busy_share(CpuSample(10.0, 40.0), CpuSample(13.0, 44.0)) == pytest.approx(0.75)

    def test_no_time_between_the_samples_measures_nothing_busy(self) -> None:
        assert busy_share(CpuSample(10.0, 40.0), CpuSample(10.0, 40.0)) == 0.0

    def test_a_counter_that_went_back_gives_a_share_within_bounds(self) -> None:
        """/proc/stat counters may step back a little on some kernels (psutil notes it)."""
        assert busy_share(CpuSample(10.0, 40.0), CpuSample(9.0, 44.0)) == 0.0
        assert busy_share(CpuSample(10.0, 40.0), CpuSample(20.0, 44.0)) == 1.0


class TestSample:
    def test_this_host_gives_growing_times_with_busy_within_the_total(self) -> None:
        first = sample()
        sum(range(200_000))  # a little processor time between the two readings
        second = sample()
        assert 0.0 <= first.busy <= first.total
        assert 0.0 <= second.busy <= second.total
        # busy time only grows (up to float rounding); iowait, in the total, may step back
        assert second.busy >= first.busy - 1e-6
        assert 0.0 <= busy_share(first, second) <= 1.0
