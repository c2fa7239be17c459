"""One holder's side of a block download: a connection, a pipeline of range requests, and a
background writer, run in a worker thread.

Each `HolderWorker` asks the shared `BlockPlan` (under the download's condition) for its next
run of blocks, sends a FILE range request for it, and keeps up to `PIPELINE` requests in flight.
It receives each block into one of two buffers and hands it to `_Storer`, which writes it (and
feeds the whole-file hash) while the next block arrives. When blocks are checked, a block that
fails its hash ends this holder's part in the download; a holder that vanishes gives back what
it had claimed. Local trouble (a full disk) stops every worker of the download. Once every
block is in, the download cuts every worker's connection at once: a slow holder's replies
still on the way are not worth waiting for (its server sees the peer close, and carries on).
A worker whose holder has no measured rate yet keeps one single-block request out (a probe),
so a slow holder is found out before it is handed a run.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from ring.errors import PeerUnreachable, RingError
from ring.wire import Channel
from sync.blocks import BLOCK_SIZE, BlockPlan, block_range
from sync.errors import SyncError, TransferAborted
from sync.manifest import FileRecord, Peer
from sync.messages import BlocksData, BlocksRequest, FileData, FileRequest
from sync.resume import LocalDiskError, Partial, have_set
from sync.tracker import Transfer
from sync.transfer import Receiver, recv_body

log = logging.getLogger(__name__)

PIPELINE = 2
"""FILE range requests a worker keeps in flight (hides the round trip between requests)."""

PARTIAL_POLL = 0.2
"""Seconds between two asks of a partial holder that had nothing new for us."""

MAX_RUN = 16
"""Most consecutive blocks in one FILE range request (64 MiB): few requests while much is left,
single blocks near the end, where work stealing matters."""


@dataclass
class Listed:
    """A holder that already answered BLOCKS: the connection it answered on, kept for its
    worker, and the blocks it holds (None: all of them)."""

    channel: Channel
    have: set[int] | None


class Download:
    """What the workers of one download share; every field but the counters under `cond`."""

    def __init__(self, rec: FileRecord, plan: BlockPlan, partial: Partial, transfer: Transfer):
        self.rec, self.plan, self.partial, self.transfer = rec, plan, partial, transfer
        self.cond = threading.Condition()
        self.stop = False
        self.workers = 1
        self.check_blocks = True
        self.abort: LocalDiskError | None = None
        self.channels: dict[str, Channel] = {}
        """Each worker's connection, to cut them all once the plan is complete."""

    def finished(self) -> None:
        """Every block is in: stop every worker now, cutting what is still on the way.

        Call under `cond`.
        """
        self.stop = True
        for channel in self.channels.values():
            channel.shutdown()
        self.cond.notify_all()


class _Storer:
    """Stores a worker's blocks in the background while it receives the next (two buffers), so
    receiving and writing-plus-hashing overlap instead of taking turns."""

    def __init__(self, pool: ThreadPoolExecutor, run: Download, name: str) -> None:
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
        try:
            self.pending = self.pool.submit(self._write, index, view)
        except RuntimeError:  # the pool is shut down: the engine is stopping
            raise TransferAborted("sync engine stopped") from None
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
            if run.plan.complete:
                run.finished()
            run.cond.notify_all()


