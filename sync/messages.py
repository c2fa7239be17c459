"""The sync layer's messages on the ring's wire (frozen dataclasses registered by type name).

Field layouts and limits are described in docs/PROTOCOL.md ("Sync"); keep the two in step.
"""

from __future__ import annotations

from typing import Any

from ring.wire import Message, message

PAGE_LIMIT = 2000
"""Most manifest entries in one MANIFEST_DATA reply (about 360 KB of msgpack)."""

BATCH_MAX_FILES = 512
BATCH_MAX_BYTES = 8 * 1024 * 1024
SMALL_FILE = 64 * 1024
"""Files up to this size travel in BATCH requests rather than one FILE request each."""


@message("MANIFEST")
class ManifestRequest(Message):
    """Ask for every record with seq > since[owner] (owners not named: since 0), one page."""

    since: dict[str, Any]
    limit: int = PAGE_LIMIT
    cursor: list[Any] | None = None


@message("MANIFEST_DATA")
class ManifestData(Message):
    """One page of records in (owner, seq) order; `cursor` asks for the next when `more`.

    `complete` maps each owner to the seq up to which the sender holds every record of that
    owner (its own counters): an asker never counts itself further along than its source.
    """

    entries: list[Any]
    more: bool = False
    cursor: list[Any] | None = None
    complete: dict[str, Any] | None = None


@message("FILE")
class FileRequest(Message):
    """Ask for the bytes with this SHA-256; owner/path say where the asker expects them."""

    sha256: str
    owner: str
    path: str
    offset: int = 0
    length: int | None = None


@message("FILE_DATA")
class FileData(Message):
    """Header of a file body: exactly `size` raw bytes follow, from `offset` of `total`."""

    sha256: str
    size: int
    offset: int = 0
    total: int = 0


@message("BATCH")
class BatchRequest(Message):
    """Ask for many small files at once: each item is {"sha256", "owner", "path"}."""

    files: list[Any]


@message("BATCH_DATA")
class BatchData(Message):
    """Header of a batch: per item {"sha256", "size"} (-1: not held); bodies follow back to back."""

    items: list[Any]


NOTIFY_MAX_ENTRIES = 2000
"""Most records in one NOTIFY (a bigger change is sent as several, in seq order)."""


@message("NOTIFY")
class Notify(Message):
    """Records an owner just changed, pushed round the ring; each node passes it to its next.

    `origin` is the owner that made the change (forwarding stops before reaching it again);
    `hops` counts the nodes it has passed, so a ring that changed under it cannot loop it.
    """

    origin: str
    entries: list[Any]
    hops: int = 0


PLACED_MAX_ENTRIES = NOTIFY_MAX_ENTRIES
"""Most (path, seq) pairs in one PLACED (a replica with more sends several)."""


@message("PLACED")
class Placed(Message):
    """A replica tells `owner` it has placed these records of the owner's: each entry is
    [path, seq], the file byte for byte or the delete done. The sender is whoever the
    connection proves it is, never a field."""

    owner: str
    entries: list[Any]


@message("BLOCKS")
class BlocksRequest(Message):
    """Ask for the SHA-256 of every `block_size` block of a file (multi-source, resumable)."""

    sha256: str
    owner: str
    path: str
    block_size: int
    have_only: bool = False
    """The asker has the list already (it asks again what a partial holder has now): the
    reply may leave `hashes` empty."""


@message("BLOCKS_DATA")
class BlocksData(Message):
    """Block hashes of a file: `hashes` is the 32-byte digests of every block, concatenated."""

    sha256: str
    size: int
    block_size: int
    hashes: bytes
    have: bytes | None = None
    """None: the sender holds the whole file; else a bitmap of the blocks it holds so far
    (bit i of byte i // 8, lowest bit first): it is downloading the file too."""
    coming: bytes | None = None
    """With `have`: a bitmap of the blocks the sender is fetching right now, which the asker
    leaves to it (asks it for them once they are in `have`) rather than fetch them too."""
