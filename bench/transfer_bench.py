"""Transfer throughput on loopback, each against a baseline measured in the same run; medians.

(a) one large file (1 GiB) from one peer, in 4 MiB blocks (hashed per block and whole, written
    with pwrite, fsynced, renamed), against a raw `socket.sendfile` into one file;
(b) 5,000 files of 4 KiB in BATCH requests, against one connection carrying their bytes back
    to back, written out as files (no hashing, no fsync);
(c) a 256 MiB file to 8 nodes at once, each locating every other node as a holder (receivers
    serve the blocks they already have), against the time of one such transfer alone; the
    ratio is time(8 at once) / time(1). Measured twice: on bare loopback, where the limit is
    this machine's CPU (every receiver must still take in, hash and write all 256 MiB), and with
    each node's uplink paced to `--uplink-mbps` (a LAN: there, fetching from the owner alone
    takes about 8x one transfer, and trading blocks is what can beat that).

Each measurement is repeated (`--runs`, fresh receivers each time, `os.sync()` before each)
and the median is reported. Prints JSON.

    python3 bench/transfer_bench.py [--big-mib 1024] [--small 5000] [--swarm-mib 256]
        [--swarm-nodes 8] [--uplink-mbps 1000] [--runs 3] [--dir /tmp]
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
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.sync_bench import SMALL, baseline_big, baseline_small, write_big  # noqa: E402
from ring.wire import Connection, Handler, Message  # noqa: E402
from sync.fetcher import Locate  # noqa: E402
from sync.manifest import Peer  # noqa: E402
from sync.messages import FileRequest  # noqa: E402
from tests.sync_harness import SyncNode, make_node, stop_all  # noqa: E402


def median_of(runs: int, measure: Callable[[int], float]) -> float:
    """The median of several runs, each started with no dirty pages from the last."""
    times = []
    for i in range(runs):
        os.sync()
        times.append(measure(i))
    return statistics.median(times)


async def amedian_of(runs: int, measure: Callable[[int], Awaitable[float]]) -> float:
    """`median_of` for measurements that run on the event loop."""
    times = []
    for i in range(runs):
        os.sync()
        times.append(await measure(i))
    return statistics.median(times)


def paced(bytes_per_s: float) -> Callable[[Handler], Handler]:
    """One node's uplink: each FILE reply waits until the link would have carried it (the
    replies of all its connections share the one link), then goes at full speed."""
    link = {"free_at": 0.0}

    def wrap(handler: Handler) -> Handler:
        async def serve(msg: Message, conn: Connection) -> Message | None:
            if isinstance(msg, FileRequest) and msg.length:
                now = time.monotonic()
                link["free_at"] = max(now, link["free_at"]) + msg.length / bytes_per_s
                await asyncio.sleep(link["free_at"] - now)
            return await handler(msg, conn)

        return serve

    return wrap


def locator(holders: list[Peer]) -> Locate:
    """A stand-in for the DHT: every hash is held by `holders`."""

    async def locate(sha256_hex: str) -> list[Peer]:
        return list(holders)

    return locate


async def receivers(
    base: Path, owner: SyncNode, tag: str, count: int, uplink: float = 0.0
) -> list[SyncNode]:
    """`count` fresh nodes whose previous node is the owner, each locating all the others."""
    nodes = [await make_node(base, f"{tag}r{i}", interval=3600.0) for i in range(count)]
    if uplink:
        for node in nodes:
            node.server.wrap(paced(uplink))
    peers = [owner.peer, *(n.peer for n in nodes)]
    everyone = {p.name: p for p in peers}
    for node in nodes:
        node.engine.fetcher.locate = locator([p for p in peers if p != node.peer])
        node.engine.set_topology(owner.peer, everyone)
        await node.engine.start()
    return nodes


async def timed_pull(nodes: list[SyncNode], want: int) -> float:
    """Seconds until every node's pull round is done; each must land `want` files."""
    started = time.perf_counter()
    landed = await asyncio.gather(*(n.engine.pull_once() for n in nodes))
    elapsed = time.perf_counter() - started
    assert all(n == want for n in landed), landed
    return elapsed


