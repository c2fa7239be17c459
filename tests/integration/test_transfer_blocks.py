"""Large files in blocks over real loopback sockets: several holders at once, a holder killed,
a node stopped and restarted mid-download, a holder that corrupts what it sends."""

from __future__ import annotations

import asyncio
import hashlib
import os
import struct
from collections.abc import Callable
from pathlib import Path

import msgpack
import pytest

from ring.wire import Connection, FrameServer, Handler, Message
from sync.blocks import LARGE_FILE, BlockCache, block_count, block_size_for
from sync.engine import Peer
from sync.fetcher import Locate
from sync.messages import BlocksData, BlocksRequest, FileData, FileRequest
from sync.resume import PARTIAL_DIR
from sync.sources import spread
from sync.swarm import MAX_SOURCES
from tests.credentials import member_door
from tests.sync_harness import SyncNode, host, make_node, stop_all
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

MiB = 1 << 20


def big_file(path: Path, size: int) -> str:
    """Random-looking bytes (a random MiB varied per MiB); returns their SHA-256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    block = bytearray(os.urandom(MiB))
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        for i in range(size // MiB):
            block[:8] = struct.pack(">Q", i)
            f.write(block)
            digest.update(block)
    return digest.hexdigest()


def sha_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MiB):
            digest.update(chunk)
    return digest.hexdigest()


def locator(holders: list[Peer]) -> Locate:
    """A stand-in for the DHT: every hash is held by `holders`, in this order."""

    async def locate(sha256_hex: str) -> list[Peer]:
        return list(holders)

    return locate


def throttle(delay: float) -> Callable[[Handler], Handler]:
    """Serve each FILE request `delay` seconds late (a slower holder, so a test can act
    mid-download); everything else untouched."""

    def wrap(handler: Handler) -> Handler:
        async def slow(msg: Message, conn: Connection) -> Message | None:
            if isinstance(msg, FileRequest):
                await asyncio.sleep(delay)
            return await handler(msg, conn)

        return slow

    return wrap


async def holders_and_receiver(
    tmp_path: Path, size: int, copies: int, receiver_name: str = "recv"
) -> tuple[list[SyncNode], SyncNode, str]:
    """An owner plus `copies - 1` nodes holding the same content (hard links in their own
    folders, so content addressing serves it), and a receiver that locates all of them."""
    owner = await make_node(tmp_path, "owner", interval=3600.0)
    sha = big_file(owner.own / "big.bin", size)
    os.link(owner.own / "big.bin", owner.own / "same.bin")
    holders = [owner]
    for i in range(1, copies):
        node = await make_node(tmp_path, f"holder{i}", interval=3600.0)
        os.link(owner.own / "big.bin", node.own / "copy.bin")
        holders.append(node)
    peers = [h.peer for h in holders]
    recv = await make_node(tmp_path, receiver_name, interval=3600.0, locate=locator(peers))
    everyone = {n.peer.name: n.peer for n in [*holders, recv]}
    for node in holders:
        node.engine.set_topology(None, everyone)
    recv.engine.set_topology(owner.peer, everyone)
    await asyncio.gather(*(n.engine.start() for n in [*holders, recv]))
    return holders, recv, sha


async def test_200_mb_from_three_holders_at_once(tmp_path: Path) -> None:
    size = 200 * MiB
    holders, recv, sha = await holders_and_receiver(tmp_path, size, 3)
    try:
        await recv.engine.pull_once()
        assert sha_of(recv.root / "owner" / "big.bin") == sha
        served = [h.engine.server.sent for h in holders]
        assert all(n > 0 for n in served), served
        assert sum(served) >= size
        assert sha_of(recv.root / "owner" / "same.bin") == sha  # a local copy, not fetched again
        assert sum(h.engine.server.sent for h in holders) < 2 * size
        assert not any((recv.root / PARTIAL_DIR).iterdir())
    finally:
        await stop_all([*holders, recv])


async def test_a_holder_killed_mid_transfer_the_others_finish(tmp_path: Path) -> None:
    size = 64 * MiB
    holders, recv, sha = await holders_and_receiver(tmp_path, size, 3)
    for node in holders:
        node.server.wrap(throttle(0.05))
    victim = holders[1]
    try:
        pull = asyncio.create_task(recv.engine.pull_once())
        await wait_for(lambda: victim.engine.server.sent > 0, 20)
        await victim.server.close()
        await victim.engine.stop()
        await asyncio.wait_for(pull, 60)
        assert sha_of(recv.root / "owner" / "big.bin") == sha
        assert victim.engine.server.sent < size
    finally:
        await stop_all([holders[0], holders[2], recv])


def verified(record: Path) -> list[int]:
    """The blocks a partial download's record says are verified (none before it exists)."""
    try:
        blocks: list[int] = msgpack.unpackb(record.read_bytes())["verified"]
    except FileNotFoundError:
        return []
    return blocks


