"""Blocks of a file: their size, their hashes, a holder's cache of them, and who fetches which
block next.

Theory of operation. A file larger than `LARGE_FILE` is cut into fixed-size blocks (the last one
shorter), each with its own SHA-256. The block size grows with the file, as syncthing's does:
the smallest power of two from 128 KiB that cuts the file into fewer than 2,000 blocks
(`block_size_for`), so a small change costs a block or two (at most 1 MiB a block up to 1 GiB)
and a block list stays small (64 KiB at most). Offsets are fixed, with no rolling hash: syncthing
dropped its own in 2025, as it found under 1 % more blocks. The owner's scanner computes the list
in the same read as the whole-file hash, and every node keeps the lists of the files it holds
(`blockstore.py`); a holder asked for a list at another block size (an older receiver) computes
it on demand and keeps it in a `BlockCache`: the list is a function of the content hash and the
block size alone, so one entry serves every file with that content. A receiver checks each block
against the list as it arrives, and the whole file against the manifest's SHA-256 at the end, so
a lying list costs a retry, never a wrong file.

`BlockPlan` is the sans-IO heart of a multi-source download: every holder connection asks it
for the next block to fetch (`claim`), so a faster holder simply comes back sooner and serves
more blocks (work stealing). A block that fails its hash marks its holder bad for this file
(`failed`); a holder that vanishes gives its claimed blocks back (`release`). Once nothing is
left unclaimed, an idle holder may duplicate a block still in flight elsewhere ("endgame"), so
one slow holder cannot hold up the end of a download: but only a holder measured faster than
the block's fetcher, or when that fetcher has gone quiet, so a slow holder never repeats what a
fast one is about to finish. Each holder's measured rate (`measured`) also sizes its runs: a
slow holder is never handed a run the fast ones would finish sooner.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, NamedTuple

log = logging.getLogger(__name__)

LARGE_FILE = 4 * 1024 * 1024
"""Files larger than this are fetched in blocks (and keep a block list); smaller ones travel
whole, in one FILE or in a BATCH."""
MIN_BLOCK = 64 * 1024
"""The smallest block size the wire accepts (BLOCKS)."""
MAX_BLOCK = 16 * 1024 * 1024
"""The largest block size: the wire's bound, and the block of files of 32 GiB and more."""
FIRST_BLOCK = 128 * 1024
"""The block size of files up to 250 MiB (`block_size_for`)."""
BLOCKS_PER_FILE = 2000
"""A file gets the smallest block size that cuts it into fewer blocks than this."""
DIGEST = 32
ENDGAME_BLOCKS = 4
"""Blocks in flight elsewhere are fetched twice only when this few are missing (earlier, the
duplicate would take a busy uplink from blocks nobody is fetching)."""
STALL = 2.0
"""Seconds without a block from a holder after which others may duplicate what it fetches."""
CHUNK = 1024 * 1024
"""Bytes read at once while hashing blocks (a 16 MiB block is not read into memory whole)."""
CACHE_ENTRIES = 256
"""Block lists at a block size other than a file's own, kept by a holder (64 KiB at most each
at the sizes receivers ask; a file's own list is kept in sqlite)."""


def valid_block_size(block_size: int) -> bool:
    """Whether a block size is one this protocol accepts: a power of two, 64 KiB to 16 MiB."""
    return MIN_BLOCK <= block_size <= MAX_BLOCK and block_size & (block_size - 1) == 0


def block_size_for(size: int) -> int:
    """The block size of a file of `size` bytes: the smallest power of two from FIRST_BLOCK up
    (MAX_BLOCK at most) that cuts it into fewer than BLOCKS_PER_FILE blocks, as syncthing's
    `protocol.BlockSize`. A change of n bytes then costs at most n plus two blocks: 128 KiB
    blocks up to 250 MiB, 1 MiB blocks from 1000 MiB to 2000 MiB."""
    block_size = FIRST_BLOCK
    while block_size < MAX_BLOCK and size >= BLOCKS_PER_FILE * block_size:
        block_size *= 2
    return block_size


def block_count(size: int, block_size: int) -> int:
    """How many blocks a file of `size` bytes has (0 for an empty file)."""
    return (size + block_size - 1) // block_size


def block_range(index: int, size: int, block_size: int) -> tuple[int, int]:
    """(offset, length) of block `index` in a file of `size` bytes."""
    offset = index * block_size
    return offset, min(block_size, size - offset)


