"""What the holder index costs while nothing changes: N `python3 Main.py` nodes holding F files.

Every node runs `--dht` (or not, `--no-dht`, for the baseline); node 0 shares F files of 4 KiB,
which every other node replicates. Once every node holds every file, the nodes are left alone
for `--rest` seconds: CPU seconds per node (utime + stime from /proc) and UDP datagrams
received (the holder index's traffic; the ring and sync use TCP) are counted over that window.
Run it in a network namespace of its own so that the UDP counters are exactly the nodes':

    unshare --net sh -c 'ip link set lo up && python3 bench/rest_bench.py [--nodes 8]
        [--files 10000] [--rest 300] [--no-dht]'

Prints JSON: per-node CPU share of one core and datagrams a second, medians and ranges, and
what the ring went through on the way (from each node's log): members cut out as dead, nodes
that found themselves cut out, and the worst event-loop lag any node logged.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.procs import free_port  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def udp_received() -> int:
    """UDP datagrams received in this network namespace so far."""
    lines = [
        ln.split()
        for ln in Path("/proc/net/snmp").read_text().splitlines()
        if ln.startswith("Udp:")
    ]
    return int(lines[1][lines[0].index("InDatagrams")])


def held(base: Path, node: int, files: int) -> bool:
    folder = base / f"n{node:02d}" / "Shared" / "n00"
    return folder.is_dir() and sum(1 for _ in folder.iterdir()) >= files


LAG = re.compile(r"event loop woke (\d+) ms late")


def ring_events(base: Path, nodes: int) -> dict[str, int]:
    """Churn and loop lag as the nodes' logs tell them (`.Shared-state/node.log`)."""
    text = "".join(
        log.read_text(errors="replace")
        for i in range(nodes)
        for log in (base / f"n{i:02d}" / ".Shared-state").glob("node.log*")
    )
    lags = [int(ms) for ms in LAG.findall(text)]
    return {
        "cut_out_as_dead": text.count(" cuts out dead "),
        "found_itself_cut_out": text.count(": re-joining"),
        "worst_loop_lag_ms": max(lags, default=0),
        "loop_lag_lines": len(lags),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--rest", type=float, default=300.0)
    parser.add_argument("--no-dht", action="store_true")
    parser.add_argument(
        "--keep", type=Path, metavar="DIR", help="run in DIR (new) and keep the nodes' folders"
    )
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        if args.keep is None:
            base = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        else:
            base = args.keep
            base.mkdir(parents=True)
        own = base / "n00" / "Shared" / "n00"
        own.mkdir(parents=True)
        for i in range(args.files):
            (own / f"f{i:05d}.bin").write_bytes(os.urandom(4096))
        ports = [free_port() for _ in range(args.nodes)]
        procs = []
        started = time.monotonic()
        for i, port in enumerate(ports):
            argv = [
                sys.executable, str(ROOT / "Main.py"), "--no-discovery", "--host", "127.0.0.1",
                "--port", str(port), "--name", f"n{i:02d}",
                "--shared", str(base / f"n{i:02d}" / "Shared"),
                "--network-key", str(base / "network.key"),
                *([] if args.no_dht else ["--dht"]),
                *(["--peer", f"127.0.0.1:{ports[0]}"] if i else []),
            ]  # fmt: skip
            procs.append(
                subprocess.Popen(
                    argv,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )  # fmt: skip
            )
        try:
            while not all(held(base, i, args.files) for i in range(1, args.nodes)):
                if time.monotonic() - started > 900:
                    raise SystemExit("the files did not reach every node in 15 minutes")
                time.sleep(1)
            converged = time.monotonic() - started
            time.sleep(10)  # the last fetches' own announces go out
            cpu0 = [cpu_seconds(p.pid) for p in procs]
            udp0, t0 = udp_received(), time.monotonic()
            time.sleep(args.rest)
            span = time.monotonic() - t0
            cpu = [(cpu_seconds(p.pid) - c) / span for p, c in zip(procs, cpu0, strict=True)]
            rate = (udp_received() - udp0) / span / args.nodes
            events = ring_events(base, args.nodes)
        finally:
            for proc in procs:
                proc.kill()
                proc.wait()
    print(json.dumps({
        "nodes": args.nodes, "files": args.files, "dht": not args.no_dht,
        "converged_s": round(converged, 1), "rest_s": round(span, 1),
        "cpu_share_of_a_core_per_node": {
            "median": round(statistics.median(cpu), 4), "min": round(min(cpu), 4),
            "max": round(max(cpu), 4),
        },
        "udp_datagrams_received_per_s_per_node": round(rate, 2),
        "ring": events,
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
