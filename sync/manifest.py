"""Manifests and fetch planning, with no sockets and no disk: records in, decisions out.

Theory of operation. Every file of an owner's folder has one record: size, mtime, SHA-256, the
owner's sequence number of the last change, and a deleted flag (a tombstone). Only the owner
makes records (`own_changes`); everyone else keeps, per (owner, path), the record with the
highest seq it has seen (`supersedes`), so a stale peer never rolls a file back or brings a
deleted one back. A replica needs a fetch when the record is live and the bytes it placed
(`have`) differ from the record's hash, and a delete when the record is a tombstone and it still
holds bytes there (`plan`). Where a fetch goes is `sync/sources.py`'s decision.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ring.errors import BadRequest
from sync.paths import check_owner, check_relpath

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Peer:
    """A node reachable over TCP; `name` is its folder name under the shared root.

    `fetching` marks a located holder that is still downloading the content (a partial holder,
    serving only the blocks it has): it is ranked after every full holder. It is not part of
    the peer's identity (equality, hashing)."""

    name: str
    host: str
    port: int
    fetching: bool = field(default=False, compare=False)


SIGNATURE_SIZE = 64
"""Bytes of an Ed25519 signature, the owner's mark on each of its records (`sync/signing.py`)."""


@dataclass(frozen=True)
class FileRecord:
    """One version of one file of one owner (a tombstone when `deleted`).

    `sig` is the owner's signature of the other fields (`sync/signing.py`), b"" until the owner
    signs it; it travels and is stored with the record but is no part of what the record says,
    so two records that say the same thing are equal whether or not one carries it.
    """

    owner: str
    path: str
    size: int
    mtime_ns: int
    sha256: str
    seq: int
    deleted: bool
    sig: bytes = field(default=b"", compare=False)


@dataclass(frozen=True)
class Need:
    """One thing a replica must do: "fetch" the record's bytes or "delete" its file."""

    kind: str
    record: FileRecord


def supersedes(new: FileRecord, old: FileRecord | None) -> bool:
    """Whether `new` replaces `old`: only a strictly higher sequence number of the owner does."""
    return old is None or new.seq > old.seq


def fills_signature(kept: FileRecord, new: FileRecord) -> bool:
    """Whether `new` is the same change as `kept` (a record kept unsigned, from before owner
    signatures) and brings the signature `kept` lacks."""
    return not kept.sig and bool(new.sig) and new.seq == kept.seq and new == kept


def record_to_entry(rec: FileRecord, held: bool) -> dict[str, Any]:
    """The msgpack map of a manifest entry; `held` says whether the sender has these bytes.

    The owner's signature goes along (`sig`) when the record has one.
    """
    entry = {
        "owner": rec.owner,
        "path": rec.path,
        "size": rec.size,
        "mtime_ns": rec.mtime_ns,
        "sha256": rec.sha256,
        "seq": rec.seq,
        "deleted": rec.deleted,
        "held": held,
    }
    if rec.sig:
        entry["sig"] = rec.sig
    return entry


INT64_MAX = 2**63 - 1
"""The largest integer sqlite stores (a signed 64-bit INTEGER): the bound of every size and seq
a record may carry, whoever sent it."""

MTIME_MIN_NS = -(2**63)
"""The earliest modification time a record carries (ns since 1970; about the year 1677)."""

MTIME_MAX_NS = INT64_MAX
"""The latest modification time a record carries (about the year 2262). A file touched to the
year 2300 is shared with this time (`clamp_mtime`); a peer's record beyond it is refused."""


