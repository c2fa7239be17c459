"""Holder records: who holds a content hash, and how two views of that are merged.

Theory of operation. A record maps holder ids to entries. Only a holder ever writes its own
entry, stamped with its own clock, so merging keeps per holder the entry with the highest stamp
and never compares two hosts' clocks. A withdrawal is an entry with ``present=False`` and a newer
stamp (a tombstone), kept until it expires so that a stale copy cannot bring the holder back.

A holder that is still downloading the content (a partial holder, which serves the blocks it
has) writes a *partial* entry: the same shape with a sixth item, ``true``, and a short lifetime
that it renews while the download runs. Its full entry, once the file is placed, or its
withdrawal, has a newer stamp and so replaces it. A five-item entry (every entry before partial
ones existed) is a full holder's: old records stay readable.

Expiry is measured on the local monotonic clock of whoever stores the entry. On the wire an entry
carries its *remaining* lifetime instead of a deadline, so copies written back during lookups
never outlive the holder's last announcement: the bound is ``ttl`` after that announcement.

Everything here is plain data in, plain data out; no sockets.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from dht.errors import BadRecord, InvalidKey

log = logging.getLogger(__name__)

KEY_SIZE = 20
MAX_HOLDERS = 100
MAX_TEXT = 255
# rpcudp refuses requests over 8192 bytes (name + arguments); leave room for both.
REQUEST_BUDGET = 7000


@dataclass(frozen=True)
class Entry:
    """One holder's claim about one content hash, as this node stores it."""

    host: str
    port: int
    stamp: float
    present: bool
    expires_at: float
    partial: bool = False
    """The holder is downloading the content: it serves only the blocks it has so far."""

    def to_wire(self, now: float) -> list[Any]:
        """Encode as ``[host, port, stamp, present, remaining_seconds]``, plus ``true`` for a
        partial entry."""
        wire = [self.host, self.port, self.stamp, self.present, max(0.0, self.expires_at - now)]
        return [*wire, True] if self.partial else wire


Record = dict[str, Entry]


def dht_key(sha256_hex: str) -> bytes:
    """Map a SHA-256 hex digest to its DHT key: its first 20 bytes.

    SHA-256 output is already uniform, so truncation needs no second hash (and the library's
    sha1 ``digest`` is never applied to it).

    Raises:
        InvalidKey: the text is not 64 hexadecimal digits.
    """
    if not isinstance(sha256_hex, str) or len(sha256_hex) != 64:
        raise InvalidKey(f"not a SHA-256 hex digest: {sha256_hex!r}")
    try:
        return bytes.fromhex(sha256_hex)[:KEY_SIZE]
    except ValueError as exc:
        raise InvalidKey(f"not a SHA-256 hex digest: {sha256_hex!r}") from exc


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def decode_entry(holder_id: object, raw: object, now: float, max_ttl: float) -> tuple[str, Entry]:
    """Check one wire entry from a peer and turn it into an `Entry` expiring on our clock.

    The remaining lifetime is capped at ``max_ttl`` so a peer cannot pin an entry forever.

    Raises:
        BadRecord: the entry does not have the documented shape.
    """
    if not isinstance(holder_id, str) or not 0 < len(holder_id) <= MAX_TEXT:
        raise BadRecord(f"bad holder id {holder_id!r}")
    if not isinstance(raw, (list, tuple)) or len(raw) not in (5, 6):
        raise BadRecord(f"entry for {holder_id!r} is not a list of 5 or 6 items")
    host, port, stamp, present, remaining = raw[:5]
    partial = raw[5] if len(raw) == 6 else False
    if not isinstance(partial, bool):
        raise BadRecord(f"bad partial flag in entry for {holder_id!r}")
    if not isinstance(host, str) or not 0 < len(host) <= MAX_TEXT:
        raise BadRecord(f"bad host {host!r}")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise BadRecord(f"bad port {port!r}")
    if not _is_number(stamp) or not isinstance(present, bool) or not _is_number(remaining):
        raise BadRecord(f"bad stamp, flag or lifetime in entry for {holder_id!r}")
    lifetime = min(float(remaining), max_ttl)
    return holder_id, Entry(host, port, float(stamp), present, now + lifetime, partial)


def decode_record(raw: object, now: float, max_ttl: float) -> Record:
    """Decode a peer's ``{holder_id: [host, port, stamp, present, remaining]}`` map.

    Malformed entries are logged and skipped: one bad entry does not spoil the others.

    Raises:
        BadRecord: the record is not a map at all, or holds more entries than the cap.
    """
    if not isinstance(raw, dict):
        raise BadRecord(f"record is a {type(raw).__name__}, not a map")
    if len(raw) > MAX_HOLDERS:
        raise BadRecord(f"record has {len(raw)} entries, cap is {MAX_HOLDERS}")
    record: Record = {}
    for holder_id, wire in raw.items():
        try:
            key, entry = decode_entry(holder_id, wire, now, max_ttl)
        except BadRecord as exc:
            log.warning("dropping a bad holder entry: %s", exc)
            continue
        if entry.expires_at > now:
            record[key] = entry
    return record


def encode_record(record: Record, now: float) -> dict[str, list[Any]]:
    """Encode the unexpired entries of a record for the wire."""
    return {h: e.to_wire(now) for h, e in record.items() if e.expires_at > now}


def newer(a: Entry, b: Entry) -> Entry:
    """The entry that wins: the higher stamp; on a tie, a withdrawal, then the longer-lived."""
    return max(a, b, key=lambda e: (e.stamp, not e.present, e.expires_at))


def merge(base: Record, incoming: Record) -> Record:
    """Merge two records, keeping per holder the entry that wins (see `newer`)."""
    out = dict(base)
    for holder_id, entry in incoming.items():
        mine = out.get(holder_id)
        out[holder_id] = entry if mine is None else newer(mine, entry)
    return out


def prune(record: Record, now: float, limit: int = MAX_HOLDERS) -> Record:
    """Drop expired entries, then cap the record at ``limit`` entries.

    Over the cap, tombstones go first, then the entries that expire soonest (the ones least
    recently announced): a live, recently announced holder is what a lookup needs.
    """
    live = {h: e for h, e in record.items() if e.expires_at > now}
    if len(live) <= limit:
        return live
    ranked = sorted(live.items(), key=lambda item: (item[1].present, item[1].expires_at))
    return dict(ranked[len(live) - limit :])


def _version(entry: Entry) -> tuple[float, bool]:
    return (entry.stamp, not entry.present)


def changed_entries(old: Record, merged: Record) -> Record:
    """The entries of ``merged`` that ``old`` lacks or holds an older version of.

    Lifetimes are not compared: copies of one announcement always differ by the time it took
    to reach each node, and writing those back after every lookup would be wasted traffic.
    """
    return {h: e for h, e in merged.items() if h not in old or _version(old[h]) < _version(e)}
