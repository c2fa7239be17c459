"""What a stranger on the LAN gets from a 3-node ring: the same attacks against any tree.

Issue 11's attacks, run as a host that holds no credentials would: clear TCP frames (MANIFEST,
FILE, JOIN, a forged NOTIFY that deletes an owner's files at a huge seq) and a 50-byte DHT ping
from a fresh id. The ring is three `python3 Main.py --dht` processes of the tree under test
(`--tree`, default this one; give an older checkout for the "before" column), n00 sharing 16
files that n01 and n02 hold before the attacks start. Messages are built with the tree's own
codec, so the bytes are what that version speaks.

    python3 bench/stranger_bench.py [--tree DIR]

Prints one JSON object: per attack, what came back and what it changed.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

FILES = 16
READY_TIMEOUT = 60.0
LISTEN = 3.0
"""Seconds the stranger listens for answers (and the ring gets to act on a forgery)."""


def free_port() -> int:
    """A port free for TCP and UDP on 127.0.0.1 (a node uses both). Not `tests.procs`'s: that
    imports this checkout's packages, and the tree under test must bring its own."""
    while True:
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port: int = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port


def start_ring(tree: Path, base: Path) -> tuple[list[subprocess.Popen[bytes]], list[int]]:
    """Three nodes of `tree`; n00 shares FILES files. Members share one --network-key where the
    tree has the flag."""
    helptext = subprocess.run(
        [sys.executable, "Main.py", "--help"], cwd=tree, capture_output=True, text=True
    ).stdout
    keyed = ["--network-key", str(base / "network.key")] if "--network-key" in helptext else []
    ports = [free_port() for _ in range(3)]
    own = base / "n00" / "Shared" / "n00"
    own.mkdir(parents=True)
    for i in range(FILES):
        (own / f"secret-{i:02d}.txt").write_bytes(os.urandom(4096))
    procs = []
    for i, port in enumerate(ports):
        peers = ["--peer", f"127.0.0.1:{ports[0]}"] if i else []
        argv = [
            sys.executable, "Main.py", "--no-discovery", "--host", "127.0.0.1", "--dht",
            "--port", str(port), "--name", f"n{i:02d}", "--interval", "0.5",
            "--shared", str(base / f"n{i:02d}" / "Shared"), *keyed, *peers,
        ]  # fmt: skip
        procs.append(
            subprocess.Popen(
                argv,
                cwd=tree,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=open(base / f"n{i:02d}.log", "wb"),  # noqa: SIM115
            )
        )
    return procs, ports


def replicas(base: Path) -> int:
    """Files of n00 present on n01 and n02 (of 2 * FILES)."""
    return sum(len(list((base / n / "Shared" / "n00").glob("secret-*"))) for n in ("n01", "n02"))


def read_frames(sock: socket.socket, decode: Any, seconds: float) -> tuple[int, list[Any]]:
    """Every byte and frame the peer sends within `seconds` (or until it closes)."""
    sock.settimeout(0.2)
    data, deadline = b"", time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(1 << 20)
        except TimeoutError:
            continue
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    frames, at = [], 0
    while at + 4 <= len(data):
        size = int.from_bytes(data[at : at + 4], "big")
        if at + 4 + size > len(data):
            break
        try:
            frames.append(decode(data[at + 4 : at + 4 + size]))
        except Exception:  # raw file bytes follow a FILE_DATA header: stop parsing there
            break
        at += 4 + size
    return len(data), frames


def ask(port: int, frame: bytes, decode: Any, seconds: float = 1.0) -> tuple[int, list[Any]]:
    """Send one clear frame to 127.0.0.1:port as a stranger; what came back."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(frame)
        return read_frames(sock, decode, seconds)


def attacks(ports: list[int], base: Path, shas: dict[str, str]) -> dict[str, Any]:
    wire = importlib.import_module("ring.wire")
    smsg = importlib.import_module("sync.messages")
    rmsg = importlib.import_module("ring.messages")
    manifest = importlib.import_module("sync.manifest")
    encode = wire.encode
    decode = wire.decode_payload
    out: dict[str, Any] = {}

    size, frames = ask(ports[1], encode(smsg.ManifestRequest({})), decode)
    entries = [e for f in frames for e in (getattr(f, "entries", None) or [])]
    out["MANIFEST in the clear"] = {"bytes_back": size, "records_learned": len(entries)}

    copied, body = 0, 0
    started = time.monotonic()
    for path, sha in shas.items():
        request = smsg.FileRequest(sha, "n00", path)
        got, _ = ask(ports[1], encode(request), decode, 0.3)
        body += got
        copied += got >= 4096
    out["FILE in the clear"] = {
        "files_copied": f"{copied} of {len(shas)}",
        "bytes_back": body,
        "seconds": round(time.monotonic() - started, 2),
    }

    member = {"key": os.urandom(32).hex(), "name": "mallory", "host": "127.0.0.1", "port": 9}
    size, frames = ask(ports[0], encode(rmsg.Join(member)), decode)
    out["JOIN in the clear"] = {"bytes_back": size, "reply": [f.TYPE for f in frames]}

    before = replicas(base)
    forged = [
        manifest.record_to_entry(
            manifest.FileRecord("n00", path, 0, 0, "", 10**15 + i, True), False
        )
        for i, path in enumerate(shas)
    ]
    size, frames = ask(ports[1], encode(smsg.Notify("n00", forged)), decode, LISTEN)
    out["forged NOTIFY deleting n00's files"] = {
        "bytes_back": size,
        "replica_files_deleted": before - replicas(base),
    }

    out["DHT ping from a fresh id"] = ping(ports[1])
    return out


def ping(port: int) -> dict[str, int]:
    """A kademlia PING (rpcudp framing) from a fresh node id; datagrams and bytes back."""
    import umsgpack  # kademlia's own dependency, present wherever the node runs

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.sendto(b"\x00" + os.urandom(20) + umsgpack.packb(["ping", [os.urandom(20)]]),
                    ("127.0.0.1", port))  # fmt: skip
        sock.settimeout(0.2)
        count = size = 0
        deadline = time.monotonic() + LISTEN
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            count, size = count + 1, size + len(data)
    return {"datagrams_back": count, "bytes_back": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parent.parent)
    args = parser.parse_args()
    tree = args.tree.resolve()
    sys.path.insert(0, str(tree))
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        procs, ports = start_ring(tree, base)
        try:
            deadline = time.monotonic() + READY_TIMEOUT
            while replicas(base) < 2 * FILES:
                if time.monotonic() > deadline:
                    raise SystemExit("the ring did not replicate n00's files in time")
                time.sleep(0.2)
            own = base / "n00" / "Shared" / "n00"
            shas = {
                p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(own.iterdir())
            }
            result = attacks(ports, base, shas)
        finally:
            for proc in procs:
                proc.kill()
                proc.wait()
    print(json.dumps({"tree": str(tree), "attacks": result}, indent=2))


if __name__ == "__main__":
    main()
