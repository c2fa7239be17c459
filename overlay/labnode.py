"""One `python3 Main.py` inside a lab host, driven through its standard input as a person would.

Each answer is read up to the next `>> ` prompt, which the node prints only after it handled
the command: a real readiness signal, so nothing here sleeps in place of one.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from overlay.labnet import Host

ROOT = Path(__file__).resolve().parent.parent
PROMPT = b">> "
MEMBER_LINE = re.compile(r"^ [ *]\s*(\d+)  (.+)  (\S+):(\d+)", re.MULTILINE)


def ring_members(peers_answer: str) -> list[str]:
    """The ring as a `peers` answer lists it: member names in ring order."""
    return [match.group(2) for match in MEMBER_LINE.finditer(peers_answer)]


class LabNode:
    """`python3 Main.py ARGS` run in `host`'s namespace with `folder` as working directory.

    With no --shared the node shares `folder/Shared`, as a user starting it there would.
    """

    def __init__(self, host: Host, folder: Path, *args: str) -> None:
        self.host = host
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            host.command([sys.executable, str(ROOT / "Main.py"), *args]),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=folder, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        self._out = bytearray()
        self._err = bytearray()
        self._lock = threading.Condition()
        self._read_from = 0
        for stream, buf in ((self.proc.stdout, self._out), (self.proc.stderr, self._err)):
            threading.Thread(target=self._pump, args=(stream, buf), daemon=True).start()

    @property
    def shared(self) -> Path:
        """The node's shared folder; its own files are in `shared / host.address`."""
        return self.folder / "Shared"

    def _pump(self, stream: IO[bytes], buf: bytearray) -> None:
        while True:
            chunk = os.read(stream.fileno(), 65536)
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
        """Everything printed since the last prompt, up to the next one.

        Raises:
            TimeoutError: no prompt in time, or the node ended (its output is in the message).
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                index = self._out.find(PROMPT, self._read_from)
                if index >= 0:
                    text = self._out[self._read_from : index].decode("utf-8", "replace")
                    self._read_from = index + len(PROMPT)
                    return text
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise TimeoutError(
                        f"no prompt from the node on {self.host.address}; stdout:\n"
                        f"{self.output[-2000:]}\nstderr:\n{self.errors[-3000:]}"
                    )
                self._lock.wait(min(left, 0.5))

    def command(self, line: str, timeout: float = 30.0) -> str:
        """Type a command; its answer."""
        assert self.proc.stdin is not None
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()
        return self.wait_prompt(timeout)

    def poll_command(self, line: str, ok: Callable[[str], bool], timeout: float = 30.0) -> str:
        """Repeat a command until its answer satisfies `ok` (what it reports is eventual).

        Raises:
            TimeoutError: never satisfied; the last answer is in the message.
        """
        deadline = time.monotonic() + timeout
        while True:
            answer = self.command(line)
            if ok(answer):
                return answer
            if time.monotonic() > deadline:
                raise TimeoutError(f"{line!r} on {self.host.address} never passed; last:\n{answer}")
            time.sleep(0.2)

    def ring(self) -> list[str]:
        """Member names of the ring this node knows, in ring order."""
        return ring_members(self.command("peers"))

    def exit(self, timeout: float = 20.0) -> int:
        """Type `exit`; the exit status once the node has left the ring."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"exit\n")
        self.proc.stdin.flush()
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """kill -9: no goodbye to anyone."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM (the node leaves the ring), then SIGKILL if it hangs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
