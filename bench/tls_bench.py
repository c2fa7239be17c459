"""What TLS costs a large transfer: one file pulled with TLS against plain TCP, in the same run.

Two sync engines on loopback (each with its own FrameServer on 127.0.0.1:0) whose doors are
members of one network (mutual TLS 1.3, as every node runs), and two whose doors are plain
(`Door.plain`, which no node ever uses: it exists for this comparison). The owner holds one
file (256 MiB by default); we time one pull round of a fresh receiver until it holds the file,
verified (hashed per block and whole, fsynced, renamed). The first pull of each kind warms up
and is not counted (a process's first pull is slow either way: about twice the CPU). Runs
alternate TLS and plain so that load on a shared machine hits both alike; the median of each
is reported, and the ratio plain time / TLS time (aim: at least 0.8). Both ends run in this
one process, so the CPU seconds it spent per pull (sender and receiver together) are reported
too: unlike wall time, they hardly move with other load on the machine. Prints JSON.

    python3 bench/tls_bench.py [--mib 256] [--runs 3] [--warmup 1] [--dir /tmp]
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
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.sync_bench import write_big  # noqa: E402
from ring.wire import Door  # noqa: E402
from tests.credentials import member_door  # noqa: E402
from tests.sync_harness import SyncNode, make_node, stop_all, wire_ring  # noqa: E402


async def one_pull(base: Path, owner: SyncNode, tag: str, door: Door) -> tuple[float, float]:
    """Seconds for a fresh receiver with `door` to pull the owner's file, and the CPU seconds
    this process (both ends) spent meanwhile."""
    receiver = await make_node(base, tag, door=door, interval=3600.0)
    try:
        wire_ring([owner, receiver])
        await receiver.engine.start()
        os.sync()
        started, cpu = time.perf_counter(), time.process_time()
        landed = await receiver.engine.pull_once()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        assert landed == 1, landed
        return elapsed, cpu
    finally:
        await stop_all([receiver])
        shutil.rmtree(base / tag, ignore_errors=True)


async def run(args: argparse.Namespace, base: Path) -> dict[str, object]:
    doors: dict[str, Callable[[], Door]] = {"tls": member_door, "plain": Door.plain}
    owners = {kind: await make_node(base, f"{kind}owner", door=door(), interval=3600.0)
              for kind, door in doors.items()}  # fmt: skip
    write_big(owners["tls"].own / "big.bin", args.mib)
    shutil.copyfile(owners["tls"].own / "big.bin", owners["plain"].own / "big.bin")
    for owner in owners.values():
        await owner.engine.start()
    times: dict[str, list[float]] = {kind: [] for kind in doors}
    cpu: dict[str, list[float]] = {kind: [] for kind in doors}
    try:
        for i in range(args.warmup):
            for kind, door in doors.items():
                await one_pull(base, owners[kind], f"{kind}warm{i}", door())
        for i in range(args.runs):
            for kind, door in doors.items():
                took, used = await one_pull(base, owners[kind], f"{kind}{i}", door())
                times[kind].append(took)
                cpu[kind].append(used)
    finally:
        await stop_all(list(owners.values()))
    tls, plain = statistics.median(times["tls"]), statistics.median(times["plain"])
    mb = args.mib * (1 << 20) / 1e6
    return {
        "cpus": os.cpu_count(),
        "bytes": args.mib << 20,
        "runs": args.runs,
        "warmup_runs_not_counted": args.warmup,
        "tls_s": [round(t, 3) for t in times["tls"]],
        "plain_s": [round(t, 3) for t in times["plain"]],
        "tls_cpu_s": [round(t, 3) for t in cpu["tls"]],
        "plain_cpu_s": [round(t, 3) for t in cpu["plain"]],
        "tls_MBps": round(mb / tls, 1),
        "plain_MBps": round(mb / plain, 1),
        "ratio_plain_time_over_tls_time": round(plain / tls, 3),
        "aim": 0.8,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="tls-bench-", dir=args.dir))
    try:
        result = asyncio.run(run(args, base))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