class HolderWorker:
    """Fetches blocks of one download from one holder until none is left for it."""

    def __init__(
        self,
        peer: Peer,
        run: Download,
        receiver: Receiver,
        writers: ThreadPoolExecutor,
        listed: Listed | None = None,
    ) -> None:
        """`listed`: the connection on which this holder already gave its BLOCKS answer."""
        self.peer, self.download, self.receiver, self.writers = peer, run, receiver, writers
        self.listed = listed

    def run(self) -> None:
        """Claim, request, receive, check, store; until nothing is left for this holder."""
        peer, run = self.peer, self.download
        name = peer.name
        inflight: deque[list[int]] = deque()
        storer = _Storer(self.writers, run, name)
        try:
            channel = self.receiver.connect(peer) if self.listed is None else self.listed.channel
        except PeerUnreachable as exc:
            log.info("holder %s unreachable for %s: %s", name, run.rec.path, exc)
            return
        with run.cond:
            run.channels[name] = channel
            if run.stop:
                channel.shutdown()
        try:
            allowed = self.listed.have if self.listed is not None else self._holds(channel)
            while not run.stop:
                self._request_more(channel, name, run, inflight, allowed)
                if not inflight:
                    if allowed is None or not self._more_later(run):
                        return
                    allowed = self._holds(channel)
                    continue
                if not self._receive(channel, name, run, inflight[0], storer):
                    return
                inflight.popleft()
            storer.wait()
        except LocalDiskError as exc:
            with run.cond:
                run.abort, run.stop = exc, True
                run.cond.notify_all()
        except (OSError, RingError, SyncError) as exc:
            if not run.plan.complete:
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
                run.channels.pop(name, None)
                run.cond.notify_all()
            self.receiver.release(channel)

    def _holds(self, channel: Channel) -> set[int] | None:
        """Ask the holder (BLOCKS) which blocks it has: None for all, else those it stored so
        far (it is downloading the file too).

        Raises:
            RemoteError: it has none of it (`not_found`); TransferAborted: its list differs.
        """
        run = self.download
        rec = run.rec
        reply = channel.exchange(BlocksRequest(rec.sha256, rec.owner, rec.path, BLOCK_SIZE))
        if not isinstance(reply, BlocksData) or reply.hashes != run.partial.hashes:
            raise TransferAborted(f"{self.peer.name} has another block list for {rec.path}")
        if reply.have is None:
            return None
        held = have_set(reply.have, run.partial.count)
        with run.cond:
            run.plan.elsewhere |= held
        return held

    def _more_later(self, run: Download) -> bool:
        """Wait a little for a partial holder to store more blocks; False once we are done."""
        with run.cond:
            if run.plan.complete or run.stop:
                return False
            run.cond.wait(PARTIAL_POLL)
            return not (run.plan.complete or run.stop)

    def _request_more(
        self,
        channel: Channel,
        name: str,
        run: Download,
        inflight: deque[list[int]],
        allowed: set[int] | None,
    ) -> None:
        """Top up this connection's pipeline; with nothing to claim and nothing in flight, a
        full holder waits while others still have blocks out (one may fail and give them
        back); a partial holder returns at once, to ask again what it has."""
        rec = run.rec
        # a full holder with partial holders beside it keeps one request out, not two: its
        # uplink then carries blocks nobody else has rather than a queue of those others have
        measured = name in run.plan.rates
        depth = PIPELINE if measured and (allowed is not None or not run.plan.elsewhere) else 1
        most = MAX_RUN if measured else 1
        while len(inflight) < depth:
            with run.cond:
                blocks = run.plan.claim_run(name, run.workers, most, allowed)
                while (
                    not blocks
                    and allowed is None
                    and not inflight
                    and not run.stop
                    and run.plan.busy()
                ):
                    run.cond.wait(0.5)
                    blocks = run.plan.claim_run(name, run.workers, most)
            if not blocks:
                return
            offset = block_range(blocks[0], rec.size, BLOCK_SIZE)[0]
            end = sum(block_range(blocks[-1], rec.size, BLOCK_SIZE))
            ask = FileRequest(rec.sha256, rec.owner, rec.path, offset, end - offset)
            channel.send(ask)
            inflight.append(blocks)

    def _receive(
        self, channel: Channel, name: str, run: Download, blocks: list[int], storer: _Storer
    ) -> bool:
        """Read the reply to one range request, block by block (each one leaves `blocks` once
        stored); False when this holder must stop (it sent a bad block)."""
        rec = run.rec
        offset = block_range(blocks[0], rec.size, BLOCK_SIZE)[0]
        size = sum(block_range(blocks[-1], rec.size, BLOCK_SIZE)) - offset
        header = channel.read()
        if not isinstance(header, FileData) or (header.offset, header.size) != (offset, size):
            raise TransferAborted(f"{name} answered blocks {blocks[0]}.. with the wrong range")
        while blocks:
            if not self._block(channel, name, run, blocks[0], storer):
                return False
            blocks.pop(0)
        return True

    def _block(
        self, channel: Channel, name: str, run: Download, index: int, storer: _Storer
    ) -> bool:
        """Receive and check one block of a range reply, and have it stored."""
        rec = run.rec
        length = block_range(index, rec.size, BLOCK_SIZE)[1]
        view = storer.buffer()[:length]
        started = time.monotonic()
        recv_body(channel, view, run.transfer.add)
        with run.cond:
            run.plan.measured(name, length, time.monotonic() - started)
        if run.check_blocks and hashlib.sha256(view).digest() != run.partial.expected(index):
            run.transfer.add(-length)
            with run.cond:
                run.plan.failed(index, name)
                run.cond.notify_all()
            return False
        storer.store(index, view)
        return True
