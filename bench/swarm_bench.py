"""One new large file to many nodes, as whole nodes (overlay.node.Node, one event loop), with and
without --dht, against one transfer; medians.

A ring of 1 + N nodes forms (N receivers, `--nodes`, default 8) and goes quiet; then a file of
`--mib` MiB (default 256) is put in the owner's folder and scanned, and the time is taken from
the end of that scan (the push goes out) until every receiver holds the file (verified and
placed). The same with one receiver is "one transfer". Both are measured in a ring alone and
with --dht, where receivers find each other in the index as partial holders and trade blocks;
the ratios printed are time(N at once) / time(one), per mode, and time with --dht / time
without. Measured on bare loopback, where this machine's CPU is the limit (every receiver takes
in, hashes and writes every byte), and with each node's uplink paced to `--uplink-mbps` (a LAN,
where the owner's uplink is the limit and trading blocks is what beats it; 0: skip it).

Each measurement is repeated (`--runs`, a fresh ring each time, `os.sync()` before each); the
median is reported with the bytes each node served in the last run. Prints JSON.

    python3 bench/swarm_bench.py [--mib 256] [--nodes 8] [--uplink-mbps 1000] [--runs 3]
        [--dir /tmp]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.sync_bench import write_big  # noqa: E402
from bench.transfer_bench import paced  # noqa: E402
from overlay.node import Node  # noqa: E402
from tests.integration.test_transfer_blocks import sha_of  # noqa: E402
from tests.nodes import name_of, own_folder, start_ring, stop_all  # noqa: E402
from tests.waiting import wait_for  # noqa: E402

FILE = "swarm.bin"
QUIET_TIMEOUT = 60.0
"""Longest a fresh ring may take to form and publish nothing more before a run starts."""


def idle(nodes: list[Node]) -> bool:
    """Whether the ring is whole, every node has pulled from its previous node once (a push
    sent earlier may find its next node not ready and wait for a retry), and no node has DHT
    work waiting."""
    whole = all(len(n.view.members) == len(nodes) for n in nodes)
    pulled = all(n.sync is not None and n.sync.puller.pulled for n in nodes)
    return whole and pulled and all(n.index is None or not n.index.backlog().total for n in nodes)


def held_by_all(nodes: list[Node], sha: str) -> bool:
    return all(n.sync is not None and sha in n.sync.held_hashes() for n in nodes)


async def one_run(
    base: Path, master: Path, sha: str, receivers: int, dht: bool, uplink: float
) -> tuple[float, dict[str, int]]:
    """Seconds from the owner's scan of the new file until every receiver placed it, and the
    FILE bytes each node served."""
    nodes = await start_ring(base, 1 + receivers, dht=dht, interval=3600.0)
    try:
        if uplink:
            for node in nodes:
                assert node.server is not None
                node.server.wrap(paced(uplink))
        await wait_for(lambda: idle(nodes), QUIET_TIMEOUT)
        owner = nodes[0]
        assert owner.sync is not None
        os.link(master, own_folder(owner) / FILE)
        os.sync()
        await owner.sync.rescan()
        started = time.perf_counter()
        await wait_for(lambda: held_by_all(nodes, sha), 3600.0, step=0.01)
        elapsed = time.perf_counter() - started
        served = {name_of(n): n.sync.server.sent for n in nodes if n.sync is not None}
        return elapsed, served
    finally:
        await stop_all(nodes)


async def measure(
    args: argparse.Namespace, base: Path, master: Path, sha: str, uplink: float
) -> dict[str, object]:
    """Medians of one transfer and of `--nodes` at once, without and with --dht."""
    out: dict[str, object] = {"uplink_MBps": round(uplink / 1e6, 1) if uplink else None}
    medians: dict[tuple[str, int], float] = {}
    for mode, dht in (("ring", False), ("dht", True)):
        served: dict[str, int] = {}
        for count in (1, args.nodes):
            times = []
            for i in range(args.runs):
                run_dir = base / f"{mode}-{count}-{i}"
                os.sync()
                elapsed, served = await one_run(run_dir, master, sha, count, dht, uplink)
                times.append(elapsed)
                shutil.rmtree(run_dir, ignore_errors=True)
            medians[(mode, count)] = statistics.median(times)
        one, many = medians[(mode, 1)], medians[(mode, args.nodes)]
        out[mode] = {
            "one_transfer_s": round(one, 3),
            "all_at_once_s": round(many, 3),
            "ratio_all_over_one": round(many / one, 3),
            "bytes_served_last_run": served,
        }
    out["ratio_dht_over_ring_all_at_once"] = round(
        medians[("dht", args.nodes)] / medians[("ring", args.nodes)], 3
    )
    return out


async def run(args: argparse.Namespace, base: Path) -> dict[str, object]:
    master = base / "master.bin"
    await asyncio.to_thread(write_big, master, args.mib)
    settled = time.time() - 60  # older than a node's settle time: scanned and sent at once
    os.utime(master, (settled, settled))
    sha = await asyncio.to_thread(sha_of, master)
    out: dict[str, object] = {
        "cpus": os.cpu_count(),
        "runs": args.runs,
        "bytes": args.mib << 20,
        "receivers": args.nodes,
        "aim": {"ratio_all_over_one_at_most": 2.0, "ratio_dht_over_ring_below": 1.0},
    }
    out["bare_loopback"] = await measure(args, base, master, sha, 0.0)
    if args.uplink_mbps:
        rate = args.uplink_mbps * 1e6 / 8
        out[f"uplink_{args.uplink_mbps:g}_mbps"] = await measure(args, base, master, sha, rate)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--uplink-mbps", type=float, default=1000.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="swarm-bench-", dir=args.dir))
    try:
        result = asyncio.run(run(args, base))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
