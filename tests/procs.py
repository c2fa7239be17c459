"""Run whole `python3 Main.py` processes and drive them through standard input, as a script would.

Each answer is read up to the next `>> ` prompt, which the node prints only after it has handled
the command: a real readiness signal, no sleeping.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROMPT = ">> "


def free_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 right now (the node uses both)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port


class NodeProcess:
    """One `python3 Main.py --no-discovery --host 127.0.0.1 ...` with a pipe on each end."""

    def __init__(self, shared: Path, port: int, *extra: str) -> None:
        self.shared = shared
        self.port = port
        args = [
            sys.executable,
            str(ROOT / "Main.py"),
            "--no-discovery",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--shared",
            str(shared),
            *extra,
        ]
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._out = bytearray()
        self._err = bytearray()
        self._lock = threading.Condition()
        self._read_from = 0
        for stream, buf in ((self.proc.stdout, self._out), (self.proc.stderr, self._err)):
            threading.Thread(target=self._pump, args=(stream, buf), daemon=True).start()

    def _pump(self, stream: object, buf: bytearray) -> None:
        while True:
            chunk = os.read(stream.fileno(), 65536)  # type: ignore[attr-defined]
            with self._lock:
                buf += chunk
                self._lock.notify_all()
            if not chunk:
                return

    @property
    def output(self) -> str:
        with self._lock:
            return self._out.decode("utf-8", "replace")

    @property
    def errors(self) -> str:
        with self._lock:
            return self._err.decode("utf-8", "replace")

    def wait_prompt(self, timeout: float = 30.0) -> str:
        """Everything printed since the last prompt, up to the next one."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                index = self._out.find(PROMPT.encode(), self._read_from)
                if index >= 0:
                    text = self._out[self._read_from : index].decode("utf-8", "replace")
                    self._read_from = index + len(PROMPT)
                    return text
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise TimeoutError(
                        f"no prompt from node on port {self.port}; stdout:\n{self.output}\n"
                        f"stderr:\n{self.errors[-3000:]}"
                    )
                self._lock.wait(min(left, 0.5))

    def command(self, line: str, timeout: float = 30.0) -> str:
        """Type a command and return its answer."""
        assert self.proc.stdin is not None
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()
        return self.wait_prompt(timeout)

    def poll_command(self, line: str, ok: Callable[[str], bool], timeout: float = 30.0) -> str:
        """Repeat a command until its answer satisfies `ok` (the state it reports is eventual)."""
        deadline = time.monotonic() + timeout
        while True:
            answer = self.command(line)
            if ok(answer):
                return answer
            if time.monotonic() > deadline:
                raise TimeoutError(f"{line!r} never satisfied the check; last answer:\n{answer}")
            time.sleep(0.2)

    def exit(self, timeout: float = 20.0) -> int:
        """Type `exit` and wait for the process to end."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"exit\n")
        self.proc.stdin.flush()
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """kill -9: no goodbye to anyone."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
