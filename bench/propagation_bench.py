#!/usr/bin/env python3
"""Time for a file added on one node to reach every node of a ring, with and without --dht.

Whole nodes (overlay.node.Node) run in one event loop on 127.0.0.1, joined one after another;
a file is written into one node's folder and the clock runs until every node holds it with the
right SHA-256. Each mode is repeated; medians are printed as JSON on stdout.

    python3 bench/propagation_bench.py [--nodes 16] [--repeat 3] [--size 1000000] [--interval 1]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from overlay.config import Settings  # noqa: E402
from overlay.node import Node  # noqa: E402
from tests.credentials import key_file  # noqa: E402


async def start_ring(base: Path, count: int, dht: bool, interval: float) -> list[Node]:
    nodes: list[Node] = []
    for i in range(count):
        peers = (("127.0.0.1", nodes[0].port),) if nodes else ()
        settings = Settings(
            port=0,
            host="127.0.0.1",
            shared=base / f"n{i:02d}" / "Shared",
            name=f"n{i:02d}",
            peers=peers,
            discovery=False,
            dht=dht,
            interval=interval,
            network_key=key_file(),
        )
        node = Node(settings)
        await node.start()
        nodes.append(node)
    while not all(len(n.view.members) == count for n in nodes):
        await asyncio.sleep(0.05)
    return nodes


def holds(node: Node, owner: str, rel: str, sha256: str) -> bool:
    path = node.settings.shared / owner / rel
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() == sha256
    except OSError:
        return False


async def one_file(nodes: list[Node], source: int, size: int, label: str) -> float:
    """Seconds from writing a file on nodes[source] until every node holds it, verified."""
    owner = nodes[source].settings.name
    assert owner is not None
    data = os.urandom(size)
    sha = hashlib.sha256(data).hexdigest()
    staged = nodes[source].settings.shared / f".stage-{label}"
    staged.write_bytes(data)
    started = time.monotonic()
    os.replace(staged, nodes[source].settings.shared / owner / f"{label}.bin")
    pending = list(nodes)
    while pending:
        pending = [n for n in pending if not holds(n, owner, f"{label}.bin", sha)]
        if time.monotonic() - started > 300:
            raise TimeoutError(f"{len(pending)} node(s) never got {label}")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def measure(count: int, dht: bool, repeat: int, size: int, interval: float) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="propagation-") as tmp:
        nodes = await start_ring(Path(tmp), count, dht, interval)
        try:
            return [
                await one_file(nodes, (i * 5) % count, size, f"{'dht' if dht else 'ring'}-{i}")
                for i in range(repeat)
            ]
        finally:
            for node in nodes:
                await node.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    result: dict[str, object] = {
        "nodes": args.nodes,
        "size": args.size,
        "interval_s": args.interval,
        "repeat": args.repeat,
    }
    for dht in (False, True):
        times = await measure(args.nodes, dht, args.repeat, args.size, args.interval)
        result["dht" if dht else "ring_only"] = {
            "median_s": round(statistics.median(times), 3),
            "runs_s": [round(t, 3) for t in times],
        }
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
