"""Push latency: from a change in one node's folder to the moment the last other node shows it.

Four real `python3 Main.py` processes on 127.0.0.1 form a ring with a long pull interval
(default 10 s), so what is measured is the push: file-system event, settle check, scan,
NOTIFY round the ring, fetch (or local copy, or delete) on each node. For each kind of change
(edit, new file, delete, rename, new subfolder with a file) it makes `--repeat` changes on the
first node and polls every other node's copy every 5 ms. Prints JSON with the median and the
worst per kind and over all changes.

    python3 bench/push_bench.py [--repeat 5] [--interval 10] [--dht] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.procs import NodeProcess, free_port

NAMES = ("alpha", "bravo", "charlie", "delta")


def digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def until(cond: Callable[[], bool], timeout: float) -> float:
    """Poll `cond` every 5 ms; the time it became true (monotonic)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("a change never reached every node")
        time.sleep(0.005)
    return time.monotonic()


def edit(own: Path, i: int) -> tuple[str, str | None]:
    data = os.urandom(100_000)
    (own / f"base{i}.bin").write_bytes(data)
    return f"base{i}.bin", hashlib.sha256(data).hexdigest()


def new(own: Path, i: int) -> tuple[str, str | None]:
    data = os.urandom(20_000)
    (own / f"new{i}.txt").write_bytes(data)
    return f"new{i}.txt", hashlib.sha256(data).hexdigest()


def rename(own: Path, i: int) -> tuple[str, str | None]:
    want = digest(own / f"new{i}.txt")
    os.rename(own / f"new{i}.txt", own / f"renamed{i}.txt")
    return f"renamed{i}.txt", want


def delete(own: Path, i: int) -> tuple[str, str | None]:
    (own / f"renamed{i}.txt").unlink()
    return f"renamed{i}.txt", None


def subfolder(own: Path, i: int) -> tuple[str, str | None]:
    data = os.urandom(5_000)
    (own / f"dir{i}" / "inner").mkdir(parents=True)
    (own / f"dir{i}" / "inner" / "file.txt").write_bytes(data)
    return f"dir{i}/inner/file.txt", hashlib.sha256(data).hexdigest()


CHANGES: list[tuple[str, Callable[[Path, int], tuple[str, str | None]]]] = [
    ("edit", edit),
    ("new", new),
    ("rename", rename),
    ("delete", delete),
    ("subfolder", subfolder),
]
"""Each change made on the first node, in this order per round: (kind, make it)."""


def run(repeat: int, interval: float, dht: bool, base: Path) -> dict[str, object]:
    extra = ["--interval", str(interval)] + (["--dht"] if dht else [])
    nodes: list[NodeProcess] = []
    try:
        first = NodeProcess(base / "alpha" / "Shared", free_port(), "--name", "alpha", *extra)
        nodes.append(first)
        first.wait_prompt()
        for name in NAMES[1:]:
            node = NodeProcess(
                base / name / "Shared",
                free_port(),
                "--name",
                name,
                "--peer",
                f"127.0.0.1:{first.port}",
                *extra,
            )
            nodes.append(node)
            node.wait_prompt()
        first.poll_command("peers", lambda t: bool(re.search(r"ring: 4 node\(s\)", t)), 60)
        own = first.shared / "alpha"
        own.mkdir(parents=True, exist_ok=True)
        others = [n.shared / "alpha" for n in nodes[1:]]

        def everywhere(rel: str, want: str | None) -> Callable[[], bool]:
            return lambda: all(digest(folder / rel) == want for folder in others)

        def timed(change: Callable[[Path, int], tuple[str, str | None]], i: int) -> float:
            start = time.monotonic()
            rel, want = change(own, i)
            return until(everywhere(rel, want), 60) - start

        results: dict[str, list[float]] = {
            k: [] for k in ("edit", "new", "delete", "rename", "subfolder")
        }
        for i in range(repeat):
            body = os.urandom(100_000)
            (own / f"base{i}.bin").write_bytes(body)
            until(everywhere(f"base{i}.bin", hashlib.sha256(body).hexdigest()), 60)
            time.sleep(0.3)

            for kind, change in CHANGES:
                results[kind].append(timed(change, i))
                time.sleep(0.3)
        every = [s for values in results.values() for s in values]
        return {
            "nodes": len(nodes),
            "pull_interval_s": interval,
            "dht": dht,
            "changes": len(every),
            "median_s": round(statistics.median(every), 4),
            "max_s": round(max(every), 4),
            "per_kind_median_s": {k: round(statistics.median(v), 4) for k, v in results.items()},
            "per_kind_max_s": {k: round(max(v), 4) for k, v in results.items()},
        }
    finally:
        for node in nodes:
            node.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--dht", action="store_true")
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        print(json.dumps(run(args.repeat, args.interval, args.dht, Path(tmp)), indent=2))


if __name__ == "__main__":
    main()