async def test_a_restarted_node_fetches_only_the_missing_blocks(tmp_path: Path) -> None:
    size = 64 * MiB
    holders, recv, sha = await holders_and_receiver(tmp_path, size, 1)
    owner = holders[0]
    owner.server.wrap(throttle(0.05))
    record = recv.root / PARTIAL_DIR / f"{sha}.blocks"
    try:
        pull = asyncio.create_task(recv.engine.pull_once())
        await wait_for(lambda: len(recv.engine.fetcher.transfers.snapshot()) == 1, 20)
        await wait_for(lambda: len(verified(record)) >= 5, 20)
        await recv.engine.stop()  # cuts the download; the partial file and record stay
        await asyncio.wait_for(pull, 30)
        await recv.server.close()
        assert record.exists() and not (recv.root / "owner" / "big.bin").exists()
        sent_before = owner.engine.server.sent
        kept = len(verified(record))

        again = await make_node(tmp_path, "recv", interval=3600.0, locate=locator([owner.peer]))
        again.engine.set_topology(owner.peer, {"owner": owner.peer, "recv": again.peer})
        await again.engine.start()
        await again.engine.pull_once()
        fetched_after = owner.engine.server.sent - sent_before
        assert sha_of(again.root / "owner" / "big.bin") == sha
        assert kept >= 5
        block = block_size_for(size)
        assert fetched_after == size - kept * block, (fetched_after, kept)
        assert not record.exists()
        await stop_all([again])
    finally:
        await stop_all([owner])


