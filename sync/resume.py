"""Partial downloads that survive a lost peer or a restart: the bytes and a record of good blocks.

A block download writes into `<shared>/.lanshare-partial/<sha256>.part` (outside every owner
folder, on the same file system as the tree, so the final rename is atomic) and keeps
`<sha256>.blocks` beside it: a msgpack map of the file's size, block size, block hashes and the
indexes of the blocks verified so far. On resume the record is only a hint: each block it names
is read back and hashed again, and only those that still match are kept.

The whole-file SHA-256 is computed as blocks become contiguous from the start (from memory when
the block just arrived in order, else read back from the file), so a single-source download
costs no second pass over the file, and the last block verified finishes the check.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import threading
from pathlib import Path

import msgpack

from sync.blocks import DIGEST, block_count, block_range
from sync.errors import SyncError

log = logging.getLogger(__name__)

PARTIAL_DIR = ".lanshare-partial"


class LocalDiskError(SyncError):
    """This node cannot store the download (disk full, permission denied); it retries later."""


def disk_error(exc: OSError, what: str) -> LocalDiskError:
    """A clear message for local trouble writing `what`."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        reason = "no space left on the device"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        reason = "permission denied"
    else:
        reason = exc.strerror or str(exc)
    return LocalDiskError(f"cannot store {what}: {reason} (partial file removed; will retry)")


