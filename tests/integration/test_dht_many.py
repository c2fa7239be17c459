"""Batched lookups (`holders_many`) across real kademlia nodes on 127.0.0.1: the same answers as
one lookup per key, for a bounded number of requests (docs/DHT.md, "Lookups")."""

from __future__ import annotations

import asyncio
import logging
import math
import random

import pytest

from dht.index import Holder, HolderIndex
from dht.pacing import LOOKUP, REPAIR
from dht.records import dht_key
from tests.helpers_dht import content_hash, key_distance, start_cluster, stop_all
from tests.test_dht_partial import LOOKUP_KEYS_ONE_HOLDER
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
log = logging.getLogger(__name__)


def lookup_rpcs(node: HolderIndex) -> int:
    return node.rpc_counts.get(LOOKUP, 0)


async def batched(
    asker: HolderIndex, files: dict[str, list[int]]
) -> tuple[dict[str, list[Holder]], int]:
    """One batched lookup of every file at ``asker``, and the lookup requests it sent."""
    before = lookup_rpcs(asker)
    many = await asker.holders_many(list(files))
    return many, lookup_rpcs(asker) - before


async def publish(nodes: list[HolderIndex], files: dict[str, list[int]]) -> None:
    """Every node holds the files listed for it, and has published them."""
    for i, node in enumerate(nodes):
        node.hold(h for h, who in files.items() if i in who)
        await node.reannounce_all()  # one at a time: a loaded test machine drops no reply


class TestSameAnswers:
    @pytest.mark.parametrize(("size", "seed"), [(4, 41), (12, 42), (28, 43)])
    async def test_one_batched_lookup_lists_what_single_lookups_list(
        self, size: int, seed: int
    ) -> None:
        nodes = await start_cluster(size, seed=seed)
        try:
            rng = random.Random(seed)
            files = {
                content_hash(f"f{seed}-{i}"): rng.sample(range(size), rng.randint(1, 4))
                for i in range(400)
            }
            files[content_hash("nobody has it")] = []
            await publish(nodes, files)
            asker = nodes[-1]
            many = await asker.holders_many(list(files))
            for sha in files:
                assert many[sha] == await asker.holders(sha), sha
                assert {h.holder_id for h in many[sha]} == {f"holder-{i}" for i in files[sha]}
        finally:
            await stop_all(nodes)


class TestCost:
    async def test_a_thousand_keys_on_a_lan_cost_a_region_and_a_few_requests_per_node(
        self,
    ) -> None:
        """docs/DHT.md: on a LAN of N <= 2k + 1 nodes, K keys cost at most
        (N - 1)(1 + ceil(K / B)) requests, B the keys a reply answers (>= 160 records of one
        holder, tests/test_dht_partial.py)."""
        nodes = await start_cluster(4, seed=44)
        try:
            files = {content_hash(f"new-{i}"): [0] for i in range(1000)}
            await publish(nodes, files)
            asker = nodes[2]
            many, spent = await batched(asker, files)
            assert all(len(holders) == 1 for holders in many.values())
            bound = (len(nodes) - 1) * (1 + math.ceil(len(files) / LOOKUP_KEYS_ONE_HOLDER))
            log.info("1,000 keys: %d lookup requests, bound %d", spent, bound)
            assert spent <= bound
            assert asker.finder is not None and asker.finder.regions == 1
        finally:
            await stop_all(nodes)

    async def test_several_regions_on_a_larger_network(self) -> None:
        nodes = await start_cluster(28, seed=45)
        try:
            files = {content_hash(f"wide-{i}"): [i % 28] for i in range(600)}
            await publish(nodes, files)
            asker = nodes[7]
            assert asker.finder is not None
            many, spent = await batched(asker, files)
            assert all(len(holders) == 1 for holders in many.values())
            regions = asker.finder.regions
            others = len(nodes) - 1  # each asked for its keys, 8 x 600 in all, B a request
            bound = regions * others + others + math.ceil(8 * 600 / LOOKUP_KEYS_ONE_HOLDER)
            log.info("600 keys, 28 nodes: %d requests, %d regions, bound %d", spent, regions, bound)
            assert spent <= bound
            assert spent < 600, "far below one lookup per key"
        finally:
            await stop_all(nodes)


def nearest(nodes: list[HolderIndex], sha256_hex: str) -> list[HolderIndex]:
    """The k nodes nearest a content's key: those that must store its record."""
    return sorted(nodes, key=lambda node: key_distance(node, sha256_hex))[: nodes[0].ksize]


class TestOwnCopy:
    async def test_keys_this_node_stores_are_answered_from_its_copy(self) -> None:
        """On 4 nodes with k = 4 every node stores every key: a batched lookup of keys whose
        records it has asks nobody for them (only where the nodes are: no census here), and
        lists the same holders as exact single lookups."""
        nodes = await start_cluster(4, seed=49)
        try:
            files = {content_hash(f"own-{i}"): [i % 3] for i in range(300)}
            await publish(nodes, files)
            asker = nodes[3]
            assert asker.finder is not None
            many, spent = await batched(asker, files)
            assert spent <= len(nodes) - 1, "the region lookup alone"
            assert asker.finder.local == len(files)
            for sha in files:
                assert many[sha] == await asker.holders(sha), sha
        finally:
            await stop_all(nodes)

    async def test_a_node_that_stores_a_key_but_heard_nothing_of_it_asks(self) -> None:
        nodes = await start_cluster(4, seed=50)
        try:
            files = {content_hash(f"unheard-{i}"): [0] for i in range(50)}
            await publish(nodes, files)
            asker = nodes[3]
            asker.storage._data.clear()  # it restarted: it stores nothing yet
            many, spent = await batched(asker, files)
            assert spent > 0
            assert all([h.holder_id for h in many[sha]] == ["holder-0"] for sha in files)
        finally:
            await stop_all(nodes)


class TestRepairAndFailure:
    async def test_a_dead_node_costs_nothing_but_its_own_answers(self) -> None:
        nodes = await start_cluster(12, seed=46, rpc_timeout=0.2)
        try:
            files = {content_hash(f"kept-{i}"): [i % 11] for i in range(200)}
            await publish(nodes, files)
            nodes[11].stop()
            await asyncio.sleep(0)
            many = await nodes[3].holders_many(list(files))
            for sha, who in files.items():
                assert {h.holder_id for h in many[sha]} == {f"holder-{i}" for i in who}
        finally:
            await stop_all(nodes[:11])

    async def test_entries_a_nearest_node_lacks_are_repaired_in_batches(self) -> None:
        nodes = await start_cluster(6, seed=47)
        try:
            files = {content_hash(f"lost-{i}"): [1] for i in range(100)}
            await publish(nodes, files)
            forgetful, asker = nodes[4], nodes[2]
            owed = {
                dht_key(sha)
                for sha in files
                if forgetful in nearest(nodes, sha) and asker not in nearest(nodes, sha)
            }  # a key the asker stores itself is answered from its own copy: nobody is asked
            assert len(owed) >= 10
            forgetful.storage._data.clear()  # a node that lost what it stored (a restart)
            before = asker.rpc_counts.get(REPAIR, 0)
            await asker.holders_many(list(files))
            await wait_for(lambda: set(forgetful.storage.keys()) >= owed, 10)
            assert asker.rpc_counts.get(REPAIR, 0) - before <= 2
        finally:
            await stop_all(nodes)