async def evil_holder(source: Path, name: str) -> tuple[FrameServer, Peer, list[int]]:
    """A holder that answers BLOCKS honestly but flips one byte of every block it sends."""
    cache = BlockCache()
    asked: list[int] = []
    size = source.stat().st_size

    async def on_blocks(msg: Message, conn: Connection) -> Message:
        assert isinstance(msg, BlocksRequest)
        hashes = await cache.get(msg.sha256, msg.block_size, source, size)
        return BlocksData(msg.sha256, size, msg.block_size, hashes)

    async def on_file(msg: Message, conn: Connection) -> None:
        assert isinstance(msg, FileRequest) and msg.length is not None
        asked.append(msg.offset)
        with open(source, "rb") as f:
            f.seek(msg.offset)
            body = bytearray(f.read(msg.length))
        body[len(body) // 2] ^= 0x01
        await conn.send(FileData(msg.sha256, len(body), msg.offset, size))
        conn.writer.write(body)
        await conn.writer.drain()

    server = FrameServer("127.0.0.1", 0, door=member_door())
    server.route(BlocksRequest, on_blocks)
    server.route(FileRequest, on_file)
    port = await server.start()
    return server, Peer(name, "127.0.0.1", port), asked


async def test_a_corrupting_holder_is_caught_and_avoided(tmp_path: Path) -> None:
    size = 48 * MiB
    owner = await make_node(tmp_path, "owner", interval=3600.0)
    sha = big_file(owner.own / "big.bin", size)
    evil, evil_peer, asked = await evil_holder(owner.own / "big.bin", "evil")
    recv = await make_node(
        tmp_path, "recv", interval=3600.0, locate=locator([evil_peer, owner.peer])
    )
    recv.engine.set_topology(owner.peer, {"owner": owner.peer, "recv": recv.peer})
    await asyncio.gather(owner.engine.start(), recv.engine.start())
    try:
        await recv.engine.pull_once()
        assert sha_of(recv.root / "owner" / "big.bin") == sha
        assert 1 <= len(asked) <= 2  # one bad block (plus one pipelined), then dropped
        assert owner.engine.server.sent >= size - LARGE_FILE
        assert block_count(size, LARGE_FILE) == size // LARGE_FILE
    finally:
        await evil.close()
        await stop_all([owner, recv])


async def test_a_long_download_does_not_hold_up_a_rescan(tmp_path: Path) -> None:
    holders, recv, _sha = await holders_and_receiver(tmp_path, 32 * MiB, 1)
    holders[0].server.wrap(throttle(0.5))
    try:
        pull = asyncio.create_task(recv.engine.pull_once())
        await wait_for(lambda: len(recv.engine.transfers()) == 1, 20)
        (recv.own / "mine.txt").write_bytes(b"made during a download")
        await asyncio.wait_for(recv.engine.rescan(), 5)
        assert [r.path for r in recv.engine.find("mine.txt")] == ["mine.txt"]
        assert not pull.done()
        info = recv.engine.transfers()[0]
        assert (info.owner, info.path, info.size) == ("owner", "big.bin", 32 * MiB)
        assert info.sources == ("owner",) and 0 <= info.done < info.size
        await asyncio.wait_for(pull, 60)
        assert recv.engine.transfers() == []
    finally:
        await stop_all([*holders, recv])


async def receivers_of_one_file(
    tmp_path: Path,
    size: int,
    count: int,
    uplink: Callable[[Handler], Handler],
    fetching: bool = False,
) -> tuple[SyncNode, list[SyncNode], str]:
    """An owner of a new file behind `uplink`, and `count` receivers, started, each locating
    the owner and the other receivers (listed as partial holders when `fetching`) on what
    looks to them like an idle host."""
    owner = await make_node(tmp_path, "owner", interval=3600.0)
    sha = big_file(owner.own / "big.bin", size)
    owner.server.wrap(uplink)
    nodes = [
        await make_node(tmp_path, f"r{i}", interval=3600.0, cpu=host(0.0)) for i in range(count)
    ]
    everyone = {n.peer.name: n.peer for n in [owner, *nodes]}
    for node in nodes:
        others = [
            Peer(n.peer.name, n.peer.host, n.peer.port, fetching=fetching)
            for n in nodes
            if n is not node
        ]
        node.engine.fetcher.locate = locator([owner.peer, *others])
        node.engine.set_topology(owner.peer, everyone)
    await asyncio.gather(*(n.engine.start() for n in [owner, *nodes]))
    return owner, nodes, sha


async def test_receivers_of_one_file_trade_blocks_while_downloading(tmp_path: Path) -> None:
    size = 64 * MiB
    # a slow uplink: the receivers are worth asking
    owner, nodes, sha = await receivers_of_one_file(tmp_path, size, 2, throttle(0.2))
    try:
        await asyncio.gather(*(n.engine.pull_once() for n in nodes))
        for node in nodes:
            assert sha_of(node.root / "owner" / "big.bin") == sha
        traded = [n.engine.server.sent for n in nodes]
        assert sum(traded) > 0, traded
        assert owner.engine.server.sent < 2 * size
    finally:
        await stop_all([owner, *nodes])


async def test_the_holder_with_the_file_is_found_past_holders_that_have_nothing(
    tmp_path: Path,
) -> None:
    """Located holders that hold nothing yet (receivers that have just started) rank before the
    owner, and the download's first choice of holders leaves the owner out: the block list is
    then asked of the others too, and whoever gives it serves the file."""
    size = 2 * LARGE_FILE + 1000
    owner = await make_node(tmp_path, "zz-owner", interval=3600.0)
    sha = big_file(owner.own / "big.bin", size)
    empty = [FrameServer("127.0.0.1", 0, door=member_door()) for _ in range(10)]
    ports = [await server.start() for server in empty]
    located = [Peer(f"empty{i}", "127.0.0.1", port) for i, port in enumerate(ports)]
    located.append(owner.peer)
    name = next(
        name
        for name in (f"recv{i}" for i in range(1000))
        if owner.peer not in spread(located, name, sha, MAX_SOURCES)
    )
    recv = await make_node(tmp_path, name, interval=3600.0, locate=locator(located))
    everyone = {owner.peer.name: owner.peer, recv.peer.name: recv.peer}
    owner.engine.set_topology(None, everyone)
    recv.engine.set_topology(owner.peer, everyone)
    await asyncio.gather(owner.engine.start(), recv.engine.start())
    try:
        assert await recv.engine.pull_once() == 1
        assert sha_of(recv.root / "zz-owner" / "big.bin") == sha
    finally:
        await stop_all([owner, recv])
        for server in empty:
            await server.close()
