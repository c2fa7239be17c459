"""The `announce_many` request: entries for many keys in one datagram, and how it is checked.

Theory of operation. One `announce` carries one key; a node taking in a thousand files would
send a thousand of them to each of the k nodes nearest each key. `announce_many` carries as
many keys as fit the 8192-byte request cap of rpcudp. Its arguments, after the sender's id:

    holders: [[holder_id, host, port], ...]               each holder written once
    items:   [[key, [[holder, stamp, present, remaining], ...]], ...]

where ``holder`` is an index into ``holders``; a partial holder's entry (`dht.records`) has a
fifth item, ``true``. A node's own entries (one holder, many keys) cost
about 45 bytes a key this way, so one request carries about 150 keys. A record too large for
one request is split between requests at entry boundaries; the receiver merges each piece, so
the pieces may arrive in any order. Entries are checked as `decode_entry` checks those of
`announce`: a malformed entry is dropped and counted, a malformed request is refused whole.

The same shape answers `holders_many` (many lookups in one request): the reply is
``[holders, items, answered]``, the records of the first ``answered`` keys asked, in the order
asked (a key with no live entry is left out of ``items``), built to stay under `REPLY_BUDGET`
bytes; the asker asks again for the rest (`encode_reply`, `decode_reply`).

Everything here is plain data in, plain data out; no sockets.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgpack

from dht.errors import BadRecord
from dht.records import (
    KEY_SIZE,
    MAX_HOLDERS,
    REQUEST_BUDGET,
    Entry,
    Record,
    decode_entry,
    merge,
)

MAX_BATCH_HOLDERS = 256
"""Most holders one request may name."""
MAX_BATCH_KEYS = 1024
"""Most keys one request may carry (the byte cap keeps real requests far below)."""

MAX_LOOKUP_KEYS = 256
"""Most keys one `holders_many` request may ask (20-byte keys: about 6 KB of request)."""
REPLY_BUDGET = 8_000
"""Bytes of msgpack a `holders_many` reply is built under, like a request: six fragments on
Ethernet, and about 170 own-entry records."""

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
        if entry.partial:
            wire.append(True)
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
    if not isinstance(raw, list) or len(raw) not in (4, 5):
        raise BadRecord("an entry must be [holder, stamp, present, remaining(, partial)]")
    index, *rest = raw
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(table):
        raise BadRecord(f"bad holder index {index!r}")
    holder_id, host, port = table[index]
    return decode_entry(holder_id, [host, port, *rest], now, max_ttl)


def encode_reply(
    asked: list[tuple[bytes, Record]], now: float, budget: int = REPLY_BUDGET
) -> tuple[list[list[Any]], list[list[Any]], int]:
    """The `holders_many` reply: the records of the longest run of ``asked`` that fits.

    Returns:
        ``(holders, items, answered)``: the first ``answered`` keys' records, whole. 0 when
        even the first record does not fit ``budget`` (the asker then looks it up alone).
    """
    batches = encode_batches(asked, now, budget)
    first = next(batches, None)
    if first is None:  # no live entry at all: every key is answered, empty
        return [], [], len(asked)
    holders, items = first
    rest = next(batches, None)
    if rest is None:
        return holders, items, len(asked)
    split = rest[1][0][0]  # the first key the reply has no room for, maybe cut in two
    answered = next(i for i, (key, _record) in enumerate(asked) if key == split)
    if items and items[-1][0] == split:
        items = items[:-1]
    return holders, items, answered


def decode_reply(
    reply: object, asked: list[bytes], now: float, max_ttl: float
) -> tuple[dict[bytes, Record], int]:
    """Check a peer's `holders_many` reply to the keys ``asked``.

    Returns:
        ``(records, answered)``: a record (maybe empty) for each of the first ``answered``
        keys asked; entries for keys not among them are ignored.

    Raises:
        BadRecord: the reply's shape is wrong as a whole.
    """
    if not isinstance(reply, (list, tuple)) or len(reply) != 3:
        raise BadRecord("a holders_many reply must be [holders, items, answered]")
    raw_holders, raw_items, answered = reply
    if not isinstance(answered, int) or isinstance(answered, bool):
        raise BadRecord(f"bad answered count {answered!r}")
    if not 0 <= answered <= len(asked):
        raise BadRecord(f"answered {answered} of {len(asked)} keys asked")
    decoded = decode_batch(raw_holders, raw_items, now, max_ttl)
    records: dict[bytes, Record] = {key: {} for key in asked[:answered]}
    for key, record in decoded.records:
        if key in records:
            records[key] = merge(records[key], record)
    return records, answered
