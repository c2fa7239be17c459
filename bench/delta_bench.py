"""Delta transfer and the road from disk to disk (issue 14), each against a baseline measured in
the same run; medians of `--runs`.

(a) A file of `--delta-mib` MiB, held by a replica, changed at its owner: 1 MiB overwritten in
    the middle, then (separately) 1 MiB appended. Measured: bytes the owner sent and seconds of
    the replica's pull, against a whole-file send of the same new file to a node that has no
    old version.
(b) One file of `--rename-mib` MiB written outside the owner's folder and renamed into it,
    until the replica holds it at its final path (verified, fsynced, renamed into place): the
    watcher, the scan (one hash pass), the push and the block download, with the settle time
    at the default 1 s. Against raw `socket.sendfile` of the same bytes over loopback into a
    file, plus fsync. Aim: raw time / sync time >= 0.5.
(c) `--small` files of 4 KiB moved into the owner's folder as one folder, until every other node
    of a ring of 2 and of 4 holds them all (pushed round the ring), against one connection
    carrying their bytes back to back, written as files (no hashing, no fsync).

Each run starts with `os.sync()`. Prints JSON.

    python3 bench/delta_bench.py [--delta-mib 256] [--rename-mib 256] [--small 10000]
        [--nodes 2 4] [--runs 3] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.sync_bench import SMALL, baseline_small, serve_once, write_big  # noqa: E402
from tests.sync_harness import SyncNode, make_node, stop_all  # noqa: E402

MiB = 1 << 20


def sha_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MiB):
            digest.update(chunk)
    return digest.hexdigest()


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


async def repeat(
    runs: int, measure: Callable[[int], Awaitable[dict[str, float]]]
) -> dict[str, float]:
    """Run `measure` `runs` times (os.sync() before each); the median of each figure."""
    got: list[dict[str, float]] = []
    for i in range(runs):
        os.sync()
        got.append(await measure(i))
    return {key: median([g[key] for g in got]) for key in got[0]}


async def receiver(base: Path, name: str, owner: SyncNode) -> SyncNode:
    """A fresh node whose previous node is `owner`, started."""
    node = await make_node(base, name, interval=3600.0)
    node.engine.set_topology(owner.peer, {owner.peer.name: owner.peer, name: node.peer})
    await node.engine.start()
    return node


async def timed_pull(owner: SyncNode, node: SyncNode) -> tuple[float, int]:
    """Seconds of one pull round of `node` (it must land one file) and bytes `owner` sent."""
    before = owner.engine.server.sent
    started = time.perf_counter()
    assert await node.engine.pull_once() == 1
    return time.perf_counter() - started, owner.engine.server.sent - before


def overwrite_middle(data: bytes) -> bytes:
    at = len(data) // 2 + 12345
    return data[:at] + os.urandom(MiB) + data[at + MiB :]


def append(data: bytes) -> bytes:
    return data + os.urandom(MiB)


async def delta(args: argparse.Namespace, base: Path) -> dict[str, object]:
    """(a): per change, the delta against a whole-file send of the same new file."""
    owner = await make_node(base, "downer", interval=3600.0)
    big = owner.own / "big.bin"
    write_big(big, args.delta_mib)
    original = big.read_bytes()
    await owner.engine.start()
    out: dict[str, object] = {"bytes": len(original)}
    for case, change in (("overwrite_1MiB_middle", overwrite_middle), ("append_1MiB", append)):

        async def once(
            i: int, case: str = case, change: Callable[[bytes], bytes] = change
        ) -> dict[str, float]:
            held = await receiver(base, f"{case}-held{i}", owner)
            fresh = await receiver(base, f"{case}-fresh{i}", owner)
            try:
                assert await held.engine.pull_once() == 1  # the old version, not timed
                big.write_bytes(change(original))
                await owner.engine.rescan()
                os.sync()
                delta_s, delta_bytes = await timed_pull(owner, held)
                os.sync()
                whole_s, whole_bytes = await timed_pull(owner, fresh)
                want = sha_of(big)
                for node in (held, fresh):
                    assert sha_of(node.root / "downer" / "big.bin") == want
            finally:
                await stop_all([held, fresh])
                big.write_bytes(original)
                await owner.engine.rescan()
            return {
                "delta_bytes": delta_bytes,
                "delta_s": delta_s,
                "whole_bytes": whole_bytes,
                "whole_s": whole_s,
            }

        got = await repeat(args.runs, once)
        got["ratio_bytes_delta_over_whole"] = round(got["delta_bytes"] / got["whole_bytes"], 4)
        got["ratio_time_delta_over_whole"] = round(got["delta_s"] / got["whole_s"], 3)
        out[case] = got
    await stop_all([owner])
    return out


def raw_sendfile_fsync(src: Path, dest: Path) -> float:
    """Seconds to move `src` with socket.sendfile over loopback into `dest`, fsynced."""
    size = src.stat().st_size

    def send(conn: socket.socket) -> None:
        with open(src, "rb") as f:
            conn.sendfile(f)

    port = serve_once(send)
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as sock, open(dest, "wb") as out:
        buf = memoryview(bytearray(MiB))
        left = size
        while left:
            n = sock.recv_into(buf, min(len(buf), left))
            if n == 0:
                raise RuntimeError("baseline sender stopped early")
            out.write(buf[:n])
            left -= n
        out.flush()
        os.fsync(out.fileno())
    return time.perf_counter() - started


async def arrived(path: Path, timeout: float = 600.0) -> None:
    """Wait (2 ms polls) until `path` exists."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never arrived")
        await asyncio.sleep(0.002)


