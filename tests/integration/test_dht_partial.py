"""Partial holders through the index (issue 12): whole --dht nodes fetching one new large file
find each other as partial holders and trade blocks, the owner's uplink being the bottleneck."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from overlay.node import Node
from ring.membership import Member
from ring.wire import Connection, Handler, Message
from sync.manifest import FileRecord, Peer
from sync.messages import FileRequest
from sync.swarm import Fetched
from tests.integration.test_transfer_blocks import MiB, big_file
from tests.nodes import holds, name_of, own_folder, start_ring, stop_all
from tests.sync_harness import host
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
log = logging.getLogger(__name__)

SIZE = 32 * MiB
UPLINK = 24 * MiB
"""Bytes a second the owner sends in all: four receivers at once would take 5 s from it alone."""


def narrow_uplink(node: Node, rate: float) -> None:
    """Make `node` serve FILE ranges one at a time at `rate` bytes a second in all (a shared
    uplink: the receivers gain by trading what they already have)."""
    assert node.server is not None
    lock = asyncio.Lock()

    def wrap(handler: Handler) -> Handler:
        async def shared(msg: Message, conn: Connection) -> Message | None:
            if isinstance(msg, FileRequest):
                async with lock:
                    await asyncio.sleep((msg.length or SIZE) / rate)
            return await handler(msg, conn)

        return shared

    node.server.wrap(wrap)


def record_sources(node: Node, served: dict[str, dict[str, int]]) -> None:
    """Keep the bytes per holder of every block download `node` completes; its swarm sees an
    idle host (the trading under test must not hang on how busy the test machine is)."""
    assert node.sync is not None
    swarm = node.sync.fetcher.swarm
    swarm.cpu = host(0.0)
    fetch = swarm.fetch

    async def counted(rec: FileRecord, holders: list[Peer], indexed: bool = False) -> Fetched:
        got = await fetch(rec, holders, indexed)
        served[name_of(node)] = dict(got.served)
        return got

    swarm.fetch = counted  # type: ignore[method-assign]


async def partial_listed(nodes: list[Node], sha: str, seen: set[str]) -> None:
    """Ask the index at every node, until cancelled, who is fetching `sha`; into `seen`."""
    while True:
        for node in nodes:
            assert node.index is not None
            seen.update(h.holder_id for h in await node.index.holders(sha) if h.partial)
        await asyncio.sleep(0.05)


def _name(member: Member | None) -> str | None:
    return None if member is None else member.name


class TestPartialHolders:
    async def test_receivers_of_a_new_file_find_each_other_in_the_index_and_trade(
        self, tmp_path: Path
    ) -> None:
        nodes = await start_ring(tmp_path, 5, dht=True, interval=0.5)
        try:
            owner, receivers = nodes[0], nodes[1:]
            narrow_uplink(owner, UPLINK)
            served: dict[str, dict[str, int]] = {}
            for node in receivers:
                record_sources(node, served)
            seen: set[str] = set()
            sha = await asyncio.to_thread(big_file, tmp_path / "big.bin", SIZE)
            watcher = asyncio.ensure_future(partial_listed(nodes, sha, seen))
            try:
                await asyncio.to_thread(
                    (tmp_path / "big.bin").rename, own_folder(owner) / "big.bin"
                )
                await wait_for(
                    lambda: all(holds(n, name_of(owner), "big.bin", sha) for n in nodes), 90
                )
            finally:
                watcher.cancel()
            keys = {n.ring.me.key: name_of(n) for n in nodes if n.ring is not None}
            log.info("listed as partial holders: %s", sorted(keys[k] for k in seen))
            log.info("bytes per holder: %s", served)
            assert seen, "no node was ever listed as fetching the file"
            assert seen <= {n.ring.me.key for n in receivers if n.ring is not None}
            prev = {name_of(n): _name(n.view.prev_of(n.ring.me.key)) for n in receivers if n.ring}
            traded = {
                receiver: {
                    source: count
                    for source, count in sources.items()
                    if source != name_of(owner) and count > 0
                }
                for receiver, sources in served.items()
            }
            via_index = [
                receiver
                for receiver, sources in traded.items()
                if any(source != prev[receiver] for source in sources)
            ]
            assert set(served) == {name_of(n) for n in receivers}
            assert all(sum(sources.values()) == SIZE for sources in served.values())
            assert via_index, f"no receiver got blocks from a partial holder it found: {served}"

            async def all_full() -> bool:
                for node in nodes:
                    assert node.index is not None
                    listed = await node.index.holders(sha)
                    if any(h.partial for h in listed) or len(listed) != len(nodes):
                        return False
                return True

            await wait_for(all_full, 10)
        finally:
            await stop_all(nodes)
