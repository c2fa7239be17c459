"""The connection table: caps from the descriptor limit, eviction of unproven connections, and
refusal only when proven members fill the way."""

from __future__ import annotations

from ring.wire.slots import CONNECTIONS_CEILING, PER_ADDRESS, Caps, Slots


class TestCaps:
    def test_a_quarter_of_a_low_limit(self) -> None:
        assert Caps.for_descriptors(1024) == Caps(256, PER_ADDRESS)

    def test_a_high_limit_stops_at_the_ceiling(self) -> None:
        assert Caps.for_descriptors(1 << 20) == Caps(CONNECTIONS_CEILING, PER_ADDRESS)

    def test_a_tiny_limit_still_leaves_room_for_a_few(self) -> None:
        caps = Caps.for_descriptors(40)
        assert caps.total == 10 and caps.per_address == 2


class TestSlots:
    def test_fits_under_the_caps(self) -> None:
        slots = Slots(Caps(4, 2))
        got = [slots.arrive("a"), slots.arrive("b")]
        assert all(a.slot is not None and a.evict is None for a in got)
        assert len(slots) == 2 and slots.from_address("a") == 1

    def test_a_full_address_evicts_its_own_oldest_unproven(self) -> None:
        slots = Slots(Caps(10, 2))
        first, second = slots.arrive("a"), slots.arrive("a")
        other = slots.arrive("b")
        third = slots.arrive("a")
        assert third.slot is not None
        assert third.evict == first.slot and third.cause == "per_address"
        assert slots.from_address("a") == 2 and slots.from_address("b") == 1
        assert second.slot is not None and other.slot is not None
        assert slots.evicted["per_address"] == 1

    def test_proven_members_are_never_evicted(self) -> None:
        slots = Slots(Caps(10, 2))
        member = slots.arrive("a")
        assert member.slot is not None
        slots.authenticated(member.slot)
        stranger = slots.arrive("a")
        newcomer = slots.arrive("a")
        assert newcomer.evict == stranger.slot

    def test_refused_when_members_hold_every_slot_in_the_way(self) -> None:
        slots = Slots(Caps(10, 2))
        for _ in range(2):
            got = slots.arrive("a")
            assert got.slot is not None
            slots.authenticated(got.slot)
        refused = slots.arrive("a")
        assert refused.slot is None and refused.cause == "per_address"
        assert slots.refused["per_address"] == 1 and len(slots) == 2

    def test_a_full_table_evicts_the_oldest_unproven_of_any_address(self) -> None:
        slots = Slots(Caps(3, 3))
        member = slots.arrive("m")
        assert member.slot is not None
        slots.authenticated(member.slot)
        stranger = slots.arrive("s")
        slots.arrive("t")
        newcomer = slots.arrive("m")
        assert newcomer.evict == stranger.slot and newcomer.cause == "total"
        assert len(slots) == 3 and slots.from_address("s") == 0

    def test_a_full_table_of_members_refuses(self) -> None:
        slots = Slots(Caps(2, 2))
        for address in ("a", "b"):
            got = slots.arrive(address)
            assert got.slot is not None
            slots.authenticated(got.slot)
        assert slots.arrive("c") == slots.arrive("c")
        assert slots.refused["total"] == 2

    def test_leaving_frees_the_slot_and_an_evicted_one_leaves_once(self) -> None:
        slots = Slots(Caps(10, 1))
        first = slots.arrive("a")
        second = slots.arrive("a")
        assert first.slot is not None and second.evict == first.slot
        slots.leave(first.slot)  # the evicted connection's task ends later
        assert slots.from_address("a") == 1
        assert second.slot is not None
        slots.leave(second.slot)
        assert len(slots) == 0 and slots.from_address("a") == 0
