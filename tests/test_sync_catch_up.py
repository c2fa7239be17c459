"""A node that joins or rejoins the ring catches up at once (issue 14): its engine pulls as
soon as it is given a new previous node, not at the next pull interval."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

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
