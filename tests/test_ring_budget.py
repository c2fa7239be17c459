"""The frame budget: bytes of partial frames are charged before a frame takes them, the biggest
holder is shed at the bound, and a small frame always gets through."""

from __future__ import annotations

import pytest

from ring.errors import FrameMemoryFull
from ring.wire.budget import FrameBudget, SendBudget
from ring.wire.framing import HEADER, FrameParser


class TestFrameBudget:
    def test_charges_and_releases(self) -> None:
        budget = FrameBudget(100)
        hold = budget.hold(lambda: None)
        hold.charge(30)
        hold.charge(20)
        assert budget.held == 50 and hold.bytes == 50
        hold.release()
        assert budget.held == 0 and budget.peak == 50

    def test_at_the_bound_the_biggest_other_holder_is_cut(self) -> None:
        cut: list[str] = []
        budget = FrameBudget(100)
        big = budget.hold(lambda: cut.append("big"))
        small = budget.hold(lambda: cut.append("small"))
        asking = budget.hold(lambda: cut.append("asking"))
        big.charge(60)
        small.charge(30)
        asking.charge(20)
        assert cut == ["big"]
        assert big.bytes == 0 and budget.held == 50 and budget.shed == 1
        assert budget.peak <= 100

    def test_the_asking_holder_is_refused_when_it_is_the_biggest(self) -> None:
        cut: list[str] = []
        budget = FrameBudget(100)
        other = budget.hold(lambda: cut.append("other"))
        asking = budget.hold(lambda: cut.append("asking"))
        other.charge(30)
        asking.charge(60)
        with pytest.raises(FrameMemoryFull):
            asking.charge(20)
        assert cut == [] and asking.bytes == 0 and budget.held == 30

    def test_a_small_frame_gets_through_a_full_budget(self) -> None:
        budget = FrameBudget(100)
        hogs = [budget.hold(lambda: None) for _ in range(4)]
        for hog in hogs:
            hog.charge(25)
        member = budget.hold(lambda: None)
        member.charge(10)
        assert member.bytes == 10 and budget.held <= 100

    def test_a_closed_holder_leaves_the_budget(self) -> None:
        budget = FrameBudget(100)
        gone = budget.hold(lambda: None)
        gone.charge(90)
        gone.close()
        asking = budget.hold(lambda: None)
        asking.charge(100)
        assert budget.held == 100 and budget.shed == 0

    def test_a_shed_holder_drops_its_frame_at_once_and_reads_no_more(self) -> None:
        budget = FrameBudget(100)
        big = budget.hold(lambda: None)
        big.frame = FrameParser()
        big.frame.feed(HEADER.pack(1000) + bytes(60))
        big.charge(64)
        budget.hold(lambda: None).charge(50)
        assert big.shed and big.frame.buffered == 0 and not big.frame.mid_frame
        with pytest.raises(FrameMemoryFull):
            big.charge(1)


class TestSendBudget:
    def test_full_chunks_while_there_is_room_then_small_ones(self) -> None:
        budget = SendBudget(limit=100, small=10)
        assert [budget.take(40) for _ in range(4)] == [40, 40, 10, 10]
        assert budget.held == 100 and budget.peak == 100

    def test_a_small_want_is_granted_whole(self) -> None:
        budget = SendBudget(limit=100, small=10)
        budget.take(100)
        assert budget.take(5) == 5

    def test_given_back_grants_make_room_again(self) -> None:
        budget = SendBudget(limit=100, small=10)
        first = budget.take(80)
        assert budget.take(80) == 10
        budget.give(first)
        assert budget.take(80) == 80 and budget.held == 90
