"""File bodies on the wire: serving with sendfile, receiving into verified temp files.

Serving runs on the event loop: a FILE_DATA (or BATCH_DATA) header frame, then the raw bytes,
sent by `Connection.sendfile` (zero-copy where the OS can). Receiving runs in a worker thread on
a blocking `Channel` from the node's door, one per download: it reads the header frame, then
streams the body
into a temp file under `<shared>/.lanshare-tmp/` in 1 MiB `recv_into` reads, hashing as it
writes, so neither the loop nor memory ever holds a whole file. Only a body whose SHA-256
matches is fsynced, given its mtime, and handed back to be renamed into the tree (`placing.py`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from ring.errors import (
    MalformedFrame,
    PeerUnreachable,
    RemoteError,
    RemoteProtocolError,
)
from ring.wire import Channel, Connection, Door
from sync.errors import HashMismatch, TransferAborted
from sync.manifest import FileRecord, Peer
from sync.messages import BatchData, BatchRequest, FileData, FileRequest

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
FSYNC_THREADS = 16


async def send_body(conn: Connection, f: BinaryIO, header: FileData) -> None:
    """Write `header`, then exactly header.size bytes of the open file `f` from header.offset.

    The file is the one the server opened and checked; it is never opened again by name.

    Raises:
        OSError: the file shrank or the connection broke; the server closes the connection,
            so the receiver sees a short body and never a wrong one.
    """
    await conn.send(header)
    if header.size == 0:
        return
    sent = await conn.sendfile(f, header.offset, header.size)
    if sent != header.size:
        raise OSError(f"{header.sha256[:16]} shrank while being sent ({sent} of {header.size})")


async def send_batch(conn: Connection, bodies: list[tuple[str, bytes | None]]) -> None:
    """Write a BATCH_DATA header, then each held body back to back (None: not held, size -1)."""
    items = [{"sha256": sha, "size": -1 if body is None else len(body)} for sha, body in bodies]
    await conn.send(BatchData(items))
    conn.writer.write(b"".join(body for _sha, body in bodies if body))
    await conn.writer.drain()


class Receiver:
    """Blocking downloads run in worker threads; `close` cuts every one still running."""

    def __init__(self, door: Door, tmp_dir: Path, timeout: float = 10.0) -> None:
        self.door = door
        self.tmp_dir = tmp_dir
        self.timeout = timeout
        self._channels: set[Channel] = set()
        self._lock = threading.Lock()
        self._fsyncer = ThreadPoolExecutor(FSYNC_THREADS, thread_name_prefix="sync-fsync")
        self._closers: list[Callable[[], None]] = []
        self.closed = False

    def on_close(self, closer: Callable[[], None]) -> None:
        """Call `closer` when the receiver closes (other download machinery stops with it)."""
        self._closers.append(closer)

    def close(self) -> None:
        """Shut down every open download connection (their threads then fail fast)."""
        self.closed = True
        self._fsyncer.shutdown(wait=False)
        for closer in self._closers:
            closer()
        with self._lock:
            for channel in self._channels:
                channel.shutdown()

    def temp_path(self, sha256: str) -> Path:
        """A fresh temp file name for content `sha256`."""
        return self.tmp_dir / f"{sha256[:16]}-{uuid.uuid4().hex[:12]}.part"

    def connect(self, peer: Peer) -> Channel:
        """A blocking connection to `peer` that `close` will cut; give it back with `release`."""
        if self.closed:
            raise PeerUnreachable("sync engine stopped")
        try:
            channel = self.door.open_blocking(peer.host, peer.port, self.timeout)
        except PeerUnreachable as exc:
            raise PeerUnreachable(f"{peer.name} at {exc}") from None
        with self._lock:
            self._channels.add(channel)
        return channel

    def release(self, channel: Channel) -> None:
        """Forget and close a connection from `connect`."""
        with self._lock:
            self._channels.discard(channel)
        channel.close()

    def fetch(self, peer: Peer, rec: FileRecord) -> tuple[Path, float]:
        """Download one file's bytes from `peer` into a verified temp file.

        Returns:
            The temp file (fsynced, mtime set) and the seconds until the header came (an RTT).

        Raises:
            PeerUnreachable, RemoteError, TransferAborted, HashMismatch: try another source.
            OSError: local trouble (disk full, permissions); the temp file is already gone.
        """
        channel = self.connect(peer)
        try:
            started = time.monotonic()
            header = channel.exchange(FileRequest(rec.sha256, rec.owner, rec.path))
            rtt = time.monotonic() - started
            if not isinstance(header, FileData) or header.size != rec.size:
                raise MalformedFrame(f"{peer.name} answered {header.TYPE} of the wrong size")
            tmp = self.temp_path(rec.sha256)
            try:
                with open(tmp, "wb") as f:
                    digest = _stream(channel, f, rec.size)
                    _finish(f, tmp, digest, rec)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            return tmp, rtt
        except OSError as exc:
            if isinstance(exc, (socket.timeout, ConnectionError)):
                raise TransferAborted(f"from {peer.name}: {exc}") from None
            raise
        finally:
            self.release(channel)

    def fetch_batch(self, peer: Peer, recs: list[FileRecord]) -> dict[int, Path]:
        """Download many small files in one BATCH round trip.

        Returns:
            index in `recs` -> verified temp file, for every file the peer held and sent right.
            Files it did not hold, or sent wrong, are left out (fetched singly later).
        """
        channel = self.connect(peer)
        out: dict[int, Path] = {}
        try:
            items = [{"sha256": r.sha256, "owner": r.owner, "path": r.path} for r in recs]
            header = channel.exchange(BatchRequest(items))
            if not isinstance(header, BatchData) or len(header.items) != len(recs):
                raise MalformedFrame(f"{peer.name} answered a batch of the wrong shape")
            for index, (item, rec) in enumerate(zip(header.items, recs, strict=True)):
                size = item.get("size") if isinstance(item, dict) else None
                if not isinstance(size, int) or size < 0:
                    continue
                if size != rec.size:
                    raise MalformedFrame(f"{peer.name} sent {rec.path} with the wrong size")
                tmp = self.temp_path(rec.sha256)
                try:
                    with open(tmp, "wb") as f:
                        digest = _stream(channel, f, size)
                        _finish(f, tmp, digest, rec, sync=False)
                    out[index] = tmp
                except HashMismatch as exc:
                    tmp.unlink(missing_ok=True)
                    log.warning("batch from %s: %s", peer.name, exc)
                except BaseException:
                    tmp.unlink(missing_ok=True)
                    raise
        except (OSError, PeerUnreachable, RemoteError, RemoteProtocolError, TransferAborted) as exc:
            if not out:
                if isinstance(exc, (socket.timeout, ConnectionError)):
                    raise TransferAborted(f"batch from {peer.name}: {exc}") from None
                raise
            log.info("batch from %s stopped after %d files: %s", peer.name, len(out), exc)
        finally:
            self.release(channel)
        self._fsync_all(out)
        return out

    def _fsync_all(self, temps: dict[int, Path]) -> None:
        """fsync many small temp files at once: parallel fsyncs share journal commits, so 5,000
        files cost about what 100 cost one after another. A file that fails is left out."""
        try:
            results = list(self._fsyncer.map(_fsync_path, temps.values()))
        except RuntimeError:  # the pool is shut down: the engine is stopping
            for tmp in temps.values():
                tmp.unlink(missing_ok=True)
            raise TransferAborted("sync engine stopped") from None
        for index, error in zip(list(temps), results, strict=True):
            if error is not None:
                log.error("cannot fsync %s (will retry): %s", temps[index], error)
                temps.pop(index).unlink(missing_ok=True)


def _stream(channel: Channel, f: BinaryIO, size: int) -> hashlib._Hash:
    """Copy exactly `size` bytes from the connection to the file, hashing them."""
    digest = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    left = size
    write = f.write
    while left:
        n = channel.recv_into(view[: min(CHUNK, left)])
        if n == 0:
            raise TransferAborted(f"connection closed after {size - left} of {size} bytes")
        digest.update(view[:n])
        write(view[:n])
        left -= n
    return digest


def recv_body(channel: Channel, view: memoryview, progress: Callable[[int], None]) -> None:
    """Fill `view` from the connection in 1 MiB reads, telling `progress` of each read."""
    got, size = 0, len(view)
    while got < size:
        n = channel.recv_into(view[got : got + min(CHUNK, size - got)])
        if n == 0:
            raise TransferAborted(f"connection closed after {got} of {size} bytes")
        got += n
        progress(n)


def _fsync_path(path: Path) -> OSError | None:
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        return exc
    return None


def _finish(
    f: BinaryIO, tmp: Path, digest: hashlib._Hash, rec: FileRecord, sync: bool = True
) -> None:
    if digest.hexdigest() != rec.sha256:
        raise HashMismatch(
            f"{rec.owner}/{rec.path}: got {digest.hexdigest()[:12]}, want {rec.sha256[:12]}"
        )
    f.flush()
    os.utime(tmp, ns=(rec.mtime_ns, rec.mtime_ns))
    if sync:
        os.fsync(f.fileno())


def copy_verified(src: BinaryIO, tmp: Path, rec: FileRecord) -> None:
    """Copy an open local file with the same content into a temp file, checking the hash on
    the way; `src` is closed.

    Raises:
        HashMismatch: the source changed since it was hashed (the temp file is removed).
        OSError: local trouble (the temp file is removed).
    """
    try:
        with src as source, open(tmp, "wb") as f:
            digest = hashlib.sha256()
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                f.write(chunk)
            _finish(f, tmp, digest, rec)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