def clamp_mtime(mtime_ns: int) -> int:
    """A file's modification time as a record carries it: within MTIME_MIN_NS..MTIME_MAX_NS.

    Times come from the world (a skewed clock, `touch -d 2300-01-01`, an archive) and sqlite
    holds 64-bit integers only; clamped, such a file is still shared, and the same file always
    gets the same time, so it is not published again at every scan.
    """
    return max(MTIME_MIN_NS, min(MTIME_MAX_NS, mtime_ns))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def entry_to_record(entry: Any) -> tuple[FileRecord, bool]:
    """Parse and check one manifest entry from a peer.

    Returns:
        The record and the sender's "held" flag.

    Raises:
        BadRequest: a field is missing or has the wrong type (UnsafePath for a bad name).
    """
    if not isinstance(entry, dict):
        raise BadRequest("manifest entry is not a map")
    owner, path, sha = entry.get("owner"), entry.get("path"), entry.get("sha256")
    size, mtime_ns, seq = entry.get("size"), entry.get("mtime_ns"), entry.get("seq")
    if not (isinstance(owner, str) and isinstance(path, str) and isinstance(sha, str)):
        raise BadRequest("manifest entry lacks owner, path or sha256")
    if not (isinstance(size, int) and isinstance(mtime_ns, int) and isinstance(seq, int)):
        raise BadRequest("manifest entry has a bad size, mtime_ns or seq")
    if not (_is_int(size) and _is_int(mtime_ns) and _is_int(seq)) or size < 0 or seq < 1:
        raise BadRequest("manifest entry has a bad size, mtime_ns or seq")
    if size > INT64_MAX or seq > INT64_MAX or clamp_mtime(mtime_ns) != mtime_ns:
        raise BadRequest("manifest entry has a size, mtime_ns or seq beyond 64 bits")
    deleted = bool(entry.get("deleted", False))
    if not deleted and not is_sha256(sha):
        raise BadRequest("manifest entry has a bad sha256")
    sig = entry.get("sig", b"")
    if not isinstance(sig, bytes) or len(sig) not in (0, SIGNATURE_SIZE):
        raise BadRequest(f"manifest entry has a sig that is not {SIGNATURE_SIZE} bytes")
    check_owner(owner)
    check_relpath(path)
    rec = FileRecord(owner, path, size, mtime_ns, sha, seq, deleted, sig)
    return rec, bool(entry.get("held", False))


_SHA256 = re.compile("[0-9a-f]{64}")


def is_sha256(text: str) -> bool:
    """Whether `text` is 64 lowercase hex digits."""
    return _SHA256.fullmatch(text) is not None


def own_changes(
    known: Mapping[str, FileRecord],
    scanned: Mapping[str, tuple[int, int, str]],
    owner: str,
    last_seq: int,
) -> list[FileRecord]:
    """The new records for an owner's own folder after a scan, numbered from `last_seq + 1`.

    Args:
        known: path -> the current record (tombstones included).
        scanned: path -> (size, mtime_ns, sha256) of every file now on disk.
        owner: the folder's owner (this node).
        last_seq: the owner's last sequence number used.

    Returns:
        New records in path order: a new or edited file (content or mtime) gets the next seq;
        a file gone from disk gets a tombstone with the next seq. Unchanged files get nothing.
    """
    out: list[FileRecord] = []
    seq = last_seq
    for path in sorted(set(known) | set(scanned)):
        old = known.get(path)
        now = scanned.get(path)
        if now is None:
            if old is None or old.deleted:
                continue
            seq += 1
            out.append(FileRecord(owner, path, 0, old.mtime_ns, "", seq, True))
            continue
        size, mtime_ns, sha = now
        if old is not None and not old.deleted and (old.size, old.mtime_ns, old.sha256) == now:
            continue
        seq += 1
        out.append(FileRecord(owner, path, size, mtime_ns, sha, seq, False))
    return out


def held_deletes(
    known: Mapping[str, FileRecord],
    changes: Iterable[FileRecord],
    share: float,
    minimum: int,
) -> list[FileRecord]:
    """The deletes of one scan that must wait for the user's word: too many at once.

    A folder that loses more than `share` of its live files in one scan (when it has at least
    `minimum`) looks more like a disk that went away or a slip of the hand than a clean-up, and
    pushing it would delete those files everywhere. Moves do not count: a delete whose content
    reappears under another name in the same scan is a rename, and renames go through.

    Returns:
        The tombstones to hold back (empty: push everything).
    """
    live = sum(1 for rec in known.values() if not rec.deleted)
    changes = list(changes)
    added = {rec.sha256 for rec in changes if not rec.deleted}
    removed = [rec for rec in changes if rec.deleted and known[rec.path].sha256 not in added]
    if live < minimum or len(removed) <= share * live:
        return []
    return removed


def plan(rows: Iterable[tuple[FileRecord, str | None]]) -> list[Need]:
    """What a replica must do, given each record and the hash of the bytes it placed there.

    Deletes come first (a path may turn from a file into a folder), then fetches, smallest
    first so many small files land early and batch well.
    """
    deletes: list[Need] = []
    fetches: list[Need] = []
    for rec, have in rows:
        if rec.deleted:
            if have is not None:
                deletes.append(Need("delete", rec))
        elif have != rec.sha256:
            fetches.append(Need("fetch", rec))
    fetches.sort(key=lambda n: (n.record.size, n.record.owner, n.record.path))
    return deletes + fetches
