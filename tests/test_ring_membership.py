"""Membership decisions without sockets: views, changes, leaders, successors, which view wins."""

from __future__ import annotations

import pytest

from ring.errors import BadRequest, LocalProtocolError
from ring.membership import (
    MAX_MEMBERS,
    Member,
    Verdict,
    View,
    acting_leader,
    admit,
    found,
    judge,
    label,
    remove,
    renumbering,
    supersedes,
    wins_merge,
)
from ring.status import Status


def member(i: int) -> Member:
    return Member(f"k{i}", f"node{i}", "127.0.0.1", 9000 + i)


def ring(count: int, version: int = 1, ring_id: str = "r") -> View:
    return View(ring_id, version, tuple(member(i) for i in range(count)))


class TestView:
    def test_positions_are_ring_ids_and_leader_is_first(self) -> None:
        view = ring(4)
        assert [view.position(f"k{i}") for i in range(4)] == [0, 1, 2, 3]
        assert view.position("nobody") is None
        assert view.leader == member(0)

    def test_prev_and_next_wrap_around(self) -> None:
        view = ring(3)
        assert view.next_of("k2") == member(0)
        assert view.prev_of("k0") == member(2)
        assert view.next_of("k0") == member(1) and view.prev_of("k1") == member(0)

    def test_one_node_ring_has_no_neighbours(self) -> None:
        view = ring(1)
        assert view.next_of("k0") is None and view.prev_of("k0") is None
        assert view.successors("k0") == []

    def test_absent_key_has_no_neighbours(self) -> None:
        assert ring(3).next_of("zz") is None and ring(3).prev_of("zz") is None

    def test_successor_list_wraps_and_stops_before_self(self) -> None:
        assert ring(6).successors("k4", 3) == [member(5), member(0), member(1)]
        assert ring(3).successors("k1", 3) == [member(2), member(0)]

    def test_wire_round_trip(self) -> None:
        view = View("ring-ünï", 7, (member(0), Member("k1", "JOIN.txt END", "10.0.0.2", 8091)))
        assert View.from_wire(view.to_wire()) == view

    @pytest.mark.parametrize(
        "body",
        [
            [],
            {"ring_id": "", "version": 1, "members": [member(0).to_wire()]},
            {"ring_id": "r", "version": -1, "members": [member(0).to_wire()]},
            {"ring_id": "r", "version": True, "members": [member(0).to_wire()]},
            {"ring_id": "r", "version": 1, "members": []},
            {"ring_id": "r", "version": 1, "members": [member(0).to_wire()] * 2},
            {"ring_id": "r", "version": 1, "members": [{"key": "k", "name": "n", "host": "h"}]},
            {"ring_id": "r", "version": 1, "members": [{**member(0).to_wire(), "port": 0}]},
            {"ring_id": "r", "version": 1, "members": [{**member(0).to_wire(), "key": ""}]},
            {"ring_id": "r", "version": 1, "members": [{**member(0).to_wire(), "host": 5}]},
            {"ring_id": "r", "version": 1, "members": [member(0).to_wire()] * (MAX_MEMBERS + 1)},
        ],
    )
    def test_bad_views_from_the_wire_are_the_peers_fault(self, body: object) -> None:
        with pytest.raises(BadRequest):
            View.from_wire(body)


class TestChanges:
    def test_found_makes_a_one_node_ring_ordered_by_time(self) -> None:
        early, late = found(member(5), 1_000), found(member(1), 2_000)
        assert early.members == (member(5),) and early.version == 1
        assert wins_merge((early.ring_id, "k5"), (late.ring_id, "k1"))

    def test_join_appends_so_nobody_renumbers(self) -> None:
        view = admit(ring(3), member(7))
        assert view.members[-1] == member(7) and view.version == 2
        assert [view.position(f"k{i}") for i in range(3)] == [0, 1, 2]

    def test_join_again_at_the_same_address_changes_nothing(self) -> None:
        view = ring(3)
        assert admit(view, member(1)) is view

    def test_join_again_at_a_new_address_moves_to_the_end(self) -> None:
        moved = Member("k1", "node1", "127.0.0.1", 1234)
        view = admit(ring(3), moved)
        assert view.members == (member(0), member(2), moved)

    def test_a_new_key_at_an_old_address_replaces_the_old_node(self) -> None:
        reborn = Member("k1-new", "node1", "127.0.0.1", 9001)
        view = admit(ring(3), reborn)
        assert view.members == (member(0), member(2), reborn)

    def test_leave_renumbers_the_nodes_after_the_leaver(self) -> None:
        old = ring(5)
        new = remove(old, ["k2"])
        assert new.version == 2
        assert [renumbering(old, new, f"k{i}") for i in range(5)] == [
            (0, 0),
            (1, 1),
            (2, None),
            (3, 2),
            (4, 3),
        ]

    def test_leader_leaving_hands_over_to_the_next(self) -> None:
        new = remove(ring(3), ["k0"])
        assert new.leader == member(1) and new.position("k1") == 0

    def test_failures_remove_several_at_once(self) -> None:
        new = remove(ring(6), ["k0", "k3", "not-a-member"])
        assert [m.key for m in new.members] == ["k1", "k2", "k4", "k5"]
        assert new.version == 2

    def test_removing_nobody_keeps_the_view(self) -> None:
        view = ring(3)
        assert remove(view, ["zz"]) is view

    def test_removing_everyone_is_our_bug(self) -> None:
        with pytest.raises(LocalProtocolError):
            remove(ring(2), ["k0", "k1"])

    def test_renumbering_across_rings_has_no_before(self) -> None:
        assert renumbering(ring(3, ring_id="a"), ring(3, ring_id="b"), "k2") == (None, 2)


