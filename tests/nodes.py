"""Whole nodes (overlay.node.Node) in one event loop, on 127.0.0.1 with port 0."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from overlay.config import Settings
from overlay.node import Node
from tests.credentials import key_file
from tests.waiting import wait_for


def settings_for(
    base: Path, name: str, peers: tuple[tuple[str, int], ...] = (), **options: Any
) -> Settings:
    """A loopback node with no LAN discovery: this machine's LAN must never be probed; a member
    of the test network unless `network_key` says otherwise."""
    options.setdefault("network_key", key_file())
    return Settings(
        port=0,
        host="127.0.0.1",
        shared=base / name / "Shared",
        name=name,
        peers=peers,
        discovery=False,
        **options,
    )


async def start_ring(base: Path, count: int, **options: Any) -> list[Node]:
    """`count` nodes joined one after another through the first; returns once the ring is whole."""
    nodes: list[Node] = []
    for i in range(count):
        peers = () if not nodes else (("127.0.0.1", nodes[0].port),)
        node = Node(settings_for(base, f"n{i:02d}", peers, **options))
        nodes.append(node)
        await node.start()
    await wait_for(lambda: all(len(n.view.members) == count for n in nodes), 30)
    return nodes


async def stop_all(nodes: list[Node]) -> None:
    for node in nodes:
        await node.close()


def name_of(node: Node) -> str:
    """The name a test node was started with (`settings_for` always gives one)."""
    assert node.settings.name is not None
    return node.settings.name


def own_folder(node: Node) -> Path:
    return node.settings.shared / name_of(node)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def holds(node: Node, owner: str, rel: str, sha256: str) -> bool:
    """Whether `node` has `<owner>/<rel>` on disk with exactly these bytes."""
    path = node.settings.shared / owner / rel
    return path.is_file() and digest(path) == sha256
