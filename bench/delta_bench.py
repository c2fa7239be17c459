"""Delta transfer and the road from disk to disk (issue 14), each against a baseline measured in
the same run; medians of `--runs`.

(a) A file of `--delta-mib` MiB, held by a replica, changed at its owner: 1 MiB overwritten in
    the middle, then (separately) 1 MiB appended. Measured: bytes the owner sent and seconds of
    the replica's pull, against a whole-file send of the same new file to a node that has no
    old version.
(b) One file of `--rename-mib` MiB written outside the owner's folder and renamed into it,
    until the replica holds it at its final path (verified, fsynced, renamed into place): the
    watcher, the scan (one hash pass), the push and the block download, between two real
    `Main.py` processes with the settle time at its default of 1 s. Against raw
    `socket.sendfile` of the same bytes over loopback into a file, plus fsync. Aim: raw time /
    sync time >= 0.5.
(c) `--small` files of 4 KiB moved into the owner's folder as one folder, until every other node
    of a ring of 2 and of 4 `Main.py` processes holds them all (pushed round the ring), against
    one connection carrying their bytes back to back, written as files (no hashing, no fsync).

Each run starts with `os.sync()`. Prints JSON.

    python3 bench/delta_bench.py [--delta-mib 256] [--rename-mib 256] [--small 10000]
        [--nodes 2 4] [--runs 3] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
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
from tests.integration.test_transfer_blocks import sha_of  # noqa: E402
from tests.procs import NodeProcess, free_port  # noqa: E402
from tests.sync_harness import SyncNode, make_node, stop_all  # noqa: E402

MiB = 1 << 20


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


def until(cond: Callable[[], bool], timeout: float = 600.0, step: float = 0.002) -> float:
    """Poll `cond` every `step` seconds; when it became true (perf_counter)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("the change never arrived")
        time.sleep(step)
    return time.perf_counter()


class Ring:
    """`count` real `python3 Main.py` nodes on 127.0.0.1 in one ring (pushes on, the settle
    time at its default of 1 s, an hour between pulls), with their own folders under `base`."""

    def __init__(self, base: Path, count: int) -> None:
        extra = ["--interval", "3600"]
        self.nodes: list[NodeProcess] = []
        try:
            for i in range(count):
                peer = ["--peer", f"127.0.0.1:{self.nodes[0].port}"] if i else []
                node = NodeProcess(
                    base / f"n{i}" / "Shared", free_port(), "--name", f"n{i}", *extra, *peer
                )
                self.nodes.append(node)
                node.wait_prompt()
            want = re.compile(rf"ring: {count} node\(s\)")
            self.nodes[0].poll_command("peers", lambda t: bool(want.search(t)), 60)
        except BaseException:
            self.stop()
            raise
        self.own = self.nodes[0].shared / "n0"
        self.own.mkdir(parents=True, exist_ok=True)
        self.replicas = [node.shared / "n0" for node in self.nodes[1:]]

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def rename_in(args: argparse.Namespace, base: Path) -> dict[str, object]:
    """(b): a large file renamed into the folder, until verified at the peer; against raw."""
    outside = base / "outside"
    outside.mkdir()
    ring = Ring(base / "rename", 2)
    times: dict[str, list[float]] = {"sync_s": [], "raw_sendfile_fsync_s": []}
    try:
        for i in range(args.runs):
            src = outside / f"r{i}.bin"
            write_big(src, args.rename_mib)
            arrived = ring.replicas[0] / src.name
            os.sync()
            started = time.perf_counter()
            os.rename(src, ring.own / src.name)
            times["sync_s"].append(until(arrived.exists) - started)
            assert sha_of(arrived) == sha_of(ring.own / src.name)
            os.sync()
            raw = raw_sendfile_fsync(ring.own / src.name, base / f"raw{i}.bin")
            times["raw_sendfile_fsync_s"].append(raw)
            (base / f"raw{i}.bin").unlink()
    finally:
        ring.stop()
    got = {key: median(values) for key, values in times.items()}
    return {
        "bytes": args.rename_mib * MiB,
        **got,
        "ratio_raw_over_sync": round(got["raw_sendfile_fsync_s"] / got["sync_s"], 3),
        "aim": 0.5,
    }


def small_files(args: argparse.Namespace, base: Path, count: int) -> dict[str, object]:
    """(c): a folder of small files moved into the owner's folder, until the `count - 1` other
    nodes hold them all; against one connection writing their bytes as files."""
    times: dict[str, list[float]] = {"sync_s": [], "raw_one_copy_s": []}
    for i in range(args.runs):
        folder = base / f"small{count}x{i}"
        folder.mkdir()
        for k in range(args.small):
            (folder / f"f{k:05d}.bin").write_bytes(os.urandom(SMALL))
        ring = Ring(base / f"ring{count}x{i}", count)
        try:
            os.sync()
            started = time.perf_counter()
            os.rename(folder, ring.own / "small")
            done = [
                until(lambda r=replica: _count(r / "small") >= args.small, step=0.05)
                for replica in ring.replicas
            ]
            times["sync_s"].append(max(done) - started)
        finally:
            ring.stop()
        files = sorted((ring.own / "small").iterdir())
        os.sync()
        times["raw_one_copy_s"].append(baseline_small(files, base / f"raw-small{count}x{i}"))
        shutil.rmtree(base / f"ring{count}x{i}", ignore_errors=True)
        shutil.rmtree(base / f"raw-small{count}x{i}", ignore_errors=True)
    got = {key: median(values) for key, values in times.items()}
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


def _count(folder: Path) -> int:
    try:
        return len(os.listdir(folder))
    except FileNotFoundError:
        return 0


async def run(args: argparse.Namespace, base: Path) -> dict[str, object]:
    out: dict[str, object] = {"cpus": os.cpu_count(), "runs": args.runs}
    out["a_delta"] = await delta(args, base)
    out["b_rename_in"] = rename_in(args, base)
    for count in args.nodes:
        out[f"c_small_files_{count}_nodes"] = small_files(args, base, count)
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
