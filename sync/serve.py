"""The serving side: MANIFEST pages, FILE bodies and BATCH bodies, with every name confined.

Content addressing: a FILE or BATCH item names the SHA-256 it wants and the owner/path where
the asker expects it. Any local file whose cached hash matches is served, the named path first,
but only after it is opened without following a link and its size, mtime and inode are
checked, on the opened file, against the hash cache: a file changed since it was hashed is not
served under the old hash ("stale"), and a path swapped for a symlink never serves what it
points to. (An edit that keeps size, mtime and inode is caught by the receiver's block check,
and by the next scan, which looks at the ctime too.) BLOCKS is answered from the block list
kept when the file was hashed or downloaded (`blockstore.py`); only a list at another block
size is hashed on demand.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import BinaryIO, NamedTuple

from ring.errors import BadRequest, Refused
from ring.wire import Connection, Handler, Message, read_for_sending
from sync.blocks import BlockCache, block_size_for, valid_block_size
from sync.hashing import Stamp, fresh, stamp_of
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
from sync.opening import open_regular
from sync.paths import Confiner, check_owner, check_relpath, confine
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

    def open_local(self, sha256: str, prefer: str | None = None) -> Local | None:
        """Open a file under the root whose content is `sha256` now (see `open_cached`).

        Args:
            sha256: the content wanted.
            prefer: "<owner>/<path>" to try first (where the asker expects it).

        Returns:
            The opened file and its size (the caller closes it), or None when no file here
            still has that content.
        """
        rows = self.state.cache_by_hashes({sha256}).get(sha256, [])
        return open_cached(self.root, rows, prefer)

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
            entries,
            next_cursor is not None,
            list(next_cursor) if next_cursor else None,
            self.state.counters(),
        )

    def _find(self, sha256: str, owner: str, path: str, kind: str) -> Local:
        """Open the local file to serve content `sha256` from, or Refused (not_found, stale)."""
        if not is_sha256(sha256):
            raise BadRequest(f"{kind}.sha256 must be 64 lowercase hex digits")
        confine(self.root, owner, path)
        found = self.open_local(sha256, f"{owner}/{path}")
        if found is None:
            code = "stale" if self.state.cache_by_hashes({sha256}) else "not_found"
            raise Refused(code, f"no file with sha256 {sha256[:16]} here")
        return found

    async def on_blocks(self, msg: Message, conn: Connection) -> Message:
        """The block hashes of a held file (as kept, or hashed at another size): BLOCKS_DATA."""
        assert isinstance(msg, BlocksRequest)
        if not valid_block_size(msg.block_size):
            raise BadRequest(f"BLOCKS.block_size {msg.block_size} is not a power of two 64K-16M")
        try:
            found = self._find(msg.sha256, msg.owner, msg.path, "BLOCKS")
        except Refused:
            partial = self.partials.get(msg.sha256)
            if partial is None or partial.block_size != msg.block_size:
                raise
            return BlocksData(
                msg.sha256,
                partial.size,
                msg.block_size,
                b"" if msg.have_only else partial.hashes,
                partial.have(),
                partial.coming(),
            )
        if msg.have_only:
            found.file.close()
            return BlocksData(msg.sha256, found.size, msg.block_size, b"")
        try:
            hashes = await self._block_list(msg.sha256, msg.block_size, found)
        except OSError as exc:
            log.warning("cannot hash the blocks of %s: %s", msg.sha256[:16], exc)
            raise Refused("stale", f"{msg.sha256[:16]} cannot be read here now") from None
        finally:
            found.file.close()
        return BlocksData(msg.sha256, found.size, msg.block_size, hashes)

    async def _block_list(self, sha256: str, block_size: int, found: Local) -> bytes:
        """The block list of content `sha256` at `block_size`: the stored one when that is its
        size, else hashed from the opened file (and stored, if at the file's own size)."""
        stored = self.state.blocks.get(sha256)
        if stored is not None and stored.block_size == block_size and stored.size == found.size:
            return stored.hashes
        hashes = await self.blocks.get(sha256, block_size, found.file, found.size)
        if block_size == block_size_for(found.size) and stored is None:
            self.state.blocks.put(sha256, found.size, block_size, hashes)
        return hashes

    async def on_file(self, msg: Message, conn: Connection) -> None:
        """Send FILE_DATA and the body, or refuse: bad_path, not_found, stale, bad_request.

        The body comes from the file opened and checked (`open_cached`), never from a path
        opened again by name.
        """
        assert isinstance(msg, FileRequest)
        try:
            found = self._find(msg.sha256, msg.owner, msg.path, "FILE")
        except Refused:
            partial = self.partials.get(msg.sha256)
            if partial is None or msg.length is None or not partial.covers(msg.offset, msg.length):
                raise
            f, _st = open_regular(partial.data.parent, [partial.data.name])
            found = Local(f, partial.size)
        with found.file:
            total = found.size
            if msg.offset < 0 or msg.offset > total or (msg.length is not None and msg.length < 0):
                raise BadRequest(f"range {msg.offset}+{msg.length} outside a {total}-byte file")
            size = total - msg.offset if msg.length is None else min(msg.length, total - msg.offset)
            log.debug("serving %s (%d bytes) to %s:%d", msg.sha256[:16], size, *conn.peer)
            await send_body(conn, found.file, FileData(msg.sha256, size, msg.offset, total))
        self.sent += size
        return None

    async def on_batch(self, msg: Message, conn: Connection) -> None:
        """Send BATCH_DATA and the bodies this node holds (size -1 for the others)."""
        assert isinstance(msg, BatchRequest)
        if len(msg.files) > BATCH_MAX_FILES:
            raise BadRequest(f"BATCH of {len(msg.files)} files exceeds {BATCH_MAX_FILES}")
        asked: list[tuple[str, str]] = []
        confined = Confiner(self.root)
        for item in msg.files:
            if not isinstance(item, dict):
                raise BadRequest("BATCH item is not a map")
            sha, owner, path = item.get("sha256"), item.get("owner"), item.get("path")
            if not (isinstance(sha, str) and isinstance(owner, str) and isinstance(path, str)):
                raise BadRequest("BATCH item lacks sha256, owner or path")
            if not is_sha256(sha):
                raise BadRequest("BATCH item sha256 must be 64 lowercase hex digits")
            confined(owner, path)
            asked.append((sha, f"{owner}/{path}"))
        cache = self.state.cache_by_hashes({sha for sha, _prefer in asked})
        bodies = await read_for_sending(_read_bodies, self.root, asked, cache)
        await send_batch(conn, bodies)
        return None


class Local(NamedTuple):
    """A file opened to serve or copy a content: checked after it was opened."""

    file: BinaryIO
    size: int


def open_cached(root: Path, rows: list[tuple[str, Stamp]], prefer: str | None) -> Local | None:
    """Open the first of `rows` (the hash cache's (rel, stamp) of one content, the one named
    `prefer` first) that is, once opened, a regular file still with the cached size, mtime and
    inode (`hashing.fresh` without the ctime).

    Each is opened component by component without following a link (`opening.py`), and what
    was opened is checked, not what was looked at: a file swapped for a symlink, or changed
    since it was hashed ("stale"), is never served under the old hash.
    """
    for rel, stamp in sorted(rows, key=lambda row: row[0] != prefer):
        owner, _, path = rel.partition("/")
        try:
            check_owner(owner)
            check_relpath(path)
            f, st = open_regular(root, [owner, *path.split("/")])
        except (OSError, BadRequest):
            continue
        if fresh(stamp, stamp_of(st), ctime=False):
            return Local(f, st.st_size)
        f.close()
    return None


def _read_bodies(
    root: Path, asked: list[tuple[str, str]], cache: dict[str, list[tuple[str, Stamp]]]
) -> list[tuple[str, bytes | None]]:
    """The body of each (sha256, where asked) held here, within BATCH_MAX_BYTES in all (None:
    not sent), each read from the file opened and checked (in a worker thread)."""
    out: list[tuple[str, bytes | None]] = []
    budget = BATCH_MAX_BYTES
    for sha, prefer in asked:
        rows = [row for row in cache.get(sha, []) if row[1][0] <= budget]
        found = open_cached(root, rows, prefer)
        body = None
        if found is not None:
            with found.file as f:
                try:
                    body = f.read(found.size + 1)
                except OSError as exc:
                    log.warning("cannot read %s for a batch: %s", prefer, exc)
            if body is not None and len(body) != found.size:
                body = None
        budget -= 0 if body is None else len(body)
        out.append((sha, body))
    return out
