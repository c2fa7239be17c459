"""Which holder to ask, without sockets: the round-trip table, probes, ranking and spreading."""

from __future__ import annotations

import hashlib
from itertools import pairwise

import pytest

from sync.manifest import Peer
from sync.sources import PROBE_MAX_AGE, RoundTrips, nearest, place, rank, spread, to_probe

A, B, C, D, ME = (
    Peer(n, "127.0.0.1", p) for n, p in (("a", 1), ("b", 2), ("c", 3), ("d", 4), ("me", 5))
)


def table(heard: dict[str, float] | None = None, **samples: float) -> RoundTrips:
    """A table with these heartbeat estimates and one sample per keyword, taken at time 0."""
    out = RoundTrips()
    out.heard(heard or {})
    for name, seconds in samples.items():
        out.sample(name, seconds, 0.0)
    return out


class TestRoundTrips:
    def test_unknown_peer_has_no_estimate(self) -> None:
        assert RoundTrips().rtt("a") is None

    def test_first_sample_counts_in_full_then_samples_are_smoothed(self) -> None:
        t = RoundTrips()
        t.sample("a", 0.010, 1.0)
        assert t.rtt("a") == pytest.approx(0.010)
        t.sample("a", 0.020, 2.0)
        assert t.rtt("a") == pytest.approx(0.7 * 0.010 + 0.3 * 0.020)

    def test_heartbeat_estimate_is_preferred_over_samples(self) -> None:
        t = table({"a": 0.050}, a=0.001)
        assert t.rtt("a") == 0.050
        t.sample("a", 0.001, 1.0)  # a transfer timing does not move the heartbeat's figure
        assert t.rtt("a") == 0.050

    def test_heartbeat_estimates_are_replaced_and_samples_take_over(self) -> None:
        t = table({"a": 0.050, "b": 0.040}, a=0.002)
        t.heard({"b": 0.030})
        assert t.rtt("a") == pytest.approx(0.002)
        assert t.rtt("b") == 0.030

    def test_a_sample_is_fresh_until_it_is_probe_max_age_old(self) -> None:
        t = table(a=0.002)
        assert t.fresh("a", PROBE_MAX_AGE - 0.001)
        assert not t.fresh("a", PROBE_MAX_AGE)

    def test_a_new_sample_makes_a_peer_fresh_again(self) -> None:
        t = table(a=0.002)
        t.sample("a", 0.002, 100.0)
        assert t.fresh("a", 100.0 + PROBE_MAX_AGE - 1)

    def test_heartbeat_measured_peers_are_always_fresh_and_unmeasured_never(self) -> None:
        t = table({"a": 0.050})
        assert t.fresh("a", 10_000.0)
        assert not t.fresh("b", 0.0)


class TestToProbe:
    def test_unmeasured_and_stale_holders_are_probed_in_their_order(self) -> None:
        t = table({"c": 0.001}, b=0.001, d=0.001)
        t.sample("d", 0.001, PROBE_MAX_AGE)  # d measured again since
        assert to_probe([D, C, B, A], "me", t, PROBE_MAX_AGE) == [B, A]

    def test_this_node_is_never_probed(self) -> None:
        assert to_probe([ME, A], "me", RoundTrips(), 0.0) == [A]


class TestNearest:
    def test_measured_by_round_trip_then_unmeasured_ties_by_name(self) -> None:
        t = table({"d": 0.002}, c=0.001, b=0.002)
        assert nearest([A, B, C, D, Peer("e", "127.0.0.1", 6)], "me", t) == [
            C,
            B,
            D,
            A,
            Peer("e", "127.0.0.1", 6),
        ]

    def test_this_node_leads_as_if_measured_at_zero(self) -> None:
        assert nearest([A, ME, B], "me", table(b=0.001)) == [ME, B, A]

    def test_heartbeat_ranks_before_a_faster_sample(self) -> None:
        t = table({"a": 0.003}, a=0.0001, b=0.002)
        assert nearest([A, B], "me", t) == [B, A]

    def test_a_stale_sample_still_ranks(self) -> None:
        t = table(b=0.005)
        t.sample("a", 0.001, -10 * PROBE_MAX_AGE)
        assert nearest([B, A, C], "me", t) == [A, B, C]


