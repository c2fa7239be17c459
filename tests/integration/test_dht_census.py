"""The census (`dht/regions.py`): with the ids of every member, a node whose routing table holds
them all sweeps and looks up without asking anyone where the nearest nodes are; real kademlia
nodes on 127.0.0.1, and whole `--dht` nodes whose ring gives the census."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from kademlia.node import Node as Contact

from dht.index import HolderIndex
from dht.pacing import LOOKUP, SWEEP
from dht.records import dht_key
from overlay.node import Node
from tests.helpers_dht import content_hash, start_cluster, stop_all
from tests.nodes import digest, holds, name_of, own_folder, start_ring
from tests.nodes import stop_all as stop_nodes
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SIZE = 8
KEYS = 10


async def full_tables(size: int, seed: int) -> list[HolderIndex]:
    """A cluster whose every node has met every other (its routing table holds them all)."""
    nodes = await start_cluster(size, seed=seed)
    addresses = [("127.0.0.1", node.port) for node in nodes]
    for node in nodes:
        await node.bootstrap([a for a in addresses if a[1] != node.port])
    return nodes


def members(nodes: list[HolderIndex]) -> list[tuple[bytes, str, int]]:
    """The census of a cluster, as the overlay gives it: node id, IP, UDP port."""
    return [(node.node.id, "127.0.0.1", node.port) for node in nodes]


def sent(node: HolderIndex, kind: str) -> int:
    return node.rpc_counts.get(kind, 0)


def storing(nodes: list[HolderIndex], keys: list[bytes]) -> int:
    """How many nodes store an entry for at least one of ``keys``."""
    return sum(1 for node in nodes if any(node.storage.record(key) for key in keys))


class TestRegionsFromTheCensus:
    @pytest.mark.parametrize("census", [True, False])
    async def test_a_sweep_and_a_batched_lookup_with_and_without_the_census(
        self, census: bool
    ) -> None:
        """With the census, a sweep of 10 keys sends one `announce_many` to each node that
        stores some of them and nothing else, and a batched lookup asks only the nodes nearest
        its keys; without it, each first asks every node where the nearest are. The holders
        found are the same either way."""
        nodes = await full_tables(SIZE, seed=61 if census else 62)
        try:
            if census:
                for node in nodes:
                    node.census(members(nodes))
            announcer, asker = nodes[0], nodes[5]
            hashes = [content_hash(f"census-{census}-{i}") for i in range(KEYS)]
            keys = [dht_key(sha) for sha in hashes]
            before = sent(announcer, SWEEP)
            announcer.hold(hashes)
            await announcer.reannounce_all()
            sweep = sent(announcer, SWEEP) - before
            stored = storing(nodes[1:], keys)
            assert announcer.regions is not None
            if census:
                assert sweep == stored, "one request per storing node, no lookup"
                assert announcer.regions.looked_up == 0 and announcer.regions.counted == 1
            else:
                assert sweep >= stored + SIZE - 1, "a find_node to each other node first"
                assert announcer.regions.looked_up == 1

            before = sent(asker, LOOKUP)
            found = await asker.holders_many(hashes)
            asked = sent(asker, LOOKUP) - before
            assert all([h.holder_id for h in found[sha]] == ["holder-0"] for sha in hashes)
            assert asker.regions is not None
            if census:
                assert asked <= SIZE - 1
                assert asker.regions.looked_up == 0
            else:
                assert asked >= SIZE - 1 + 1
                assert asker.regions.looked_up == 1
        finally:
            await stop_all(nodes)

    async def test_a_member_the_table_lacks_means_a_lookup(self) -> None:
        """A member never heard from (one running without the DHT, one that just joined) may be
        among the nearest: the region is looked up, and the keys still reach their nodes."""
        nodes = await full_tables(SIZE, seed=63)
        try:
            absent = hashlib.sha1(b"a member without the DHT").digest()
            for node in nodes:
                node.census([(absent, "127.0.0.1", 9), *members(nodes)])
            announcer = nodes[2]
            hashes = [content_hash(f"lacking-{i}") for i in range(KEYS)]
            announcer.hold(hashes)
            await announcer.reannounce_all()
            assert announcer.regions is not None
            assert announcer.regions.looked_up == 1 and announcer.regions.counted == 0
            found = await nodes[6].holders_many(hashes)
            assert all([h.holder_id for h in found[sha]] == ["holder-2"] for sha in hashes)
        finally:
            await stop_all(nodes)

    async def test_a_member_that_stopped_answering_is_left_out_and_the_census_holds(
        self,
    ) -> None:
        """A member that failed to answer is skipped as silent; the others are still every
        node there is, so the next sweep asks no one and sends it nothing."""
        nodes = await full_tables(SIZE, seed=64)
        try:
            for node in nodes:
                node.census(members(nodes))
            announcer, gone = nodes[0], nodes[-1]
            gone.stop()
            first = [content_hash(f"before-{i}") for i in range(4 * KEYS)]
            announcer.hold(first)
            await announcer.reannounce_all()  # the requests to `gone` time out: it is silent
            assert announcer.protocol.is_silent(gone.node)
            second = [content_hash(f"after-{i}") for i in range(KEYS)]
            keys = [dht_key(sha) for sha in second]
            before = sent(announcer, SWEEP)
            announcer.hold(second)
            await announcer.reannounce_all()
            assert announcer.regions is not None and announcer.regions.looked_up == 0
            assert sent(announcer, SWEEP) - before == storing(nodes[1:-1], keys)
            found = await nodes[3].holders_many(second)
            assert all([h.holder_id for h in found[sha]] == ["holder-0"] for sha in second)
        finally:
            await stop_all(nodes[:-1])

    async def test_keys_go_to_the_address_the_view_gives_not_the_tables(self) -> None:
        """The routing table maps a node id to whatever address last spoke under it; an
        insider may speak under another member's id. The census's addresses are the ring
        view's, and a sweep sends there."""
        nodes = await full_tables(SIZE, seed=65)
        impostor = (await start_cluster(1, seed=66))[0]
        try:
            for node in nodes:
                node.census(members(nodes))
            announcer, victim = nodes[0], nodes[4]
            announcer.protocol.router.add_contact(
                Contact(victim.node.id, "127.0.0.1", impostor.port)
            )
            hashes = [content_hash(f"diverted-{i}") for i in range(4 * KEYS)]
            keys = [dht_key(sha) for sha in hashes]
            announcer.hold(hashes)
            await announcer.reannounce_all()
            assert announcer.regions is not None and announcer.regions.looked_up == 0
            assert storing([victim], keys) == 1
            assert impostor.storage.keys() == []
        finally:
            await stop_all([*nodes, impostor])


