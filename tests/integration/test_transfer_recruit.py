"""A running block download seats holders the locator names after it started (receivers that
began fetching the same file later, announced as partial holders), over real loopback sockets."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from sync.engine import Peer
from tests.integration.test_transfer_blocks import MiB, big_file, sha_of, throttle
from tests.sync_harness import make_node, stop_all

pytestmark = pytest.mark.integration


async def test_a_holder_located_mid_download_gets_a_seat_and_serves(tmp_path: Path) -> None:
    size = 48 * MiB
    owner = await make_node(tmp_path, "owner", interval=3600.0)
    sha = big_file(owner.own / "big.bin", size)
    owner.server.wrap(throttle(0.4))  # a slow owner: the download is still running when...
    late = await make_node(tmp_path, "late", interval=3600.0)
    os.link(owner.own / "big.bin", late.own / "copy.bin")  # ...this holder is located
    located: list[Peer] = [owner.peer]
    asked: list[str] = []

    async def locate(sha256_hex: str) -> list[Peer]:
        asked.append(sha256_hex)
        return list(located)

    recv = await make_node(tmp_path, "recv", interval=3600.0, locate=locate)
    everyone = {n.peer.name: n.peer for n in [owner, late, recv]}
    for node in (owner, late):
        node.engine.set_topology(None, everyone)
    recv.engine.set_topology(owner.peer, everyone)
    await asyncio.gather(*(n.engine.start() for n in [owner, late, recv]))
    fetching: list[tuple[str, bool]] = []
    recv.engine.add_fetching_listener(lambda h, active: fetching.append((h, active)))
    try:
        pull = asyncio.create_task(recv.engine.pull_once())
        while not fetching:
            await asyncio.sleep(0.01)
        located.append(Peer("late", late.peer.host, late.peer.port, fetching=True))
        assert await asyncio.wait_for(pull, 60) == 1
        assert sha_of(recv.root / "owner" / "big.bin") == sha
        assert late.engine.server.sent > 0, "the holder located mid-download served nothing"
        assert len(asked) >= 2
        assert fetching == [(sha, True), (sha, False)]
    finally:
        await stop_all([owner, late, recv])


async def test_a_download_that_finds_nobody_new_looks_again_less_often(tmp_path: Path) -> None:
    """A free seat and a locator that names nobody new: the lookups slow down (0.5 s, then
    twice as long each time, up to 4 s), where a fixed 0.5 s would ask twice a second."""
    size = 48 * MiB
    owner = await make_node(tmp_path, "owner", interval=3600.0)
    sha = big_file(owner.own / "big.bin", size)
    owner.server.wrap(throttle(0.8))
    asked: list[float] = []

    async def locate(sha256_hex: str) -> list[Peer]:
        asked.append(time.monotonic())
        return [owner.peer]

    recv = await make_node(tmp_path, "recv", interval=3600.0, locate=locate)
    everyone = {n.peer.name: n.peer for n in [owner, recv]}
    owner.engine.set_topology(None, everyone)
    recv.engine.set_topology(owner.peer, everyone)
    await asyncio.gather(owner.engine.start(), recv.engine.start())
    try:
        started = time.monotonic()
        assert await asyncio.wait_for(recv.engine.pull_once(), 60) == 1
        took = time.monotonic() - started
        assert sha_of(recv.root / "owner" / "big.bin") == sha
        again = len(asked) - 1  # the first is the pass's own lookup
        assert took > 2.5, took  # long enough to tell the two apart
        assert again <= 1 + took / 2, (again, took)
    finally:
        await stop_all([owner, recv])
