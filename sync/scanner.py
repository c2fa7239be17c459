"""Walking a folder and hashing files, off the event loop, with a hash cache in front.

`walk` lists regular files (symlinks and special files are skipped: they are never shared and
never followed); `Hasher` computes SHA-256 in 1 MiB reads in a worker thread and counts how many
files it hashed, so tests and logs can prove that an unchanged tree costs no hashing.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import stat
from pathlib import Path

from sync.errors import UnsafePath
from sync.paths import check_relpath

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
TMP_DIR = ".lanshare-tmp"


def walk(top: Path) -> dict[str, tuple[int, int]]:
    """Every regular file under `top`: relative POSIX path -> (size, mtime_ns).

    Symlinks (to files or folders) are skipped with a log line, as are names that would be
    refused on the wire (so a peer never sees a path it must reject).
    """
    out: dict[str, tuple[int, int]] = {}
    stack = [(top, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            log.warning("cannot list %s: %s", folder, exc)
            continue
        for entry in entries:
            rel = prefix + entry.name
            try:
                check_relpath(rel)
                st = entry.stat(follow_symlinks=False)
            except (UnsafePath, OSError) as exc:
                log.warning("skipping %s: %s", entry.path, exc)
                continue
            if stat.S_ISDIR(st.st_mode):
                stack.append((Path(entry.path), rel + "/"))
            elif stat.S_ISREG(st.st_mode):
                out[rel] = (st.st_size, st.st_mtime_ns)
            elif stat.S_ISLNK(st.st_mode):
                log.info("not sharing symlink %s", entry.path)
    return out


def hash_file(path: Path) -> tuple[str, int, int]:
    """SHA-256 of a file and the (size, mtime_ns) it had when hashing started.

    If the file changes while being read, the size/mtime check before serving or the next scan
    catches it, since the stat is taken first.
    """
    st = os.stat(path)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest(), st.st_size, st.st_mtime_ns


class Hasher:
    """Hashes files in a worker thread and counts every file it hashed."""

    def __init__(self) -> None:
        self.count = 0

    async def hash(self, path: Path) -> tuple[str, int, int]:
        """(sha256, size, mtime_ns) of one file, hashed off the event loop."""
        self.count += 1
        return await asyncio.to_thread(hash_file, path)

    async def hash_many(self, root: Path, rels: list[str]) -> dict[str, tuple[str, int, int]]:
        """Hash many files in one worker-thread trip; files that vanish are left out."""
        self.count += len(rels)
        return await asyncio.to_thread(_hash_all, root, rels)


def _hash_all(root: Path, rels: list[str]) -> dict[str, tuple[str, int, int]]:
    out = {}
    for rel in rels:
        try:
            out[rel] = hash_file(root / rel)
        except OSError as exc:
            log.warning("cannot hash %s: %s", root / rel, exc)
    return out