class TestTheRingGivesTheCensus:
    async def test_an_edit_on_six_dht_nodes_draws_every_region_from_the_census(
        self, tmp_path: Path
    ) -> None:
        """Once every node has met every other, the sweeps and batched lookups of ten new
        files make no region lookup anywhere, and who-has still lists every holder."""
        nodes = await start_ring(tmp_path, 6, dht=True, interval=0.2)
        try:
            regions = [n.index.regions for n in nodes if n.index and n.index.regions]
            assert len(regions) == len(nodes)
            await wait_for(lambda: all(r.known() is not None for r in regions), 30)
            looked_up = [r.looked_up for r in regions]
            counted = [r.counted for r in regions]
            owner = nodes[1]
            shas = {}
            for i in range(KEYS):
                path = own_folder(owner) / f"edit-{i}.bin"
                path.write_bytes(os.urandom(3000 + i))
                shas[path.name] = digest(path)
            name = name_of(owner)
            await wait_for(
                lambda: all(holds(n, name, rel, sha) for n in nodes for rel, sha in shas.items()),
                60,
            )
            await wait_for(lambda: self._listed(nodes[4], shas["edit-0.bin"], len(nodes)), 30)
            assert [r.looked_up for r in regions] == looked_up
            assert all(r.counted > before for r, before in zip(regions, counted, strict=True))
        finally:
            await stop_nodes(nodes)

    @staticmethod
    async def _listed(node: Node, sha: str, count: int) -> bool:
        assert node.index is not None
        return len(await node.index.holders(sha)) == count
