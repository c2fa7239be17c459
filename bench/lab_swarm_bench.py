"""One new file to N receivers over rate-limited links: whole `Main.py` hosts in the lab, with and
without --dht, against one transfer; the swarm as a LAN sees it.

`bench/swarm_bench.py` runs every node in one process on this machine's cores, so past a few
hundred MB/s it measures the CPU, not the links. Here each node is a `python3 Main.py` in a lab
host of its own (`overlay/lab/net.py`: network namespaces on one bridge), and every host's
uplink is held to `--mbit` Mbit/s by a `tc tbf` queue on its eth0. With links slow enough that
decrypting, hashing and writing every byte takes a fraction of the time, the owner's uplink is
the limit of the ring alone (it serves every receiver), and receivers that find each other as
partial holders through the index and trade blocks are what can beat it.

For each mode (ring alone, --dht) a ring of 1 + N hosts forms, then a file of `--mib` MiB is
renamed into the owner's folder, and the time is taken until every receiver holds it at its
final path with the right SHA-256; the same with one receiver is "one transfer". The owner's
eth0 counters give how many copies it sent. Needs root (the lab); prints JSON.

    sudo python3 bench/lab_swarm_bench.py [--mib 64] [--receivers 8] [--mbit 50]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from overlay.lab.net import Host, Lab  # noqa: E402
from overlay.lab.node import LabNode  # noqa: E402
from tests.integration.test_transfer_blocks import sha_of  # noqa: E402

PORT = 9000
FILE = "swarm.bin"
CHUNK = 1 << 20


def start_ring(hosts: list[Host], base: Path, dht: bool) -> list[LabNode]:
    """Main.py on each host, the first founding the ring; returns once all are in it."""
    nodes: list[LabNode] = []
    key = base / "network.key"
    for i, host in enumerate(hosts):
        argv = [
            "--no-discovery", "--host", host.address, "--port", str(PORT), "--name", f"h{i}",
            "--network-key", str(key), *(["--dht"] if dht else []),
            *(["--peer", f"{hosts[0].address}:{PORT}"] if i else []),
        ]  # fmt: skip
        node = LabNode(host, base / f"h{i}", *argv)
        nodes.append(node)
        node.wait_prompt(60)
    deadline = time.monotonic() + 120
    while len(nodes[0].ring()) != len(nodes):
        if time.monotonic() > deadline:
            raise SystemExit("the ring did not form in 2 minutes")
        time.sleep(0.5)
    return nodes


def one_run(hosts: list[Host], base: Path, dht: bool, payload: Path, want: str) -> dict[str, float]:
    """Seconds until every receiver of a new file holds it, and the copies the owner sent."""
    nodes = start_ring(hosts, base, dht)
    try:
        time.sleep(5)  # the ring's first pulls and the index's first sweeps are over
        size = payload.stat().st_size
        owner_dir = nodes[0].shared / "h0"
        owner_dir.mkdir(parents=True, exist_ok=True)
        targets = [node.shared / "h0" / FILE for node in nodes[1:]]
        sent0 = hosts[0].link_stats()["tx_bytes"]
        staged = owner_dir.parent / f".{FILE}.staged"
        shutil.copyfile(payload, staged)
        started = time.monotonic()
        os.rename(staged, owner_dir / FILE)
        done: set[Path] = set()
        while len(done) < len(targets):
            if time.monotonic() - started > 1800:
                raise SystemExit("the file did not reach every receiver in 30 minutes")
            for target in targets:
                if target in done or not target.exists() or target.stat().st_size != size:
                    continue
                if sha_of(target) == want:
                    done.add(target)
            time.sleep(0.2)
        took = time.monotonic() - started
        sent = hosts[0].link_stats()["tx_bytes"] - sent0
        return {"seconds": round(took, 2), "owner_sent_copies": round(sent / size, 2)}
    finally:
        for node in nodes:
            node.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--receivers", type=int, default=8)
    parser.add_argument("--mbit", type=int, default=50, help="each host's uplink, Mbit/s")
    parser.add_argument("--modes", default="ring,dht", help="ring, dht or both (the default)")
    args = parser.parse_args()
    lab = Lab(1 + args.receivers, subnet="10.79.0")
    hosts = lab.up()
    try:
        for host in hosts:
            host.set_rate(f"{args.mbit}mbit", burst="256kbit", latency="200ms")
        with tempfile.TemporaryDirectory() as tmp:
            payload = Path(tmp) / "payload.bin"
            payload.write_bytes(os.urandom(args.mib * CHUNK))
            want = sha_of(payload)
            out: dict[str, object] = {
                "mib": args.mib, "receivers": args.receivers, "uplink_mbit": args.mbit,
                "ideal_one_transfer_s": round(args.mib * CHUNK * 8 / (args.mbit * 1e6), 2),
            }  # fmt: skip
            times: dict[str, float] = {}
            for mode in args.modes.split(","):
                dht = mode == "dht"
                for label, count in (("one", 1), ("all", args.receivers)):
                    base = Path(tmp) / f"{mode}-{label}"
                    run = one_run(hosts[: 1 + count], base, dht, payload, want)
                    shutil.rmtree(base, ignore_errors=True)
                    print(mode, label, run, file=sys.stderr, flush=True)
                    out[f"{mode}_{label}"] = run
                    times[f"{mode}_{label}"] = run["seconds"]
                out[f"{mode}_all_over_one"] = round(times[f"{mode}_all"] / times[f"{mode}_one"], 2)
            if "ring_all" in times and "dht_all" in times:
                out["dht_over_ring_all"] = round(times["dht_all"] / times["ring_all"], 2)
    finally:
        lab.down()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
