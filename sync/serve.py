"""The serving side: MANIFEST pages, FILE bodies and BATCH bodies, with every name confined.

Content addressing: a FILE or BATCH item names the SHA-256 it wants and the owner/path where
the asker expects it. Any local file whose cached hash matches is served, the named path first,
but only after its size and mtime are checked against the hash cache; a file changed since it
was hashed is never served under the old hash ("stale").
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from ring.errors import BadRequest, Refused
from ring.wire import Connection, Handler, Message, read_for_sending
from sync.blocks import BlockCache, valid_block_size
from sync.manifest import is_sha256, record_to_entry
from sync.messages import (
    BATCH_MAX_BYTES,
    BATCH_MAX_FILES,
    PAGE_LIMIT,
    BatchRequest,
    BlocksData,
    BlocksRequest,
    FileData,
    FileRequest,
    ManifestData,
    ManifestRequest,
)
from sync.paths import Confiner, confine
from sync.resume import Partial
from sync.state import State
from sync.transfer import send_batch, send_body

log = logging.getLogger(__name__)


class Server:
    """Request handlers over this node's state and shared root."""

    def __init__(self, root: Path, state: State) -> None:
        self.root = root
        self.state = state
        self.blocks = BlockCache()
        self.partials: dict[str, Partial] = {}
        """Downloads in progress by content hash: their stored blocks are served too."""
        self.sent = 0
        """File body bytes sent by FILE requests (tests and the benchmark count per holder)."""

    def routes(self) -> list[tuple[type[Message], Handler]]:
        """(message type, handler) pairs to route on a FrameServer."""
        return [
            (ManifestRequest, self.on_manifest),
            (FileRequest, self.on_file),
            (BatchRequest, self.on_batch),
            (BlocksRequest, self.on_blocks),
        ]

    def local_file(
        self, sha256: str, prefer: tuple[str, Path] | None = None
    ) -> tuple[Path, int] | None:
        """A file under the root whose content is `sha256` now, checked by size and mtime.

        Args:
            sha256: the content wanted.
            prefer: ("<owner>/<path>", its confined target) to try first.

        Returns:
            (path, size), or None when no file here still has that content.
        """
        return self.local_files([(sha256, prefer)])[0]

    def local_files(
        self, wanted: list[tuple[str, tuple[str, Path] | None]]
    ) -> list[tuple[Path, int] | None]:
        """`local_file` for many hashes with one cache query per 500 (batches of small files)."""
        cache = self.state.cache_by_hashes({sha for sha, _prefer in wanted})
        return [self._pick(cache.get(sha, []), prefer) for sha, prefer in wanted]

    def _pick(
        self, rows: list[tuple[str, int, int]], prefer: tuple[str, Path] | None
    ) -> tuple[Path, int] | None:
        rows = sorted(rows, key=lambda r: prefer is None or r[0] != prefer[0])
        for rel, size, mtime_ns in rows:
            owner, _, path = rel.partition("/")
            try:
                if prefer is not None and rel == prefer[0]:
                    target = prefer[1]
                else:
                    target = confine(self.root, owner, path)
                st = os.lstat(target)
            except (OSError, BadRequest):
                continue
            if stat.S_ISREG(st.st_mode) and (st.st_size, st.st_mtime_ns) == (size, mtime_ns):
                return target, st.st_size
        return None

    async def on_manifest(self, msg: Message, conn: Connection) -> Message:
        """One page of the manifest delta the peer asked for."""
        assert isinstance(msg, ManifestRequest)
        since: dict[str, int] = {}
        for owner, seq in msg.since.items():
            if not isinstance(owner, str) or not isinstance(seq, int) or isinstance(seq, bool):
                raise BadRequest("MANIFEST.since must map owner names to integers")
            since[owner] = seq
        cursor: tuple[str, int] | None = None
        if msg.cursor is not None:
            if (
                len(msg.cursor) != 2
                or not isinstance(msg.cursor[0], str)
                or not isinstance(msg.cursor[1], int)
            ):
                raise BadRequest("MANIFEST.cursor must be [owner, seq]")
            cursor = (msg.cursor[0], msg.cursor[1])
        limit = max(1, min(msg.limit, PAGE_LIMIT))
        rows, next_cursor = self.state.page(since, cursor, limit)
        entries = [record_to_entry(rec, held) for rec, held in rows]
        return ManifestData(
            entries, next_cursor is not None, list(next_cursor) if next_cursor else None
        )

    def _find(self, sha256: str, owner: str, path: str, kind: str) -> tuple[Path, int]:
        """The local file to serve content `sha256` from, or Refused (not_found, stale)."""
        if not is_sha256(sha256):
            raise BadRequest(f"{kind}.sha256 must be 64 lowercase hex digits")
        target = confine(self.root, owner, path)
        found = self.local_file(sha256, (f"{owner}/{path}", target))
        if found is None:
            code = "stale" if self.state.cache_by_hashes({sha256}) else "not_found"
            raise Refused(code, f"no file with sha256 {sha256[:16]} here")
        return found

    async def on_blocks(self, msg: Message, conn: Connection) -> Message:
        """The block hashes of a held file (hashed once, then cached): BLOCKS_DATA."""
        assert isinstance(msg, BlocksRequest)
        if not valid_block_size(msg.block_size):
            raise BadRequest(f"BLOCKS.block_size {msg.block_size} is not a power of two 64K-16M")
        try:
            path, total = self._find(msg.sha256, msg.owner, msg.path, "BLOCKS")
        except Refused:
            partial = self.partials.get(msg.sha256)
            if partial is None or partial.block_size != msg.block_size:
                raise
            return BlocksData(
                msg.sha256, partial.size, msg.block_size, partial.hashes, partial.have()
            )
        try:
            hashes = await self.blocks.get(msg.sha256, msg.block_size, path, total)
        except OSError as exc:
            log.warning("cannot hash the blocks of %s: %s", path, exc)
            raise Refused("stale", f"{msg.sha256[:16]} cannot be read here now") from None
        return BlocksData(msg.sha256, total, msg.block_size, hashes)

    async def on_file(self, msg: Message, conn: Connection) -> None:
        """Send FILE_DATA and the body, or refuse: bad_path, not_found, stale, bad_request."""
        assert isinstance(msg, FileRequest)
        try:
            path, total = self._find(msg.sha256, msg.owner, msg.path, "FILE")
        except Refused:
            partial = self.partials.get(msg.sha256)
            if partial is None or msg.length is None or not partial.covers(msg.offset, msg.length):
                raise
            path, total = partial.data, partial.size
        if msg.offset < 0 or msg.offset > total or (msg.length is not None and msg.length < 0):
            raise BadRequest(f"range {msg.offset}+{msg.length} outside a {total}-byte file")
        size = total - msg.offset if msg.length is None else min(msg.length, total - msg.offset)
        log.debug("serving %s (%d bytes) to %s:%d", path, size, *conn.peer)
        await send_body(conn, path, FileData(msg.sha256, size, msg.offset, total))
        self.sent += size
        return None

    async def on_batch(self, msg: Message, conn: Connection) -> None:
        """Send BATCH_DATA and the bodies this node holds (size -1 for the others)."""
        assert isinstance(msg, BatchRequest)
        if len(msg.files) > BATCH_MAX_FILES:
            raise BadRequest(f"BATCH of {len(msg.files)} files exceeds {BATCH_MAX_FILES}")
        asked: list[tuple[str, tuple[str, Path] | None]] = []
        confined = Confiner(self.root)
        for item in msg.files:
            if not isinstance(item, dict):
                raise BadRequest("BATCH item is not a map")
            sha, owner, path = item.get("sha256"), item.get("owner"), item.get("path")
            if not (isinstance(sha, str) and isinstance(owner, str) and isinstance(path, str)):
                raise BadRequest("BATCH item lacks sha256, owner or path")
            if not is_sha256(sha):
                raise BadRequest("BATCH item sha256 must be 64 lowercase hex digits")
            asked.append((sha, (f"{owner}/{path}", confined(owner, path))))
        wanted: list[tuple[str, Path | None, int]] = []
        budget = BATCH_MAX_BYTES
        for (sha, _prefer), found in zip(asked, self.local_files(asked), strict=True):
            if found is None or found[1] > budget:
                wanted.append((sha, None, 0))
                continue
            budget -= found[1]
            wanted.append((sha, found[0], found[1]))
        bodies = await read_for_sending(_read_bodies, wanted)
        await send_batch(conn, bodies)
        return None


def _read_bodies(wanted: list[tuple[str, Path | None, int]]) -> list[tuple[str, bytes | None]]:
    out: list[tuple[str, bytes | None]] = []
    for sha, path, size in wanted:
        body = None
        if path is not None:
            try:
                body = path.read_bytes()
            except OSError as exc:
                log.warning("cannot read %s for a batch: %s", path, exc)
            if body is not None and len(body) != size:
                body = None
        out.append((sha, body))
    return out
