"""One node per shared folder: a lock file in the state folder, held while the node runs.

Two nodes on one folder (another --port) would each claim to be its owner: the second pushed
the first out of the ring. `FolderLock` takes an exclusive `fcntl.flock` on `<state>/node.lock`
and writes the holder's pid and port into it; the kernel drops the lock when the process ends,
however it ends, so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_FILE = "node.lock"


class FolderInUse(OSError):
    """Another node runs on this shared folder."""


class FolderLock:
    """The state folder's lock: `acquire` (raises FolderInUse), `note_port`, `release`."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or say who holds it.

        Raises:
            FolderInUse: another process holds it (its pid and port are in the message).
            OSError: the state folder cannot be written.
        """
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode("ascii", "replace").split()
            os.close(fd)
            raise FolderInUse(in_use_text(self.path.parent.parent, holder)) from None
        self._fd = fd
        self._write(f"{os.getpid()}")

    def note_port(self, port: int) -> None:
        """Add the port the node bound, for the message a second node gets."""
        self._write(f"{os.getpid()} {port}")

    def release(self) -> None:
        """Drop the lock (the file stays; an unlocked file means nothing)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _write(self, text: str) -> None:
        assert self._fd is not None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, (text + "\n").encode("ascii"), 0)


def in_use_text(folder: Path, holder: list[str]) -> str:
    """The one line a second node on `folder` prints: the other node's pid and port."""
    pid = holder[0] if holder else "?"
    port = f", port {holder[1]}" if len(holder) > 1 else ""
    return (
        f"another node (pid {pid}{port}) already runs on the shared folder in {folder};"
        " one node per folder: stop it, or give this one another --shared"
    )