def hash_blocks(source: Path | BinaryIO, size: int, block_size: int) -> bytes:
    """The concatenated SHA-256 digests of every block of the first `size` bytes of a file.

    Args:
        source: a path, or a file already opened (and checked) by the caller, read from its
            start with pread whatever its position.

    Raises:
        OSError: the file cannot be read, or is shorter than `size`.
    """
    if isinstance(source, Path):
        with open(source, "rb", buffering=0) as f:
            return hash_blocks(f, size, block_size)
    out = bytearray()
    fd = source.fileno()
    for index in range(block_count(size, block_size)):
        offset, length = block_range(index, size, block_size)
        digest = hashlib.sha256()
        got = 0
        while got < length:
            chunk = os.pread(fd, min(length - got, CHUNK), offset + got)
            if not chunk:
                raise OSError(f"a file of {size} bytes was shorter than that")
            digest.update(chunk)
            got += len(chunk)
        out += digest.digest()
    return bytes(out)


def _stat(source: Path | BinaryIO) -> os.stat_result:
    return os.stat(source) if isinstance(source, Path) else os.fstat(source.fileno())


class BlockCache:
    """A holder's block lists by (content hash, block size), computed once off the event loop."""

    def __init__(self, entries: int = CACHE_ENTRIES) -> None:
        self._entries = entries
        self._lists: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._pending: dict[tuple[str, int], asyncio.Future[bytes]] = {}
        self.computed = 0

    def put(self, sha256: str, block_size: int, hashes: bytes) -> None:
        """Remember a verified list (a receiver that just checked every block has one)."""
        self._lists[(sha256, block_size)] = hashes
        self._lists.move_to_end((sha256, block_size))
        while len(self._lists) > self._entries:
            self._lists.popitem(last=False)

    async def get(self, sha256: str, block_size: int, source: Path | BinaryIO, size: int) -> bytes:
        """The block list of content `sha256`, hashing `source` (a path, or a file the server
        opened and checked) in a worker thread if unknown.

        Concurrent asks for the same list share one hashing pass. A file that changes while it
        is hashed is not cached (its next ask hashes it again).

        Raises:
            OSError: the file could not be read whole.
        """
        key = (sha256, block_size)
        known = self._lists.get(key)
        if known is not None:
            self._lists.move_to_end(key)
            return known
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            before = _stat(source)
            hashes = await asyncio.to_thread(hash_blocks, source, size, block_size)
            after = _stat(source)
            self.computed += 1
            if (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns):
                self.put(sha256, block_size, hashes)
            future.set_result(hashes)
            return hashes
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here: nobody else may be waiting
            raise
        finally:
            del self._pending[key]


class _Picture(NamedTuple):
    """What a partial holder said it has and is fetching, when what it has last grew, and
    when it was first heard of."""

    have: set[int]
    coming: set[int]
    grew: float
    since: float


