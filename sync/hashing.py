"""Hashing a file once: its SHA-256 and, for a large file, its block list, from one read.

The scanner's record, the hash cache, the block list a holder answers BLOCKS with, the index of
local blocks a receiver reuses and the DHT's key all come from this one pass over the file. For
a large file the whole-file digest and the block digests are computed side by side in two
threads over the same buffer (hashlib lets go of the GIL while it hashes), so listing the blocks
costs the scan about no time beside the hash it needed anyway.

A file is known by its `Stamp`: size, modification time, inode and change time. The change
time moves with every write, and no program can set it back, so an edit that keeps the size
and restores the old mtime (`cp -p`, `rsync -t`, a skewed clock) still shows, as does a file
replaced by another of the same size and mtime (a new inode).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sync.blocks import LARGE_FILE, block_size_for
from sync.manifest import clamp_mtime
from sync.reports import printable

log = logging.getLogger(__name__)

READ = 4 * 1024 * 1024
"""Bytes read at once (a whole number of blocks of every size up to 4 MiB)."""

Stamp = tuple[int, int, int, int]
"""What a file looked like when it was hashed: (size, mtime_ns as a record carries it, inode,
ctime_ns). An inode of 0 means "not known" (a cache entry from before stamps had one)."""


def stamp_of(st: os.stat_result) -> Stamp:
    """The `Stamp` of a stat result (inode and ctime folded into sqlite's signed 64 bits)."""
    ino = st.st_ino if st.st_ino < 1 << 63 else st.st_ino - (1 << 64)
    return (st.st_size, clamp_mtime(st.st_mtime_ns), ino, clamp_mtime(st.st_ctime_ns))


def fresh(cached: Stamp, now: Stamp, ctime: bool = True) -> bool:
    """Whether a file with stamp `now` is still the file hashed at `cached` (an entry with no
    inode known is judged by size and mtime alone).

    Args:
        ctime: ask for the same change time too. The scanner does; serving does not, as a
            rename of the file (or a link to it) moves its ctime and what a peer receives is
            checked by the peer anyway.
    """
    if cached[:2] != now[:2]:
        return False
    if cached[2] == 0:
        return True
    return cached[2:] == now[2:] if ctime else cached[2] == now[2]


@dataclass(frozen=True)
class FileHash:
    """One file's hashes: the whole file's, and its block list when it is large."""

    sha256: str
    stamp: Stamp
    block_size: int
    """The block size of `hashes` (0 when the file is not large enough to have a list)."""
    hashes: bytes
    """The 32-byte digests of every block, concatenated (empty when not listed)."""

    @property
    def size(self) -> int:
        """The file's size, as stat said before it was read."""
        return self.stamp[0]

    @property
    def mtime_ns(self) -> int:
        """The file's modification time, as a record carries it."""
        return self.stamp[1]


def hash_file(path: Path, helper: Executor | None = None) -> FileHash:
    """Hash a file: SHA-256 of the whole, plus the block list of a file over LARGE_FILE.

    The stamp is taken first: if the file changes while it is read, its next stamp differs and
    the next scan hashes it again. A list is kept only when exactly the stamped size was read.

    Args:
        path: the file.
        helper: a thread to compute the block digests in, beside the whole-file digest (one is
            made for the call when not given and the file is large).
    """
    st = os.stat(path)
    stamp = stamp_of(st)
    whole = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        if st.st_size <= LARGE_FILE:
            while chunk := f.read(READ):
                whole.update(chunk)
            return FileHash(whole.hexdigest(), stamp, 0, b"")
        block_size = block_size_for(st.st_size)
        if helper is None:
            with ThreadPoolExecutor(1, thread_name_prefix="sync-hash") as own:
                hashes, read = _both(f, block_size, whole, own)
        else:
            hashes, read = _both(f, block_size, whole, helper)
    if read != st.st_size:
        return FileHash(whole.hexdigest(), stamp, 0, b"")
    return FileHash(whole.hexdigest(), stamp, block_size, hashes)


class _ReadsInto(Protocol):
    def readinto(self, buffer: memoryview, /) -> int | None: ...


def _both(
    f: _ReadsInto, block_size: int, whole: hashlib._Hash, helper: Executor
) -> tuple[bytes, int]:
    """Feed the whole-file digest here and the block digests in `helper`, buffer by buffer (the
    next buffer is read while the helper still hashes the last); returns the block list and
    the bytes read."""
    step = max(READ, block_size)
    buffers = [memoryview(bytearray(step)), memoryview(bytearray(step))]
    out = bytearray()
    pending: Future[bytes] | None = None
    read = turn = 0
    while True:
        got = _fill(f, buffers[turn])
        if pending is not None:
            out += pending.result()
        if not got:
            return bytes(out), read
        view = buffers[turn][:got]
        pending = helper.submit(block_digests, view, block_size)
        whole.update(view)
        read += got
        turn ^= 1


def _fill(f: _ReadsInto, view: memoryview) -> int:
    """Read into `view` until it is full or the file ends; bytes read."""
    got = 0
    while got < len(view):
        n = f.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def block_digests(data: memoryview | bytes, block_size: int) -> bytes:
    """The concatenated SHA-256 digests of `data` cut into `block_size` pieces (the last may be
    shorter)."""
    out = bytearray()
    for offset in range(0, len(data), block_size):
        out += hashlib.sha256(data[offset : offset + block_size]).digest()
    return bytes(out)


class Hasher:
    """Hashes files in a worker thread and counts every file it hashed."""

    def __init__(self) -> None:
        self.count = 0

    async def hash(self, path: Path) -> FileHash:
        """One file's hashes, computed off the event loop."""
        self.count += 1
        return await asyncio.to_thread(hash_file, path)

    async def hash_many(
        self, root: Path, rels: list[str], failed: dict[str, str] | None = None
    ) -> dict[str, FileHash]:
        """Hash many files in one worker-thread trip; files that cannot be read are left out
        (and put in `failed`, shown `printable`, with why, if given)."""
        self.count += len(rels)
        return await asyncio.to_thread(_hash_all, root, rels, failed)


def _hash_all(root: Path, rels: list[str], failed: dict[str, str] | None) -> dict[str, FileHash]:
    out = {}
    with ThreadPoolExecutor(1, thread_name_prefix="sync-hash") as helper:
        for rel in rels:
            try:
                out[rel] = hash_file(root / rel, helper)
            except FileNotFoundError:
                continue  # gone since the walk: the next scan sees it gone
            except OSError as exc:
                log.info("cannot hash %s: %s", printable(str(root / rel)), exc)
                if failed is not None:
                    failed[printable(rel)] = f"cannot be read: {exc.strerror or exc}"
    return out
