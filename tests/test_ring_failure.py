"""The failure detector without sockets: whom to ping, when a node is suspected, RTT."""

from __future__ import annotations

import pytest

from ring.failure import FailureDetector
from ring.membership import Member, View


def key(member: Member | None) -> str | None:
    return None if member is None else member.key


def ring(count: int) -> View:
    return View(
        "r", 1, tuple(Member(f"k{i}", f"n{i}", "127.0.0.1", 9000 + i) for i in range(count))
    )


class TestFailureDetector:
    def test_pings_the_next_member_and_wraps(self) -> None:
        assert key(FailureDetector("k1", 3).target(ring(4))) == "k2"
        assert key(FailureDetector("k3", 3).target(ring(4))) == "k0"

    def test_alone_or_absent_pings_nobody(self) -> None:
        assert FailureDetector("k0", 3).target(ring(1)) is None
        assert FailureDetector("zz", 3).target(ring(3)) is None

    def test_suspected_after_misses_in_a_row_only(self) -> None:
        fd = FailureDetector("k0", 3)
        assert [fd.on_miss("k1"), fd.on_miss("k1")] == [False, False]
        fd.on_reply("k1", 0.01)
        assert [fd.on_miss("k1"), fd.on_miss("k1"), fd.on_miss("k1")] == [False, False, True]
        assert fd.suspects == {"k1"}

    def test_pinging_moves_past_suspects(self) -> None:
        fd = FailureDetector("k4", 1)
        view = ring(6)
        fd.on_miss("k5")
        assert key(fd.target(view)) == "k0"
        fd.on_miss("k0")
        assert key(fd.target(view)) == "k1"

    def test_successor_list_to_probe_skips_self_and_suspects(self) -> None:
        fd = FailureDetector("k0", 1, successors=3)
        view = ring(4)
        fd.on_miss("k1")
        assert [m.key for m in fd.to_probe(view, "k1")] == ["k2", "k3"]
        fd.suspects.add("k2")
        assert [m.key for m in fd.to_probe(view, "k1")] == ["k3"]

    def test_every_other_member_is_timed_in_turn(self) -> None:
        fd = FailureDetector("k1", 3)
        view = ring(5)
        assert [key(fd.measure_target(view, turn)) for turn in range(4)] == ["k0", "k3", "k4", "k0"]
        assert fd.measure_target(ring(2), 0) is None

    def test_a_reply_clears_suspicion(self) -> None:
        fd = FailureDetector("k0", 1)
        fd.on_miss("k1")
        fd.on_reply("k1", 0.02)
        assert fd.suspects == set()

    def test_leader_kept_them_so_they_are_cleared(self) -> None:
        fd = FailureDetector("k0", 1)
        fd.on_miss("k1")
        fd.on_miss("k2")
        fd.cleared(View("r", 2, ring(3).members[:2]))
        assert fd.suspects == {"k2"}

    def test_rtt_is_smoothed(self) -> None:
        fd = FailureDetector("k0", 3)
        fd.on_reply("k1", 0.100)
        fd.on_reply("k1", 0.020)
        assert fd.rtt["k1"] == pytest.approx(0.080)

    def test_prune_forgets_removed_members_in_place(self) -> None:
        fd = FailureDetector("k0", 1)
        rtt = fd.rtt
        fd.on_reply("k3", 0.01)
        fd.on_reply("k1", 0.01)
        fd.on_miss("k2")
        fd.prune(ring(2))
        assert fd.rtt is rtt and set(rtt) == {"k1"} and fd.suspects == set()

    def test_misses_must_be_positive(self) -> None:
        with pytest.raises(ValueError):
            FailureDetector("k0", 0)
