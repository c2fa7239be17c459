"""Benchmark of the ring: time for 8 nodes to form one ring, and to heal after two die.

All nodes run in one process and one event loop on 127.0.0.1 with default timing (heartbeat
0.5 s, 3 misses). Forming: node 0 founds, the other 7 JOIN at once; timed from the first start
until every node holds the same 8-node view. Healing: node 0 and node 3 "die" at the same
instant, at a random point of the heartbeat cycle; timed until the survivors hold the same
view, ids 0..n-3. Two kinds of death:
"killed" (server closed: connections are refused at once, as after kill -9) and "frozen"
(the port accepts connections but never answers, as a stopped or cut-off host, so every
probe waits for its timeout). Each figure is the median of --runs runs (default 5).
Prints one JSON document. Usage: ``python3 bench/ring_bench.py [--runs 5] [--nodes 8]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ring.membership import Member  # noqa: E402
from ring.service import RingService  # noqa: E402
from ring.wire import FrameServer  # noqa: E402
from tests.credentials import member  # noqa: E402


async def until(cond: Callable[[], bool], timeout: float = 30.0) -> float:
    """Seconds until `cond` holds (polled every 5 ms)."""
    started = time.monotonic()
    while not cond():
        if time.monotonic() - started > timeout:
            raise TimeoutError("the ring did not settle")
        await asyncio.sleep(0.005)
    return time.monotonic() - started


def agreed(nodes: list[RingService]) -> bool:
    view = nodes[0].view
    keys = {n.me.key for n in nodes}
    return view.keys == keys and all(n.view == view for n in nodes)


async def make(count: int) -> list[tuple[FrameServer, RingService]]:
    made = []
    for i in range(count):
        creds = member()  # a node's ring key is its TLS identity
        server = FrameServer("127.0.0.1", 0, door=creds.door())
        port = await server.start()
        made.append((server, RingService(server, Member(creds.key, f"n{i}", "127.0.0.1", port))))
    return made


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A frozen host: takes the connection and never says a word."""
    await reader.read()
    writer.close()


async def one_run(count: int, frozen: bool) -> tuple[float, float]:
    made = await make(count)
    nodes = [svc for _, svc in made]
    started = time.monotonic()
    await nodes[0].start()
    await asyncio.gather(*(n.start([nodes[0].me.address]) for n in nodes[1:]))
    formed = time.monotonic() - started + await until(lambda: agreed(nodes))
    await asyncio.sleep(random.uniform(0, 0.5))
    victims = [made[0], made[3]]
    stand_ins = []
    for server, svc in victims:
        await svc.crash()
        await server.close()
        if frozen:
            stand_ins.append(await asyncio.start_server(silent, svc.me.host, svc.me.port))
    survivors = [svc for server, svc in made if (server, svc) not in victims]
    healed = await until(lambda: agreed(survivors) and len(survivors[0].view.members) == count - 2)
    for stand_in in stand_ins:
        stand_in.close()
    for server, svc in made:
        if (server, svc) not in victims:
            await svc.crash()
        await server.close()
    return formed, healed


async def main(runs: int, count: int) -> dict[str, Any]:
    killed = [await one_run(count, frozen=False) for _ in range(runs)]
    frozen = [await one_run(count, frozen=True) for _ in range(runs)]
    return {
        "nodes": count,
        "runs": runs,
        "heartbeat_s": 0.5,
        "misses": 3,
        "form_s": round(statistics.median(f for f, _ in killed + frozen), 3),
        "heal_killed_s": round(statistics.median(h for _, h in killed), 3),
        "heal_frozen_s": round(statistics.median(h for _, h in frozen), 3),
        "heal_killed_all_s": [round(h, 3) for _, h in killed],
        "heal_frozen_all_s": [round(h, 3) for _, h in frozen],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=8)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print(json.dumps(asyncio.run(main(args.runs, args.nodes))))
