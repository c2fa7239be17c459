"""Helpers for DHT tests and the benchmark: loopback clusters of HolderIndex nodes, polling."""

from __future__ import annotations

import asyncio
import hashlib
import random
from typing import Any

from dht.index import Holder, HolderIndex
from tests.credentials import dht_seal


def content_hash(name: str) -> str:
    """A SHA-256 hex digest standing in for a file's content hash."""
    return hashlib.sha256(name.encode()).hexdigest()


def key_distance(node: HolderIndex, sha256_hex: str) -> int:
    """XOR distance between a node's id and the DHT key of a content hash."""
    node_id: int = node.node.long_id
    return node_id ^ int(sha256_hex[:40], 16)


async def start_cluster(n: int, seed: int, **kwargs: Any) -> list[HolderIndex]:
    """Start ``n`` nodes on 127.0.0.1 (UDP port 0), each joining through node 0 and one other.

    Node ids come from a seeded generator so a failure can be replayed.
    """
    rng = random.Random(seed)
    nodes: list[HolderIndex] = []
    try:
        for i in range(n):
            node = HolderIndex(
                rng.randbytes(20),
                Holder(f"holder-{i}", "127.0.0.1", 20000 + i),
                sealer=dht_seal(),
                **kwargs,
            )
            nodes.append(node)
            await node.listen(0, interface="127.0.0.1")
            if i:
                seeds = {0, rng.randrange(i)}
                await node.bootstrap([("127.0.0.1", nodes[j].port) for j in sorted(seeds)])
    except BaseException:
        await stop_all(nodes)
        raise
    return nodes


async def stop_all(nodes: list[HolderIndex]) -> None:
    """Stop every node and let the loop free their ports."""
    for node in nodes:
        node.stop()
    await asyncio.sleep(0)
