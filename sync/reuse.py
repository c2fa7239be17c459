"""Blocks a download need not fetch: copied from files already here, each checked by its hash.

Theory of operation. Before a block download asks any holder for bytes, it looks for its blocks
on this node, as syncthing's copier does: in the file at the path being updated (the old
version, as a rule) and in any file whose block list holds a block with the same digest
(`blockstore.py`). `candidates` decides, with no I/O, where each missing block may come from
(the old version at the block's own offset first, so an edit in place reads the old file front
to back); `runs` joins blocks that lie one after another in one source into one read.
`copy_blocks` (in a worker thread) reads them, hashes every block and writes those that match
into the partial file: a source that changed since its list was made costs a fetch, never a
wrong block. The old version's list is the one kept when it has the download's block size, else
it is hashed now at that size (a file that grew past a block size boundary).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sync.blocks import DIGEST, block_count, block_range, hash_blocks
from sync.blockstore import Place, block_key
from sync.hashing import Stamp
from sync.manifest import FileRecord
from sync.resume import Partial
from sync.serve import open_cached
from sync.state import State

log = logging.getLogger(__name__)

READ_RUN = 4 * 1024 * 1024
"""Most bytes read from a source at once."""


@dataclass(frozen=True)
class Run:
    """Blocks `first`.. (`count` of them) of the download, to be read from content `sha256`
    at `offset`, where they lie one after another."""

    first: int
    count: int
    sha256: str
    offset: int


def _length(place: Place) -> int:
    return block_range(place.index, place.size, place.block_size)[1]


def candidates(
    hashes: bytes,
    size: int,
    block_size: int,
    skip: set[int],
    places: dict[int, list[Place]],
    old: str | None,
) -> dict[int, list[Place]]:
    """Where each block of a download not in `skip` may be found here, best first.

    Args:
        hashes: the download's block list; `size` and `block_size` its file's.
        places: digest key -> places holding a block with that key (`BlockStore.places`).
        old: the content at the path being updated, if known: its places come first, and
            among them the one at the block's own offset.

    Returns:
        block index -> places whose block has the wanted length, for blocks with any.
    """
    out: dict[int, list[Place]] = {}
    for index in range(block_count(size, block_size)):
        if index in skip:
            continue
        key = block_key(hashes[index * DIGEST : (index + 1) * DIGEST])
        length = block_range(index, size, block_size)[1]
        found = [p for p in places.get(key, []) if _length(p) == length]
        if found:
            offset = index * block_size
            found.sort(key=lambda p: (p.sha256 != old, p.index * p.block_size != offset))
            out[index] = found
    return out


def runs(chosen: dict[int, Place], size: int, block_size: int, most: int = READ_RUN) -> list[Run]:
    """Join the chosen place of each block into reads: blocks next to each other in the
    download whose places are next to each other in one content, up to `most` bytes a read."""
    out: list[Run] = []
    for index in sorted(chosen):
        place = chosen[index]
        offset = place.index * place.block_size
        if out:
            last = out[-1]
            start = last.first * block_size
            span = min((last.first + last.count) * block_size, size) - start
            length = block_range(index, size, block_size)[1]
            if (
                last.first + last.count == index
                and last.sha256 == place.sha256
                and last.offset + span == offset
                and span + length <= most
            ):
                out[-1] = Run(last.first, last.count + 1, last.sha256, last.offset)
                continue
        out.append(Run(index, 1, place.sha256, offset))
    return out


def _copy_run(partial: Partial, run: Run, fd: int) -> set[int]:
    """Read one run, and write each of its blocks that has the wanted hash; those blocks."""
    block_size = partial.block_size
    start = run.first * block_size
    length = min((run.first + run.count) * block_size, partial.size) - start
    try:
        data = memoryview(os.pread(fd, length, run.offset))
    except OSError as exc:
        log.info("cannot read blocks of %s here: %s", run.sha256[:12], exc)
        return set()
    good = []
    for k in range(run.count):
        index = run.first + k
        want = block_range(index, partial.size, block_size)[1]
        piece = data[k * block_size : k * block_size + want]
        if len(piece) == want and hashlib.sha256(piece).digest() == partial.expected(index):
            good.append(k)
    for first, last in _spans(good):
        partial.write(run.first + first, data[first * block_size : (last + 1) * block_size])
    return {run.first + k for k in good}


def _spans(numbers: list[int]) -> list[tuple[int, int]]:
    """Sorted numbers as (first, last) spans of consecutive ones."""
    out: list[tuple[int, int]] = []
    for n in numbers:
        if out and out[-1][1] == n - 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return out


def copy_blocks(
    root: Path,
    rows: dict[str, list[tuple[str, Stamp]]],
    prefer: str,
    partial: Partial,
    found: dict[int, list[Place]],
) -> set[int]:
    """Copy into `partial` every block of `found` that one of its places still holds (in a
    worker thread); returns the blocks copied.

    Args:
        root: the shared root.
        rows: the hash cache's files of each source content (opened as `open_cached` does).
        prefer: "<owner>/<path>" of the file being updated (tried first for its content).
        found: block -> its places, best first (`candidates`).

    Raises:
        LocalDiskError: the partial file could not be written.
    """
    files: dict[str, BinaryIO] = {}
    try:
        for sha in {p.sha256 for places in found.values() for p in places}:
            local = open_cached(root, rows.get(sha, []), prefer)
            if local is not None:
                files[sha] = local.file
        chosen = {}
        for index, places in found.items():
            usable = [p for p in places if p.sha256 in files]
            if usable:
                chosen[index] = usable[0]
        got: set[int] = set()
        for run in runs(chosen, partial.size, partial.block_size):
            got |= _copy_run(partial, run, files[run.sha256].fileno())
        for index, places in found.items():  # second chances, a block at a time
            for place in places[1:]:
                if index in got or place.sha256 not in files:
                    continue
                one = Run(index, 1, place.sha256, place.index * place.block_size)
                got |= _copy_run(partial, one, files[place.sha256].fileno())
        return got
    finally:
        for f in files.values():
            f.close()


def _list_at(
    root: Path, rows: list[tuple[str, Stamp]], prefer: str, block_size: int
) -> tuple[int, bytes] | None:
    """The size and block list at `block_size` of a local content (None: not here now)."""
    local = open_cached(root, rows, prefer)
    if local is None:
        return None
    with local.file:
        try:
            return local.size, hash_blocks(local.file, local.size, block_size)
        except OSError as exc:
            log.info("cannot hash %s again: %s", prefer, exc)
            return None


class Reuser:
    """Finds and copies the blocks of a download that this node already holds."""

    def __init__(self, root: Path, state: State) -> None:
        self.root, self.state = root, state
        self.copied = 0
        """Bytes copied from local files instead of fetched (tests and logs)."""

    def remember(self, rec: FileRecord, block_size: int, hashes: bytes) -> None:
        """Keep the block list of a download just placed, for the next one to reuse."""
        self.state.blocks.put(rec.sha256, rec.size, block_size, hashes)

    async def fill(
        self, rec: FileRecord, partial: Partial, skip: set[int], pool: Executor
    ) -> set[int]:
        """Copy into `partial` the blocks not in `skip` that some local file holds.

        Returns:
            The blocks copied.

        Raises:
            LocalDiskError: the partial file could not be written.
        """
        missing = [i for i in range(partial.count) if i not in skip]
        if not missing:
            return set()
        loop = asyncio.get_running_loop()
        self.state.blocks.prune()  # no slot of the lookup goes to content no longer here
        places = self.state.blocks.places({block_key(partial.expected(i)) for i in missing})
        rel = f"{rec.owner}/{rec.path}"
        old = self.state.cache_get(rel)
        old_sha = None if old is None or old[2] == rec.sha256 else old[2]
        if old_sha is not None:
            listed = self.state.blocks.get(old_sha)
            if listed is None or listed.block_size != partial.block_size:
                old_rows = self.state.cache_by_hashes({old_sha}).get(old_sha, [])
                again = await loop.run_in_executor(
                    pool, _list_at, self.root, old_rows, rel, partial.block_size
                )
                if again is not None:
                    _add_places(places, old_sha, partial.block_size, *again)
        found = candidates(partial.hashes, partial.size, partial.block_size, skip, places, old_sha)
        if not found:
            return set()
        rows = self.state.cache_by_hashes({p.sha256 for ps in found.values() for p in ps})
        got = await loop.run_in_executor(pool, copy_blocks, self.root, rows, rel, partial, found)
        copied = sum(block_range(i, partial.size, partial.block_size)[1] for i in got)
        self.copied += copied
        log.info(
            "%s: %d of %d blocks (%d bytes) copied from local files",
            rel,
            len(got),
            len(missing),
            copied,
        )
        return got


def _add_places(
    places: dict[int, list[Place]], sha256: str, block_size: int, size: int, hashes: bytes
) -> None:
    """Add the blocks of one content's list to `places`."""
    for index in range(len(hashes) // DIGEST):
        key = block_key(hashes[index * DIGEST : (index + 1) * DIGEST])
        places.setdefault(key, []).append(Place(sha256, size, block_size, index))
