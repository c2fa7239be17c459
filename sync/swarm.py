"""Multi-source block downloads: one worker thread per holder, each taking the next missing block.

The asyncio side (`Swarm.fetch`) gets the block list (BLOCKS) from the first holder that
answers, opens or resumes the partial file, and runs one worker per holder in a thread pool.
A worker keeps one connection and up to `PIPELINE` FILE range requests in flight; it asks the
shared `BlockPlan` for its next run of blocks, so faster holders serve more of them. With
several holders every block is hashed in the worker and written with `pwrite` only when it
matches; a holder that sends a bad block is dropped for this file (and avoided for it in later
rounds). With one holder there is nobody to blame but it, so blocks are only checked as part
of the whole-file hash (a resume still re-checks each kept block). A holder that vanishes
gives its blocks back to the others. Local trouble (disk full) stops every worker and removes the
partial file; anything else leaves the partial file for the next round to resume.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from ring.errors import PeerUnreachable, RemoteError, RemoteProtocolError, RingError
from ring.wire import encode, expect, request
from sync.blocks import BLOCK_SIZE, DIGEST, BlockCache, BlockPlan, block_count, block_range
from sync.errors import HashMismatch, SyncError, TransferAborted
from sync.manifest import FileRecord, Peer
from sync.messages import BlocksData, BlocksRequest, FileData, FileRequest
from sync.resume import LocalDiskError, Partial
from sync.tracker import Transfer, Transfers
from sync.transfer import Receiver, read_reply, recv_body

log = logging.getLogger(__name__)

MAX_SOURCES = 4
"""Holders one download uses at once."""


PIPELINE = 2
"""FILE range requests a worker keeps in flight (hides the round trip between requests)."""

MAX_RUN = 16
"""Most consecutive blocks in one FILE range request (64 MiB): few requests while much is left,
single blocks near the end, where work stealing matters."""

LIST_TIMEOUT = 60.0
"""A holder hashes the whole file before its first BLOCKS answer; give it time."""


class _Run:
    """What the workers of one download share; every field but the counters under `cond`."""

    def __init__(self, rec: FileRecord, plan: BlockPlan, partial: Partial, transfer: Transfer):
        self.rec, self.plan, self.partial, self.transfer = rec, plan, partial, transfer
        self.cond = threading.Condition()
        self.stop = False
        self.workers = 1
        self.check_blocks = True
        self.abort: LocalDiskError | None = None


class _Storer:
    """Stores a worker's blocks in the background while it receives the next (two buffers), so
    receiving and writing-plus-hashing overlap instead of taking turns."""

    def __init__(self, pool: ThreadPoolExecutor, run: _Run, name: str) -> None:
        self.pool, self.run, self.name = pool, run, name
        self.buffers = [memoryview(bytearray(BLOCK_SIZE)) for _ in range(2)]
        self.turn = 0
        self.pending: Future[None] | None = None

    def buffer(self) -> memoryview:
        """The buffer to receive the next block into (not being written)."""
        return self.buffers[self.turn]

    def store(self, index: int, view: memoryview) -> None:
        """Write `view` (in `buffer()`) as block `index` once the previous block is written."""
        self.wait()
        self.pending = self.pool.submit(self._write, index, view)
        self.turn ^= 1

    def wait(self) -> None:
        """Wait for the block being written.

        Raises:
            LocalDiskError: it could not be written.
        """
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.result()

    def _write(self, index: int, view: memoryview) -> None:
        run = self.run
        try:
            if not run.partial.write(index, view):
                run.transfer.add(-len(view))
        except BaseException:
            with run.cond:
                run.plan.release(index, self.name)
                run.cond.notify_all()
            raise
        with run.cond:
            run.plan.done(index, self.name, len(view))
            run.cond.notify_all()


class Swarm:
    """Runs block downloads for one node; `close` via the receiver cuts their sockets."""

    def __init__(
        self,
        receiver: Receiver,
        folder: Path,
        cache: BlockCache,
        transfers: Transfers,
        threads: int,
        timeout: float,
    ) -> None:
        self.receiver, self.folder, self.cache = receiver, folder, cache
        self.transfers = transfers
        self.timeout = timeout
        self.avoid: dict[str, set[str]] = {}
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="sync-block")
        self._writers = ThreadPoolExecutor(threads, thread_name_prefix="sync-block-write")

    def close(self) -> None:
        """No new workers; running ones end when the receiver cuts their sockets."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._writers.shutdown(wait=False, cancel_futures=True)

    async def fetch(self, rec: FileRecord, holders: list[Peer]) -> tuple[Path, dict[str, int]]:
        """Download `rec` from several holders at once into a verified file.

        Returns:
            The data file (fsynced, mtime set) to rename into place, and bytes per holder.

        Raises:
            LocalDiskError: this node cannot store it (the partial file is gone).
            TransferAborted, HashMismatch, PeerUnreachable, RemoteError: try again later
                (verified blocks are kept for the next try, unless the whole file was wrong).
        """
        avoid = self.avoid.get(rec.sha256, set())
        trusted = [p for p in holders if p.name not in avoid][:MAX_SOURCES]
        if not trusted:  # every holder failed us once: give them all another chance
            self.avoid.pop(rec.sha256, None)
            trusted = holders[:MAX_SOURCES]
        holders = trusted
        hashes, lister = await self._block_list(rec, holders)
        partial = Partial(self.folder, rec.sha256, rec.size, BLOCK_SIZE, hashes)
        loop = asyncio.get_running_loop()
        verified = await loop.run_in_executor(self._pool, partial.open)
        transfer = self.transfers.begin(rec.owner, rec.path, rec.size)
        transfer.sources = tuple(p.name for p in holders)
        transfer.resumed = transfer.done = sum(
            block_range(i, rec.size, BLOCK_SIZE)[1] for i in verified
        )
        run = _Run(rec, BlockPlan(partial.count, verified), partial, transfer)
        ok = False
        try:
            await self._run_workers(run, holders)
            self._conclude(run, lister)
            path = await loop.run_in_executor(self._pool, partial.finish, rec.mtime_ns)
            ok = True
            self.cache.put(rec.sha256, BLOCK_SIZE, hashes)
            self.avoid.pop(rec.sha256, None)
            return path, dict(run.plan.served)
        finally:
            self.transfers.end(transfer, ok)

    async def _run_workers(self, run: _Run, holders: list[Peer]) -> None:
        loop = asyncio.get_running_loop()
        run.workers = len(holders)
        run.check_blocks = len(holders) > 1
        workers = [
            loop.run_in_executor(self._pool, self._work, peer, run)
            for peer in holders
            if not run.plan.complete
        ]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            with run.cond:
                run.stop = True
                run.cond.notify_all()
            await asyncio.wait(workers)
            run.partial.close()
            raise

    def _conclude(self, run: _Run, lister: str) -> None:
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
        if not partial.whole_ok:
            partial.discard()
            self.avoid.setdefault(rec.sha256, set()).add(lister)
            raise HashMismatch(f"{rec.owner}/{rec.path}: the block list from {lister} was wrong")

    async def _block_list(self, rec: FileRecord, holders: list[Peer]) -> tuple[bytes, str]:
        """The block hashes from the first holder that gives a list of the right shape."""
        last: Exception = TransferAborted("no holder")
        ask = BlocksRequest(rec.sha256, rec.owner, rec.path, BLOCK_SIZE)
        for peer in holders:
            try:
                reply = expect(
                    await request(peer.host, peer.port, ask, max(self.timeout, LIST_TIMEOUT)),
                    BlocksData,
                )
            except (PeerUnreachable, RemoteError, RemoteProtocolError) as exc:
                log.info("no block list for %s from %s: %s", rec.path, peer.name, exc)
                last = exc
                continue
            count = block_count(rec.size, BLOCK_SIZE)
            if (reply.sha256, reply.size, reply.block_size) == (
                rec.sha256,
                rec.size,
                BLOCK_SIZE,
            ) and len(reply.hashes) == count * DIGEST:
                return reply.hashes, peer.name
            log.warning("%s sent a block list of the wrong shape for %s", peer.name, rec.path)
        raise last

    def _work(self, peer: Peer, run: _Run) -> None:
        """One holder's connection: claim, request, receive, verify, write; until none left."""
        name = peer.name
        inflight: deque[list[int]] = deque()
        storer = _Storer(self._writers, run, name)
        try:
            sock = self.receiver.connect(peer)
        except PeerUnreachable as exc:
            log.info("holder %s unreachable for %s: %s", name, run.rec.path, exc)
            return
        try:
            while not run.stop:
                self._request_more(sock, name, run, inflight)
                if not inflight:
                    return
                if not self._receive(sock, name, run, inflight[0], storer):
                    return
                inflight.popleft()
            storer.wait()
        except LocalDiskError as exc:
            with run.cond:
                run.abort, run.stop = exc, True
                run.cond.notify_all()
        except (OSError, RingError, SyncError) as exc:
            log.info("holder %s stopped serving %s: %s", name, run.rec.path, exc or type(exc))
        finally:
            try:
                storer.wait()
            except LocalDiskError as exc:
                with run.cond:
                    run.abort, run.stop = exc, True
            with run.cond:
                for blocks in inflight:
                    for index in blocks:
                        run.plan.release(index, name)
                run.cond.notify_all()
            self.receiver.release(sock)

    def _request_more(
        self, sock: socket.socket, name: str, run: _Run, inflight: deque[list[int]]
    ) -> None:
        """Top up this connection's pipeline; with nothing to claim and nothing in flight, wait
        while other holders still have blocks out (one may fail and give them back)."""
        rec = run.rec
        while len(inflight) < PIPELINE:
            with run.cond:
                blocks = run.plan.claim_run(name, run.workers, MAX_RUN)
                while not blocks and not inflight and not run.stop and run.plan.busy():
                    run.cond.wait(0.5)
                    blocks = run.plan.claim_run(name, run.workers, MAX_RUN)
            if not blocks:
                return
            offset = block_range(blocks[0], rec.size, BLOCK_SIZE)[0]
            end = sum(block_range(blocks[-1], rec.size, BLOCK_SIZE))
            ask = FileRequest(rec.sha256, rec.owner, rec.path, offset, end - offset)
            sock.sendall(encode(ask))
            inflight.append(blocks)

    def _receive(
        self, sock: socket.socket, name: str, run: _Run, blocks: list[int], storer: _Storer
    ) -> bool:
        """Read the reply to one range request, block by block (each one leaves `blocks` once
        stored); False when this holder must stop (it sent a bad block)."""
        rec = run.rec
        offset = block_range(blocks[0], rec.size, BLOCK_SIZE)[0]
        size = sum(block_range(blocks[-1], rec.size, BLOCK_SIZE)) - offset
        header = read_reply(sock)
        if not isinstance(header, FileData) or (header.offset, header.size) != (offset, size):
            raise TransferAborted(f"{name} answered blocks {blocks[0]}.. with the wrong range")
        while blocks:
            if not self._block(sock, name, run, blocks[0], storer):
                return False
            blocks.pop(0)
        return True

    def _block(
        self, sock: socket.socket, name: str, run: _Run, index: int, storer: _Storer
    ) -> bool:
        """Receive and check one block of a range reply, and have it stored."""
        rec = run.rec
        length = block_range(index, rec.size, BLOCK_SIZE)[1]
        view = storer.buffer()[:length]
        recv_body(sock, view, run.transfer.add)
        if run.check_blocks and hashlib.sha256(view).digest() != run.partial.expected(index):
            run.transfer.add(-length)
            with run.cond:
                run.plan.failed(index, name)
                run.cond.notify_all()
            return False
        storer.store(index, view)
        return True
