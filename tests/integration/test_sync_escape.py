"""A symlink swapped in and out of a served path, while a client asks for it again and again,
never makes the node send a byte from outside Shared/ (FILE, BATCH and BLOCKS alike).

A thread swaps the served file (or the folder above it) for a symlink to a file outside
Shared/ with the same size and mtime, and back, as fast as it can. Checking the path and then
opening it by name, as the node once did, loses that race a few times in a hundred.
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import os
import threading
from collections.abc import Generator
from pathlib import Path

import pytest

from ring.errors import PeerUnreachable, RemoteError
from sync.blocks import LARGE_FILE, MIN_BLOCK, hash_blocks
from sync.messages import BatchData, BatchRequest, BlocksData, BlocksRequest, FileRequest
from tests.sync_harness import SyncNode, make_node, stop_all
from tests.wire_client import connect

pytestmark = pytest.mark.integration

SIZE = 3 * MIN_BLOCK
REAL = b"R" * SIZE
SECRET = b"S" * SIZE
TRIES = 600
"""Requests of each kind per run (the old code leaked in a few of every hundred)."""

LIBC = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
RENAME_EXCHANGE = 2


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def exchange(a: Path, b: Path) -> None:
    """Swap two names atomically (renameat2 with RENAME_EXCHANGE), so the path always exists."""
    if LIBC.renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE):
        raise OSError(ctypes.get_errno(), f"cannot exchange {a} and {b}")


def swapping(node: SyncNode, outside: Path, what: str) -> Generator[None, None, None]:
    """Swap `victim/sub/f` (what="file") or `victim/sub` (what="folder") with a symlink to the
    same name outside Shared/, back and forth in a thread, until the generator is closed."""
    served = node.own / "sub" / "f" if what == "file" else node.own / "sub"
    link = served.parent / ".link"
    os.symlink(outside / "f" if what == "file" else outside, link)
    stop = threading.Event()

    def swap() -> None:
        while not stop.is_set():
            exchange(served, link)

    thread = threading.Thread(target=swap, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        if served.is_symlink():
            exchange(served, link)


async def ask_file(node: SyncNode) -> bytes:
    conn = await connect("127.0.0.1", node.peer.port)
    try:
        header = await conn.exchange(FileRequest(sha(REAL), "victim", "sub/f"))
        return await conn.reader.readexactly(header.size)  # type: ignore[attr-defined]
    except asyncio.IncompleteReadError as exc:
        return exc.partial
    except (RemoteError, PeerUnreachable):
        return b""
    finally:
        await conn.close()


async def ask_batch(node: SyncNode) -> bytes:
    conn = await connect("127.0.0.1", node.peer.port)
    try:
        item = {"sha256": sha(REAL), "owner": "victim", "path": "sub/f"}
        header = await conn.exchange(BatchRequest([item]))
        assert isinstance(header, BatchData)
        size = header.items[0]["size"]
        return await conn.reader.readexactly(size) if size > 0 else b""
    except asyncio.IncompleteReadError as exc:
        return exc.partial
    except (RemoteError, PeerUnreachable):
        return b""
    finally:
        await conn.close()


async def ask_blocks(node: SyncNode) -> bytes:
    conn = await connect("127.0.0.1", node.peer.port)
    try:
        node.engine.server.blocks = type(node.engine.server.blocks)()  # hash it afresh each time
        reply = await conn.exchange(BlocksRequest(sha(REAL), "victim", "sub/f", MIN_BLOCK))
        assert isinstance(reply, BlocksData)
        return reply.hashes
    except (RemoteError, PeerUnreachable):
        return b""
    finally:
        await conn.close()


@pytest.fixture
async def node(tmp_path: Path) -> SyncNode:  # type: ignore[misc]
    outside = tmp_path / "outside"
    outside.mkdir()
    n = await make_node(tmp_path, "victim")
    (n.own / "sub").mkdir()
    (n.own / "sub" / "f").write_bytes(REAL)
    (outside / "f").write_bytes(SECRET)
    mtime = os.stat(n.own / "sub" / "f").st_mtime_ns
    os.utime(outside / "f", ns=(mtime, mtime))
    await n.engine.start()
    yield n
    await stop_all([n])


@pytest.mark.parametrize("what", ["file", "folder"])
async def test_no_byte_from_outside_is_ever_served(
    node: SyncNode, tmp_path: Path, what: str
) -> None:
    real_blocks = hash_blocks(node.own / "sub" / "f", SIZE, MIN_BLOCK)
    assert LARGE_FILE > SIZE
    served: dict[str, int] = {"file": 0, "batch": 0, "blocks": 0}
    leaked: dict[str, int] = {"file": 0, "batch": 0, "blocks": 0}
    swap = swapping(node, tmp_path / "outside", what)
    next(swap)
    try:
        for _ in range(TRIES):
            for kind, ask in (("file", ask_file), ("batch", ask_batch), ("blocks", ask_blocks)):
                got = await ask(node)
                served[kind] += bool(got)
                if kind == "blocks":
                    leaked[kind] += bool(got) and got != real_blocks
                else:
                    leaked[kind] += b"S" in got
    finally:
        swap.close()
    assert leaked == {"file": 0, "batch": 0, "blocks": 0}, f"{leaked} of {served} served"
    assert all(served.values()), served  # the real file was served some of the time
