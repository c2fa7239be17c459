"""Drive a running `python3 Main.py` through its standard input, as a person or a script would.

Each answer is read up to the next `>> ` prompt, which the node prints only after it has
handled the command: a real readiness signal, so nothing here sleeps in place of one. The lab
(`python3 -m overlay.lab`) drives its nodes with it, and so do the process tests.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

PROMPT = b">> "


class PromptDriver:
    """One node process with a pipe on each end; `label` names it in error messages."""

    def __init__(self, argv: Sequence[str], cwd: Path, label: str) -> None:
        self.label = label
        self.proc = subprocess.Popen(
            list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=cwd, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        self._out = bytearray()
        self._err = bytearray()
        self._lock = threading.Condition()
        self._read_from = 0
        for stream, buf in ((self.proc.stdout, self._out), (self.proc.stderr, self._err)):
            threading.Thread(target=self._pump, args=(stream, buf), daemon=True).start()

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
        """Everything the node printed on stdout so far."""
        with self._lock:
            return self._out.decode("utf-8", "replace")

    @property
    def errors(self) -> str:
        """Everything the node printed on stderr so far (its log)."""
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
                        f"no prompt from {self.label}; stdout:\n{self.output[-2000:]}\n"
                        f"stderr:\n{self.errors[-3000:]}"
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
                raise TimeoutError(f"{line!r} on {self.label} never passed; last:\n{answer}")
            time.sleep(0.2)

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
