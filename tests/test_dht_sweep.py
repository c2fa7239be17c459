"""Region sweeps without sockets: a region's k nearest are the true k nearest wherever it covers."""

from __future__ import annotations

import random

from kademlia.node import Node

from dht.sweep import Region, assign, position

K = 8


def network(rng: random.Random, size: int) -> list[Node]:
    return [Node(rng.randbytes(20), "127.0.0.1", 20000 + i) for i in range(size)]


def true_nearest(nodes: list[Node], key: bytes, k: int) -> list[bytes]:
    at = position(key)
    return [n.id for n in sorted(nodes, key=lambda n: n.long_id ^ at)[:k]]


def lookup(nodes: list[Node], origin: bytes, width: int) -> list[Node]:
    """What an exact lookup around ``origin`` returns: its ``width`` nearest nodes."""
    at = position(origin)
    return sorted(nodes, key=lambda n: n.long_id ^ at)[:width]


class TestRegion:
    def test_covered_keys_get_exactly_their_true_k_nearest(self) -> None:
        rng = random.Random(160)
        checked = 0
        for size in (20, 64, 200):
            nodes = network(rng, size)
            for _ in range(20):
                origin = rng.randbytes(20)
                region = Region.of(origin, lookup(nodes, origin, 2 * K), 2 * K)
                for _ in range(200):
                    # keys near the origin (shared prefixes of several lengths) and far ones
                    bits = rng.choice([8, 16, 100, 160])
                    key = (position(origin) ^ rng.getrandbits(bits)).to_bytes(20, "big")
                    near = region.covers(key, K)
                    if near is not None:
                        assert [n.id for n in near] == true_nearest(nodes, key, K)
                        checked += 1
        assert checked > 1000, "the test should exercise many covered keys"

    def test_a_region_always_covers_its_origin(self) -> None:
        rng = random.Random(2)
        nodes = network(rng, 100)
        origin = rng.randbytes(20)
        region = Region.of(origin, lookup(nodes, origin, 2 * K), 2 * K)
        assert region.covers(origin, K) is not None

    def test_far_keys_are_not_covered_in_a_large_network(self) -> None:
        rng = random.Random(3)
        nodes = network(rng, 500)
        origin = bytes(20)
        region = Region.of(origin, lookup(nodes, origin, 2 * K), 2 * K)
        assert region.covers(b"\xff" * 20, K) is None

    def test_a_lookup_that_found_fewer_than_asked_covers_everything(self) -> None:
        rng = random.Random(4)
        nodes = network(rng, 3)
        region = Region.of(rng.randbytes(20), nodes, 2 * K)
        assert region.reach is None
        for _ in range(50):
            key = rng.randbytes(20)
            near = region.covers(key, K)
            assert near is not None and {n.id for n in near} == {n.id for n in nodes}


class TestAssign:
    def test_a_small_network_is_one_region_for_every_key(self) -> None:
        rng = random.Random(5)
        nodes = network(rng, 2 * K)
        keys = sorted((rng.randbytes(20) for _ in range(1000)), key=position)
        plan, taken = assign(keys, Region.of(keys[0], nodes, 2 * K + 1), K)
        assert taken == 1000
        assert sum(len(v) for v in plan.values()) == 1000 * K
        for key in keys[:50]:
            assert {n for n, ks in plan.items() if key in ks} == set(true_nearest(nodes, key, K))

    def test_a_run_ends_at_the_first_key_not_covered(self) -> None:
        rng = random.Random(6)
        nodes = network(rng, 300)
        keys = sorted((rng.randbytes(20) for _ in range(300)), key=position)
        region = Region.of(keys[0], lookup(nodes, keys[0], 2 * K), 2 * K)
        plan, taken = assign(keys, region, K)
        assert 1 <= taken < len(keys)
        assert region.covers(keys[taken], K) is None
        assert all(region.covers(key, K) is not None for key in keys[:taken])
        assert sum(len(v) for v in plan.values()) == taken * K

    def test_regions_walk_the_whole_keyspace_in_few_lookups(self) -> None:
        rng = random.Random(7)
        nodes = network(rng, 64)
        keys = sorted((rng.randbytes(20) for _ in range(2000)), key=position)
        lookups = done = 0
        while done < len(keys):
            region = Region.of(keys[done], lookup(nodes, keys[done], 2 * K), 2 * K)
            _, taken = assign(keys[done:], region, K)
            done += taken
            lookups += 1
        assert lookups <= 64, f"{lookups} lookups for 2000 keys on 64 nodes"
