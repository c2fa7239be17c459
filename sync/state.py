"""Persistent node state in sqlite: the hash cache, every known record, and sequence counters.

One connection, used only from the event loop's thread (each call is short; hashing and file
I/O happen elsewhere). Tables:

- hash_cache(rel, size, mtime_ns, sha256, ino, ctime_ns): "<owner>/<path>" of any file under
  the shared root whose content this node hashed or wrote, with its `Stamp`; a file whose stamp
  still matches (`hashing.fresh`) is not hashed again.
- records(owner, path, size, mtime_ns, sha256, seq, deleted, have, sig): the highest-seq
  record known per path; `have` is the hash of the bytes this node placed there (the last
  synced hash), NULL when it holds nothing there; `sig` the owner's signature of the record,
  kept so that this node can pass the record on (NULL: not signed yet, own records only).
- counters(owner, seq): for this node, the last sequence number used; for others, the highest
  seq received from the previous node (the "since" of the next delta).
- meta(key, value): small facts about this node's folders, e.g. which device (file system)
  the own folder was on at the last scan that deleted nothing unexpected.
- kept(at, owner, path, copy): every copy of a user's change to a replica that sync moved out
  of its way (`keep.py`), with where it went under the trash folder, for `status`.
- block_lists, block_index: the block lists of large content held here (`blockstore.py`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from sync.blockstore import BlockStore
from sync.hashing import Stamp, fresh
from sync.manifest import FileRecord

SCHEMA = """
CREATE TABLE IF NOT EXISTS hash_cache(
    rel TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL,
    ino INTEGER NOT NULL DEFAULT 0, ctime_ns INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS hash_cache_sha ON hash_cache(sha256);
CREATE TABLE IF NOT EXISTS records(
    owner TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL, seq INTEGER NOT NULL, deleted INTEGER NOT NULL, have TEXT, sig BLOB,
    PRIMARY KEY(owner, path));
CREATE INDEX IF NOT EXISTS records_seq ON records(owner, seq);
CREATE INDEX IF NOT EXISTS records_sha ON records(sha256);
CREATE TABLE IF NOT EXISTS counters(owner TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kept(
    at REAL NOT NULL, owner TEXT NOT NULL, path TEXT NOT NULL, copy TEXT NOT NULL);
"""

_COLS = "owner, path, size, mtime_ns, sha256, seq, deleted, sig"
"""The columns of a FileRecord; `have`, when selected, follows them (row[8])."""


def _rec(row: tuple[Any, ...]) -> FileRecord:
    return FileRecord(row[0], row[1], row[2], row[3], row[4], row[5], bool(row[6]), row[7] or b"")


class State:
    """The sqlite file `<state_dir>/sync.db`; every write commits before returning."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(state_dir / "sync.db", isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        cached = {row[1] for row in self._db.execute("PRAGMA table_info(hash_cache)")}
        for column in ("ino", "ctime_ns"):  # a cache from before stamps: entries know no inode
            if column not in cached:
                self._db.execute(
                    f"ALTER TABLE hash_cache ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0"
                )
        self.blocks = BlockStore(self._db)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(records)")}
        self.unsigned_before = "sig" not in columns
        """Whether this state folder comes from before owner signatures (its records have
        none: `sync/signing.py` `start_signing` deals with it)."""
        if self.unsigned_before:
            self._db.execute("ALTER TABLE records ADD COLUMN sig BLOB")
        self._journal: dict[tuple[str, str], str | None] | None = None
        self._journaling = 0

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def transaction(self) -> _Commit:
        """A context manager that commits a group of writes at once (far faster than one by one)."""
        self._db.execute("BEGIN")
        return _Commit(self._db)

    # hash cache
    def cached(self, prefix: str) -> dict[str, tuple[Stamp, str]]:
        """rel -> (stamp, sha256) for every cached file under `prefix` ("owner/")."""
        rows = self._db.execute(
            "SELECT rel, size, mtime_ns, ino, ctime_ns, sha256 FROM hash_cache "
            "WHERE substr(rel, 1, ?) = ?",
            (len(prefix), prefix),
        )
        return {r[0]: ((r[1], r[2], r[3], r[4]), r[5]) for r in rows}

    def cache_get(self, rel: str, stamp: Stamp | None = None) -> tuple[int, int, str] | None:
        """The cached (size, mtime_ns, sha256) of one file; with `stamp`, only if the file with
        that stamp is still the one hashed (`hashing.fresh`)."""
        row = self._db.execute(
            "SELECT size, mtime_ns, ino, ctime_ns, sha256 FROM hash_cache WHERE rel = ?", (rel,)
        ).fetchone()
        if row is None or (
            stamp is not None and not fresh((row[0], row[1], row[2], row[3]), stamp)
        ):
            return None
        return (row[0], row[1], row[4])

    def cache_put(
        self, rel: str, size: int, mtime_ns: int, sha256: str, ident: tuple[int, int] = (0, 0)
    ) -> None:
        """Remember the hash of a file as of (size, mtime_ns) and `ident`, its (inode,
        ctime_ns) (0, 0: not known)."""
        self._db.execute(
            "INSERT OR REPLACE INTO hash_cache(rel, size, mtime_ns, sha256, ino, ctime_ns) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (rel, size, mtime_ns, sha256, *ident),
        )

    def cache_drop(self, rel: str) -> None:
        """Forget a file (deleted or moved away)."""
        self._db.execute("DELETE FROM hash_cache WHERE rel = ?", (rel,))

    def cache_by_hashes(self, wanted: set[str]) -> dict[str, list[tuple[str, Stamp]]]:
        """sha256 -> (rel, stamp) of every cached file with it, one query per 500."""
        found: dict[str, list[tuple[str, Stamp]]] = {}
        pending = sorted(wanted)
        for start in range(0, len(pending), 500):
            chunk = pending[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                "SELECT sha256, rel, size, mtime_ns, ino, ctime_ns FROM hash_cache "
                f"WHERE sha256 IN ({marks})",
                chunk,
            )
            for sha, rel, size, mtime_ns, ino, ctime_ns in rows:
                found.setdefault(sha, []).append((rel, (size, mtime_ns, ino, ctime_ns)))
        return found

    # records
    def record(self, owner: str, path: str) -> tuple[FileRecord, str | None] | None:
        """The known record of one path and the hash of the bytes placed there."""
        row = self._db.execute(
            f"SELECT {_COLS}, have FROM records WHERE owner = ? AND path = ?", (owner, path)
        ).fetchone()
        return None if row is None else (_rec(row), row[8])

    def records_of(self, owner: str) -> dict[str, FileRecord]:
        """path -> record, tombstones included, for one owner."""
        rows = self._db.execute(f"SELECT {_COLS} FROM records WHERE owner = ?", (owner,))
        return {r[1]: _rec(r) for r in rows}

    def rows(self, keys: Iterable[tuple[str, str]]) -> list[tuple[FileRecord, str | None]]:
        """`record` for many (owner, path) keys, one query per 500; unknown keys are left out."""
        pending = sorted(set(keys))
        out: list[tuple[FileRecord, str | None]] = []
        for start in range(0, len(pending), 500):
            chunk = pending[start : start + 500]
            marks = ",".join("(?, ?)" for _ in chunk)
            rows = self._db.execute(
                f"SELECT {_COLS}, have FROM records WHERE (owner, path) IN (VALUES {marks})",
                [part for key in chunk for part in key],
            )
            out.extend((_rec(r), r[8]) for r in rows)
        return out

    def put_record(self, rec: FileRecord, have: str | None) -> None:
        """Store a record (replacing the path's previous one) and what this node holds of it."""
        self._db.execute(
            f"INSERT OR REPLACE INTO records ({_COLS}, have) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                *(rec.owner, rec.path, rec.size, rec.mtime_ns, rec.sha256, rec.seq),
                *(rec.deleted, rec.sig or None, have),
            ),
        )

    def unsigned(self, owner: str) -> list[FileRecord]:
        """The records of `owner` that carry no signature yet (this node's own, to sign)."""
        rows = self._db.execute(
            f"SELECT {_COLS} FROM records WHERE owner = ? AND sig IS NULL", (owner,)
        )
        return [_rec(r) for r in rows]

    def set_sig(self, rec: FileRecord) -> None:
        """Store the signature of `rec`, if it is still the path's record."""
        self._db.execute(
            "UPDATE records SET sig = ? WHERE owner = ? AND path = ? AND seq = ?",
            (rec.sig, rec.owner, rec.path, rec.seq),
        )

    def set_have(self, owner: str, path: str, have: str | None) -> None:
        """Record which bytes this node now holds at a path (None: nothing)."""
        if self._journal is not None and (owner, path) not in self._journal:
            row = self._db.execute(
                "SELECT have FROM records WHERE owner = ? AND path = ?", (owner, path)
            ).fetchone()
            self._journal[(owner, path)] = None if row is None else row[0]
        self._db.execute(
            "UPDATE records SET have = ? WHERE owner = ? AND path = ?", (have, owner, path)
        )

    def start_journal(self) -> None:
        """Start noting every path whose held bytes change, with what was held before.

        Several passes may journal at once (a pull round, and pushes applied meanwhile): the
        journal runs until each has ended it (`end_journal`).
        """
        self._journaling += 1
        if self._journal is None:
            self._journal = {}

    def take_journal(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str | None]:
        """(owner, path) -> the bytes held before, for each of `keys` changed since it was last
        taken.

        The sync engine tells the user what a pass did from this, at the cost of the paths it
        changed rather than of every record. A pass takes a path's entry as it lets go of the
        path, before another pass may touch it, so each change is told by the pass that made
        it, in the order made: a download's "added" before the "updated" of an edit pushed
        meanwhile.
        """
        if self._journal is None:
            return {}
        return {key: self._journal.pop(key) for key in set(keys) if key in self._journal}

    def end_journal(self) -> None:
        """End one `start_journal`; the last to end drops what nobody took."""
        self._journaling = max(0, self._journaling - 1)
        if not self._journaling:
            self._journal = None

    def wanting(self, sha256: str, me: str) -> list[FileRecord]:
        """Live records of other owners with this content that this node does not hold yet."""
        rows = self._db.execute(
            f"SELECT {_COLS} FROM records WHERE sha256 = ? AND owner != ? AND deleted = 0 "
            "AND have IS NOT sha256",
            (sha256, me),
        )
        return [_rec(r) for r in rows]

    def pending_rows(self, me: str) -> list[tuple[FileRecord, str | None]]:
        """Every record of other owners that needs work (a fetch or a delete), with the hash
        this node placed for it."""
        rows = self._db.execute(
            f"SELECT {_COLS}, have FROM records WHERE owner != ? AND ("
            "(deleted = 1 AND have IS NOT NULL) OR (deleted = 0 AND have IS NOT sha256))",
            (me,),
        )
        return [(_rec(r), r[8]) for r in rows]

    def held(self) -> Iterator[tuple[str, str, str, int]]:
        """(owner, path, sha256, size) of every live record whose bytes this node holds."""
        rows = self._db.execute(
            "SELECT owner, path, sha256, size FROM records WHERE deleted = 0 AND have = sha256"
        )
        yield from rows

    def live_records(self) -> list[FileRecord]:
        """Every live record known here, held or not."""
        rows = self._db.execute(f"SELECT {_COLS} FROM records WHERE deleted = 0")
        return [_rec(r) for r in rows]

    def page(
        self, since: dict[str, int], cursor: tuple[str, int] | None, limit: int
    ) -> tuple[list[tuple[FileRecord, bool]], tuple[str, int] | None]:
        """One page of records in (owner, seq) order with seq > since[owner].

        Returns:
            (record, held) pairs, and the cursor of the next page (None when this is the last).
        """
        owners = [
            r[0] for r in self._db.execute("SELECT DISTINCT owner FROM records ORDER BY owner")
        ]
        out: list[tuple[FileRecord, bool]] = []
        for owner in owners:
            floor = since.get(owner, 0)
            if cursor is not None:
                if owner < cursor[0]:
                    continue
                if owner == cursor[0]:
                    floor = max(floor, cursor[1])
            rows = self._db.execute(
                f"SELECT {_COLS}, have FROM records WHERE owner = ? AND seq > ? "
                "ORDER BY seq LIMIT ?",
                (owner, floor, limit - len(out) + 1),
            ).fetchall()
            for row in rows:
                if len(out) == limit:
                    last = out[-1][0]
                    return out, (last.owner, last.seq)
                rec = _rec(row)
                out.append((rec, not rec.deleted and row[8] == rec.sha256))
        return out, None

    # counters
    def counter(self, owner: str) -> int:
        """The owner's counter (last seq used for this node, highest seen for others)."""
        row = self._db.execute("SELECT seq FROM counters WHERE owner = ?", (owner,)).fetchone()
        return 0 if row is None else int(row[0])

    def counters(self) -> dict[str, int]:
        """Every owner's counter."""
        return {r[0]: r[1] for r in self._db.execute("SELECT owner, seq FROM counters")}

    def meta(self, key: str) -> str | None:
        """A stored fact (None when never stored)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Store a fact."""
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def note_kept(self, owner: str, path: str, copy: str, at: float) -> None:
        """Note a kept copy of replica owner/path, at `copy` under the trash folder."""
        self._db.execute("INSERT INTO kept VALUES (?, ?, ?, ?)", (at, owner, path, copy))

    def kept(self, limit: int) -> tuple[int, list[tuple[float, str, str, str]]]:
        """How many copies were kept in all, and the newest `limit` as (at, owner, path,
        copy under the trash folder)."""
        count = self._db.execute("SELECT COUNT(*) FROM kept").fetchone()[0]
        rows = self._db.execute(
            "SELECT at, owner, path, copy FROM kept ORDER BY at DESC LIMIT ?", (limit,)
        )
        return int(count), [(r[0], r[1], r[2], r[3]) for r in rows]

    def busy_under(self, owner: str, folder: str) -> bool:
        """Whether any record below `folder` ("a/b") of `owner` is live or has bytes placed
        here: the owner still has files there, as far as this node knows, or it holds some."""
        prefix = folder + "/"
        row = self._db.execute(
            "SELECT 1 FROM records WHERE owner = ? AND substr(path, 1, ?) = ? "
            "AND (deleted = 0 OR have IS NOT NULL) LIMIT 1",
            (owner, len(prefix), prefix),
        ).fetchone()
        return row is not None

    def reset_counters(self, keep: str) -> None:
        """Set every owner's counter but `keep`'s to 0: the next pulls ask for everything."""
        self._db.execute("DELETE FROM counters WHERE owner != ?", (keep,))

    def set_counter(self, owner: str, seq: int) -> None:
        """Set an owner's counter."""
        self._db.execute("INSERT OR REPLACE INTO counters VALUES (?, ?)", (owner, seq))


class _Commit:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> sqlite3.Connection:
        return self._db

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")
