"""Multi-source block downloads: the asyncio side that starts, watches and concludes them.

`Swarm.fetch` gets the block list (BLOCKS, at the file's own block size, `block_size_for`) from
the first holder that answers, opens or resumes the partial file (`resume.Partial`), copies in
every block already on this node (`reuse.py`: the old version of the file, or any file with the
same block), and runs one `holder.HolderWorker` per holder (at most `MAX_SOURCES`) in a thread
pool for the rest; the workers share a `BlockPlan`, so faster holders serve more of the file.
While the download runs, a seat left free (fewer than `MAX_SEATS` holders still serving) is
offered, every `RELOCATE` seconds, to a holder the locator names that this download has not
asked yet: above all, others that started downloading the same content meanwhile and announced
themselves as partial holders (each receiver a different share of them, `spread`). Partial
holders are seated only after a pause in which this host's processors had time to spare
(`sync/cpu.py`; `LOOK` before the start, the pause between lookups after): where the CPU, not
the links, is the limit, trading blocks costs more than it brings. Every
block is checked as it arrives, and a holder that sends a bad one is dropped at once and
avoided for this content in later rounds too. At the end the whole file must have the
manifest's SHA-256, else the list was wrong: the partial file goes, and so does trust in
whoever sent the list. Local trouble (disk full) removes the partial file; anything else
leaves it for the next round to resume.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple, TypeVar

from ring.errors import PeerUnreachable, RemoteError, RemoteProtocolError
from ring.wire import expect
from sync.blocks import (
    DIGEST,
    ENDGAME_BLOCKS,
    BlockPlan,
    block_count,
    block_range,
    block_size_for,
)
from sync.cpu import BUSY, CpuSample, busy_share, sample
from sync.errors import HashMismatch, TransferAborted
from sync.holder import ENDGAME_BYTES, Download, HolderWorker, Listed
from sync.manifest import FileRecord, Peer
from sync.messages import BlocksData, BlocksRequest
from sync.resume import Partial, have_set
from sync.reuse import Reuser
from sync.sources import place, spread
from sync.tracker import Transfers
from sync.transfer import Receiver

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_SOURCES = 4
"""Holders one download starts with."""

MAX_SEATS = 6
"""Holders one download uses at once, counting those seated while it runs (`_recruit`): when
many receivers fetch one new file, each should see many of the others, so that what one of
them has is not asked of the owner again. Measured with 8 receivers: 8 seats took 1.38-1.50x
one transfer over 50 Mbit/s links, 6 took 1.45-1.57x and 4 took 1.57-1.78x; but with every
node in one process on 2 cores (bench/swarm_bench.py, CPU-bound), 8 seats cost 1.57x the
ring alone against 1.28x for 6 and 1.04x for 4: each seat is a connection and a thread."""

LIST_TIMEOUT = 60.0
"""A holder may hash the whole file before its first BLOCKS answer; give it time."""

RELOCATE = 0.5
"""Seconds between two lookups of new holders during a download with a free seat: about the
time a receiver that started together with this one takes to be listed as a partial holder
(the index publishes every 0.25 s)."""

RELOCATE_MAX = 4.0
"""The longest pause between two such lookups (`_recruit`)."""

LOOK = 0.1
"""Seconds a download offered both full and partial holders watches this host's processors
before it starts (`sync/cpu.py`): if they had time to spare, the partial holders are seated
from the start, so receivers that start together see what the others fetch before their first
runs overlap (4 receivers behind a slow owner, `test_transfer_rare.py`: 1.00-1.18 copies
from the owner in 8 runs, against 1.13-1.77 when partial holders waited for the first lookup
and 1.04-1.36 when they were seated from the start without a look)."""

Relocate = Callable[[str], Awaitable[list[Peer]]]
"""Who holds (or is fetching) content H now, full holders first."""


class Fetched(NamedTuple):
    """A block download done: the data file to rename into place, bytes per holder, and the
    block list it was checked against (to keep once the file is placed)."""

    path: Path
    served: dict[str, int]
    block_size: int
    hashes: bytes


class Swarm:
    """Runs block downloads for one node; stops with the receiver (which cuts their sockets)."""

    def __init__(
        self,
        name: str,
        receiver: Receiver,
        folder: Path,
        reuse: Reuser,
        partials: dict[str, Partial],
        transfers: Transfers,
        threads: int,
        timeout: float,
        fetching: Callable[[str, bool], None] = lambda sha256, active: None,
        relocate: Relocate | None = None,
    ) -> None:
        """`fetching(sha256, active)` is told when a download starts serving its blocks to
        others (True) and when it ends with no file to place (False); `relocate` is asked for
        more holders while a seat is free (None: never)."""
        self.name, self.receiver, self.folder, self.reuse = name, receiver, folder, reuse
        self.partials = partials
        self.transfers = transfers
        self.timeout = timeout
        self.fetching = fetching
        self.relocate = relocate
        self.avoid: dict[str, set[str]] = {}
        self.cpu: Callable[[], CpuSample] = sample
        """The host's processor times now (`sync/cpu.py`; tests set a host busy or idle)."""
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="sync-block")
        self._writers = ThreadPoolExecutor(threads, thread_name_prefix="sync-block-write")
        self._digests = ThreadPoolExecutor(threads, thread_name_prefix="sync-block-digest")
        receiver.on_close(self.close)

    def close(self) -> None:
        """No new workers; running ones end when the receiver cuts their sockets."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._writers.shutdown(wait=False, cancel_futures=True)
        self._digests.shutdown(wait=False, cancel_futures=True)

    async def fetch(self, rec: FileRecord, holders: list[Peer], indexed: bool = False) -> Fetched:
        """Download `rec` from several holders at once into a verified file, copying what is
        here already; `indexed`: the locator may name more holders while it runs (`_recruit`).

        Returns:
            The data file (fsynced, mtime set) to rename into place, and what else it took.

        Raises:
            LocalDiskError: this node cannot store it (the partial file is gone).
            TransferAborted, HashMismatch, PeerUnreachable, RemoteError: try again later
                (verified blocks are kept for the next try, unless the whole file was wrong).
        """
        avoid = self.avoid.get(rec.sha256, set())
        trusted = [p for p in holders if p.name not in avoid]
        if not trusted:  # every holder failed us once: give them all another chance
            self.avoid.pop(rec.sha256, None)
            trusted = list(holders)
        # partial holders are seated only while the host has CPU to spare: now, or in `_recruit`
        full = [p for p in trusted if not p.fetching]
        first = trusted
        if full and len(full) < len(trusted) and await self._busy_over(LOOK) >= BUSY:
            first = full
        holders = spread(first, self.name, rec.sha256, MAX_SOURCES)
        others = [p for p in trusted if p not in holders]
        block_size = block_size_for(rec.size)
        hashes, lister, listed = await self._in_pool(
            self._block_list, rec, holders + others, block_size
        )
        if all(p.name != lister for p in holders):
            # the holders first chosen had nothing to give: the lister takes the last seat
            holders = [*holders[: MAX_SOURCES - 1], *(p for p in others if p.name == lister)]
        partial = Partial(self.folder, rec.sha256, rec.size, block_size, hashes, self._digests)
        try:
            verified = await self._in_pool(partial.open)
            verified |= await self.reuse.fill(rec, partial, verified, self._pool)
        except BaseException:
            self.receiver.release(listed.channel)
            partial.close()
            raise
        transfer = self.transfers.begin(rec.owner, rec.path, rec.size)
        transfer.sources = tuple(p.name for p in holders)
        transfer.resumed = transfer.done = sum(
            block_range(i, rec.size, block_size)[1] for i in verified
        )
        # alone with one holder, file order lets the whole-file hash keep up with the blocks;
        # where others may be fetching it too (several holders, or partial holders to come),
        # receivers that start at different blocks neither ask the owner for the same ones
        # nor hold the same ones to trade
        alone = len(holders) == 1 and not indexed
        start = 0 if alone else place(self.name, rec.sha256, partial.count)
        tail = max(ENDGAME_BLOCKS, ENDGAME_BYTES // block_size)
        plan = BlockPlan(partial.count, verified, start=start, tail=tail)
        run = Download(rec, plan, partial, transfer)
        partial.fetching = run.in_flight
        ok = False
        self.partials[rec.sha256] = partial
        self.fetching(rec.sha256, True)
        try:
            await self._run_workers(run, holders, lister, listed, indexed)
            await self._conclude(run, lister)
            path = await self._in_pool(partial.finish, rec.mtime_ns)
            ok = True
            self.avoid.pop(rec.sha256, None)
            return Fetched(path, dict(run.plan.served), block_size, hashes)
        finally:
            self.partials.pop(rec.sha256, None)
            if not ok:  # else the caller says so once the file is placed (or not)
                self.fetching(rec.sha256, False)
            self.transfers.end(transfer, ok)

    async def _busy_over(self, seconds: float) -> float:
        """How busy this host's processors were (0 to 1) over the next `seconds`."""
        before = self.cpu()
        await asyncio.sleep(seconds)
        return busy_share(before, self.cpu())

    async def _in_pool(self, fn: Callable[..., T], *args: object) -> T:
        """Run blocking work in the pool, unless the engine is stopping."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        except RuntimeError:  # the pool is shut down
            raise TransferAborted("sync engine stopped") from None

    async def _run_workers(
        self, run: Download, holders: list[Peer], lister: str, listed: Listed, indexed: bool
    ) -> None:
        """One worker per holder; the lister's worker goes on on the connection it listed on.
        Holders found meanwhile (`_recruit`, when `indexed`) get workers of their own."""
        if self.receiver.closed or run.plan.complete:
            # checked on the loop, as close is: no worker starts after it
            self.receiver.release(listed.channel)
            if not run.plan.complete:
                run.partial.close()
                raise TransferAborted("sync engine stopped")
            return
        run.workers = len(holders)
        workers = [
            self._worker(run, peer, listed if peer.name == lister else None) for peer in holders
        ]
        recruiter = None
        if indexed and self.relocate is not None:
            seated = {peer.name for peer in holders}
            recruiter = asyncio.ensure_future(self._recruit(run, seated, workers))
        try:
            while True:
                current = list(workers)
                await asyncio.gather(*current)
                if len(workers) == len(current):
                    break
        except BaseException:
            with run.cond:
                run.stop = True
                run.cond.notify_all()
            await asyncio.wait(workers)
            run.partial.close()
            raise
        finally:
            if recruiter is not None:
                recruiter.cancel()

    def _worker(self, run: Download, peer: Peer, listed: Listed | None) -> asyncio.Future[None]:
        """Start one holder's worker in the pool."""
        worker = HolderWorker(peer, run, self.receiver, self._writers, listed)
        return asyncio.get_running_loop().run_in_executor(self._pool, worker.run)

    async def _recruit(
        self, run: Download, seated: set[str], workers: list[asyncio.Future[None]]
    ) -> None:
        """While a seat is free, ask the locator again and seat holders not asked yet (never
        this node, never one that sent a bad block of this content): every `RELOCATE` s, twice
        as long after each ask that found nobody new, up to `RELOCATE_MAX` s (a ring smaller
        than the seats never fills them, and need not be asked twice a second). Partial
        holders count only after a pause in which the host was less than `BUSY`."""
        sha256 = run.rec.sha256
        assert self.relocate is not None
        pause = RELOCATE
        while True:
            busy = await self._busy_over(pause)
            free = MAX_SEATS - sum(1 for worker in workers if not worker.done())
            if free <= 0:
                continue
            pause = min(2 * pause, RELOCATE_MAX)
            try:
                found = await self.relocate(sha256)
            except Exception as exc:  # the locator is pluggable; its failure costs a seat only
                log.info("locating %s again failed: %s", sha256[:12], exc)
                continue
            avoid = self.avoid.get(sha256, set()) | seated | {self.name}
            fresh = [p for p in found if p.name not in avoid]
            new = fresh if busy < BUSY else [p for p in fresh if not p.fetching]
            if len(new) < len(fresh):
                log.debug(
                    "host %.0f%% busy: no partial holder of %s seated", 100 * busy, sha256[:12]
                )
            if new:
                pause = RELOCATE
            for peer in spread(new, self.name, sha256, free):
                with run.cond:
                    if run.stop or run.plan.complete or self.receiver.closed:
                        return
                    run.workers += 1
                seated.add(peer.name)
                try:
                    workers.append(self._worker(run, peer, None))
                except RuntimeError:  # the pool is shut down: the engine is stopping
                    return
                run.transfer.sources += (peer.name,)
                log.debug("%s joins the download of %s", peer.name, run.rec.path)

    async def _conclude(self, run: Download, lister: str) -> None:
        """Raise unless every block is in and the whole file has the manifest's hash."""
        rec, plan, partial = run.rec, run.plan, run.partial
        if plan.bad:
            self.avoid.setdefault(rec.sha256, set()).update(plan.bad)
        if run.abort is not None:
            partial.discard()
            raise run.abort
        if not plan.complete:
            partial.close()
            raise TransferAborted(
                f"{rec.owner}/{rec.path}: {plan.missing()} of {plan.count} blocks still missing"
            )
        if not await self._in_pool(lambda: partial.whole_ok):
            partial.discard()
            self.avoid.setdefault(rec.sha256, set()).add(lister)
            raise HashMismatch(f"{rec.owner}/{rec.path}: the block list from {lister} was wrong")

    def _block_list(
        self, rec: FileRecord, holders: list[Peer], block_size: int
    ) -> tuple[bytes, str, Listed]:
        """The block hashes from the first holder that gives a list of the right shape, its
        name, and the connection it answered on with the blocks it has (in a worker thread).

        Raises:
            TransferAborted, PeerUnreachable, RemoteError, RemoteProtocolError: nobody did.
        """
        last: Exception = TransferAborted("no holder")
        ask = BlocksRequest(rec.sha256, rec.owner, rec.path, block_size)
        count = block_count(rec.size, block_size)
        for peer in holders:
            try:
                channel = self.receiver.connect(peer)
            except PeerUnreachable as exc:
                log.info("no block list for %s from %s: %s", rec.path, peer.name, exc)
                last = exc
                continue
            try:
                channel.set_timeout(max(self.timeout, LIST_TIMEOUT))
                reply = expect(channel.exchange(ask), BlocksData)
                channel.set_timeout(self.timeout)
            except (OSError, PeerUnreachable, RemoteError, RemoteProtocolError) as exc:
                self.receiver.release(channel)
                log.info("no block list for %s from %s: %s", rec.path, peer.name, exc)
                last = exc if not isinstance(exc, OSError) else TransferAborted(str(exc))
                continue
            if (reply.sha256, reply.size, reply.block_size) == (
                rec.sha256,
                rec.size,
                block_size,
            ) and len(reply.hashes) == count * DIGEST:
                held = None if reply.have is None else have_set(reply.have, count)
                return reply.hashes, peer.name, Listed(channel, held)
            self.receiver.release(channel)
            log.warning("%s sent a block list of the wrong shape for %s", peer.name, rec.path)
        raise last
