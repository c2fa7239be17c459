"""Whole `python3 Main.py` processes on 127.0.0.1, driven through stdin as a script would."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from overlay.lab.driver import PromptDriver
from tests.credentials import key_file

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 right now (the node uses both)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port: int = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port


class NodeProcess(PromptDriver):
    """`python3 Main.py --no-discovery --host 127.0.0.1 --port PORT --shared SHARED ...`, a
    member of the test network unless `extra` gives a --network-key of its own, or `member`
    is False (a host with no key: it founds a network, or joins one by code)."""

    def __init__(self, shared: Path, port: int, *extra: str, member: bool = True) -> None:
        self.shared = shared
        self.port = port
        given = "--network-key" in extra or not member
        network = () if given else ("--network-key", str(key_file()))
        argv = [
            sys.executable, str(ROOT / "Main.py"), "--no-discovery", "--host", "127.0.0.1",
            "--port", str(port), "--shared", str(shared), *network, *extra,
        ]  # fmt: skip
        super().__init__(argv, ROOT, f"the node on port {port}")