async def run(args: argparse.Namespace, base: Path) -> dict[str, object]:
    out: dict[str, object] = {"cpus": os.cpu_count(), "runs": args.runs}

    owner = await make_node(base, "bigowner", interval=3600.0)
    big = owner.own / "big.bin"
    write_big(big, args.big_mib)
    await owner.engine.start()

    async def one_big(i: int) -> float:
        nodes = await receivers(base, owner, f"a{i}", 1)
        try:
            return await timed_pull(nodes, 1)
        finally:
            await stop_all(nodes)
            shutil.rmtree(base / f"a{i}r0", ignore_errors=True)

    sync_big = await amedian_of(args.runs, one_big)
    raw_big = median_of(args.runs, lambda i: baseline_big(big, base / f"raw{i}.bin"))
    mb = args.big_mib * (1 << 20) / 1e6
    out["a_one_big_file"] = {
        "bytes": args.big_mib << 20,
        "sync_s": round(sync_big, 3),
        "sync_MBps": round(mb / sync_big, 1),
        "raw_sendfile_s": round(raw_big, 3),
        "ratio_raw_time_over_sync_time": round(raw_big / sync_big, 3),
        "aim": 0.8,
    }
    big.unlink()
    await owner.engine.rescan()

    folder = owner.own / "small"
    folder.mkdir()
    files = []
    for i in range(args.small):
        path = folder / f"f{i:05d}.bin"
        path.write_bytes(os.urandom(SMALL))
        files.append(path)
    await owner.engine.rescan()

    async def small_files(i: int) -> float:
        nodes = await receivers(base, owner, f"b{i}", 1)
        try:
            return await timed_pull(nodes, args.small)
        finally:
            await stop_all(nodes)
            shutil.rmtree(base / f"b{i}r0", ignore_errors=True)

    sync_small = await amedian_of(args.runs, small_files)
    raw_small = median_of(args.runs, lambda i: baseline_small(files, base / f"raw-small{i}"))
    out["b_small_files"] = {
        "files": args.small,
        "file_bytes": SMALL,
        "sync_s": round(sync_small, 3),
        "sync_files_per_s": round(args.small / sync_small, 1),
        "raw_files_per_s": round(args.small / raw_small, 1),
        "ratio_raw_time_over_sync_time": round(raw_small / sync_small, 3),
        "aim_files_per_s": 2000,
    }
    shutil.rmtree(folder)
    await owner.engine.rescan()
    await stop_all([owner])

    for uplink in (0.0, args.uplink_mbps * 1e6 / 8):
        out[
            "c_one_file_to_many" + (f"_uplink_{args.uplink_mbps}_mbps" if uplink else "")
        ] = await fan_out_both(args, base, uplink)
    return out


async def fan_out_both(args: argparse.Namespace, base: Path, uplink: float) -> dict[str, object]:
    """(c) once: the median of one transfer alone, then of `swarm_nodes` at once."""
    tag = "u" if uplink else "c"
    swarm_owner = await make_node(base, f"{tag}owner", interval=3600.0)
    write_big(swarm_owner.own / "swarm.bin", args.swarm_mib)
    if uplink:
        swarm_owner.server.wrap(paced(uplink))
    await swarm_owner.engine.start()

    async def fan_out(count: int, i: int) -> tuple[float, list[int]]:
        nodes = await receivers(base, swarm_owner, f"{tag}{count}x{i}", count, uplink)
        try:
            before = swarm_owner.engine.server.sent
            elapsed = await timed_pull(nodes, 1)
            from_owner = swarm_owner.engine.server.sent - before
            return elapsed, [from_owner, *(n.engine.server.sent for n in nodes)]
        finally:
            await stop_all(nodes)
            for j in range(count):
                shutil.rmtree(base / f"{tag}{count}x{i}r{j}", ignore_errors=True)

    served: list[int] = []

    async def many(i: int) -> float:
        elapsed, sent = await fan_out(args.swarm_nodes, i)
        served[:] = sent
        return elapsed

    one = await amedian_of(args.runs, lambda i: _first(fan_out(1, i)))
    all_at_once = await amedian_of(args.runs, many)
    await stop_all([swarm_owner])
    shutil.rmtree(base / f"{tag}owner", ignore_errors=True)
    return {
        "bytes": args.swarm_mib << 20,
        "nodes": args.swarm_nodes,
        "uplink_MBps": round(uplink / 1e6, 1) if uplink else None,
        "one_transfer_s": round(one, 3),
        "all_at_once_s": round(all_at_once, 3),
        "ratio_all_over_one": round(all_at_once / one, 3),
        "bytes_served_owner_then_receivers_last_run": served,
        "aim_ratio_at_most": 2.0,
    }


async def _first(pair: Awaitable[tuple[float, list[int]]]) -> float:
    return (await pair)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument("--small", type=int, default=5000)
    parser.add_argument("--swarm-mib", type=int, default=256)
    parser.add_argument("--swarm-nodes", type=int, default=8)
    parser.add_argument("--uplink-mbps", type=float, default=1000.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="transfer-bench-", dir=args.dir))
    try:
        result = asyncio.run(run(args, base))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