class TestWhoDecides:
    def test_acting_leader_is_lowest_not_dead(self) -> None:
        view = ring(5)
        assert acting_leader(view, []) == member(0)
        assert acting_leader(view, ["k0"]) == member(1)
        assert acting_leader(view, ["k0", "k1", "k3"]) == member(2)
        assert acting_leader(view, [f"k{i}" for i in range(5)]) is None

    def test_newer_version_of_the_same_ring_wins(self) -> None:
        assert supersedes(ring(3, 5), ring(3, 4))
        assert not supersedes(ring(3, 4), ring(3, 4))
        assert not supersedes(ring(3, 3), ring(3, 4))

    def test_another_ring_never_supersedes_whatever_its_version(self) -> None:
        assert not supersedes(ring(3, 99, "a"), ring(3, 1, "b"))

    def test_the_older_ring_wins_a_merge_and_only_one_side_wins(self) -> None:
        assert wins_merge(("0001-a", "z"), ("0002-b", "a"))
        assert not wins_merge(("0002-b", "a"), ("0001-a", "z"))
        assert not wins_merge(label(ring(3)), label(ring(3)))

    def test_halves_of_a_split_ring_are_told_apart_by_their_leaders(self) -> None:
        view = ring(4)
        left = View("r", 5, view.members[:2])
        right = View("r", 7, view.members[2:])
        assert label(left) == ("r", "k0") and label(right) == ("r", "k2")
        assert wins_merge(label(left), label(right)) and not wins_merge(label(right), label(left))


class TestJudge:
    """What a node does with a view it receives (`judge`)."""

    def test_newer_view_of_our_ring_holding_us_is_installed(self) -> None:
        assert judge(ring(3, 1), ring(4, 2), "k1", Status.MEMBER, "update") is Verdict.INSTALL
        assert judge(ring(3, 1), ring(4, 2), "k1", Status.MEMBER, "pong") is Verdict.INSTALL

    def test_same_or_older_version_is_ignored(self) -> None:
        assert judge(ring(3, 2), ring(4, 2), "k1", Status.MEMBER, "update") is Verdict.IGNORE
        assert judge(ring(3, 2), ring(2, 1), "k1", Status.MEMBER, "pong") is Verdict.IGNORE

    def test_newer_view_without_us_means_we_were_cut_out(self) -> None:
        cut = remove(ring(3, 1), ["k1"])
        assert judge(ring(3, 1), cut, "k1", Status.MEMBER, "update") is Verdict.REJOIN
        assert judge(ring(3, 1), cut, "k1", Status.JOINING, "update") is Verdict.IGNORE
        assert judge(ring(3, 1), cut, "k1", Status.LEAVING, "update") is Verdict.IGNORE

    def test_join_ok_is_installed_unless_a_newer_view_overtook_it(self) -> None:
        lone = View("", 0, (member(3),))
        assert judge(lone, ring(4, 4), "k3", Status.JOINING, "join_ok") is Verdict.INSTALL
        assert judge(ring(5, 5), ring(4, 4), "k3", Status.JOINING, "join_ok") is Verdict.IGNORE

    def test_join_ok_of_the_other_half_of_our_ring_is_installed(self) -> None:
        half = View("r", 9, (member(2), member(3), member(0)))
        assert judge(ring(2, 20), half, "k0", Status.JOINING, "join_ok") is Verdict.INSTALL

    def test_update_of_the_ring_we_are_joining_is_installed(self) -> None:
        lone = View("", 0, (member(3),))
        other = ring(4, 4, ring_id="other")
        assert judge(lone, other, "k3", Status.JOINING, "update") is Verdict.INSTALL
        assert judge(ring(3), other, "k2", Status.MEMBER, "update") is Verdict.IGNORE

    def test_a_pong_from_a_winning_ring_starts_a_merge(self) -> None:
        mine, older = ring(3, ring_id="0002-x"), ring(2, ring_id="0001-y")
        assert judge(mine, older, "k0", Status.MEMBER, "pong") is Verdict.MERGE
        assert judge(older, mine, "k0", Status.MEMBER, "pong") is Verdict.IGNORE
        assert judge(mine, older, "k0", Status.MEMBER, "update") is Verdict.IGNORE
        assert judge(mine, older, "k0", Status.JOINING, "pong") is Verdict.IGNORE

    def test_nothing_is_adopted_once_left(self) -> None:
        assert judge(ring(3, 1), ring(3, 2), "k1", Status.LEFT, "update") is Verdict.IGNORE
