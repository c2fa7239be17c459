"""The backlog without sockets: order, coalescing, depth, caps."""

from __future__ import annotations

import math

from kademlia.node import Node

from dht.backlog import Backlog, Depth
from dht.pacing import HAND_OVER, REPAIR
from dht.records import Entry

A = Node(b"a" * 20, "127.0.0.1", 1)
B = Node(b"b" * 20, "127.0.0.1", 2)


def entry(stamp: float, present: bool = True) -> Entry:
    return Entry("h", 1, stamp, present, 100.0)


def key(i: int) -> bytes:
    return i.to_bytes(20, "big")


class TestOwnEntries:
    def test_drain_oldest_first_in_slices(self) -> None:
        backlog = Backlog()
        for i in range(5):
            backlog.own(key(i), entry(i))
        assert [k for k, _ in backlog.take_own(3)] == [key(0), key(1), key(2)]
        assert [k for k, _ in backlog.take_own(3)] == [key(3), key(4)]
        assert not backlog

    def test_a_newer_entry_replaces_the_waiting_one_in_its_place(self) -> None:
        backlog = Backlog()
        backlog.own(key(1), entry(1))
        backlog.own(key(2), entry(2))
        backlog.own(key(1), entry(3, present=False))
        assert backlog.take_own(10) == [(key(1), entry(3, present=False)), (key(2), entry(2))]

    def test_nothing_is_due_until_the_soonest_entry_is(self) -> None:
        backlog = Backlog()
        assert backlog.own_due_in(5.0) == math.inf
        backlog.own(key(1), entry(1, present=False), due=12.0)
        backlog.own(key(2), entry(2, present=False), due=10.0)
        assert backlog.own_due_in(5.0) == 5.0
        assert backlog.own_due_in(11.0) == 0.0

    def test_a_replaced_entry_keeps_the_sooner_due_time(self) -> None:
        backlog = Backlog()
        backlog.own(key(1), entry(1, present=False), due=10.0)
        backlog.own(key(1), entry(2), due=3.0)
        assert backlog.own_due_in(3.0) == 0.0
        backlog.own(key(2), entry(3), due=4.0)
        backlog.own(key(2), entry(4, present=False), due=9.0)
        backlog.take_own(1)
        assert backlog.own_due_in(3.0) == 1.0

    def test_taking_entries_leaves_the_due_time_of_the_rest(self) -> None:
        backlog = Backlog()
        backlog.own(key(1), entry(1), due=1.0)
        backlog.own(key(2), entry(2, present=False), due=8.0)
        assert [k for k, _ in backlog.take_own(1)] == [key(1)]
        assert backlog.own_due_in(2.0) == 6.0
        backlog.take_own(1)
        assert backlog.own_due_in(2.0) == math.inf

    def test_a_round_has_work_at_once_while_a_parcel_or_newcomer_waits(self) -> None:
        backlog = Backlog()
        assert backlog.due_in(0.0) == math.inf
        backlog.own(key(1), entry(1, present=False), due=5.0)
        assert backlog.due_in(0.0) == 5.0
        backlog.welcome(B)
        assert backlog.due_in(0.0) == 0.0
        backlog.take_newcomers()
        backlog.parcel(REPAIR, A, key(3), {"x": entry(1)})
        assert backlog.due_in(0.0) == 0.0

    def test_depth_counts_announcements_and_withdrawals(self) -> None:
        backlog = Backlog()
        backlog.own(key(1), entry(1))
        backlog.own(key(2), entry(2, present=False))
        backlog.parcel(REPAIR, A, key(3), {"x": entry(1)})
        backlog.welcome(B)
        assert backlog.depth() == Depth(announce=1, withdraw=1, repair=1, newcomers=1)


class TestParcels:
    def test_records_for_one_contact_merge_per_key(self) -> None:
        backlog = Backlog()
        backlog.parcel(HAND_OVER, A, key(1), {"x": entry(1)})
        backlog.parcel(HAND_OVER, A, key(1), {"x": entry(2), "y": entry(1)})
        backlog.parcel(HAND_OVER, B, key(1), {"z": entry(1)})
        (first, second) = backlog.take_parcels(100)
        assert (first.kind, first.node, first.items) == (
            HAND_OVER,
            A,
            [(key(1), {"x": entry(2), "y": entry(1)})],
        )
        assert second.node == B
        assert backlog.depth() == Depth()

    def test_a_large_parcel_is_taken_in_slices(self) -> None:
        backlog = Backlog()
        for i in range(10):
            backlog.parcel(REPAIR, A, key(i), {"x": entry(i)})
        (part,) = backlog.take_parcels(4)
        assert [k for k, _ in part.items] == [key(0), key(1), key(2), key(3)]
        assert backlog.depth().repair == 6

    def test_past_the_cap_new_keys_are_dropped_and_counted(self) -> None:
        backlog = Backlog(limit=2)
        assert backlog.parcel(REPAIR, A, key(1), {"x": entry(1)})
        assert backlog.parcel(HAND_OVER, B, key(2), {"x": entry(1)})
        assert not backlog.parcel(REPAIR, B, key(3), {"x": entry(1)})
        assert backlog.parcel(REPAIR, A, key(1), {"y": entry(1)}), "a waiting key still merges"
        assert backlog.dropped == 1
        assert backlog.depth() == Depth(hand_over=1, repair=1)


class TestWakeAndText:
    def test_every_addition_notifies(self) -> None:
        calls: list[None] = []
        backlog = Backlog(notify=lambda: calls.append(None))
        backlog.own(key(1), entry(1))
        backlog.parcel(REPAIR, A, key(1), {"x": entry(1)})
        backlog.welcome(A)
        assert len(calls) == 3

    def test_status_line(self) -> None:
        assert Depth().text() == "holder index: nothing queued"
        assert Depth(announce=12, withdraw=3, hand_over=40).text() == (
            "holder index: 12 to announce, 3 to withdraw, 40 to hand over, 0 to repair"
        )
        assert Depth(newcomers=2).text().endswith("2 new contact(s) to welcome")


class TestOwes:
    def test_a_waiting_own_entry_is_owed_until_taken(self) -> None:
        backlog = Backlog()
        backlog.own(key(1), entry(1))
        assert backlog.owes(key(1)) and not backlog.owes(key(2))
        backlog.take_own(1)
        assert not backlog.owes(key(1))
