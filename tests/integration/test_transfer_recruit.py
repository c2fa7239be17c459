"""A running block download seats holders the locator names after it started (receivers that
began fetching the same file later, announced as partial holders), over real loopback sockets;
partial holders only while the host has processor time to spare (`sync/cpu.py`)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from sync.engine import Peer
from tests.integration.test_transfer_blocks import MiB, big_file, sha_of, throttle
from tests.sync_harness import host, make_node, stop_all

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

    recv = await make_node(tmp_path, "recv", interval=3600.0, locate=locate, cpu=host(0.0))
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


@pytest.mark.parametrize("busy", [0.0, 1.0])
async def test_a_partial_holder_is_seated_only_while_the_host_has_time_to_spare(
    tmp_path: Path, busy: float
) -> None:
    """A partial holder listed from the start: not among the first holders, then seated after
    the first pause if the host was idle in it, and never if it was busy throughout."""
    size = 48 * MiB
    owner = await make_node(tmp_path, "owner", interval=3600.0)
    sha = big_file(owner.own / "big.bin", size)
    owner.server.wrap(throttle(0.4))
    partial = await make_node(tmp_path, "partial", interval=3600.0)
    os.link(owner.own / "big.bin", partial.own / "copy.bin")  # it would serve every block
    listed = Peer("partial", partial.peer.host, partial.peer.port, fetching=True)

    async def locate(sha256_hex: str) -> list[Peer]:
        return [owner.peer, listed]

    recv = await make_node(tmp_path, "recv", interval=3600.0, locate=locate, cpu=host(busy))
    everyone = {n.peer.name: n.peer for n in [owner, partial, recv]}
    for node in (owner, partial):
        node.engine.set_topology(None, everyone)
    recv.engine.set_topology(owner.peer, everyone)
    await asyncio.gather(*(n.engine.start() for n in [owner, partial, recv]))
    try:
        assert await asyncio.wait_for(recv.engine.pull_once(), 60) == 1
        assert sha_of(recv.root / "owner" / "big.bin") == sha
        if busy:
            assert partial.engine.server.sent == 0
            assert owner.engine.server.sent >= size
        else:
            assert partial.engine.server.sent > 0
    finally:
        await stop_all([owner, partial, recv])


async def test_a_busy_host_still_seats_a_full_holder_found_mid_download(tmp_path: Path) -> None:
    """Only partial holders wait for a spare host: one that holds the whole file costs no
    more to fetch from than the owner, and takes load off it."""
    size = 48 * MiB
    owner = await make_node(tmp_path, "owner", interval=3600.0)
    sha = big_file(owner.own / "big.bin", size)
    owner.server.wrap(throttle(0.4))
    full = await make_node(tmp_path, "full", interval=3600.0)
    os.link(owner.own / "big.bin", full.own / "copy.bin")
    located: list[Peer] = [owner.peer]

    async def locate(sha256_hex: str) -> list[Peer]:
        return list(located)

    recv = await make_node(tmp_path, "recv", interval=3600.0, locate=locate, cpu=host(1.0))
    everyone = {n.peer.name: n.peer for n in [owner, full, recv]}
    for node in (owner, full):
        node.engine.set_topology(None, everyone)
    recv.engine.set_topology(owner.peer, everyone)
    await asyncio.gather(*(n.engine.start() for n in [owner, full, recv]))
    fetching: list[tuple[str, bool]] = []
    recv.engine.add_fetching_listener(lambda h, active: fetching.append((h, active)))
    try:
        pull = asyncio.create_task(recv.engine.pull_once())
        while not fetching:
            await asyncio.sleep(0.01)
        located.append(full.peer)
        assert await asyncio.wait_for(pull, 60) == 1
        assert sha_of(recv.root / "owner" / "big.bin") == sha
        assert full.engine.server.sent > 0, "the full holder found mid-download served nothing"
    finally:
        await stop_all([owner, full, recv])
