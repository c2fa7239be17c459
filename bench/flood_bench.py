"""What a flood costs one node, and what its members wait meanwhile (issue 13's four floods).

Starts one `python3 Main.py --dht --no-discovery --host 127.0.0.1` of a lanshare tree (this one
by default, or `--tree DIR`, e.g. an older checkout), with a soft descriptor limit of 1,024 (a
desktop shell's; the hard limit is left as it is), sharing one 16 MiB file. For each flood, on
a fresh node:

- `idle`: 1,100 TCP connections from 127.0.0.2 that never send a byte (held 30 s: the kernel
  retries a connect the accept queue dropped after 1, 3, 7, 15 s);
- `half_frames`: 64 connections of a member (a valid certificate), from 127.0.0.2, each
  announcing a 16 MiB frame and sending half of it;
- `non_readers`: 200 members (four addresses) that ask for the file and never read (held 45 s:
  past the write timeout of 30 s);
- `datagrams`: 100,000 garbage UDP datagrams at the node's port.

While a flood lasts, a member at 127.0.0.3 (another process) sends PING on a fresh connection
ten times a second. Reported per flood: the node's peak RSS (and before), peak open descriptors
(/proc/PID/fd) and those still open as the flood ends (before the flooder lets go), bytes it
logged, and the member's median and p99 wait (a request
unanswered within 5 s counts as 5 s). A tree without TLS (before the door spoke it) is driven
with plain connections, and its member is simply a client. Prints a table and JSON.

    python3 bench/flood_bench.py [--tree DIR] [--only idle,half_frames,...]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from overlay.credentials import Credentials  # noqa: E402
from overlay.lab.driver import PromptDriver  # noqa: E402
from overlay.network_key import NetworkKey  # noqa: E402
from ring.errors import PeerUnreachable, RemoteError, RemoteProtocolError  # noqa: E402
from ring.messages import Ping  # noqa: E402
from ring.wire import HEADER, MAX_FRAME, Connection, Door, encode  # noqa: E402
from sync.messages import FileRequest  # noqa: E402
from tests.credentials import key_file  # noqa: E402
from tests.procs import ROOT, free_port  # noqa: E402

FLOODER, MEMBER = "127.0.0.2", "127.0.0.3"
CONTENT = os.urandom(16 * 1024 * 1024)
PROBE_TIMEOUT = 5.0


class Node(PromptDriver):
    """One node of `tree`, with a soft descriptor limit of 1,024."""

    def __init__(self, tree: Path, folder: Path, tls: bool) -> None:
        self.port = free_port()
        own = folder / "Shared" / "bench"
        own.mkdir(parents=True)
        (own / "big.bin").write_bytes(CONTENT)
        network = ["--network-key", str(key_file())] if tls else []
        argv = [
            "sh", "-c", 'ulimit -Sn 1024 && exec "$0" "$@"', sys.executable, str(tree / "Main.py"),
            "--dht", "--no-discovery", "--host", "127.0.0.1", "--port", str(self.port),
            "--shared", str(folder / "Shared"), "--name", "bench", *network,
        ]  # fmt: skip
        super().__init__(argv, tree, f"the node of {tree}")
        self.wait_prompt(60)

    def sample(self) -> tuple[int, int]:
        """(RSS in bytes, open descriptors) now."""
        pid = self.proc.pid
        rss = 0
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
        return rss, len(os.listdir(f"/proc/{pid}/fd"))

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def door_for(tls: bool, key: Path) -> Door:
    """A member's door (a fresh key of the network in the file `key`), or a plain one for a
    tree without TLS."""
    if not tls:
        return Door.plain()
    network = NetworkKey.from_text(key.read_text())
    return Credentials(network, Ed25519PrivateKey.generate()).door()


async def probe(port: int, tls: bool, key: Path) -> None:
    """Print `time wait` for a PING from MEMBER every 0.1 s, for ever (run as a process)."""
    door = door_for(tls, key)
    while True:
        start = time.monotonic()
        try:
            conn = await door.open("127.0.0.1", port, PROBE_TIMEOUT, source=MEMBER)
            try:
                await conn.exchange(Ping("probe", "probe", 0), PROBE_TIMEOUT)
            finally:
                conn.writer.transport.abort()
            took = time.monotonic() - start
        except RemoteError:
            took = time.monotonic() - start
        except (PeerUnreachable, RemoteProtocolError, OSError):
            took = max(PROBE_TIMEOUT, time.monotonic() - start)
        print(f"{time.time():.3f} {took:.4f}", flush=True)
        await asyncio.sleep(0.1)


async def idle(port: int, door: Door, seconds: float, at_end: Callable[[], None]) -> None:
    socks = []
    for _ in range(1100):
        sock = socket.socket()
        sock.bind((FLOODER, 0))
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        socks.append(sock)
    await asyncio.sleep(seconds)
    at_end()
    for sock in socks:
        sock.close()


async def half_frames(port: int, door: Door, seconds: float, at_end: Callable[[], None]) -> None:
    async def one() -> None:
        try:
            conn = await door.open("127.0.0.1", port, 10, source=FLOODER)
        except (PeerUnreachable, OSError):
            return
        try:
            conn.writer.write(HEADER.pack(MAX_FRAME))
            chunk = bytes(256 * 1024)
            for _ in range(MAX_FRAME // 2 // len(chunk)):
                conn.writer.write(chunk)
                await conn.writer.drain()
            await asyncio.sleep(seconds + 1)
        except (OSError, ConnectionError):
            pass
        finally:
            conn.writer.transport.abort()

    held = asyncio.gather(*(one() for _ in range(64)))
    await asyncio.sleep(seconds)
    at_end()
    await asyncio.wait_for(held, 60)


async def non_readers(port: int, door: Door, seconds: float, at_end: Callable[[], None]) -> None:
    request = FileRequest(hashlib.sha256(CONTENT).hexdigest(), "bench", "big.bin", 0, None)

    async def one(i: int) -> Connection | None:
        try:
            conn = await door.open("127.0.0.1", port, 20, source=f"127.0.1.{i % 4 + 1}")
        except (PeerUnreachable, OSError):
            return None
        sock = conn.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        conn.writer.write(encode(request))
        await conn.writer.drain()
        transport = conn.writer.transport
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()
        return conn

    conns = await asyncio.gather(*(one(i) for i in range(200)))
    await asyncio.sleep(seconds)
    at_end()
    for conn in conns:
        if conn is not None:
            conn.writer.transport.abort()


async def datagrams(port: int, door: Door, seconds: float, at_end: Callable[[], None]) -> None:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((FLOODER, 0))
    for i in range(100_000):
        udp.sendto(os.urandom(64 + i % 200), ("127.0.0.1", port))
        if i % 1000 == 999:
            await asyncio.sleep(0.05)
    await asyncio.sleep(2)
    at_end()


Flood = Callable[[int, Door, float, Callable[[], None]], Awaitable[None]]
"""A flood: (port, door, seconds to hold it, called just before the flooder lets go)."""
FLOODS: dict[str, tuple[Flood, float]] = {
    "idle": (idle, 30.0),
    "half_frames": (half_frames, 15.0),
    "non_readers": (non_readers, 45.0),
    "datagrams": (datagrams, 0.0),
}


def measure(tree: Path, name: str, tls: bool) -> dict[str, float]:
    """Run one flood against a fresh node of `tree`; its figures."""
    flood, seconds = FLOODS[name]
    with tempfile.TemporaryDirectory(prefix="lanshare-flood-") as folder:
        node = Node(tree, Path(folder), tls)
        prober = subprocess.Popen(
            [sys.executable, __file__, "--probe", str(node.port), str(int(tls)), str(key_file())],
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            time.sleep(3)  # the probe's start-up
            rss0, fds0 = node.sample()
            peak = [rss0, fds0]
            running = threading.Event()
            running.set()

            def sampler() -> None:
                while running.is_set() and node.proc.poll() is None:
                    rss, fds = node.sample()
                    peak[0], peak[1] = max(peak[0], rss), max(peak[1], fds)
                    time.sleep(0.1)

            thread = threading.Thread(target=sampler, daemon=True)
            thread.start()
            logged0, began = len(node.errors.encode()), time.time()
            held: list[int] = []

            def at_end() -> None:
                held.append(node.sample()[1] if node.proc.poll() is None else -1)

            asyncio.run(flood(node.port, door_for(tls, key_file()), seconds, at_end))
            ended = time.time()
            running.clear()
            thread.join()
            logged = len(node.errors.encode()) - logged0
        finally:
            prober.kill()
            out, _ = prober.communicate()
            node.stop()
    timed = (line.split() for line in out.splitlines())
    waits = [float(w) for t, w in timed if began <= float(t) <= ended + PROBE_TIMEOUT]
    return {
        "rss_before_mib": rss0 >> 20,
        "rss_peak_mib": peak[0] >> 20,
        "fds_before": fds0,
        "fds_peak": peak[1],
        "fds_held_at_end": held[0],
        "log_bytes": logged,
        "requests": len(waits),
        "median_ms": round(statistics.median(waits) * 1000) if waits else -1,
        "p99_ms": round(statistics.quantiles(waits, n=100, method="inclusive")[98] * 1000)
        if len(waits) > 1
        else -1,
        "unanswered": sum(1 for w in waits if w >= PROBE_TIMEOUT),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tree", type=Path, default=ROOT)
    parser.add_argument("--only", default=",".join(FLOODS))
    parser.add_argument("--probe", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        port, tls, key = args.probe
        asyncio.run(probe(int(port), tls == "1", Path(key)))
        return
    tree = args.tree.resolve()
    tls = (tree / "ring" / "wire" / "tls.py").exists()
    results = {name: measure(tree, name, tls) for name in args.only.split(",")}
    print(f"tree {tree} ({'TLS' if tls else 'plain'})")
    columns = list(next(iter(results.values())))
    print("flood".ljust(12) + "".join(c.rjust(15) for c in columns))
    for name, figures in results.items():
        print(name.ljust(12) + "".join(str(figures[c]).rjust(15) for c in columns))
    print(json.dumps({"tree": str(tree), "tls": tls, "floods": results}))


if __name__ == "__main__":
    main()