class BlockPlan:
    """Which blocks are verified, which are being fetched and by whom, and who is bad.

    Blocks are handed out in file order from block `start` (wrapping round): receivers of the
    same file that start at different blocks soon hold different blocks to trade. A holder
    that has only some blocks (it is downloading the file too) claims among `allowed` ones, and
    full holders leave those blocks, and those it is fetching, to it: a full holder's uplink
    (the owner's, for a new file every receiver wants) then carries only blocks no receiver
    has yet, and receivers pass on the rest; the end of the download too, when every receiver
    lacks the few blocks still on their way to one of them. A full holder is asked for them all
    the same once no block has been stored for `STALL` seconds, or when the partial holders
    deliver at under half its rate (`_partials_keep_up`).
    Not thread-safe by itself: the swarm calls it under one lock (each call is tiny).
    """

    def __init__(
        self,
        count: int,
        verified: set[int] | None = None,
        endgame: int = 2,
        start: int = 0,
        clock: Callable[[], float] = time.monotonic,
        tail: int = ENDGAME_BLOCKS,
    ) -> None:
        """`tail`: blocks in flight elsewhere are fetched twice only when this few are missing
        (`ENDGAME_BLOCKS` unless given: a download of small blocks gives more)."""
        self.count = count
        self.clock = clock
        self.rates: dict[str, float] = {}
        """Bytes per second each holder delivered blocks at (smoothed); absent: not measured."""
        self._heard: dict[str, float] = {}
        self._last: dict[str, int] = {}
        self.verified: set[int] = set(verified or ())
        self.bad: set[str] = set()
        self.served: Counter[str] = Counter()
        self._endgame = endgame
        self._tail = tail
        self._fetching: dict[int, set[str]] = {}
        self._partials: dict[str, _Picture] = {}
        self._elsewhere: frozenset[int] = frozenset()
        self._recount = math.inf
        self._stored_at = clock()
        self._start = start % count if count else 0
        self._next = 0
        """Position (from `start`) before which every block is verified or being fetched."""

    @property
    def complete(self) -> bool:
        """Every block is verified."""
        return len(self.verified) == self.count

    def missing(self) -> int:
        """How many blocks are not verified yet."""
        return self.count - len(self.verified)

    def busy(self) -> bool:
        """Some block is being fetched right now."""
        return bool(self._fetching)

    @property
    def elsewhere(self) -> frozenset[int]:
        """Blocks a seated partial holder has, or is fetching while what it has grows (as it
        last said): full holders leave them to it (`claim`)."""
        if self.clock() >= self._recount:
            self._count_elsewhere()
        return self._elsewhere

    def _count_elsewhere(self) -> None:
        now, until = self.clock(), math.inf
        blocks: set[int] = set()
        for picture in self._partials.values():
            blocks |= picture.have
            if picture.coming and now - picture.grew < STALL:
                blocks |= picture.coming
                until = min(until, picture.grew + STALL)
        self._elsewhere, self._recount = frozenset(blocks), until

    def holds(self, holder: str, blocks: set[int], coming: set[int] | None = None) -> None:
        """Partial holder `holder` said it has `blocks` now, and is fetching `coming` (a
        fresher picture than before): full holders leave both to it; what it is fetching, only
        while what it has grows (a holder stuck on its own download is waited for `STALL`
        seconds at most)."""
        old, now = self._partials.get(holder), self.clock()
        grew = now if old is None or len(blocks) > len(old.have) else old.grew
        since = now if old is None else old.since
        self._partials[holder] = _Picture(blocks, coming or set(), grew, since)
        self._count_elsewhere()

    def in_flight(self) -> set[int]:
        """The blocks being fetched now (what this node tells others is `coming`)."""
        return set(self._fetching)

    def gone(self, holder: str) -> None:
        """`holder` is a partial holder no more (it left the download, or holds the whole file
        now): what it said it had or fetched is no longer left to it."""
        if self._partials.pop(holder, None) is not None:
            self._count_elsewhere()

    def _partials_keep_up(self, holder: str) -> bool:
        """Whether the partial holders are worth waiting for instead of asking full holder
        `holder`: together they delivered at least half its measured rate over their time in
        the download (one heard of less than `STALL` ago is given that time). A holder that
        says it has much and serves it slowly then holds up no download."""
        mine = self.rates.get(holder)
        if mine is None:
            return True
        now, theirs = self.clock(), 0.0
        for name, picture in self._partials.items():
            age = now - picture.since
            if age < STALL:
                return True
            theirs += self.served[name] / age
        return theirs >= mine / 2

    def left_to_partials(self) -> bool:
        """Some block nobody fetches yet is held by a partial holder (a full holder waits for
        it to be fetched from there, or for the end of the download)."""
        return any(self._free(index) for index in self.elsewhere)

    def _free(self, index: int) -> bool:
        return index not in self.verified and index not in self._fetching

    def _take(self, index: int, holder: str) -> int:
        if not any(holder in owners for owners in self._fetching.values()):
            self._heard[holder] = self.clock()  # it starts work now: quiet from here on
        self._fetching.setdefault(index, set()).add(holder)
        self._last[holder] = index
        return index

    def _rare(self, holder: str) -> int | None:
        """For a full holder beside partial ones: a block no partial holder has. The block
        after its last one while that is such a block (one range request), else one inside
        the longest stretch of them, away from its ends: other receivers fetching from the
        full holders are at work at those ends, so they and this one fetch different blocks
        and have more to trade. Where inside depends on `start`, so receivers that look at
        the same stretch at once pick different blocks of it."""
        count, elsewhere = self.count, self.elsewhere
        last = self._last.get(holder)
        if last is not None:
            after = (last + 1) % count
            if after not in elsewhere and self._free(after):
                return after
        wanted = [i not in elsewhere and self._free(i) for i in range(count)]
        if all(wanted):
            return self._start
        edge = wanted.index(False)
        best, best_len, run_start, run_len = None, 0, 0, 0
        for step in range(1, count + 1):
            index = (edge + step) % count
            if wanted[index]:
                if not run_len:
                    run_start = index
                run_len += 1
                if run_len > best_len:
                    best, best_len = run_start, run_len
            else:
                run_len = 0
        if best is None:
            return None
        # from 1/8 to 7/8 of the way in, by where this receiver started (which is spread)
        return (best + best_len * (count + 6 * self._start) // (8 * count)) % count

    def measured(self, holder: str, length: int, seconds: float) -> None:
        """`holder` delivered `length` bytes of a block in `seconds`: update its rate."""
        rate = length / max(seconds, 1e-6)
        old = self.rates.get(holder)
        self.rates[holder] = rate if old is None else (old + rate) / 2
        self._heard[holder] = self.clock()

    def _may_duplicate(self, holder: str, owners: set[str]) -> bool:
        """Whether `holder` should fetch a block `owners` are fetching: when each of them is
        quiet for `STALL` seconds or no faster than `holder` (unmeasured counts as slow)."""
        now, mine = self.clock(), self.rates.get(holder)
        for owner in owners:
            if now - self._heard.get(owner, now) > STALL:
                continue
            theirs = self.rates.get(owner)
            if theirs is not None and (mine is None or mine <= theirs):
                return False
        return True

    def claim(self, holder: str, allowed: set[int] | None = None) -> int | None:
        """The next block `holder` should fetch, or None when it has nothing left to do.

        Past the last unclaimed block, when at most `tail` blocks are missing, a block in
        flight elsewhere is shared (at most `endgame` fetchers), so one slow holder cannot hold
        up the end.
        """
        if holder in self.bad:
            return None
        if allowed is None and self.elsewhere:
            rare = self._rare(holder)
            if rare is not None:
                return self._take(rare, holder)
            if self.clock() - self._stored_at < STALL and self._partials_keep_up(holder):
                return None  # partial holders have the rest: this uplink is for other receivers
        if allowed is None:
            while self._next < self.count:
                index = (self._start + self._next) % self.count
                self._next += 1
                if self._free(index):
                    return self._take(index, holder)
        else:
            for pos in range(self._next, self.count):
                index = (self._start + pos) % self.count
                if index in allowed and self._free(index):
                    return self._take(index, holder)
        if self.missing() > self._tail:
            return None
        for index in sorted(self._fetching, key=lambda i: len(self._fetching[i])):
            owners = self._fetching[index]
            if (
                holder not in owners
                and len(owners) < self._endgame
                and (allowed is None or index in allowed)
                and self._may_duplicate(holder, owners)
            ):
                return self._take(index, holder)
        return None

    def claim_run(
        self,
        holder: str,
        workers: int,
        most: int,
        allowed: set[int] | None = None,
        least: int = 1,
    ) -> list[int]:
        """Consecutive blocks for one range request: up to half this holder's share of what is
        left unclaimed (guided scheduling: big runs early, short ones near the end, where
        stealing pays), `least` to `most` blocks while they are free. Its share follows its
        measured rate among `workers` holders (one not measured yet counts as the average), so
        a slow holder gets short runs.
        """
        first = self.claim(holder, allowed)
        if first is None:
            return []
        run = [first]
        left = self.count - self._next
        known = self.rates
        if holder in known and len(known) > 1:
            average = sum(known.values()) / len(known)
            total = sum(known.values()) + average * max(0, workers - len(known))
            want = int(left * known[holder] / total / 2)
        else:
            want = left // (2 * workers)
        want = max(least, min(most, want))
        elsewhere = self.elsewhere
        index = first + 1
        while (
            len(run) < want
            and index < self.count
            and self._free(index)
            and (allowed is None or index in allowed)
            and (allowed is not None or index not in elsewhere)
        ):
            run.append(self._take(index, holder))
            index += 1
        return run

    def release(self, index: int, holder: str) -> None:
        """`holder` will not deliver `index` (it failed or went away): others may take it."""
        owners = self._fetching.get(index)
        if owners is None:
            return
        owners.discard(holder)
        if not owners:
            del self._fetching[index]
            if index not in self.verified:
                self._next = min(self._next, (index - self._start) % self.count)

    def done(self, index: int, holder: str, length: int) -> bool:
        """`holder` delivered a verified block; False when another holder was first."""
        self._fetching.pop(index, None)
        if index in self.verified:
            return False
        self.verified.add(index)
        self._stored_at = self.clock()
        self.served[holder] += length
        return True

    def failed(self, index: int, holder: str) -> None:
        """The block from `holder` failed its hash: avoid that holder for this file."""
        log.warning("block %d from %s failed its hash; avoiding that holder", index, holder)
        self.bad.add(holder)
        self.release(index, holder)
