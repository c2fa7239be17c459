"""HolderStorage: the records this node stores for the network, merged rather than replaced.

The stock `ForgetfulStorage` keeps one value per key, last write wins, so concurrent announcers
overwrite each other. Here a write merges per holder (see `dht.records`), drops expired entries
and caps the count. Values cross this interface as wire records
(``{holder_id: [host, port, stamp, present, remaining]}``), the shape the library's
`IStorage` users (hand-over to new nodes) pass around.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from kademlia.storage import IStorage

from dht.errors import BadRecord
from dht.records import MAX_HOLDERS, Record, decode_record, encode_record, merge, prune

log = logging.getLogger(__name__)

WireRecord = dict[str, list[Any]]


class HolderStorage(IStorage):  # type: ignore[misc]
    """Per-key holder records with per-entry expiry on an injectable monotonic clock."""

    def __init__(
        self,
        ttl: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        limit: int = MAX_HOLDERS,
    ) -> None:
        self.ttl = ttl
        self.clock = clock
        self.limit = limit
        self._data: dict[bytes, Record] = {}

    def merge(self, key: bytes, record: Record) -> Record:
        """Merge decoded entries into the stored record for ``key``.

        Returns:
            The record as stored afterwards (expired entries dropped, capped).
        """
        now = self.clock()
        stored = prune(merge(self._data.get(key, {}), record), now, self.limit)
        if stored:
            self._data[key] = stored
        else:
            self._data.pop(key, None)
        return stored

    def record(self, key: bytes) -> Record:
        """The unexpired entries stored for ``key`` (empty if none)."""
        now = self.clock()
        stored = prune(self._data.get(key, {}), now, self.limit)
        if stored:
            self._data[key] = stored
        else:
            self._data.pop(key, None)
        return stored

    def keys(self) -> list[bytes]:
        """Every key stored now, expired or not (a snapshot; `record` tells what is left)."""
        return list(self._data)

    def cull(self) -> None:
        """Forget every expired entry, and every key left with none."""
        for key in list(self._data):
            self.record(key)

    def __setitem__(self, key: bytes, value: WireRecord) -> None:
        """Merge a wire record from a peer; a malformed one is logged and ignored."""
        try:
            self.merge(key, decode_record(value, self.clock(), self.ttl))
        except BadRecord as exc:
            log.warning("ignoring a bad record for %s: %s", key.hex(), exc)

    def __getitem__(self, key: bytes) -> WireRecord:
        record = self.record(key)
        if not record:
            raise KeyError(key)
        return encode_record(record, self.clock())

    def get(self, key: bytes, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def iter_older_than(self, seconds_old: float) -> list[tuple[bytes, WireRecord]]:
        """Nothing, ever: storing nodes do not republish.

        The library republishes whatever is older than an hour; here each holder re-announces
        its own entries instead, so an entry nobody re-announces expires as documented.
        """
        return []

    def __iter__(self) -> Iterator[tuple[bytes, WireRecord]]:
        self.cull()
        now = self.clock()
        return iter([(key, encode_record(rec, now)) for key, rec in self._data.items()])
