"""Sync throughput on loopback against a raw baseline measured in the same run.

Two sync engines (each with its own FrameServer on 127.0.0.1:0): the first owns a 1 GiB file,
then 5,000 files of 4 KiB; we time one pull round of the second until it holds them, verified
(SHA-256 checked, fsynced, renamed into place). The baselines move the same bytes with plain
Python: `socket.sendfile` into one file on the same disk, and one connection carrying all small
files' bytes back to back, written out as 5,000 files (no hashing, no fsync); each baseline is
the best of three runs, since this disk's timing varies several-fold. Prints JSON.

    python3 bench/sync_bench.py [--big-mib 1024] [--small 5000] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.sync_harness import make_ring, start_all, stop_all  # noqa: E402

SMALL = 4096


def write_big(path: Path, mib: int) -> None:
    """`mib` MiB of incompressible bytes (a random MiB, varied per block)."""
    block = bytearray(os.urandom(1 << 20))
    with open(path, "wb") as f:
        for i in range(mib):
            block[:8] = i.to_bytes(8, "big")
            f.write(block)


def serve_once(payload: Callable[[socket.socket], None]) -> int:
    """A one-shot loopback listener whose accepted socket is handed to `payload` in a thread."""
    listener = socket.create_server(("127.0.0.1", 0))
    port: int = listener.getsockname()[1]

    def run() -> None:
        conn, _ = listener.accept()
        with conn:
            payload(conn)
        listener.close()

    threading.Thread(target=run, daemon=True).start()
    return port


def baseline_big(src: Path, dest: Path) -> float:
    """Seconds to move `src` with socket.sendfile into `dest` on the same disk."""
    size = src.stat().st_size

    def send(conn: socket.socket) -> None:
        with open(src, "rb") as f:
            conn.sendfile(f)

    port = serve_once(send)
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as sock, open(dest, "wb") as out:
        buf = memoryview(bytearray(1 << 20))
        left = size
        while left:
            n = sock.recv_into(buf, min(len(buf), left))
            if n == 0:
                raise RuntimeError("baseline sender stopped early")
            out.write(buf[:n])
            left -= n
    return time.perf_counter() - started


def baseline_small(files: list[Path], dest: Path) -> float:
    """Seconds to send all small files' bytes over one connection and write them as files."""
    blob = b"".join(p.read_bytes() for p in files)
    sizes = [p.stat().st_size for p in files]
    dest.mkdir(parents=True)
    port = serve_once(lambda conn: conn.sendall(blob))
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        reader = sock.makefile("rb", buffering=1 << 20)
        for i, size in enumerate(sizes):
            (dest / f"f{i}").write_bytes(reader.read(size))
    return time.perf_counter() - started


def best_of(runs: int, measure: Callable[[int], float]) -> float:
    """The fastest of several runs (the disk's timing varies a lot; this favours the baseline)."""
    times = []
    for i in range(runs):
        os.sync()
        times.append(measure(i))
    return min(times)


async def run(big_mib: int, small: int, base: Path) -> dict[str, object]:
    nodes = await make_ring(base, 2)
    owner, replica = nodes
    big = owner.own / "big.bin"
    write_big(big, big_mib)
    await start_all(nodes)
    try:
        os.sync()  # start each timed phase with no dirty pages from the last one
        started = time.perf_counter()
        assert await replica.engine.pull_once() == 1
        sync_big = time.perf_counter() - started
        raw_big = best_of(3, lambda i: baseline_big(big, base / f"baseline{i}.bin"))

        folder = owner.own / "small"
        folder.mkdir()
        files = []
        for i in range(small):
            path = folder / f"f{i:05d}.bin"
            path.write_bytes(os.urandom(SMALL))
            files.append(path)
        assert await owner.engine.rescan() == small
        os.sync()
        started = time.perf_counter()
        assert await replica.engine.pull_once() == small
        sync_small = time.perf_counter() - started
        raw_small = best_of(3, lambda i: baseline_small(files, base / f"baseline-small{i}"))
    finally:
        await stop_all(nodes)
    mb = big_mib * (1 << 20) / 1e6
    return {
        "big": {
            "bytes": big_mib << 20,
            "sync_s": round(sync_big, 3),
            "sync_MBps": round(mb / sync_big, 1),
            "raw_sendfile_MBps": round(mb / raw_big, 1),
            "ratio": round(raw_big / sync_big, 3),
        },
        "small": {
            "files": small,
            "file_bytes": SMALL,
            "sync_s": round(sync_small, 3),
            "sync_files_per_s": round(small / sync_small, 1),
            "raw_files_per_s": round(small / raw_small, 1),
            "ratio": round(raw_small / sync_small, 3),
        },
        "cpus": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument("--small", type=int, default=5000)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="sync-bench-", dir=args.dir))
    try:
        result = asyncio.run(run(args.big_mib, args.small, base))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