class Partial:
    """One partially downloaded content hash; thread-safe (block workers share it)."""

    def __init__(self, folder: Path, sha256: str, size: int, block_size: int, hashes: bytes):
        self.folder = folder
        self.sha256 = sha256
        self.size = size
        self.block_size = block_size
        self.hashes = hashes
        self.count = block_count(size, block_size)
        self.data = folder / f"{sha256}.part"
        self.record = folder / f"{sha256}.blocks"
        self.verified: set[int] = set()
        self._fd = -1
        self._lock = threading.Lock()
        self._hashing = threading.Lock()
        self._digest = hashlib.sha256()
        self._cursor = 0

    def expected(self, index: int) -> bytes:
        """The digest block `index` must have."""
        return self.hashes[index * DIGEST : (index + 1) * DIGEST]

    def open(self) -> set[int]:
        """Create or reopen the partial file; returns the blocks already verified (blocking).

        No disk is reserved for bytes not yet here: the file grows as blocks are written, so a
        holder that announces a huge file and never sends it costs nothing. A file that cannot
        fit in the free space now is refused at once, before any byte is fetched.

        Raises:
            LocalDiskError: the file cannot be made, or cannot fit (nothing is left).
        """
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            kept = self._load_record()
            self._fd = os.open(self.data, os.O_RDWR | os.O_CREAT, 0o644)
            if kept:
                kept = {i for i in kept if self._check(i)}
            else:
                os.ftruncate(self._fd, 0)
            self._fits()
        except OSError as exc:
            self.discard()
            raise disk_error(exc, f"{self.size} bytes of {self.sha256[:12]}") from None
        with self._lock:
            self.verified = kept
        self._advance(-1, None)
        if kept:
            log.info("resuming %s: %d of %d blocks kept", self.sha256[:12], len(kept), self.count)
        return set(kept)

    def write(self, index: int, data: memoryview) -> bool:
        """Store a verified block and record it; False when it was already stored.

        Raises:
            LocalDiskError: the write failed (disk full, I/O error).
        """
        offset, _length = block_range(index, self.size, self.block_size)
        with self._lock:
            if index in self.verified:
                return False
        try:
            written = os.pwrite(self._fd, data, offset)
            if written != len(data):
                raise OSError(errno.ENOSPC, "short write")
            with self._lock:
                if index in self.verified:
                    return False
                self.verified.add(index)
                self._save_record()
            self._advance(index, data)
        except OSError as exc:
            raise disk_error(exc, f"{self.sha256[:12]}") from None
        return True

    def have(self) -> bytes:
        """A bitmap of the blocks stored so far (bit i of byte i // 8, lowest bit first)."""
        bits = bytearray((self.count + 7) // 8)
        with self._lock:
            for index in self.verified:
                bits[index // 8] |= 1 << (index % 8)
        return bytes(bits)

    def covers(self, offset: int, length: int) -> bool:
        """Whether the range is whole blocks, all of them stored (so it may be served)."""
        if offset % self.block_size or length <= 0 or offset + length > self.size:
            return False
        end = offset + length
        if end != self.size and end % self.block_size:
            return False
        first, last = offset // self.block_size, (end - 1) // self.block_size
        with self._lock:
            return all(i in self.verified for i in range(first, last + 1))

    @property
    def whole_ok(self) -> bool:
        """Every block is in and the whole file has the manifest's SHA-256."""
        with self._hashing:
            return self._cursor == self.count and self._digest.hexdigest() == self.sha256

    def finish(self, mtime_ns: int) -> Path:
        """fsync, set the mtime, forget the record; returns the data file to rename into place."""
        try:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
            os.utime(self.data, ns=(mtime_ns, mtime_ns))
            self.record.unlink(missing_ok=True)
        except OSError as exc:
            self.discard()
            raise disk_error(exc, self.sha256[:12]) from None
        return self.data

    def close(self) -> None:
        """Close the file, keeping it and its record for a later resume."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def discard(self) -> None:
        """Close and remove the partial file and its record."""
        self.close()
        self.data.unlink(missing_ok=True)
        self.record.unlink(missing_ok=True)

    def _fits(self) -> None:
        """Raise ENOSPC unless the bytes still missing fit in the free space now."""
        st = os.fstat(self._fd)
        vfs = os.fstatvfs(self._fd)
        missing = self.size - st.st_blocks * 512
        if missing > vfs.f_bavail * vfs.f_frsize:
            raise OSError(errno.ENOSPC, "no space left on the device")

    def _check(self, index: int) -> bool:
        offset, length = block_range(index, self.size, self.block_size)
        data = os.pread(self._fd, length, offset)
        return len(data) == length and hashlib.sha256(data).digest() == self.expected(index)

    def _ready(self) -> bool:
        with self._lock:
            return self._cursor < self.count and self._cursor in self.verified

    def _advance(self, index: int, data: memoryview | None) -> None:
        """Feed the whole-file hash every block now contiguous from the start.

        One thread hashes at a time and the others go on receiving (they do not wait: the
        hashing thread picks their blocks up); the check after releasing closes the gap where a
        block lands just as the hashing thread gives up.
        """
        while self._ready() and self._hashing.acquire(blocking=False):
            try:
                while self._ready():
                    if self._cursor == index and data is not None:
                        self._digest.update(data)
                    else:
                        offset, length = block_range(self._cursor, self.size, self.block_size)
                        self._digest.update(os.pread(self._fd, length, offset))
                    self._cursor += 1
            finally:
                self._hashing.release()

    def _load_record(self) -> set[int]:
        try:
            raw = self.record.read_bytes()
            rec = msgpack.unpackb(raw)
        except FileNotFoundError:
            return set()
        except (OSError, ValueError, msgpack.UnpackException) as exc:
            log.warning("ignoring a damaged resume record %s: %s", self.record, exc)
            return set()
        if not isinstance(rec, dict) or (
            rec.get("size"),
            rec.get("block_size"),
            rec.get("hashes"),
        ) != (self.size, self.block_size, self.hashes):
            return set()
        verified = rec.get("verified")
        if not isinstance(verified, list):
            return set()
        return {i for i in verified if isinstance(i, int) and 0 <= i < self.count}

    def _save_record(self) -> None:
        body = msgpack.packb(
            {
                "sha256": self.sha256,
                "size": self.size,
                "block_size": self.block_size,
                "hashes": self.hashes,
                "verified": sorted(self.verified),
            }
        )
        tmp = self.record.with_suffix(".tmp")
        tmp.write_bytes(body)
        os.replace(tmp, self.record)


def have_set(bitmap: bytes, count: int) -> set[int]:
    """The block indexes a `Partial.have` bitmap names (bits past `count` ignored)."""
    return {i for i in range(min(count, len(bitmap) * 8)) if bitmap[i // 8] >> (i % 8) & 1}


def prune_partials(folder: Path, keep: set[str]) -> None:
    """Remove partial downloads of content no longer wanted (the file changed or was deleted)."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return
    for name in names:
        sha = name.split(".", 1)[0]
        if sha not in keep:
            (folder / name).unlink(missing_ok=True)
