"""Benchmark of the holder index: `who-has` lookup latency and RPCs per lookup.

Runs 16, 32 and 64 HolderIndex nodes in one process on 127.0.0.1 (one event loop), announces
files held by random subsets, then times sequential lookups from random nodes. A second phase
stops a quarter of the nodes abruptly (port closed, nobody told) and times lookups again.
Every size runs twice in the same process: with datagrams sealed as a node seals them
(ChaCha20-Poly1305, stamps, replay cache: `overlay/sealing.py`) and without (`dht.sealing.Clear`),
the baseline of what sealing costs. Prints one JSON document.
Usage: ``python3 bench/dht_bench.py [--sizes 16 32 64]``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dht.index import Holder, HolderIndex
from dht.pacing import LOOKUP
from dht.sealing import Clear, Sealer
from overlay.network_key import NetworkKey
from overlay.sealing import DatagramSeal

SEALINGS = ("sealed", "clear")

FILES = 20
LOOKUPS = 300
DEAD_LOOKUPS = 40


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def sealer(sealing: str, network: NetworkKey) -> Sealer:
    """One node's sealer: its own replay cache, the network's key (or none at all)."""
    return DatagramSeal(network.dht_key, "DHT datagram") if sealing == "sealed" else Clear()


async def start(n: int, rng: random.Random, ksize: int, sealing: str) -> list[HolderIndex]:
    nodes: list[HolderIndex] = []
    network = NetworkKey.generate()
    for i in range(n):
        node = HolderIndex(
            rng.randbytes(20),
            Holder(f"holder-{i}", "127.0.0.1", 20000 + i),
            sealer=sealer(sealing, network),
            ksize=ksize,
        )
        await node.listen(0, interface="127.0.0.1")
        if nodes:
            seeds = {nodes[0], rng.choice(nodes)}
            await node.bootstrap([("127.0.0.1", s.port) for s in seeds])
        nodes.append(node)
    return nodes


async def time_lookups(
    nodes: list[HolderIndex], files: dict[str, set[str]], count: int, rng: random.Random
) -> dict[str, Any]:
    latencies, rpcs, exact = [], [], 0
    for _ in range(count):
        asker = rng.choice(nodes)
        h = rng.choice(list(files))
        # Lookup requests only: repairs and sweeps run in the background rounds meanwhile.
        before = asker.rpc_counts.get(LOOKUP, 0)
        start = time.perf_counter()
        found = await asker.holders(h)
        latencies.append(time.perf_counter() - start)
        rpcs.append(asker.rpc_counts.get(LOOKUP, 0) - before)
        exact += {x.holder_id for x in found} == files[h]
    return {
        "lookups": count,
        "latency_ms_median": round(statistics.median(latencies) * 1000, 2),
        "latency_ms_p99": round(percentile(latencies, 0.99) * 1000, 2),
        "latency_ms_max": round(max(latencies) * 1000, 2),
        "rpcs_per_lookup_mean": round(statistics.mean(rpcs), 2),
        "rpcs_per_lookup_max": max(rpcs),
        "exact_answers": exact,
    }


async def run_size(n: int, seed: int, ksize: int, sealing: str) -> dict[str, Any]:
    rng = random.Random(seed)
    join_start = time.perf_counter()
    nodes = await start(n, rng, ksize, sealing)
    join_s = time.perf_counter() - join_start
    try:
        files: dict[str, set[str]] = {}
        announce_rpcs = sum(node.rpc_count for node in nodes)
        announce_start = time.perf_counter()
        jobs = []
        for i in range(FILES):
            h = hashlib.sha256(f"bench-file-{seed}-{i}".encode()).hexdigest()
            owners = rng.sample(nodes, rng.randint(1, 5))
            files[h] = {o.holder.holder_id for o in owners}
            jobs += [o.announce(h) for o in owners]
        await asyncio.gather(*jobs)
        announce_s = time.perf_counter() - announce_start
        announce_rpcs = sum(node.rpc_count for node in nodes) - announce_rpcs
        healthy = await time_lookups(nodes, files, LOOKUPS, rng)

        # Dead holders stay listed until their entries expire: the index cannot know they died.
        victims = rng.sample(nodes, n // 4)
        for victim in victims:
            victim.stop()
        alive = [x for x in nodes if x not in victims]
        degraded = await time_lookups(alive, files, DEAD_LOOKUPS, rng)
        degraded["dead_nodes"] = len(victims)
        return {
            "nodes": n,
            "datagrams": sealing,
            "ksize": ksize,
            "join_s": round(join_s, 3),
            "announces": len(jobs),
            "announce_s_total_concurrent": round(announce_s, 3),
            "rpcs_per_announce": round(announce_rpcs / len(jobs), 2),
            "healthy": healthy,
            "quarter_dead": degraded,
        }
    finally:
        for node in nodes:
            node.stop()
        await asyncio.sleep(0)


async def main(sizes: list[int], ksize: int) -> None:
    results = [
        await run_size(n, seed=n, ksize=ksize, sealing=sealing)
        for n in sizes
        for sealing in SEALINGS
    ]
    print(
        json.dumps({"benchmark": "dht who-has", "rpc_timeout_s": 0.5, "results": results}, indent=2)
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.CRITICAL)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--ksize", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(main(args.sizes, args.ksize))