async def push_pair(base: Path, tag: str, count: int) -> list[SyncNode]:
    """A ring of `count` watching nodes (settle 1 s, the default) wired to push to each other."""
    nodes = [
        await make_node(base, f"{tag}{i}", interval=3600.0, watch=True, settle=1.0)
        for i in range(count)
    ]
    peers = {n.peer.name: n.peer for n in nodes}
    for i, node in enumerate(nodes):
        node.engine.set_topology(nodes[i - 1].peer, peers, next=nodes[(i + 1) % count].peer)
    await asyncio.gather(*(n.engine.start() for n in nodes))
    return nodes


async def rename_in(args: argparse.Namespace, base: Path) -> dict[str, object]:
    """(b): a large file renamed into the folder, until verified at the peer; against raw."""
    outside = base / "outside"
    outside.mkdir()
    owner, peer = await push_pair(base, "rename", 2)

    async def once(i: int) -> dict[str, float]:
        src = outside / f"r{i}.bin"
        write_big(src, args.rename_mib)
        os.sync()
        started = time.perf_counter()
        os.rename(src, owner.own / src.name)
        await arrived(peer.root / owner.peer.name / src.name)
        took = time.perf_counter() - started
        assert sha_of(peer.root / owner.peer.name / src.name) == sha_of(owner.own / src.name)
        os.sync()
        raw = raw_sendfile_fsync(owner.own / src.name, base / f"raw{i}.bin")
        (base / f"raw{i}.bin").unlink()
        return {"sync_s": took, "raw_sendfile_fsync_s": raw}

    got = await repeat(args.runs, once)
    await stop_all([owner, peer])
    return {
        "bytes": args.rename_mib * MiB,
        **got,
        "ratio_raw_over_sync": round(got["raw_sendfile_fsync_s"] / got["sync_s"], 3),
        "aim": 0.5,
    }


async def small_files(args: argparse.Namespace, base: Path, count: int) -> dict[str, object]:
    """(c): a folder of small files moved into the owner's folder, until `count - 1` other
    nodes hold them all; against one connection writing their bytes as files."""

    async def once(i: int) -> dict[str, float]:
        nodes = await push_pair(base, f"s{count}x{i}-", count)
        owner, others = nodes[0], nodes[1:]
        folder = base / f"small{count}x{i}"
        folder.mkdir()
        for k in range(args.small):
            (folder / f"f{k:05d}.bin").write_bytes(os.urandom(SMALL))
        os.sync()
        try:
            started = time.perf_counter()
            os.rename(folder, owner.own / "small")
            for node in others:
                while node.engine.summary().get(owner.peer.name, (0, 0))[0] < args.small:
                    await asyncio.sleep(0.02)
            took = time.perf_counter() - started
            files = sorted((owner.own / "small").iterdir())
            raw = baseline_small(files, base / f"raw-small{count}x{i}")
            shutil.rmtree(base / f"raw-small{count}x{i}")
        finally:
            await stop_all(nodes)
        return {"sync_s": took, "raw_one_copy_s": raw}

    got = await repeat(args.runs, once)
    return {
        "files": args.small,
        "file_bytes": SMALL,
        "nodes": count,
        **got,
        "sync_files_per_s_per_node": round(args.small * (count - 1) / got["sync_s"], 1),
        "ratio_raw_over_sync_per_copy": round(
            got["raw_one_copy_s"] * (count - 1) / got["sync_s"], 3
        ),
    }


async def run(args: argparse.Namespace, base: Path) -> dict[str, object]:
    out: dict[str, object] = {"cpus": os.cpu_count(), "runs": args.runs}
    out["a_delta"] = await delta(args, base)
    out["b_rename_in"] = await rename_in(args, base)
    for count in args.nodes:
        out[f"c_small_files_{count}_nodes"] = await small_files(args, base, count)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delta-mib", type=int, default=256)
    parser.add_argument("--rename-mib", type=int, default=256)
    parser.add_argument("--small", type=int, default=10000)
    parser.add_argument("--nodes", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="delta-bench-", dir=args.dir))
    try:
        result = asyncio.run(run(args, base))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
