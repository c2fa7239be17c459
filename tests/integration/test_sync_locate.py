"""A busy index never holds up the ring's own sources; what they cannot serve waits for it.

`Fetcher.download` waits `LOCATE_WAIT` at most for the holders of a pass's contents, then
fetches from the previous node and the owner, and looks up again only what those could not
serve, to fetch it from the holders the index names. Real engines, servers and files on
loopback; the index is a `locate_many` held on an event, the one edge that does not exist
here (the DHT's own lookups are tested in test_dht_*).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sync.blocks import LARGE_FILE
from sync.engine import Peer
from tests.sync_harness import SyncNode, make_node, start_all, stop_all
from tests.waiting import wait_for

SMALL = os.urandom(1000)
BIG = os.urandom(2 * LARGE_FILE + 7)
FILES = {"small.txt": SMALL, "big.bin": BIG}
"""One file of each kind of job: a BATCH of small files, and a download in blocks."""


class HeldIndex:
    """A `locate_many` that answers only once `answer` is set, with `holders` for every hash."""

    def __init__(self) -> None:
        self.asked = asyncio.Event()
        self.answer = asyncio.Event()
        self.holders: list[Peer] = []

    async def __call__(self, hashes: list[str]) -> dict[str, list[Peer]]:
        self.asked.set()
        await self.answer.wait()
        return {sha: list(self.holders) for sha in hashes}


def has_all(node: SyncNode) -> bool:
    """Whether `node` holds node0's two files, byte-exact."""
    for name, body in FILES.items():
        try:
            if (node.root / "node0" / name).read_bytes() != body:
                return False
        except FileNotFoundError:
            return False
    return True


@asynccontextmanager
async def gone_owner() -> AsyncIterator[tuple[Peer, list[int]]]:
    """An address that takes connections and closes them at once (an owner that has gone),
    with the count of connections it took."""
    taken = [0]

    async def close(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        taken[0] += 1
        writer.close()

    server = await asyncio.start_server(close, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield Peer("node0", "127.0.0.1", port), taken
    finally:
        server.close()
        await server.wait_closed()


async def test_a_slow_index_does_not_hold_up_what_the_owner_serves(tmp_path: Path) -> None:
    index = HeldIndex()
    owner = await make_node(tmp_path, "node0")
    recv = await make_node(tmp_path, "node1", locate_many=index)
    for name, body in FILES.items():
        (owner.own / name).write_bytes(body)
    nodes = [owner, recv]
    await start_all(nodes)
    try:
        recv.engine.set_topology(owner.peer, {n.peer.name: n.peer for n in nodes})
        pull = asyncio.create_task(recv.engine.pull_once())
        await wait_for(index.asked.is_set, 10)
        await wait_for(lambda: has_all(recv), 20)  # the index has still not answered
        assert await asyncio.wait_for(pull, 10) == 2
    finally:
        index.answer.set()
        await stop_all(nodes)


async def test_what_the_owner_cannot_serve_comes_from_the_holders_the_index_names_later(
    tmp_path: Path,
) -> None:
    index = HeldIndex()
    owner = await make_node(tmp_path, "node0")
    holder = await make_node(tmp_path, "node1")
    recv = await make_node(tmp_path, "node2", locate_many=index)
    index.holders = [holder.peer]
    nodes = [owner, holder, recv]
    async with gone_owner() as (gone, taken):
        await start_all(nodes)
        try:
            owner.engine.set_topology(None, {}, next=holder.peer)
            holder.engine.set_topology(owner.peer, {"node0": owner.peer}, next=recv.peer)
            recv.engine.set_topology(None, {"node0": gone, "node1": holder.peer})
            for name, body in FILES.items():
                (owner.own / name).write_bytes(body)
            assert await owner.engine.rescan() == 2  # pushed to the holder, and on to recv
            await wait_for(lambda: has_all(holder), 20)
            await wait_for(lambda: taken[0] > 0, 10)  # recv tried the owner, not waiting
            assert not has_all(recv)
            index.answer.set()
            await wait_for(lambda: has_all(recv), 20)
            assert holder.engine.server.sent >= len(BIG)  # FILE bytes; a BATCH is not counted
        finally:
            index.answer.set()
            await stop_all(nodes)
