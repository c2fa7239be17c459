"""Several sync engines on loopback converge to identical trees, whatever the files are."""

from __future__ import annotations

import hashlib
import os
import random
import struct
import time
import zlib
from pathlib import Path

import pytest

from sync.engine import Peer
from tests.sync_harness import (
    converged,
    make_node,
    make_ring,
    pull_until,
    start_all,
    stop_all,
    tree,
    wire_ring,
)
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def png(width: int, height: int) -> bytes:
    """A valid RGB PNG: signature, IHDR, one zlib IDAT, IEND, each with its CRC."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(
        b"\x00" + bytes((x * 7 + y) % 256 for x in range(width * 3)) for y in range(height)
    )
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def big_file(path: Path, size: int) -> None:
    """Random-looking bytes without holding them all: 1 MiB of random data, varied per block."""
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for i in range(size >> 20):
            f.write(struct.pack(">Q", i) + block[8:])


async def test_four_nodes_converge_on_a_mixed_set(tmp_path: Path) -> None:
    nodes = await make_ring(tmp_path, 4)
    rnd = random.Random(7)
    a, b, c, d = (n.own for n in nodes)
    big_file(a / "big.bin", 100 << 20)
    write(a / "pics" / "image.png", png(64, 48))
    write(a / "empty", b"")
    write(a / "deep" / "er" / "still" / "empty too", b"")
    for i in range(3000):
        write(
            b / f"d{i % 10}" / f"e{i % 7}" / f"f{i % 3}" / f"small {i}.dat",
            rnd.randbytes(rnd.randint(1, 4096)),
        )
    for size in (1, 4095, 65536, 65537, 3_000_001):
        write(c / "sizes" / f"{size}.bin", rnd.randbytes(size))
    write(c / "ünïcødé 日本語" / "naïve café.txt", "grüße".encode())
    write(c / "name with spaces.txt", b"spaces")
    for name in ("END", "JOIN.txt", "FILE", "MANIFEST.md", "JOIN", "UPDATE"):
        write(d / name, name.encode() * 3)
    write(d / "x" / "y" / "z" / "END", b"deep END")
    await start_all(nodes)
    try:
        started = time.monotonic()
        rounds = await pull_until(nodes, 50)
        elapsed = time.monotonic() - started
        assert rounds <= 4, elapsed
        everything = tree(nodes[0].root)
        assert len(everything) == 4 + 3000 + 7 + 7
        hashes = set(everything.values())
        for node in nodes:
            assert node.engine.held_hashes() == hashes
            assert node.engine.summary()["node1"][0] == 3000
            assert not list((node.root / ".lanshare-tmp").iterdir())
    finally:
        await stop_all(nodes)


async def test_files_added_edited_and_deleted_after_start_reach_everyone(tmp_path: Path) -> None:
    nodes = await make_ring(tmp_path, 3, interval=0.05)
    write(nodes[0].own / "old.txt", b"old")
    write(nodes[0].own / "doomed.txt", b"doomed")
    await start_all(nodes)
    try:
        await wait_for(lambda: converged(nodes), 20)
        write(nodes[1].own / "later" / "new file.bin", os.urandom(200_000))
        write(nodes[0].own / "old.txt", b"edited")
        (nodes[0].own / "doomed.txt").unlink()
        await wait_for(lambda: converged(nodes), 20)
        for node in nodes:
            assert (node.root / "node1" / "later" / "new file.bin").exists()
            assert (node.root / "node0" / "old.txt").read_bytes() == b"edited"
            assert not (node.root / "node0" / "doomed.txt").exists()
        assert nodes[2].engine.find("doomed.txt") == []
        (rec,) = nodes[2].engine.find("node0/old.txt")
        assert rec.seq >= 3 and nodes[0].engine.find("node0/old.txt") == [rec]
    finally:
        await stop_all(nodes)


async def test_a_locally_edited_replica_goes_to_the_trash_not_away(tmp_path: Path) -> None:
    nodes = await make_ring(tmp_path, 2)
    write(nodes[0].own / "notes.txt", b"v1")
    write(nodes[0].own / "gone.txt", b"g1")
    await start_all(nodes)
    try:
        await pull_until(nodes, 10)
        replica = nodes[1].root / "node0"
        write(replica / "notes.txt", b"my local edit")
        write(replica / "gone.txt", b"my other edit")
        write(nodes[0].own / "notes.txt", b"v2 from the owner")
        (nodes[0].own / "gone.txt").unlink()
        assert await nodes[0].engine.rescan() == 2
        await pull_until(nodes, 10)
        trashed = sorted(p.read_bytes() for p in (nodes[1].state / "trash" / "node0").iterdir())
        assert trashed == [b"my local edit", b"my other edit"]
    finally:
        await stop_all(nodes)


async def test_restart_with_unchanged_files_rehashes_none(tmp_path: Path) -> None:
    nodes = await make_ring(tmp_path, 2)
    for i in range(3000):
        write(nodes[0].own / f"d{i % 5}" / f"f{i}", i.to_bytes(4, "big") * 1024)
    await start_all(nodes)
    await pull_until(nodes, 30)
    assert nodes[0].engine.hash_count == 3000
    await stop_all(nodes)
    again = [await make_node(tmp_path, n.peer.name) for n in nodes]
    wire_ring(again)
    await start_all(again)
    try:
        assert await again[0].engine.rescan() == 0
        assert await again[1].engine.pull_once() == 0
        assert [n.engine.hash_count for n in again] == [0, 0]
        assert again[1].engine.summary()["node0"] == (3000, 3000 * 4096)
    finally:
        await stop_all(again)


async def test_a_replica_deleted_while_down_is_fetched_again(tmp_path: Path) -> None:
    nodes = await make_ring(tmp_path, 2)
    write(nodes[0].own / "keep.bin", os.urandom(100_000))
    await start_all(nodes)
    await pull_until(nodes, 10)
    await stop_all(nodes)
    (nodes[1].root / "node0" / "keep.bin").unlink()
    again = [await make_node(tmp_path, n.peer.name) for n in nodes]
    wire_ring(again)
    await start_all(again)
    try:
        assert "node0" not in again[1].engine.summary()
        assert await pull_until(again, 10) == 1
    finally:
        await stop_all(again)


async def test_located_holders_are_asked_first_and_listeners_hear_holdings(
    tmp_path: Path,
) -> None:
    located: list[Peer] = []

    async def locate(sha256_hex: str) -> list[Peer]:
        return located

    owner = await make_node(tmp_path, "node0")
    holder = await make_node(tmp_path, "node1")
    fetcher = await make_node(tmp_path, "node2", locate=locate)
    nodes = [owner, holder, fetcher]
    located.append(holder.peer)
    body = os.urandom(300_000)
    write(owner.own / "shared.bin", body)
    served_by: list[str] = []
    events: list[tuple[str, bool]] = []
    fetcher.engine.record_rtt = lambda peer, seconds: served_by.append(peer)
    fetcher.engine.add_holding_listener(lambda sha, held: events.append((sha, held)))
    await start_all(nodes)
    try:
        holder.engine.set_topology(owner.peer, {})
        assert await holder.engine.pull_once() == 1
        fetcher.engine.set_topology(owner.peer, {n.peer.name: n.peer for n in nodes})
        assert await fetcher.engine.pull_once() == 1
        assert served_by == ["node1"]
        sha = hashlib.sha256(body).hexdigest()
        assert events == [(sha, True)]
        (owner.own / "shared.bin").unlink()
        assert await owner.engine.rescan() == 1
        assert await fetcher.engine.pull_once() == 1
        assert events == [(sha, True), (sha, False)]
        assert fetcher.engine.held_hashes() == set()
    finally:
        await stop_all(nodes)
