"""Applying pushed records while a pull round runs: a push is never queued behind a download.

Two real engines on loopback, the pull interval an hour: the round is started by hand, the
owner's server made slow for a large file, or held back on it until the test lets go
(`FrameServer.wrap`), and the owner pushes an edit while that download runs.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from ring.wire import Connection, Handler, Message
from sync.blocks import LARGE_FILE
from sync.messages import BlocksRequest, FileRequest
from tests.sync_harness import SyncNode, make_ring, start_all, stop_all
from tests.waiting import wait_for

SLOW = 2.0
"""Seconds the owner sits on each request for the large file (a block list, each range)."""


def slow_for(node: SyncNode, sha256: str) -> None:
    """Make `node` answer every BLOCKS and FILE request for content `sha256` SLOW seconds late."""

    async def late() -> None:
        await asyncio.sleep(SLOW)

    hold(node, sha256, late, (BlocksRequest, FileRequest))


def held_until(node: SyncNode, sha256: str, gate: asyncio.Event) -> None:
    """Make `node` send no bytes of content `sha256` before `gate` is set (its block list is
    sent at once, so the download is under way)."""
    hold(node, sha256, gate.wait, (FileRequest,))


def hold(
    node: SyncNode,
    sha256: str,
    wait: Callable[[], Awaitable[object]],
    kinds: tuple[type[Message], ...],
) -> None:
    """Make `node` await `wait()` before it answers each request of `kinds` for `sha256`."""

    def held(handler: Handler) -> Handler:
        async def late(msg: Message, conn: Connection) -> Message | None:
            if isinstance(msg, kinds) and getattr(msg, "sha256", None) == sha256:
                await wait()
            return await handler(msg, conn)

        return late

    node.server.wrap(held)


def read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


class TestPushDuringARound:
    async def test_a_pushed_edit_lands_long_before_a_running_download_ends(
        self, tmp_path: Path
    ) -> None:
        owner, recv = await make_ring(tmp_path, 2, interval=3600.0)
        big = os.urandom(2 * LARGE_FILE + 1000)
        (owner.own / "big.bin").write_bytes(big)
        (owner.own / "small.txt").write_bytes(b"v1")
        await start_all([owner, recv])
        try:
            sha = owner.engine.find("node0/big.bin")[0].sha256
            slow_for(owner, sha)
            pull = asyncio.create_task(recv.engine.pull_once())
            small = recv.root / "node0" / "small.txt"
            await wait_for(lambda: read(small) == b"v1" and len(recv.engine.transfers()) == 1, 20)
            owner.engine.set_topology(recv.peer, {"node1": recv.peer}, next=recv.peer)
            (owner.own / "small.txt").write_bytes(b"v2, pushed")
            await owner.engine.rescan()
            took = await wait_for(lambda: read(small) == b"v2, pushed", 3 * SLOW)
            assert not pull.done(), f"the pushed edit waited for the round ({took:.2f} s)"
            assert not (recv.root / "node0" / "big.bin").exists()
            assert await asyncio.wait_for(pull, 30) >= 2
            assert (recv.root / "node0" / "big.bin").read_bytes() == big
            assert read(small) == b"v2, pushed"
        finally:
            await stop_all([owner, recv])

    async def test_an_edit_pushed_during_its_download_is_applied_once_it_is_done(
        self, tmp_path: Path
    ) -> None:
        owner, recv = await make_ring(tmp_path, 2, interval=3600.0)
        body = os.urandom(2 * LARGE_FILE + 1000)
        (owner.own / "big.bin").write_bytes(body)
        (owner.own / "copy.bin").write_bytes(body)  # the old bytes stay on offer after the edit
        (owner.own / "other.bin").write_bytes(os.urandom(2 * LARGE_FILE + 1000))
        heard: list[str] = []
        recv.engine.add_change_listener(lambda change: heard.append(change.text()))
        await start_all([owner, recv])
        try:
            big_sha = owner.engine.find("node0/big.bin")[0].sha256
            edited, landed = asyncio.Event(), asyncio.Event()
            held_until(owner, big_sha, edited)
            held_until(owner, owner.engine.find("node0/other.bin")[0].sha256, landed)
            pull = asyncio.create_task(recv.engine.pull_once())
            await wait_for(lambda: len(recv.engine.transfers()) == 2, 20)
            owner.engine.set_topology(recv.peer, {"node1": recv.peer}, next=recv.peer)
            (owner.own / "big.bin").write_bytes(b"v2, short now")
            await owner.engine.rescan()
            await wait_for(lambda: recv.engine.find("node0/big.bin")[0].sha256 != big_sha, 10)
            edited.set()  # the edit is stored while big.bin's first version is on its way
            target = recv.root / "node0" / "big.bin"
            await wait_for(lambda: read(target) == b"v2, short now", 10)
            landed.set()  # the round goes on after both, with other.bin
            assert await asyncio.wait_for(pull, 30) == 3
            assert (recv.root / "node0" / "copy.bin").read_bytes() == body
            assert [line for line in heard if "big.bin" in line] == [
                "+ node0/big.bin added",
                "~ node0/big.bin updated",
            ]
            assert not (recv.state / "trash").exists()  # the old bytes were ours, not an edit
        finally:
            await stop_all([owner, recv])

    async def test_a_content_pushed_under_a_new_name_during_its_download_travels_once(
        self, tmp_path: Path
    ) -> None:
        owner, recv = await make_ring(tmp_path, 2, interval=3600.0)
        body = os.urandom(2 * LARGE_FILE + 1000)
        (owner.own / "big.bin").write_bytes(body)
        await start_all([owner, recv])
        try:
            slow_for(owner, owner.engine.find("node0/big.bin")[0].sha256)
            pull = asyncio.create_task(recv.engine.pull_once())
            await wait_for(lambda: len(recv.engine.transfers()) == 1, 20)
            owner.engine.set_topology(recv.peer, {"node1": recv.peer}, next=recv.peer)
            (owner.own / "same.bin").write_bytes(body)
            await owner.engine.rescan()
            await asyncio.wait_for(pull, 30)
            await wait_for(lambda: read(recv.root / "node0" / "same.bin") == body, 10)
            assert (recv.root / "node0" / "big.bin").read_bytes() == body
            assert owner.engine.server.sent < 1.5 * len(body), "the content travelled twice"
        finally:
            await stop_all([owner, recv])
