"""A full holder beside partial ones is asked for blocks no partial holder has, from the middle
of the longest stretch of them: receivers fetching from the owner then fetch different blocks,
and the owner sends fewer copies (bench/transfer_bench.py (c))."""

from __future__ import annotations

from sync.blocks import BlockPlan


class TestRareBlocks:
    def test_the_owner_is_asked_inside_the_longest_stretch_nobody_has(self) -> None:
        plan = BlockPlan(16, start=0)
        plan.holds("part", {0, 1, 2, 3})
        assert [plan.claim("owner") for _ in range(3)] == [7, 8, 9]  # then on in order

    def test_a_run_stops_where_a_partial_holder_has_the_blocks(self) -> None:
        plan = BlockPlan(16, start=1)
        plan.holds("part", {0, 1, 2, 3, 8})
        assert plan.claim_run("owner", workers=2, most=16) == [12, 13, 14, 15]
        assert plan.claim("owner") == 6  # 4-7 is the longest stretch left
        assert plan.claim_run("part", workers=2, most=16, allowed={0, 1, 2}) == [1, 2]  # from start

    def test_receivers_start_at_different_points_of_a_stretch(self) -> None:
        firsts = set()
        for start in range(3):
            plan = BlockPlan(16, start=start)
            plan.holds("part", {0})
            firsts.add(plan.claim("owner"))
        assert firsts == {4, 8, 12}

    def test_blocks_only_partial_holders_have_go_to_the_owner_last(self) -> None:
        plan = BlockPlan(4)
        plan.holds("part", {0, 1})
        assert [plan.claim("owner") for _ in range(4)] == [2, 3, 0, 1]
