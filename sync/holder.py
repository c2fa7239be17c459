"""One holder's side of a block download: a connection, a pipeline of range requests, and a
background writer, run in a worker thread.

Each `HolderWorker` asks the shared `BlockPlan` (under the download's condition) for its next
run of blocks, sends a FILE range request for it, and keeps up to `PIPELINE` requests in flight.
A run is sized in bytes (up to `MAX_RUN_BYTES`), not in blocks, so small blocks cost no more
requests than large ones. The worker receives a run a few blocks at a time (`RECEIVE` bytes)
into one of two buffers and hands them to `_Storer`, which checks every block's hash and writes
the good ones (the whole-file hash follows in a thread of its own, `resume.Partial`) while the
next ones arrive: receiving, checking and writing overlap instead of taking turns. The first
block that fails its hash ends this holder's part in the download, whoever else serves it; a
holder that vanishes gives back what it had claimed. Local trouble (a full disk) stops every
worker of the download. Once every block is in, the download cuts every worker's connection at
once: a slow holder's replies still on the way are not worth waiting for (its server sees the
peer close, and carries on).
A worker whose holder has no measured rate yet keeps one request of `LEAST_RUN_BYTES` out (a
probe), so a slow holder is found out before it is handed a longer run. A holder that is
downloading the file too (a partial holder) is asked BLOCKS again every `PARTIAL_POLL` seconds
on the same connection, between range requests: the plan then knows what it has and is
fetching, and the full holders' workers leave those blocks to it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import deque
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass

from ring.errors import PeerUnreachable, RingError
from ring.wire import Channel, Message
from sync.blocks import BlockPlan, block_range
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
"""Seconds between two asks of a partial holder which blocks it has: while it has nothing new
for us, and while we fetch from it (the ask rides the same pipeline), so the full holders'
workers know what they may leave to it."""

VISIBLE = 0.25
"""Blocks received are checked and stored at least this often (seconds, at the holder's
measured rate; whole blocks, one at least): what is stored is what this node can pass on to
others fetching the same file, so on a slow link it should not wait for a whole buffer."""

SWARM_RUN = 1.0
"""Seconds of blocks (at its measured rate) a full holder is asked for at once while partial
holders serve the download too: short runs, so receivers fetching from it learn of each
other's new blocks before they ask it for the same ones."""

MAX_RUN_BYTES = 64 * 1024 * 1024
"""Most bytes in one FILE range request (whole blocks, one block at least): few requests while
much is left, single blocks near the end, where work stealing matters."""

LEAST_RUN_BYTES = 4 * 1024 * 1024
"""Fewest bytes in a range request while that many are free in a row (whole blocks), and the
size of a probe: small blocks do not make the end of a download a string of tiny requests,
each a round trip."""

ENDGAME_BYTES = 16 * 1024 * 1024
"""Blocks in flight elsewhere are fetched twice only when this few bytes are missing (and at
least `blocks.ENDGAME_BLOCKS` blocks' worth)."""

STORING = 2
"""Buffers of one worker checked and written at once, beside the one it receives into."""

RECEIVE = 4 * 1024 * 1024
"""Bytes of a range reply received before they go to be checked and written (whole blocks, one
block at least)."""


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
        self.abort: LocalDiskError | None = None
        self.channels: dict[str, Channel] = {}
        """Each worker's connection, to cut them all once the plan is complete."""

    def in_flight(self) -> set[int]:
        """The blocks the workers are fetching now (asked from the event loop by the server)."""
        with self.cond:
            return self.plan.in_flight()

    def finished(self) -> None:
        """Every block is in: stop every worker now, cutting what is still on the way.

        Call under `cond`.
        """
        self.stop = True
        for channel in self.channels.values():
            channel.shutdown()
        self.cond.notify_all()


