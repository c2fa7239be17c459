#!/usr/bin/env python3
"""Ring formation and healing with real `python3 Main.py` processes on 127.0.0.1.

Per run: 8 processes start at once, each given node 0's address; the clock stops when every
one reports a ring of 8 at its prompt (`peers`). Then node 0 and one other get kill -9; the
clock stops when every survivor reports a ring of 6 with ids 0..5. Medians are printed as JSON.

    python3 bench/ring_process_bench.py [--nodes 8] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.procs import NodeProcess, free_port  # noqa: E402


def ring_of(answer: str) -> tuple[int, int | None]:
    """(ring size, this node's id) from a `peers` answer."""
    size = re.search(r"ring: (\d+) node\(s\)", answer)
    mine = re.search(r"this node: id (\d+)", answer)
    return (int(size.group(1)) if size else 0, int(mine.group(1)) if mine else None)


def wait_ring(nodes: list[NodeProcess], size: int, started: float) -> float:
    """Seconds from `started` until every node reports a ring of `size` with distinct ids."""
    while True:
        answers = [ring_of(node.command("peers")) for node in nodes]
        ids = sorted(i for _, i in answers if i is not None)
        if all(s == size for s, _ in answers) and ids == list(range(len(nodes))):
            return time.monotonic() - started
        if time.monotonic() - started > 60:
            raise TimeoutError(f"no ring of {size}: {answers}")
        time.sleep(0.05)


def one_run(base: Path, count: int) -> tuple[float, float]:
    port0 = free_port()
    ports = [port0] + [free_port() for _ in range(count - 1)]
    started = time.monotonic()
    nodes = [
        NodeProcess(
            base / f"n{i}" / "Shared", port, "--name", f"n{i}",
            *(() if i == 0 else ("--peer", f"127.0.0.1:{port0}")),
        )
        for i, port in enumerate(ports)
    ]  # fmt: skip
    try:
        for node in nodes:
            node.wait_prompt()
        formed = wait_ring(nodes, count, started)
        victims = [nodes[0], nodes[count // 2]]
        for victim in victims:
            victim.kill()
        killed = time.monotonic()
        survivors = [n for n in nodes if n not in victims]
        healed = wait_ring(survivors, count - 2, killed)
        return formed, healed
    finally:
        for node in nodes:
            node.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    formed, healed = [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="ringproc-") as tmp:
            f, h = one_run(Path(tmp), args.nodes)
        formed.append(f)
        healed.append(h)
    print(json.dumps({
        "nodes": args.nodes, "runs": args.runs,
        "form_median_s": round(statistics.median(formed), 3),
        "heal_median_s": round(statistics.median(healed), 3),
        "form_s": [round(x, 3) for x in formed], "heal_s": [round(x, 3) for x in healed],
    }))  # fmt: skip


if __name__ == "__main__":
    main()
