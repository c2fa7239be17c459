"""Fetching: downloads of replica files over the network, in batches, singly or in blocks.

`Fetcher.download` is handed the records a pass could not meet locally. It asks the DHT who
holds each content (`locate_many`, all of a pass's contents in one batched lookup; else
`locate`, one lookup each) and has `rank` order the sources. A busy index is not waited for:
after `LOCATE_WAIT` the pass fetches from the ring's own sources (the previous node, the
owner), and only what those cannot serve is looked up again. Small files go in
BATCH requests per first source, larger ones one FILE each, and files over a block in blocks
from several sources at once (`swarm.py`), at most `concurrency` transfers in flight. One content
wanted at several paths travels once: the other paths are local copies. Block downloads of one
content run one at a time, even from different passes, as they share its partial file; while
one runs, this node is a partial holder of that content (`Fetching`), and the download looks
for more holders when it has a seat free (`locate` again). What a download brings is installed
by `replica.py`; a failed need is retried by a later pass.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Protocol

from ring.errors import PeerUnreachable, RemoteError, RemoteProtocolError
from sync.blocks import LARGE_FILE
from sync.errors import SyncError
from sync.holdings import Fetching
from sync.manifest import FileRecord, Peer
from sync.messages import BATCH_MAX_BYTES, BATCH_MAX_FILES, SMALL_FILE
from sync.replica import Replicas, guarded
from sync.resume import PARTIAL_DIR, LocalDiskError, prune_partials
from sync.reuse import Reuser
from sync.serve import Server
from sync.sources import RoundTrips, rank
from sync.swarm import MAX_SEATS, Swarm
from sync.tracker import Transfers
from sync.transfer import Receiver

log = logging.getLogger(__name__)

FETCH_ERRORS = (PeerUnreachable, RemoteError, RemoteProtocolError, SyncError)
LOCATE_CONCURRENCY = 16
"""Holder lookups in flight at once (a DHT lookup is a few UDP round trips)."""

LOCATE_WAIT = 0.25
"""Seconds a pass waits for the index before it fetches from the ring's own sources (the
previous node, the owner). A quiet index answers in milliseconds, and the holders it names
spread the load; a busy one answered 1,000 contents in 0.2-2.1 s (8 nodes taking them in on
2 cores), and every download of the pass waited for it, a 256 MiB file too. A lookup that
late is dropped (its answer would mostly come after the files); what the ring's sources cannot
serve is looked up again, alone (`Fetcher._from_index`)."""

Planned = tuple[FileRecord, list[Peer]]
"""A record and its sources, nearest first."""
Job = tuple[Callable[[], Awaitable[int]], list[Planned]]
"""A fetch to start, and the records it is for (how many of them landed is its result). It is
started inside the task that runs it: a pass cancelled before then leaves no coroutine behind
that was never awaited."""


class Locate(Protocol):
    """ "Who holds hash H?", in any order (`rank` orders them); the DHT implements it."""

    async def __call__(self, sha256_hex: str) -> list[Peer]: ...


class LocateMany(Protocol):
    """ "Who holds each of these hashes?" in one batched lookup: `Locate` for many at once."""

    async def __call__(self, hashes: list[str]) -> dict[str, list[Peer]]: ...


class Fetcher:
    """Downloads for one node; the passes of `apply.py` hand it what they cannot meet locally."""

    def __init__(
        self,
        root: Path,
        name: str,
        receiver: Receiver,
        server: Server,
        replicas: Replicas,
        concurrency: int,
        locate: Locate | None,
        on_rtt: Callable[[str, float], None],
        round_trips: RoundTrips,
        locate_many: LocateMany | None = None,
        fetching: Fetching | None = None,
    ) -> None:
        self.root, self.name, self.receiver, self.replicas = root, name, receiver, replicas
        self.locate, self.on_rtt, self.round_trips = locate, on_rtt, round_trips
        self.locate_many = locate_many
        self.fetching = fetching or Fetching()
        self.prev_holds: dict[tuple[str, str], tuple[int, bool]] = {}
        """(owner, path) -> (seq, held) as the previous node's manifest last said."""
        self.transfers = Transfers()
        self.reuse = Reuser(root, server.state)
        self.swarm = Swarm(
            name,
            receiver,
            root / PARTIAL_DIR,
            self.reuse,
            server.partials,
            self.transfers,
            concurrency * MAX_SEATS,
            receiver.timeout,
            self.fetching.tell,
            self._relocate,
        )
        self._slots = asyncio.Semaphore(concurrency)
        self._contents: dict[str, asyncio.Lock] = {}
        self._users: Counter[str] = Counter()

    async def prune(self, wanted: set[str]) -> None:
        """Remove partial downloads of content neither in `wanted` nor being fetched now."""
        keep = wanted | set(self.swarm.partials)
        await asyncio.to_thread(prune_partials, self.root / PARTIAL_DIR, keep)

    def _sources(
        self, rec: FileRecord, prev: Peer | None, peers: dict[str, Peer], located: list[Peer]
    ) -> list[Peer]:
        """The sources of `rec`, in order: `located`, prev, owner (see `rank`)."""
        seq_held = self.prev_holds.get((rec.owner, rec.path))
        prev_holds = seq_held is not None and seq_held == (rec.seq, True)
        owner = peers.get(rec.owner)
        return rank(located, prev, prev_holds, owner, self.name, self.round_trips)

    async def _locate_all(self, recs: list[FileRecord]) -> dict[str, list[Peer]]:
        """The holders of every content of `recs`: one batched lookup (`locate_many`), else one
        lookup each; a content whose lookup failed is left out."""
        hashes = sorted({rec.sha256 for rec in recs})
        if self.locate_many is not None:
            try:
                return await self.locate_many(hashes)
            except Exception as exc:  # the locator is pluggable; its failure must not stop sync
                log.info("locating %d contents failed: %s", len(hashes), exc)
                return {}
        locate, lookups = self.locate, asyncio.Semaphore(LOCATE_CONCURRENCY)
        if locate is None:
            return {}

        async def one(sha256_hex: str) -> tuple[str, list[Peer]]:
            async with lookups:
                try:
                    return sha256_hex, await locate(sha256_hex)
                except Exception as exc:  # as above
                    log.info("locating %s failed: %s", sha256_hex[:12], exc)
                    return sha256_hex, []

        return dict(await asyncio.gather(*(one(sha) for sha in hashes)))

    async def _relocate(self, sha256_hex: str) -> list[Peer]:
        """Who holds `sha256_hex` now, full holders first (a running download's new seats)."""
        if self.locate is None:
            return []
        return sorted(await self.locate(sha256_hex), key=lambda peer: peer.fetching)

    async def download(
        self,
        recs: list[FileRecord],
        prev: Peer | None,
        peers: dict[str, Peer],
        settled: Callable[[list[FileRecord]], None],
    ) -> int:
        """Fetch every record over the network: small ones batched per first source.

        The holders are looked up first, for `LOCATE_WAIT` at most; sources are then the
        holders found, prev, owner. If the lookup was late, prev and owner alone, and what
        they could not serve is looked up again and fetched from the holders found
        (`_from_index`).

        Args:
            recs: what to fetch.
            prev: the previous node, if its manifest was read this pass (see `rank`).
            peers: every member by name (to reach owners).
            settled: told of the records of each job as soon as the job is over, landed or
                not (their paths are free for other passes from then on).

        Returns:
            How many files landed.
        """
        if not recs:
            return 0
        lookup = asyncio.ensure_future(self._locate_all(recs))
        late = False
        try:
            await asyncio.wait({lookup}, timeout=LOCATE_WAIT)
        finally:  # too late (its answer would mostly come after the files), or the pass is cut
            if not lookup.done():
                late = True
                lookup.cancel()
        located = {} if late else lookup.result()
        planned: list[Planned] = []
        jobs: list[Job] = []
        for rec in recs:
            order = self._sources(rec, prev, peers, located.get(rec.sha256, []))
            if order:
                planned.append((rec, order))
            elif late:
                jobs.append((_none, [(rec, order)]))
            else:
                log.info("no source for %s/%s this round", rec.owner, rec.path)
                settled([rec])
        jobs.extend(self._jobs(planned))

        async def job(work: Callable[[], Awaitable[int]], items: list[Planned]) -> int:
            try:
                landed = await guarded(work())
                if late and landed < len(items):
                    landed += await self._from_index(items)
                return landed
            finally:
                settled([rec for rec, _order in items])

        return sum(await asyncio.gather(*(job(work, items) for work, items in jobs)))

    async def _from_index(self, items: list[Planned]) -> int:
        """Fetch the files of `items` that did not land from the holders a lookup of them finds,
        other than the sources already tried (an owner gone, a previous node that lacks them)."""
        missing = [
            (rec, tried)
            for rec, tried in items
            if self.replicas.have(rec.owner, rec.path) != rec.sha256
        ]
        if not missing:
            return 0
        located = await self._locate_all([rec for rec, _tried in missing])
        again: list[Planned] = []
        for rec, tried in missing:
            asked = {(peer.host, peer.port) for peer in tried}
            order = self._sources(rec, None, {}, located.get(rec.sha256, []))
            order = [peer for peer in order if (peer.host, peer.port) not in asked]
            if order:
                again.append((rec, order))
            else:
                log.info("no source for %s/%s this round", rec.owner, rec.path)

        async def job(work: Callable[[], Awaitable[int]]) -> int:
            return await guarded(work())

        return sum(await asyncio.gather(*(job(work) for work, _items in self._jobs(again))))

    def _jobs(self, planned: list[Planned]) -> list[Job]:
        """Small files in BATCH requests per first source; larger ones once per content."""
        batches: dict[Peer, list[Planned]] = {}
        same: dict[str, list[Planned]] = {}
        for rec, order in planned:
            if rec.size <= SMALL_FILE:
                batches.setdefault(order[0], []).append((rec, order))
            else:
                same.setdefault(rec.sha256, []).append((rec, order))
        jobs: list[Job] = [(partial(self.fetch_same, group), group) for group in same.values()]
        for peer, items in batches.items():
            jobs.extend((partial(self.fetch_batch, peer, chunk), chunk) for chunk in _chunks(items))
        return jobs

    async def fetch_one(self, rec: FileRecord, order: list[Peer]) -> int:
        """Download one file from the first source that serves it right (large ones in blocks,
        from several sources at once)."""
        if rec.size > LARGE_FILE:
            return await self.fetch_blocks(rec, order)
        for peer in order:
            try:
                async with self._slots:
                    tmp, rtt = await asyncio.to_thread(self.receiver.fetch, peer, rec)
            except FETCH_ERRORS as exc:
                log.info("fetching %s/%s from %s failed: %s", rec.owner, rec.path, peer.name, exc)
                continue
            self.on_rtt(peer.name, rtt)
            landed = await self.replicas.install([(rec, tmp)])
            if landed:
                log.info(
                    "fetched %s/%s: %d bytes from %s", rec.owner, rec.path, rec.size, peer.name
                )
            return landed
        return 0

    async def fetch_same(self, group: list[Planned]) -> int:
        """Fetch one content once for every path that wants it: the rest are local copies."""
        first, order = group[0]
        landed = await guarded(self.fetch_one(first, order))
        for rec, rest_order in group[1:]:
            done = await guarded(self.replicas.satisfy_locally(rec, True)) if landed else -1
            if done < 0:
                done = await guarded(self.fetch_one(rec, rest_order))
            landed += done
        return landed

    async def fetch_blocks(self, rec: FileRecord, order: list[Peer]) -> int:
        """Download a large file in blocks from its sources at once; a failure keeps the blocks
        verified so far for the next round (unless this node cannot store them).

        One content is fetched in blocks by one pass at a time, up to its install: a pass that
        had to wait copies what the other one placed, if it landed.
        """
        async with self._one_content(rec.sha256) as waited:
            if waited:  # another pass fetched this content meanwhile: copy it, if it landed
                done = await self.replicas.satisfy_locally(rec, True)
                if done >= 0:
                    return done
            try:
                async with self._slots:
                    got = await self.swarm.fetch(rec, order, self.locate is not None)
            except LocalDiskError as exc:
                log.error("%s/%s: %s", rec.owner, rec.path, exc)
                return 0
            except FETCH_ERRORS as exc:
                log.info("fetching %s/%s in blocks failed: %s", rec.owner, rec.path, exc)
                return 0
            log.debug("%s/%s served by %s", rec.owner, rec.path, got.served)
            try:
                landed = await self.replicas.install([(rec, got.path)])
            finally:
                self.fetching.tell(rec.sha256, False)  # a full holder now, or none at all
            if landed:
                self.reuse.remember(rec, got.block_size, got.hashes)
            return landed

    async def fetch_batch(self, peer: Peer, items: list[Planned]) -> int:
        """Download small files in one BATCH from `peer`; the rest go singly to other sources."""
        recs = [rec for rec, _ in items]
        got: dict[int, Path] = {}
        again: list[Peer] = []
        try:
            async with self._slots:
                got = await asyncio.to_thread(self.receiver.fetch_batch, peer, recs)
        except FETCH_ERRORS as exc:
            log.info("batch of %d from %s failed: %s", len(recs), peer.name, exc)
            again = [peer]  # it may still serve them singly (a peer without BATCH, say)
        landed = await self.replicas.install([(recs[i], tmp) for i, tmp in got.items()])
        for i in got:
            rec = recs[i]
            log.info("fetched %s/%s: %d bytes from %s", rec.owner, rec.path, rec.size, peer.name)
        rest = [
            self.fetch_one(rec, order[1:] + again)
            for i, (rec, order) in enumerate(items)
            if i not in got
        ]
        return landed + sum(await asyncio.gather(*(guarded(j) for j in rest)))

    @asynccontextmanager
    async def _one_content(self, sha256: str) -> AsyncIterator[bool]:
        """Hold the block download of one content; yields whether another had to end first."""
        lock = self._contents.setdefault(sha256, asyncio.Lock())
        self._users[sha256] += 1
        try:
            waited = lock.locked()
            async with lock:
                yield waited
        finally:
            self._users[sha256] -= 1
            if not self._users[sha256]:
                del self._users[sha256], self._contents[sha256]


async def _none() -> int:
    """The job of a record the ring knows no source of: `_from_index` looks it up."""
    return 0


def _chunks(items: list[Planned]) -> list[list[Planned]]:
    """Small files for one source, cut into BATCH requests within the batch bounds."""
    out: list[list[Planned]] = []
    chunk: list[Planned] = []
    size = 0
    for item in items:
        full = len(chunk) == BATCH_MAX_FILES or size + item[0].size > BATCH_MAX_BYTES // 2
        if chunk and full:
            out.append(chunk)
            chunk, size = [], 0
        chunk.append(item)
        size += item[0].size
    if chunk:
        out.append(chunk)
    return out