class TestRank:
    def test_located_then_prev_then_owner(self) -> None:
        assert rank([C, ME], A, True, B, "me", RoundTrips()) == [C, A, B]

    def test_prev_without_the_version_goes_after_the_owner(self) -> None:
        assert rank([], A, False, B, "me", RoundTrips()) == [B, A]

    def test_duplicates_are_dropped(self) -> None:
        assert rank([A, B], A, True, B, "me", RoundTrips()) == [A, B]

    def test_located_holders_are_ranked_nearest_first(self) -> None:
        t = table({"c": 0.004}, a=0.001)
        assert rank([B, C, A], None, False, D, "me", t) == [A, C, B, D]

    def test_a_duplicate_by_address_keeps_its_first_place(self) -> None:
        alias = Peer("b-again", B.host, B.port)
        assert rank([alias, C], None, False, B, "me", table(c=0.001)) == [C, alias]

    @pytest.mark.parametrize("prev_holds", [True, False])
    def test_prev_that_is_the_owner_is_asked_once(self, prev_holds: bool) -> None:
        assert rank([C], B, prev_holds, B, "me", RoundTrips()) == [C, B]

    def test_this_node_is_left_out_wherever_it_appears(self) -> None:
        assert rank([ME], ME, True, ME, "me", RoundTrips()) == []

    def test_nothing_located_and_no_neighbours(self) -> None:
        assert rank([], None, True, None, "me", RoundTrips()) == []

    def test_partial_holders_come_after_every_full_holder(self) -> None:
        fetching_c = Peer(C.name, C.host, C.port, fetching=True)
        order = rank([fetching_c, D], A, True, B, "me", table(c=0.001, d=0.009))
        assert order == [D, A, B, C]
        assert order[-1].fetching

    def test_partial_holders_nearest_first_and_before_a_prev_without_the_version(self) -> None:
        near = Peer(C.name, C.host, C.port, fetching=True)
        far = Peer(D.name, D.host, D.port, fetching=True)
        assert rank([far, near], A, False, B, "me", table(c=0.001, d=0.009)) == [B, C, D, A]


class TestSpread:
    HOLDERS = [Peer(f"h{i}", "127.0.0.1", 100 + i) for i in range(8)]

    def test_few_holders_are_all_used(self) -> None:
        assert spread(self.HOLDERS[:4], "me", "ab" * 32, 4) == self.HOLDERS[:4]

    def test_the_nearest_and_a_share_of_the_rest(self) -> None:
        chosen = spread(self.HOLDERS, "me", "ab" * 32, 4)
        assert chosen[0] == self.HOLDERS[0] and len(set(chosen)) == 4
        assert set(chosen) <= set(self.HOLDERS)
        assert spread(self.HOLDERS, "me", "ab" * 32, 4) == chosen

    def test_receivers_spread_over_the_holders(self) -> None:
        used = set()
        for receiver in range(20):
            used.update(spread(self.HOLDERS, f"r{receiver}", "ab" * 32, 4)[1:])
        assert used == set(self.HOLDERS[1:])


class TestPlace:
    def test_within_bounds_and_the_same_each_time(self) -> None:
        assert all(0 <= place(f"n{i}", "ab" * 32, 7) < 7 for i in range(50))
        assert place("n1", "ab" * 32, 512) == place("n1", "ab" * 32, 512)

    def test_names_one_character_apart_land_apart(self) -> None:
        """Eight receivers h1..h8 of a file of 512 blocks start where each fetches blocks of its
        own. A CRC put them side by side (its differences are linear in the name's): for
        ab..ab it gave 166, 152, 155, 165 and 391, 388, 386."""
        near = 0
        for content in range(50):
            sha = hashlib.sha256(str(content).encode()).hexdigest()
            starts = sorted(place(f"h{i}", sha, 512) for i in range(1, 9))
            gaps = [b - a for a, b in pairwise(starts)] + [512 + starts[0] - starts[-1]]
            near += sum(gap < 8 for gap in gaps)
        assert near < 100  # uniform: about 0.8 a file, 42 in all; the CRC: 216
