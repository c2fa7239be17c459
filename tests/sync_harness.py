"""A ring of sync engines on loopback for tests and the benchmark: no ring membership needed.

Each node has its own FrameServer on 127.0.0.1:0 and its own shared and state folders; the
nodes are wired in a fixed ring order with `set_topology` (node i's previous node is i-1).
Every owner name gets one key for the whole test run (`key_of`): what a roster would hold, so
engines sign their records and check each other's (also across restarts), and a test can sign
records of a fake owner (`signed_entry`).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from overlay.certificates import key_hex
from ring.wire import FrameServer
from sync.cpu import CpuSample
from sync.engine import FileRecord, Peer, SyncEngine
from sync.manifest import record_to_entry
from sync.scanner import TMP_DIR
from sync.signing import sign_records
from tests.credentials import member_door

_KEYS: dict[str, Ed25519PrivateKey] = {}


def key_of(name: str) -> Ed25519PrivateKey:
    """The key the owner `name` signs its records with (made on first use)."""
    return _KEYS.setdefault(name, Ed25519PrivateKey.generate())


def owner_key(name: str) -> str | None:
    """The key bound to `name`, as an engine's `owner_key` asks for it."""
    return key_hex(_KEYS[name].public_key()) if name in _KEYS else None


def signed_entry(rec: FileRecord, held: bool) -> dict[str, Any]:
    """A manifest entry of `rec`, signed by its owner's key."""
    (signed,) = sign_records([rec], key_of(rec.owner).sign)
    return record_to_entry(signed, held)


def host(busy: float) -> Callable[[], CpuSample]:
    """Processor times of a host that is busy `busy` of the time (0 to 1), for a swarm's
    `cpu`: one second more of them at each reading."""
    ticks = itertools.count()

    def now() -> CpuSample:
        total = float(next(ticks))
        return CpuSample(busy * total, total)

    return now


@dataclass
class SyncNode:
    """One engine with its server, its folders and its address."""

    engine: SyncEngine
    server: FrameServer
    root: Path
    state: Path
    peer: Peer

    @property
    def own(self) -> Path:
        """This node's own folder."""
        return self.root / self.peer.name


async def make_node(base: Path, name: str, **options: Any) -> SyncNode:
    """Build an engine, route it on a fresh server bound to 127.0.0.1:0 (not started); both
    use one door (`door` in options, else a new member of the test network's). It signs with
    `name`'s key and knows the key of every name (`key_of`). `cpu` in options replaces its
    swarm's reading of the host's processors (`host`): a test of trading between receivers
    must not depend on how busy the machine that runs it is; a benchmark keeps the real one."""
    root, state = base / name / "shared", base / name / "state"
    options.setdefault("door", member_door())
    options.setdefault("sign", key_of(name).sign)
    options.setdefault("owner_key", owner_key)
    cpu = options.pop("cpu", None)
    engine = SyncEngine(root, state, name, **options)
    if cpu is not None:
        engine.fetcher.swarm.cpu = cpu
    server = FrameServer("127.0.0.1", 0, door=engine.door)
    for cls, handler in engine.routes():
        server.route(cls, handler)
    port = await server.start()
    (root / name).mkdir(parents=True, exist_ok=True)
    return SyncNode(engine, server, root, state, Peer(name, "127.0.0.1", port))


def wire_ring(nodes: list[SyncNode]) -> None:
    """Tell every node its previous node (i-1, wrapping) and every member by name."""
    peers = {n.peer.name: n.peer for n in nodes}
    for i, node in enumerate(nodes):
        prev = nodes[i - 1].peer if len(nodes) > 1 else None
        node.engine.set_topology(prev, peers)


async def make_ring(base: Path, count: int, **options: object) -> list[SyncNode]:
    """`count` nodes named node0.. wired in a ring; engines not started yet (write files first)."""
    options.setdefault("interval", 3600.0)
    nodes = [await make_node(base, f"node{i}", **options) for i in range(count)]
    wire_ring(nodes)
    return nodes


async def start_all(nodes: list[SyncNode]) -> None:
    """Start every engine (initial scan, loop)."""
    await asyncio.gather(*(n.engine.start() for n in nodes))


async def stop_all(nodes: list[SyncNode]) -> None:
    """Stop every engine and server."""
    for node in nodes:
        await node.engine.stop()
        await node.server.close()


def tree(root: Path) -> dict[str, str]:
    """rel path -> sha256 of every regular file under root (the temp folder left out)."""
    out = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != TMP_DIR]
        for name in files:
            path = Path(folder) / name
            out[path.relative_to(root).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def converged(nodes: list[SyncNode]) -> bool:
    """Whether every node's shared tree equals the union of every node's own folder."""
    want: dict[str, str] = {}
    for node in nodes:
        want.update({f"{node.peer.name}/{k}": v for k, v in tree(node.own).items()})
    return all(tree(n.root) == want for n in nodes)


async def pull_until(nodes: list[SyncNode], timeout: float) -> int:
    """Run pull rounds on every node at once until converged; returns rounds used.

    Raises:
        AssertionError: not converged within `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    rounds = 0
    while not converged(nodes):
        assert time.monotonic() < deadline, f"not converged after {rounds} rounds"
        await asyncio.gather(*(n.engine.pull_once() for n in nodes))
        rounds += 1
    return rounds


def held_on_disk(node: SyncNode) -> list[str]:
    """Replica paths this node's state says it holds that are not on disk with that content
    (empty: its state matches its disk)."""
    on_disk = tree(node.root)
    return [
        f"{owner}/{path}"
        for owner, path, sha256, _size in node.engine.state.held()
        if owner != node.peer.name and on_disk.get(f"{owner}/{path}") != sha256
    ]
