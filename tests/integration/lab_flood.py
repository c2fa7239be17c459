"""Two programs run inside lab hosts by the soak test (`test_lab_soak.py`):

- `flood TARGET PORT CONNECTIONS DATAGRAMS_PER_S`: a host that keeps CONNECTIONS idle TCP
  connections open to TARGET (opening a new one for each the node closes) and sends it
  garbage UDP datagrams, until killed;
- `probe TARGET PORT KEY_FILE`: a member (a fresh key of the network in KEY_FILE) that sends
  PING to TARGET on a fresh connection ten times a second and prints each wait in seconds, one
  line each (a failure prints the timeout), until killed.

Run as `python3 -m tests.integration.lab_flood ...` from the project's root.
"""

from __future__ import annotations

import asyncio
import os
import selectors
import socket
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from overlay.credentials import Credentials
from overlay.network_key import NetworkKey
from ring.errors import PeerUnreachable, RemoteError, RemoteProtocolError
from ring.messages import Ping

PROBE_TIMEOUT = 5.0
PROBE_EVERY = 0.1


def flood(target: str, port: int, connections: int, datagrams_per_s: int) -> None:
    """Keep `connections` idle connections to the node and send it garbage, for ever."""
    selector = selectors.DefaultSelector()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def connect() -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.connect_ex((target, port))
        selector.register(sock, selectors.EVENT_READ)

    for _ in range(connections):
        connect()
    sent = 0
    start = time.monotonic()
    while True:
        for key, _events in selector.select(timeout=0.01):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            selector.unregister(sock)
            sock.close()  # the node closed it (or refused it): open another
            connect()
        due = int((time.monotonic() - start) * datagrams_per_s)
        while sent < due:
            try:
                udp.sendto(os.urandom(64 + sent % 200), (target, port))
            except OSError:
                pass
            sent += 1


async def probe(target: str, port: int, key_file: Path) -> None:
    """Time a member's PING to the node, ten times a second, for ever."""
    network = NetworkKey.from_text(key_file.read_text())
    door = Credentials(network, Ed25519PrivateKey.generate()).door()
    while True:
        start = time.monotonic()
        try:
            await door.request(target, port, Ping("probe", "probe", 0), PROBE_TIMEOUT)
            took = time.monotonic() - start
        except RemoteError:
            took = time.monotonic() - start  # an ERROR reply is an answer
        except (PeerUnreachable, RemoteProtocolError):
            took = PROBE_TIMEOUT
        print(f"{took:.4f}", flush=True)
        await asyncio.sleep(PROBE_EVERY)


def main(argv: list[str]) -> None:
    """Run the program named by argv[0] (see the module's docstring)."""
    kind, target, port = argv[0], argv[1], int(argv[2])
    if kind == "flood":
        flood(target, port, int(argv[3]), int(argv[4]))
    elif kind == "probe":
        asyncio.run(probe(target, port, Path(argv[3])))
    else:
        raise SystemExit(f"unknown program {kind!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
