"""Partial downloads that survive a lost peer or a restart: the bytes and a record of good blocks.

A block download writes into `<shared>/.lanshare-partial/<sha256>.part` (outside every owner
folder, on the same file system as the tree, so the final rename is atomic) and keeps
`<sha256>.blocks` beside it: a msgpack map of the file's size, block size, block hashes and the
indexes of the blocks verified so far, rewritten at most once a second (and when the download
stops). On resume the record is only a hint: each block it names is read back and hashed again,
and only those that still match are kept; a block written after the last rewrite is fetched
again.

The whole-file SHA-256 is computed as blocks become contiguous from the start, read back from
the page cache in a thread of its own (`digester`), so it runs beside the receiving and the
checking of the next blocks rather than after them, and the last block verified finishes it.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from pathlib import Path

import msgpack

from sync.blocks import DIGEST, block_count, block_range
from sync.errors import SyncError

log = logging.getLogger(__name__)

PARTIAL_DIR = ".lanshare-partial"

RECORD_EVERY = 1.0
"""Seconds between two rewrites of a resume record (a block list of 2,000 blocks is 64 KiB)."""

READ_BACK = 4 * 1024 * 1024
"""Bytes read back at once for the whole-file hash."""


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

    def __init__(
        self,
        folder: Path,
        sha256: str,
        size: int,
        block_size: int,
        hashes: bytes,
        digester: Executor | None = None,
    ):
        """`digester`: where the whole-file hash is fed (None: in the writing thread)."""
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
        self._digester = digester
        self._buffer: memoryview | None = None
        self._saved = 0.0
        self._dirty = False
        self.fetching: Callable[[], Iterable[int]] = tuple
        """The blocks this node is fetching right now (set by the download using this file)."""

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
        self._advance()
        if kept:
            log.info("resuming %s: %d of %d blocks kept", self.sha256[:12], len(kept), self.count)
        return set(kept)

    def write(self, first: int, data: memoryview | bytes) -> int:
        """Store verified blocks: `data` is block `first` and the blocks after it, whole (the
        file's last block may be short). Returns the bytes of blocks not stored before.

        Raises:
            LocalDiskError: the write failed (disk full, I/O error).
        """
        offset = first * self.block_size
        indexes = range(first, block_count(offset + len(data), self.block_size))
        with self._lock:
            if all(i in self.verified for i in indexes):
                return 0
        try:
            written = os.pwrite(self._fd, data, offset)
            if written != len(data):
                raise OSError(errno.ENOSPC, "short write")
            start_writeback(self._fd, offset, written)
            with self._lock:
                fresh = [i for i in indexes if i not in self.verified]
                self.verified.update(fresh)
                self._dirty = True
                if time.monotonic() - self._saved >= RECORD_EVERY:
                    self._save_record()
        except OSError as exc:
            raise disk_error(exc, f"{self.sha256[:12]}") from None
        if self._digester is None:
            self._advance()
        else:
            try:
                self._digester.submit(self._advance)
            except RuntimeError:  # the pool is shut down: the engine is stopping
                pass
        return sum(block_range(i, self.size, self.block_size)[1] for i in fresh)

    def have(self) -> bytes:
        """A bitmap of the blocks stored so far (bit i of byte i // 8, lowest bit first)."""
        with self._lock:
            return bitmap(self.verified, self.count)

    def coming(self) -> bytes:
        """A bitmap of the blocks being fetched now (not stored yet): another receiver of this
        file leaves them to this node rather than ask a full holder for them too."""
        return bitmap(self.fetching(), self.count)

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
        """Every block is in and the whole file has the manifest's SHA-256 (the whole-file hash
        is caught up first)."""
        with self._hashing:
            self._feed()
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
        """Close the file, keeping it and its record (brought up to date) for a later resume."""
        with self._lock:
            if self._dirty:
                try:
                    self._save_record()
                except OSError as exc:
                    log.warning("cannot save the resume record %s: %s", self.record, exc)
        with self._hashing:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def discard(self) -> None:
        """Close and remove the partial file and its record."""
        with self._lock:
            self._dirty = False
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

    def _advance(self) -> None:
        """Feed the whole-file hash every block now contiguous from the start.

        One thread hashes at a time and the others go on (they do not wait: the hashing thread
        picks their blocks up); the check after releasing closes the gap where a block lands
        just as the hashing thread gives up.
        """
        while self._ready() and self._hashing.acquire(blocking=False):
            try:
                self._feed()
            finally:
                self._hashing.release()

    def _feed(self) -> None:
        """Hash the verified blocks from the cursor on, read back into one buffer (under
        `_hashing`)."""
        if self._buffer is None:
            self._buffer = memoryview(bytearray(max(READ_BACK, self.block_size)))
        while self._fd >= 0 and self._ready():
            with self._lock:
                end = self._cursor
                most = self._cursor + len(self._buffer) // self.block_size
                while end < min(self.count, most) and end in self.verified:
                    end += 1
            offset = self._cursor * self.block_size
            length = min(end * self.block_size, self.size) - offset
            view = self._buffer[:length]
            if os.preadv(self._fd, [view], offset) != length:
                raise OSError(errno.EIO, f"{self.data} is shorter than its verified blocks")
            self._digest.update(view)
            self._cursor = end

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
        """Rewrite the record (under `_lock`)."""
        self._saved = time.monotonic()
        self._dirty = False
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


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Have the kernel start writing a range to disk now (sync_file_range, Linux), so the
    fsync before the rename finds most of the file written; a no-op where not available."""
    if _SYNC_FILE_RANGE is None:
        return
    _SYNC_FILE_RANGE(fd, offset, length, SYNC_FILE_RANGE_WRITE)


def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    try:
        func = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (AttributeError, OSError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    func.restype = ctypes.c_int
    return func


SYNC_FILE_RANGE_WRITE = 2
_SYNC_FILE_RANGE = _sync_file_range()


def bitmap(indexes: Iterable[int], count: int) -> bytes:
    """The bitmap of block `indexes` among `count` (bit i of byte i // 8, lowest bit first)."""
    bits = bytearray((count + 7) // 8)
    for index in indexes:
        bits[index // 8] |= 1 << (index % 8)
    return bytes(bits)


def have_set(bits: bytes, count: int) -> set[int]:
    """The block indexes a `bitmap` names (bits past `count` ignored)."""
    return {i for i in range(min(count, len(bits) * 8)) if bits[i // 8] >> (i % 8) & 1}


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
