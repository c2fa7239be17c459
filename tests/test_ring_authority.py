"""Who may hand a node a view (`ring/authority.py`), driven with plain views."""

from __future__ import annotations

from ring.authority import Vouch, may_update, takeover, vouch
from ring.membership import Member, View, admit, remove

A, B, C, D = (Member(k, k, "127.0.0.1", 9000 + i) for i, k in enumerate("abcd"))
RING = View("r", 5, (A, B, C, D))


class TestOurRing:
    def test_the_leader_may_change_it_and_hand_it_over(self) -> None:
        assert vouch(RING, admit(RING, Member("e", "e", "h", 1)), "a") is Vouch.ACCEPT
        assert vouch(RING, remove(RING, ["a"]), "a") is Vouch.ACCEPT

    def test_any_other_member_is_news_to_check_with_the_leader(self) -> None:
        assert vouch(RING, View("r", 6, (C, A, B, D)), "c") is Vouch.CONSULT
        assert vouch(RING, remove(RING, ["d"]), "c") is Vouch.CONSULT

    def test_a_takeover_is_the_lowest_survivor_leading_a_view_without_those_before(self) -> None:
        assert takeover(RING, remove(RING, ["a"]), "b")
        assert takeover(RING, remove(RING, ["a", "b"]), "c")
        assert not takeover(RING, remove(RING, ["a"]), "c")  # b leads that view
        assert not takeover(RING, View("r", 6, (C, A, B, D)), "c")  # a is still there
        assert not takeover(RING, View("r", 6, (C, D)), "b")  # b does not lead it

    def test_a_stranger_to_our_view_cannot_take_over(self) -> None:
        outsider = Member("z", "z", "h", 1)
        assert not takeover(RING, View("r", 9, (outsider, C, D)), "z")

    def test_only_a_leader_pushes_an_update(self) -> None:
        assert may_update(RING, remove(RING, ["c"]), "a")
        assert may_update(RING, remove(RING, ["a"]), "b")
        assert not may_update(RING, remove(RING, ["c"]), "b")
        assert not may_update(RING, View("r", 9, (C, D)), "b")


class TestAnotherRing:
    def test_only_its_own_leader_may_hand_it_over(self) -> None:
        other = View("q", 2, (D, A))
        assert vouch(RING, other, "d") is Vouch.ACCEPT
        assert vouch(RING, other, "a") is Vouch.REFUSE
        assert vouch(View("", 0, (A,)), other, "a") is Vouch.REFUSE
