"""Block lists in sqlite: the block size and digests of every large content this node holds,
and an index of where each block is, so a download copies the blocks already here.

Tables, in the node's sync.db beside `state.py`'s:

- block_lists(id, sha256, size, block_size, hashes): one content's list at its own block size
  (`blocks.block_size_for`), from the scan that hashed the file or the download that checked
  every block; a holder answers BLOCKS from it, with no second pass over the file.
- block_index(key, list, idx): per block, the first 8 bytes of its digest (as a signed
  integer) -> which list and which block. A hit is a hint only: the bytes copied are hashed
  again before they count.

A list is a function of the content alone, so it is kept as long as some file with that
content is in the hash cache (`prune`).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from sync.blocks import DIGEST, block_count

SCHEMA = """
CREATE TABLE IF NOT EXISTS block_lists(
    id INTEGER PRIMARY KEY, sha256 TEXT NOT NULL UNIQUE, size INTEGER NOT NULL,
    block_size INTEGER NOT NULL, hashes BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS block_index(
    key INTEGER NOT NULL, list INTEGER NOT NULL, idx INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS block_index_key ON block_index(key);
CREATE INDEX IF NOT EXISTS block_index_list ON block_index(list);
"""

HITS_PER_BLOCK = 4
"""Lists looked up for one block digest (a block of zeros may be in thousands of files)."""


def block_key(digest: bytes) -> int:
    """The index key of a block digest: its first 8 bytes as a signed 64-bit integer."""
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass(frozen=True)
class Listed:
    """A content's block list as stored."""

    sha256: str
    size: int
    block_size: int
    hashes: bytes


@dataclass(frozen=True)
class Place:
    """Where a block with a given digest key is: block `index` of content `sha256`."""

    sha256: str
    size: int
    block_size: int
    index: int


class BlockStore:
    """The block tables on the state's sqlite connection (the event loop's thread only)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        db.executescript(SCHEMA)

    def put(self, sha256: str, size: int, block_size: int, hashes: bytes) -> None:
        """Keep the list of a content (a content listed already keeps its list)."""
        if len(hashes) != block_count(size, block_size) * DIGEST:
            raise ValueError(f"a list of {len(hashes)} bytes for {size} bytes in {block_size}")
        cur = self._db.execute(
            "INSERT OR IGNORE INTO block_lists(sha256, size, block_size, hashes) "
            "VALUES (?, ?, ?, ?)",
            (sha256, size, block_size, hashes),
        )
        if not cur.rowcount:
            return
        list_id = cur.lastrowid
        self._db.executemany(
            "INSERT INTO block_index VALUES (?, ?, ?)",
            (
                (block_key(hashes[i : i + DIGEST]), list_id, i // DIGEST)
                for i in range(0, len(hashes), DIGEST)
            ),
        )

    def get(self, sha256: str) -> Listed | None:
        """The stored list of a content, if any."""
        row = self._db.execute(
            "SELECT size, block_size, hashes FROM block_lists WHERE sha256 = ?", (sha256,)
        ).fetchone()
        return None if row is None else Listed(sha256, row[0], row[1], bytes(row[2]))

    def places(self, keys: set[int]) -> dict[int, list[Place]]:
        """Where blocks with these digest keys are: one place per list (its first), in up to
        HITS_PER_BLOCK lists per key; one query per 500 keys."""
        out: dict[int, list[Place]] = {}
        pending = sorted(keys)
        for start in range(0, len(pending), 500):
            chunk = pending[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                "SELECT key, sha256, size, block_size, idx FROM ("
                "SELECT h.key, l.sha256, l.size, l.block_size, h.idx, "
                "ROW_NUMBER() OVER (PARTITION BY h.key ORDER BY h.list) AS n FROM ("
                "SELECT key, list, MIN(idx) AS idx FROM block_index "
                f"WHERE key IN ({marks}) GROUP BY key, list) h "
                "JOIN block_lists l ON l.id = h.list) WHERE n <= ?",
                (*chunk, HITS_PER_BLOCK),
            )
            for key, sha256, size, block_size, idx in rows:
                out.setdefault(key, []).append(Place(sha256, size, block_size, idx))
        return out

    def prune(self) -> int:
        """Forget the lists of content no file in the hash cache has any more; how many."""
        gone = [
            row[0]
            for row in self._db.execute(
                "SELECT id FROM block_lists WHERE sha256 NOT IN (SELECT sha256 FROM hash_cache)"
            )
        ]
        for list_id in gone:
            self._db.execute("DELETE FROM block_index WHERE list = ?", (list_id,))
            self._db.execute("DELETE FROM block_lists WHERE id = ?", (list_id,))
        return len(gone)
