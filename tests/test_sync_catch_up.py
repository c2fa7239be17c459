"""A node that joins or rejoins the ring catches up at once (issue 14): its engine pulls as
soon as it is given a new previous node, not at the next pull interval."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from sync.pull import least_vouched
from tests.sync_harness import make_node, make_ring, pull_until, start_all, stop_all
from tests.waiting import wait_for

INTERVAL = 30.0
"""The pull interval of the issue's report: no round of it may run during a test."""


class TestCatchingUp:
    async def test_a_rejoining_node_drops_a_file_deleted_while_it_was_away(
        self, tmp_path: Path
    ) -> None:
        nodes = await make_ring(tmp_path, 2, interval=INTERVAL)
        owner, away = nodes
        (owner.own / "gone.txt").write_bytes(b"deleted while node1 was away")
        (owner.own / "kept.txt").write_bytes(b"still here")
        await start_all(nodes)
        await pull_until(nodes, 20)
        replica = away.root / "node0" / "gone.txt"
        assert replica.exists()
        await stop_all([away])
        (owner.own / "gone.txt").unlink()
        await owner.engine.rescan()

        back = await make_node(tmp_path, "node1", interval=INTERVAL)
        try:
            await back.engine.start()
            started = time.monotonic()
            peers = {"node0": owner.peer, "node1": back.peer}
            back.engine.set_topology(owner.peer, peers)  # the ring took it back in
            await wait_for(lambda: not replica.exists(), 10)
            assert time.monotonic() - started < INTERVAL / 3
            assert (back.root / "node0" / "kept.txt").exists()
        finally:
            await stop_all([owner, back])

    async def test_a_new_previous_node_is_pulled_from_at_once(self, tmp_path: Path) -> None:
        nodes = await make_ring(tmp_path, 3, interval=INTERVAL)
        first, second, third = nodes
        (first.own / "f.txt").write_bytes(b"from node0")
        await start_all(nodes)
        try:
            peers = {n.peer.name: n.peer for n in nodes}
            third.engine.set_topology(first.peer, peers)  # node1 left: node0 is its previous
            await wait_for(lambda: (third.root / "node0" / "f.txt").exists(), 10)
            await wait_for(lambda: not third.engine.status().round_running, 10)
            pulled = dict(third.engine.puller.pulled)
            third.engine.set_topology(first.peer, peers)  # the same previous node: no round
            await asyncio.sleep(0.5)
            assert third.engine.puller.pulled == pulled == {"node0": pulled["node0"]}
            assert not (second.root / "node0" / "f.txt").exists()  # nobody else pulled
        finally:
            await stop_all(nodes)


class TestASourceWithAGap:
    async def test_records_its_source_missed_are_not_skipped_for_good(self, tmp_path: Path) -> None:
        """A relay that missed an owner's first records (a push lost while the ring changed)
        still serves the later ones. Its reader used to count itself past the missed ones and
        never asked for them again: 4 of 7 nodes of an 8-node ring kept 8,000 of 10,000 files
        for good. The relay now says how far it is complete, and the reader stops there."""
        owner = await make_node(tmp_path, "owner", interval=INTERVAL)
        relay = await make_node(tmp_path, "relay", interval=INTERVAL)
        asker = await make_node(tmp_path, "asker", interval=INTERVAL)
        nodes = [owner, relay, asker]
        for name in ("a.txt", "b.txt", "c.txt"):
            (owner.own / name).write_bytes(name.encode() * 100)
        try:
            await start_all(nodes)
            newest = max(owner.engine.state.records_of("owner").values(), key=lambda r: r.seq)
            assert newest.seq == 3
            relay.engine.state.put_record(newest, None)  # it got only the last push
            peers = {n.peer.name: n.peer for n in nodes}
            asker.engine.set_topology(relay.peer, peers)
            await asker.engine.pull_once()
            assert asker.engine.state.counter("owner") == 0  # the relay vouches for nothing yet
            relay.engine.set_topology(owner.peer, peers)
            await relay.engine.pull_once()
            assert relay.engine.state.counter("owner") == 3
            await asker.engine.pull_once()
            got = {p.name for p in (asker.root / "owner").iterdir()}
            assert got == {"a.txt", "b.txt", "c.txt"}
        finally:
            await stop_all(nodes)


class TestLeastVouched:
    def test_a_later_page_vouches_for_no_more_than_the_first(self) -> None:
        """The sender caught up between two pages: the records below the cursor that it had
        not had for the first page were never sent in this round."""
        first = least_vouched(None, {"owner": 0})
        assert least_vouched(first, {"owner": 10_000}) == {"owner": 0}

    def test_an_owner_unsaid_on_a_later_page_is_vouched_for_nothing(self) -> None:
        assert least_vouched({"a": 5, "b": 7}, {"a": 9}) == {"a": 5, "b": 0}

    def test_a_sender_that_says_nothing_changes_nothing(self) -> None:
        assert least_vouched(None, None) is None
        assert least_vouched({"a": 5}, None) == {"a": 5}

    def test_values_that_are_no_seq_are_left_out(self) -> None:
        assert least_vouched(None, {"a": True, "b": "7", "c": 3}) == {"c": 3}
