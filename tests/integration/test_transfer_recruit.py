"""A running block download seats holders the locator names after it started (receivers that
began fetching the same file later, announced as partial holders), over real loopback sockets;
partial holders only while the host has processor time to spare (`sync/cpu.py`)."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from sync.engine import Peer
from tests.integration.test_transfer_blocks import MiB, big_file, sha_of, throttle
from tests.sync_harness import SyncNode, host, make_node, stop_all

pytestmark = pytest.mark.integration


@dataclass
class Scene:
    """A slow owner of a 48 MiB file, a second node holding the same file, and a receiver
    whose locator names `located` (the owner at first); all started."""

    owner: SyncNode
    other: SyncNode
    recv: SyncNode
    sha: str
    located: list[Peer]
    asked: list[str]

    def listed(self, fetching: bool) -> Peer:
        """The second node as the locator would name it: a partial holder when `fetching`."""
        peer = self.other.peer
        return Peer(peer.name, peer.host, peer.port, fetching=fetching)

    async def pull_naming_the_other_mid_download(self, fetching: bool) -> None:
        """Pull, and have the locator name the second node once the download is running."""
        started: list[bool] = []
        self.recv.engine.add_fetching_listener(lambda h, active: started.append(active))
        pull = asyncio.create_task(self.recv.engine.pull_once())
        while not started:
            await asyncio.sleep(0.01)
        self.located.append(self.listed(fetching))
        assert await asyncio.wait_for(pull, 60) == 1

    async def stop(self) -> None:
        await stop_all([self.owner, self.other, self.recv])


async def scene(tmp_path: Path, other: str, busy: float) -> Scene:
    """Build and start a `Scene`; the receiver's host is busy `busy` of the time."""
    owner = await make_node(tmp_path, "owner", interval=3600.0)
    sha = big_file(owner.own / "big.bin", 48 * MiB)
    owner.server.wrap(throttle(0.4))  # a slow owner: the download is still running when...
    second = await make_node(tmp_path, other, interval=3600.0)
    os.link(owner.own / "big.bin", second.own / "copy.bin")  # ...this holder is named
    located: list[Peer] = [owner.peer]
    asked: list[str] = []

    async def locate(sha256_hex: str) -> list[Peer]:
        asked.append(sha256_hex)
        return list(located)

    recv = await make_node(tmp_path, "recv", interval=3600.0, locate=locate, cpu=host(busy))
    everyone = {n.peer.name: n.peer for n in [owner, second, recv]}
    for node in (owner, second):
        node.engine.set_topology(None, everyone)
    recv.engine.set_topology(owner.peer, everyone)
    await asyncio.gather(*(n.engine.start() for n in [owner, second, recv]))
    return Scene(owner, second, recv, sha, located, asked)


async def test_a_holder_located_mid_download_gets_a_seat_and_serves(tmp_path: Path) -> None:
    s = await scene(tmp_path, "late", busy=0.0)
    fetching: list[tuple[str, bool]] = []
    s.recv.engine.add_fetching_listener(lambda h, active: fetching.append((h, active)))
    try:
        await s.pull_naming_the_other_mid_download(fetching=True)
        assert sha_of(s.recv.root / "owner" / "big.bin") == s.sha
        assert s.other.engine.server.sent > 0, "the holder located mid-download served nothing"
        assert len(s.asked) >= 2
        assert fetching == [(s.sha, True), (s.sha, False)]
    finally:
        await s.stop()


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
    """A partial holder listed from the start is seated from the start if the host was idle
    while the download looked (`LOOK`), and never if it was busy throughout."""
    s = await scene(tmp_path, "partial", busy)
    s.located.append(s.listed(fetching=True))  # it would serve every block
    try:
        assert await asyncio.wait_for(s.recv.engine.pull_once(), 60) == 1
        assert sha_of(s.recv.root / "owner" / "big.bin") == s.sha
        if busy:
            assert s.other.engine.server.sent == 0
            assert s.owner.engine.server.sent >= 48 * MiB
        else:
            assert s.other.engine.server.sent > 0
    finally:
        await s.stop()


async def test_a_busy_host_still_seats_a_full_holder_found_mid_download(tmp_path: Path) -> None:
    """Only partial holders wait for a spare host: one that holds the whole file costs no
    more to fetch from than the owner, and takes load off it."""
    s = await scene(tmp_path, "full", busy=1.0)
    try:
        await s.pull_naming_the_other_mid_download(fetching=False)
        assert sha_of(s.recv.root / "owner" / "big.bin") == s.sha
        assert s.other.engine.server.sent > 0, "the full holder found mid-download served nothing"
    finally:
        await s.stop()