class _Storer:
    """Checks and stores a worker's blocks in the background while it receives the next, up to
    `STORING` buffers at once (each checked and written in a thread of its own), so receiving,
    hashing and writing overlap instead of taking turns."""

    def __init__(self, pool: ThreadPoolExecutor, run: Download, name: str) -> None:
        self.pool, self.run, self.name = pool, run, name
        block_size = run.partial.block_size
        size = max(block_size, RECEIVE // block_size * block_size)
        self.buffers = [memoryview(bytearray(size)) for _ in range(STORING + 1)]
        self.turn = 0
        self.pending: deque[Future[None]] = deque()
        self.bad = False
        """A block failed its hash: this holder is done (set by a writing thread)."""

    def buffer(self) -> memoryview:
        """The buffer to receive the next blocks into (not being written)."""
        return self.buffers[self.turn]

    def store(self, first: int, count: int, view: memoryview) -> bool:
        """Check and write `count` blocks from `first` (in `view`, in `buffer()`) once a
        buffer is free; False, storing nothing, when blocks stored before held a bad one.

        Raises:
            LocalDiskError: blocks stored before could not be written.
        """
        while len(self.pending) >= STORING:
            self._result(self.pending.popleft())
        if self.bad:
            return False
        try:
            self.pending.append(self.pool.submit(self._write, first, count, view))
        except RuntimeError:  # the pool is shut down: the engine is stopping
            raise TransferAborted("sync engine stopped") from None
        self.turn = (self.turn + 1) % len(self.buffers)
        return True

    def wait(self) -> bool:
        """Wait for every block being written; False when one of them was bad.

        Raises:
            LocalDiskError: they could not be written.
        """
        first: BaseException | None = None
        while self.pending:  # every one, even after a failure: no write outlives the worker
            try:
                self._result(self.pending.popleft())
            except BaseException as exc:
                first = first or exc
        if first is not None:
            raise first
        return not self.bad

    @staticmethod
    def _result(pending: Future[None]) -> None:
        """Wait for one store (one the engine's stop cancelled reads as TransferAborted)."""
        try:
            pending.result()
        except CancelledError:
            raise TransferAborted("sync engine stopped") from None

    def _write(self, first: int, count: int, view: memoryview) -> None:
        run, name = self.run, self.name
        partial = run.partial
        block_size = partial.block_size
        good = 0
        while good < count:
            piece = view[good * block_size : (good + 1) * block_size]
            if hashlib.sha256(piece).digest() != partial.expected(first + good):
                break
            good += 1
        stored = view[: good * block_size]
        try:
            fresh = partial.write(first, stored) if good else 0
        except BaseException:
            with run.cond:
                for index in range(first, first + count):
                    run.plan.release(index, name)
                run.cond.notify_all()
            raise
        run.transfer.add(fresh - len(view))
        with run.cond:
            for index in range(first, first + good):
                run.plan.done(index, name, block_range(index, partial.size, block_size)[1])
            if good < count:
                self.bad = True
                run.plan.failed(first + good, name)
                for index in range(first + good + 1, first + count):
                    run.plan.release(index, name)
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
        inflight: deque[list[int] | None] = deque()
        """Range requests in flight, in order; None: a BLOCKS ask (to a partial holder)."""
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
            if self.listed is not None:
                allowed = self.listed.have
                if allowed is not None:
                    with run.cond:
                        run.plan.holds(name, allowed)
            else:
                allowed = self._holds(channel.exchange(self._blocks_ask(False)))
            asked = time.monotonic()
            while not run.stop:
                if not storer.wait():  # the last blocks held a bad one: ask for nothing more
                    return
                self._request_more(channel, name, run, inflight, allowed)
                if not inflight:
                    if allowed is None or not self._more_later(run):
                        return
                    allowed = self._holds(channel.exchange(self._blocks_ask(True)))
                    asked = time.monotonic()
                    continue
                if (
                    allowed is not None
                    and None not in inflight
                    and time.monotonic() - asked >= PARTIAL_POLL
                ):
                    channel.send(self._blocks_ask(True))
                    inflight.append(None)
                    asked = time.monotonic()
                head = inflight[0]
                if head is None:
                    allowed = self._holds(channel.read())
                elif not self._receive(channel, name, run, head, storer):
                    return
                inflight.popleft()
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
            except SyncError:
                pass  # the engine is stopping
            with run.cond:
                for blocks in inflight:
                    for index in blocks or ():
                        run.plan.release(index, name)
                run.plan.gone(name)
                run.channels.pop(name, None)
                run.cond.notify_all()
            self.receiver.release(channel)

    def _blocks_ask(self, again: bool) -> BlocksRequest:
        """The BLOCKS request that asks this holder which blocks of the file it has; `again`:
        its list was checked already, so its answer need not carry it (`have_only`)."""
        rec = self.download.rec
        block_size = self.download.partial.block_size
        return BlocksRequest(rec.sha256, rec.owner, rec.path, block_size, again)

    def _holds(self, reply: Message) -> set[int] | None:
        """The holder's answer to `_blocks_ask`: None for all blocks, else those it stored so
        far (it is downloading the file too), which the plan then leaves to it.

        Raises:
            TransferAborted: its list differs (or it answered something else).
        """
        run = self.download
        if not isinstance(reply, BlocksData) or reply.hashes not in (b"", run.partial.hashes):
            raise TransferAborted(f"{self.peer.name} has another block list for {run.rec.path}")
        if reply.have is None:  # it has the whole file now
            with run.cond:
                run.plan.gone(self.peer.name)
            return None
        count = run.partial.count
        held = have_set(reply.have, count)
        coming = have_set(reply.coming, count) if reply.coming is not None else None
        with run.cond:
            run.plan.holds(self.peer.name, held, coming)
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
        inflight: deque[list[int] | None],
        allowed: set[int] | None,
    ) -> None:
        """Top up this connection's pipeline; with nothing to claim and nothing in flight, a
        full holder waits while others still have blocks out (one may fail and give them
        back); a partial holder returns at once, to ask again what it has."""
        rec = run.rec
        # a full holder with partial holders beside it keeps one request out, not two: its
        # uplink then carries blocks nobody else has rather than a queue of those others have
        measured = name in run.plan.rates
        with run.cond:  # reading `elsewhere` may recount it from what other workers wrote
            beside = allowed is None and bool(run.plan.elsewhere)
        depth = PIPELINE if measured and not beside else 1
        block_size = run.partial.block_size
        least = max(1, LEAST_RUN_BYTES // block_size)
        most = max(least, MAX_RUN_BYTES // block_size) if measured else least
        if beside and measured:
            least = 1
            most = max(1, min(most, int(run.plan.rates[name] * SWARM_RUN) // block_size))
        while len(inflight) < depth:
            with run.cond:
                blocks = run.plan.claim_run(name, run.workers, most, allowed, least)
                while (
                    not blocks
                    and allowed is None
                    and not inflight
                    and not run.stop
                    and (run.plan.busy() or run.plan.left_to_partials())
                ):
                    run.cond.wait(0.5)
                    blocks = run.plan.claim_run(name, run.workers, most, least=least)
            if not blocks:
                return
            offset = block_range(blocks[0], rec.size, block_size)[0]
            end = sum(block_range(blocks[-1], rec.size, block_size))
            ask = FileRequest(rec.sha256, rec.owner, rec.path, offset, end - offset)
            channel.send(ask)
            inflight.append(blocks)

    def _receive(
        self, channel: Channel, name: str, run: Download, blocks: list[int], storer: _Storer
    ) -> bool:
        """Read the reply to one range request, a buffer of blocks at a time (they leave
        `blocks` as they go to be stored); False when this holder must stop (it sent a bad
        block)."""
        rec = run.rec
        block_size = run.partial.block_size
        offset = block_range(blocks[0], rec.size, block_size)[0]
        size = sum(block_range(blocks[-1], rec.size, block_size)) - offset
        header = channel.read()
        if not isinstance(header, FileData) or (header.offset, header.size) != (offset, size):
            raise TransferAborted(f"{name} answered blocks {blocks[0]}.. with the wrong range")
        per_buffer = len(storer.buffer()) // block_size
        rate = run.plan.rates.get(name)
        if rate is not None:
            per_buffer = max(1, min(per_buffer, int(rate * VISIBLE) // block_size))
        while blocks:
            count = min(per_buffer, len(blocks))
            start = block_range(blocks[0], rec.size, block_size)[0]
            length = sum(block_range(blocks[count - 1], rec.size, block_size)) - start
            view = storer.buffer()[:length]
            started = time.monotonic()
            recv_body(channel, view, run.transfer.add)
            with run.cond:
                run.plan.measured(name, length, time.monotonic() - started)
            if not storer.store(blocks[0], count, view):
                return False
            del blocks[:count]
        return True
