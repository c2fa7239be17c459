"""The `announce_many` request: entries for many keys in one datagram, and how it is checked.

Theory of operation. One `announce` carries one key; a node taking in a thousand files would
send a thousand of them to each of the k nodes nearest each key. `announce_many` carries as
many keys as fit the 8192-byte request cap of rpcudp. Its arguments, after the sender's id:

    holders: [[holder_id, host, port], ...]               each holder written once
    items:   [[key, [[holder, stamp, present, remaining], ...]], ...]

where ``holder`` is an index into ``holders``. A node's own entries (one holder, many keys) cost
about 45 bytes a key this way, so one request carries about 150 keys. A record too large for
one request is split between requests at entry boundaries; the receiver merges each piece, so
the pieces may arrive in any order. Entries are checked as `decode_entry` checks those of
`announce`: a malformed entry is dropped and counted, a malformed request is refused whole.

Everything here is plain data in, plain data out; no sockets.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgpack

from dht.errors import BadRecord
from dht.records import KEY_SIZE, MAX_HOLDERS, REQUEST_BUDGET, Entry, Record, decode_entry

MAX_BATCH_HOLDERS = 256
"""Most holders one request may name."""
MAX_BATCH_KEYS = 1024
"""Most keys one request may carry (the byte cap keeps real requests far below)."""

WireBatch = tuple[list[list[Any]], list[list[Any]]]


def _size(value: Any) -> int:
    return len(msgpack.packb(value, use_bin_type=True))


# Bytes an array header may take: items and holders stay under 65536, so at most 3 each.
_ARRAY_HEADER = 3


@dataclass
class _Request:
    """One request being filled: its holder table, its items, its msgpack size so far."""

    holders: list[list[Any]] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    items: list[list[Any]] = field(default_factory=list)
    size: int = 2 * _ARRAY_HEADER

    def add(self, key: bytes, holder_id: str, entry: Entry, now: float, budget: int) -> bool:
        """Add one entry of ``key``; False (and nothing added) if it would break a cap."""
        new_holder = holder_id not in self.index
        new_key = not self.items or self.items[-1][0] != key
        index = len(self.holders) if new_holder else self.index[holder_id]
        wire = [index, entry.stamp, entry.present, max(0.0, entry.expires_at - now)]
        cost = _size(wire)
        if new_holder:
            cost += _size([holder_id, entry.host, entry.port])
        if new_key:
            cost += _size(key) + 1 + _ARRAY_HEADER
        too_many = (new_holder and len(self.holders) == MAX_BATCH_HOLDERS) or (
            new_key and len(self.items) == MAX_BATCH_KEYS
        )
        if self.items and (self.size + cost > budget or too_many):
            return False
        if new_holder:
            self.index[holder_id] = index
            self.holders.append([holder_id, entry.host, entry.port])
        if new_key:
            self.items.append([key, []])
        self.items[-1][1].append(wire)
        self.size += cost
        return True


def encode_batches(
    items: Iterable[tuple[bytes, Record]], now: float, budget: int = REQUEST_BUDGET
) -> Iterator[WireBatch]:
    """Pack (key, record) pairs into `announce_many` arguments, each under ``budget`` bytes.

    Expired entries are left out, and keys left with none. Lifetimes are written as what
    remains at ``now``, as `Entry.to_wire` does.

    Yields:
        ``(holders, items)`` for one request at a time, keys in the order given.
    """
    request = _Request()
    for key, record in items:
        for holder_id, entry in record.items():
            if entry.expires_at <= now:
                continue
            if not request.add(key, holder_id, entry, now, budget):
                yield request.holders, request.items
                request = _Request()
                request.add(key, holder_id, entry, now, budget)
    if request.items:
        yield request.holders, request.items


@dataclass(frozen=True)
class Decoded:
    """A checked `announce_many`: the records by key, and how many entries were dropped."""

    records: list[tuple[bytes, Record]]
    dropped: int


def _holder_table(raw: object) -> list[tuple[str, str, object]]:
    if not isinstance(raw, list) or len(raw) > MAX_BATCH_HOLDERS:
        raise BadRecord(f"holders must be a list of at most {MAX_BATCH_HOLDERS}")
    table = []
    for item in raw:
        if not isinstance(item, list) or len(item) != 3:
            raise BadRecord("a holder must be [holder_id, host, port]")
        table.append((item[0], item[1], item[2]))
    return table


def decode_batch(raw_holders: object, raw_items: object, now: float, max_ttl: float) -> Decoded:
    """Check a peer's `announce_many` arguments and turn them into records on our clock.

    Raises:
        BadRecord: the request's shape is wrong as a whole (not lists, a bad key, over a cap).
    """
    table = _holder_table(raw_holders)
    if not isinstance(raw_items, list) or len(raw_items) > MAX_BATCH_KEYS:
        raise BadRecord(f"items must be a list of at most {MAX_BATCH_KEYS}")
    records: list[tuple[bytes, Record]] = []
    dropped = 0
    for item in raw_items:
        if not isinstance(item, list) or len(item) != 2:
            raise BadRecord("an item must be [key, entries]")
        key, entries = item
        if not isinstance(key, bytes) or len(key) != KEY_SIZE:
            raise BadRecord(f"bad key {key!r}")
        if not isinstance(entries, list) or len(entries) > MAX_HOLDERS:
            raise BadRecord(f"entries of {key.hex()} must be a list of at most {MAX_HOLDERS}")
        record: Record = {}
        for raw in entries:
            try:
                holder_id, entry = _entry(table, raw, now, max_ttl)
            except BadRecord:
                dropped += 1
                continue
            if entry.expires_at > now:
                record[holder_id] = entry
        records.append((key, record))
    return Decoded(records, dropped)


def _entry(
    table: list[tuple[str, str, object]], raw: object, now: float, max_ttl: float
) -> tuple[str, Entry]:
    if not isinstance(raw, list) or len(raw) != 4:
        raise BadRecord("an entry must be [holder, stamp, present, remaining]")
    index, stamp, present, remaining = raw
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(table):
        raise BadRecord(f"bad holder index {index!r}")
    holder_id, host, port = table[index]
    return decode_entry(holder_id, [host, port, stamp, present, remaining], now, max_ttl)
