"""The holder index across real kademlia nodes on 127.0.0.1, one event loop."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
from collections.abc import AsyncIterator

import pytest

from dht import publisher
from dht.errors import InvalidKey, LookupFailed
from dht.index import Holder, HolderIndex
from dht.own import WITHDRAW_WAIT
from dht.pacing import STEP
from dht.records import dht_key
from tests.credentials import dht_seal
from tests.helpers_dht import content_hash, key_distance, start_cluster, stop_all
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
log = logging.getLogger(__name__)


def ids(holders: list[Holder]) -> set[str]:
    return {h.holder_id for h in holders}


@pytest.fixture
async def twenty() -> AsyncIterator[list[HolderIndex]]:
    nodes = await start_cluster(20, seed=20)
    yield nodes
    await stop_all(nodes)


class TestManyFilesManyHolders:
    async def test_every_node_sees_exactly_the_holding_set_every_time(
        self, twenty: list[HolderIndex]
    ) -> None:
        rng = random.Random(7)
        files = {
            content_hash(f"file-{i}"): rng.sample(range(20), rng.randint(1, 8)) for i in range(6)
        }
        files[content_hash("nobody holds this")] = []
        await asyncio.gather(*(twenty[i].announce(h) for h, who in files.items() for i in who))
        for _ in range(2):
            for h, who in files.items():
                expected = {f"holder-{i}" for i in who}
                for node in twenty:
                    assert ids(await node.holders(h)) == expected

    async def test_held_hashes_are_published_by_one_bounded_round(
        self, twenty: list[HolderIndex]
    ) -> None:
        hashes = [content_hash(f"held-{i}") for i in range(30)]
        twenty[3].hold(hashes)
        for h in hashes[:3]:
            assert ids(await twenty[11].holders(h)) == set(), "published before the round"
        await twenty[3].reannounce_all()
        for h in hashes:
            assert ids(await twenty[11].holders(h)) == {"holder-3"}

    def test_hold_refuses_a_bad_hash_and_registers_nothing(self, twenty: list[HolderIndex]) -> None:
        with pytest.raises(InvalidKey):
            twenty[0].hold([content_hash("fine"), "not-a-hash"])
        assert twenty[0].held == frozenset()

    async def test_holder_entries_carry_the_tcp_address(self, twenty: list[HolderIndex]) -> None:
        h = content_hash("addressed")
        await twenty[3].announce(h)
        assert await twenty[15].holders(h) == [Holder("holder-3", "127.0.0.1", 20003)]


class TestConcurrentAnnounce:
    @pytest.mark.parametrize("name", ["same-instant-a", "same-instant-b", "same-instant-c"])
    async def test_five_simultaneous_announcers_are_all_found_far_away(
        self, twenty: list[HolderIndex], name: str
    ) -> None:
        h = content_hash(name)
        announcers = twenty[5:10]
        await asyncio.gather(*(node.announce(h) for node in announcers))
        farthest = max(twenty, key=lambda node: key_distance(node, h))
        assert ids(await farthest.holders(h)) == {n.holder.holder_id for n in announcers}


class TestManyQueuedAtOnce:
    async def test_a_round_that_runs_while_entries_are_queued_ends_the_wait_for_them(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(publisher, "GATHER", 0.0)  # a round starts at the first yield
        nodes = await start_cluster(2, seed=48)
        try:
            hashes = [content_hash(f"queued-{i}") for i in range(10 * STEP)]
            nodes[0].hold(hashes)
            await asyncio.wait_for(nodes[0].reannounce_all(), 10)
            assert len(nodes[1].storage.keys()) == len(hashes)  # each round carried its share
        finally:
            await stop_all(nodes)


class TestWithdraw:
    async def test_withdrawn_holder_vanishes_at_the_next_lookup_everywhere(
        self, twenty: list[HolderIndex]
    ) -> None:
        h = content_hash("dropped")
        await asyncio.gather(*(twenty[i].announce(h) for i in (2, 11, 17)))
        assert ids(await twenty[0].holders(h)) == {"holder-2", "holder-11", "holder-17"}
        await twenty[11].withdraw(h)
        for node in twenty:
            assert ids(await node.holders(h)) == {"holder-2", "holder-17"}
        assert h not in twenty[11].held

    async def test_announce_after_withdraw_brings_the_holder_back(
        self, twenty: list[HolderIndex]
    ) -> None:
        h = content_hash("back again")
        await twenty[4].announce(h)
        await twenty[4].withdraw(h)
        await twenty[4].announce(h)
        assert ids(await twenty[19].holders(h)) == {"holder-4"}


class TestQuickRestart:
    async def test_a_holder_back_soon_after_leaving_with_many_files_is_listed_for_all(
        self,
    ) -> None:
        """A node leaving withdraws all it holds, stamping each withdrawal above the one before.
        The same holder started again a moment later (a new process: it remembers no stamp)
        announces them again, and must be listed for every one: its new stamps must be above
        the withdrawals'. With a step of 1 ms a stamp, 1,000 withdrawals ran a second ahead of
        the clock, and a restart within that second left the holder hidden for up to 240 s."""
        now = [1_000_000.0]
        storer = HolderIndex(bytes(20), Holder("storer", "127.0.0.1", 1), sealer=dht_seal())
        await storer.listen(0, interface="127.0.0.1")
        address = [("127.0.0.1", storer.port)]
        hashes = [content_hash(f"held-{i}") for i in range(1000)]
        try:
            for restart in (0.0, 0.05):
                now[0] += restart
                node = HolderIndex(
                    bytes([1]) * 20,
                    Holder("leaver", "127.0.0.1", 2),
                    sealer=dht_seal(),
                    stamp_clock=lambda: now[0],
                )
                await node.listen(0, interface="127.0.0.1")
                try:
                    await node.bootstrap(address)
                    node.hold(hashes)
                    await node.reannounce_all()
                    if not restart:
                        await node.withdraw_all(hashes)
                finally:
                    node.stop()
                    await asyncio.sleep(0)
            hidden = [h for h in hashes if not listed([storer], dht_key(h), "leaver")]
            assert hidden == []
        finally:
            storer.stop()


def listed(nodes: list[HolderIndex], key: bytes, holder_id: str) -> bool:
    """Whether any of ``nodes`` stores an entry saying ``holder_id`` holds ``key``."""
    for node in nodes:
        entry = node.storage.record(key).get(holder_id)
        if entry is not None and entry.present:
            return True
    return False


class TestLazyWithdrawal:
    """A withdrawal nobody waits for (a file deleted) starts no sweep of its own before
    `WITHDRAW_WAIT`; a sweep that runs meanwhile carries it."""

    async def test_a_withdrawal_alone_waits_then_goes(self) -> None:
        nodes = await start_cluster(4, seed=41)
        try:
            h = content_hash("deleted")
            await nodes[1].announce(h)
            others = [n for i, n in enumerate(nodes) if i != 1]
            assert listed(others, dht_key(h), "holder-1")
            pub = nodes[1].publisher
            assert pub is not None
            rounds = pub.rounds
            queued = time.monotonic()
            nodes[1].queue(h, False)
            await asyncio.sleep(4 * publisher.GATHER)
            assert pub.rounds == rounds, "a round ran for the withdrawal alone"
            assert listed(others, dht_key(h), "holder-1")
            await wait_for(lambda: not listed(others, dht_key(h), "holder-1"), 10)
            assert time.monotonic() - queued >= WITHDRAW_WAIT
            assert ids(await nodes[0].holders(h)) == set()
        finally:
            await stop_all(nodes)

    async def test_a_sweep_that_runs_anyway_carries_the_withdrawal(self) -> None:
        nodes = await start_cluster(4, seed=42)
        try:
            old, new = content_hash("old version"), content_hash("new version")
            await nodes[2].announce(old)
            nodes[2].queue(old, False)
            sent = nodes[2].queue(new, True)
            assert sent is not None
            await sent
            others = [n for i, n in enumerate(nodes) if i != 2]
            assert not listed(others, dht_key(old), "holder-2")
            assert listed(others, dht_key(new), "holder-2")
        finally:
            await stop_all(nodes)

    async def test_a_caller_waiting_for_the_withdrawal_has_it_sent_at_once(self) -> None:
        nodes = await start_cluster(4, seed=43)
        try:
            h = content_hash("withdrawn on purpose")
            await nodes[3].announce(h)
            took = time.monotonic()
            await nodes[3].withdraw(h)
            assert time.monotonic() - took < WITHDRAW_WAIT
            assert not listed(nodes[:3], dht_key(h), "holder-3")
        finally:
            await stop_all(nodes)


class TestExpiry:
    TTL = 1.5

    async def test_silent_holder_expires_within_ttl_while_announcer_stays(self) -> None:
        nodes = await start_cluster(10, seed=3, ttl=self.TTL, reannounce=0.4, rpc_timeout=0.2)
        try:
            h = content_hash("expiring")
            keeper, silent, asker = nodes[1], nodes[2], nodes[7]
            await keeper.announce(h)
            await silent.announce(h)
            silent.stop()  # no more announcements from it, ever
            stopped_at = time.monotonic()
            assert ids(await asker.holders(h)) == {"holder-1", "holder-2"}
            # The bound: gone from every lookup that starts more than TTL after its last announce,
            # even though lookups keep writing merged copies back in between.
            while time.monotonic() < stopped_at + self.TTL:
                await asker.holders(h)
                await asyncio.sleep(0.1)
            assert ids(await asker.holders(h)) == {"holder-1"}
            assert ids(await nodes[9].holders(h)) == {"holder-1"}
        finally:
            await stop_all(nodes)


class TestAbruptStop:
    async def test_lookup_with_dead_holder_and_storers_costs_about_one_timeout_per_round(
        self, twenty: list[HolderIndex]
    ) -> None:
        h = content_hash("survivors")
        holders = [twenty[i] for i in (4, 9, 14)]
        await asyncio.gather(*(node.announce(h) for node in holders))
        asker = twenty[0]
        by_distance = sorted(twenty[1:], key=lambda node: key_distance(node, h))
        dead = {holders[0]} | {n for n in by_distance if n not in holders[1:]}.intersection(
            by_distance[:3]
        )
        for node in dead:
            node.stop()  # like kill -9: the port closes, nobody is told
        start = time.monotonic()
        found = ids(await asker.holders(h))
        elapsed = time.monotonic() - start
        log.info("lookup with %d dead nodes took %.3f s", len(dead), elapsed)
        assert {"holder-9", "holder-14"} <= found
        assert elapsed < 3.0, f"lookup took {elapsed:.2f} s"
        start = time.monotonic()
        await asker.holders(h)
        assert time.monotonic() - start < 1.0, "dead contacts should have left the routing table"


class TestTimeoutsAndFailures:
    async def test_bootstrap_to_nobody_gives_up_after_the_rpc_timeout(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            silent_port = probe.getsockname()[1]
            node = HolderIndex(
                bytes(20), Holder("lonely", "127.0.0.1", 1), sealer=dht_seal(), rpc_timeout=0.3
            )
            await node.listen(0, interface="127.0.0.1")
            try:
                start = time.monotonic()
                assert await node.bootstrap([("127.0.0.1", silent_port)]) == []
                assert time.monotonic() - start < 1.0
                with pytest.raises(LookupFailed):
                    await node.holders(content_hash("anything"))
            finally:
                await stop_all([node])

    async def test_all_contacts_dead_raises_lookup_failed(self) -> None:
        nodes = await start_cluster(3, seed=9, rpc_timeout=0.2)
        try:
            await stop_all(nodes[1:])
            with pytest.raises(LookupFailed):
                await nodes[0].holders(content_hash("unreachable"))
        finally:
            await stop_all(nodes)

    async def test_rpcs_are_counted(self, twenty: list[HolderIndex]) -> None:
        before = twenty[6].rpc_count
        await twenty[6].holders(content_hash("count me"))
        assert twenty[6].rpc_count - before >= twenty[6].ksize  # the k nearest, at least


class TestHandOverToNewcomer:
    async def test_node_joining_next_to_a_key_receives_its_record(
        self, twenty: list[HolderIndex]
    ) -> None:
        h = content_hash("handed over")
        await twenty[8].announce(h)
        key = bytes.fromhex(h)[:20]
        newcomer = HolderIndex(
            key[:-1] + bytes([key[-1] ^ 1]), Holder("new", "127.0.0.1", 1), sealer=dht_seal()
        )
        await newcomer.listen(0, interface="127.0.0.1")
        try:
            await newcomer.bootstrap([("127.0.0.1", twenty[0].port)])
            await wait_for(lambda: bool(newcomer.storage.record(key)), timeout=3.0)
            assert set(newcomer.storage.record(key)) == {"holder-8"}
        finally:
            await stop_all([newcomer])

    async def test_node_that_lost_every_contact_rejoins_through_its_seeds(self) -> None:
        nodes = await start_cluster(3, seed=11, rpc_timeout=0.2)
        seed_id, seed_port = nodes[0].node.id, nodes[0].port
        try:
            await stop_all([nodes[0], nodes[2]])
            with pytest.raises(LookupFailed):
                await nodes[1].holders(content_hash("gone"))
            assert nodes[1].protocol.router.find_neighbors(nodes[1].node) == []
            revived = HolderIndex(
                seed_id, Holder("revived", "127.0.0.1", 1), sealer=dht_seal(), rpc_timeout=0.2
            )
            nodes.append(revived)
            await revived.listen(seed_port, interface="127.0.0.1")
            await revived.announce(content_hash("gone"))
            assert ids(await nodes[1].holders(content_hash("gone"))) == {"revived"}
        finally:
            await stop_all(nodes)


class TestOneNodeNetwork:
    async def test_lone_node_answers_from_its_own_copy(self) -> None:
        node = HolderIndex(bytes(20), Holder("alone", "127.0.0.1", 1), sealer=dht_seal())
        await node.listen(0, interface="127.0.0.1")
        try:
            h = content_hash("mine")
            await node.announce(h)
            assert ids(await node.holders(h)) == {"alone"}
            assert await node.holders(content_hash("not mine")) == []
        finally:
            await stop_all([node])


class TestStockValueApiIsClosed:
    async def test_get_and_set_are_refused(self) -> None:
        node = HolderIndex(bytes(20), Holder("x", "127.0.0.1", 1), sealer=dht_seal())
        with pytest.raises(NotImplementedError):
            await node.set("k", "v")
        with pytest.raises(NotImplementedError):
            await node.get("k")
