"""Keeping replicas: pull the previous node's manifest delta, then fetch, copy or delete.

One round: page through the previous node's MANIFEST delta since what this node has seen of
each owner and keep every record that supersedes the known one (hostile entries are skipped,
the rest applied); then `plan` the needs and carry them out. A need is met, in order, by bytes
already at the target, by a local file with the same content (copied, no network), or by a
download from the sources `rank` orders (small files in BATCH requests, others one FILE each),
at most `concurrency` transfers at once. A failed need stays in the plan and is retried next round.
A replica file edited here is moved to `<state>/trash/<owner>/<path>.<time_ns>`, never lost.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import stat
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

from ring.errors import PeerUnreachable, RemoteError, RemoteProtocolError
from ring.wire import expect
from sync.blocks import BLOCK_SIZE
from sync.errors import SyncError
from sync.holdings import Holdings
from sync.manifest import FileRecord, Peer, entry_to_record, plan, supersedes
from sync.messages import (
    BATCH_MAX_BYTES,
    BATCH_MAX_FILES,
    PAGE_LIMIT,
    SMALL_FILE,
    ManifestData,
    ManifestRequest,
)
from sync.paths import Confiner, confine
from sync.resume import PARTIAL_DIR, LocalDiskError, disk_error, prune_partials
from sync.scanner import Hasher
from sync.serve import Server
from sync.sources import RoundTrips, rank
from sync.state import State
from sync.swarm import MAX_SOURCES, Swarm
from sync.tracker import Transfers
from sync.transfer import Receiver, copy_verified, place_many

log = logging.getLogger(__name__)

FETCH_ERRORS = (PeerUnreachable, RemoteError, RemoteProtocolError, SyncError)
MAX_PAGES = 100_000
LOCATE_CONCURRENCY = 16
"""Holder lookups in flight at once (a DHT lookup is a few UDP round trips)."""


class Locate(Protocol):
    """ "Who holds hash H?", in any order (`rank` orders them); the DHT implements it."""

    async def __call__(self, sha256_hex: str) -> list[Peer]: ...


class Replicator:
    """Pull rounds for one node; the engine owns it and calls `pull` under its round lock."""

    def __init__(
        self,
        root: Path,
        trash: Path,
        name: str,
        state: State,
        hasher: Hasher,
        server: Server,
        receiver: Receiver,
        holdings: Holdings,
        concurrency: int,
        locate: Locate | None,
        on_rtt: Callable[[str, float], None],
        round_trips: RoundTrips,
    ) -> None:
        self.root, self.trash, self.name = root, trash, name
        self.state, self.hasher, self.server = state, hasher, server
        self.receiver, self.holdings, self.locate = receiver, holdings, locate
        self.on_rtt, self.round_trips = on_rtt, round_trips
        self._slots = asyncio.Semaphore(concurrency)
        self._prev_holds: dict[tuple[str, str], tuple[int, bool]] = {}
        self._haves: dict[tuple[str, str], str | None] = {}
        self._confine = Confiner(root)
        self.transfers = Transfers()
        self.swarm = Swarm(
            name,
            receiver,
            root / PARTIAL_DIR,
            server.blocks,
            server.partials,
            self.transfers,
            concurrency * MAX_SOURCES,
            receiver.timeout,
        )

    async def pull(self, prev: Peer | None, peers: dict[str, Peer], timeout: float) -> int:
        """One round: merge prev's manifest delta, then meet every need; returns files changed."""
        if prev is not None and prev.name != self.name:
            try:
                await self.pull_manifest(prev, timeout)
            except (PeerUnreachable, RemoteError, RemoteProtocolError) as exc:
                log.info("no manifest from %s this round: %s", prev.name, exc)
        rows = self.state.replica_rows(self.name)
        self._haves = {(rec.owner, rec.path): have for rec, have in rows}
        needs = plan(rows)
        changed = 0
        for need in needs:
            if need.kind == "delete":
                changed += await self._guarded(self.delete(need.record))
        fetches = [n.record for n in needs if n.kind == "fetch"]
        here = self.state.cache_by_hashes({rec.sha256 for rec in fetches})
        remote: list[FileRecord] = []
        self._confine = Confiner(self.root)
        for rec in fetches:
            done = await self._guarded(self.satisfy_locally(rec, rec.sha256 in here))
            if done < 0:
                remote.append(rec)
            changed += max(done, 0)
        changed += await self.download(remote, prev, peers)
        return changed

    async def pull_manifest(self, prev: Peer, timeout: float) -> None:
        """Page through prev's delta since our counters and keep every superseding record."""
        since = self.state.counters()
        conn = await self.receiver.door.open(prev.host, prev.port, timeout)
        try:
            cursor: list | None = None  # type: ignore[type-arg]
            for _ in range(MAX_PAGES):
                reply = expect(
                    await conn.exchange(ManifestRequest(since, PAGE_LIMIT, cursor), timeout),
                    ManifestData,
                )
                self._merge(prev, reply.entries)
                if not reply.more or not reply.entries:
                    return
                cursor = reply.cursor
        finally:
            await conn.close()

    def _merge(self, prev: Peer, entries: list) -> None:  # type: ignore[type-arg]
        seen: dict[str, int] = {}
        with self.state.transaction():
            for entry in entries:
                try:
                    rec, held = entry_to_record(entry)
                except RemoteProtocolError as exc:
                    log.warning("skipping a bad manifest entry from %s: %s", prev.name, exc)
                    continue
                seen[rec.owner] = max(seen.get(rec.owner, 0), rec.seq)
                if rec.owner == self.name:
                    continue
                old = self.state.record(rec.owner, rec.path)
                if supersedes(rec, None if old is None else old[0]):
                    self.state.put_record(rec, None if old is None else old[1])
                self._prev_holds[(rec.owner, rec.path)] = (rec.seq, held)
            for owner, seq in seen.items():
                if seq > self.state.counter(owner):
                    self.state.set_counter(owner, seq)

    async def _guarded(self, work: Awaitable[int]) -> int:
        """Run one need; local trouble is logged and the need retried next round."""
        try:
            return await work
        except OSError as exc:
            log.error("sync step failed: %s", disk_error(exc, "a file"))
            return 0
        except (SyncError, RemoteProtocolError) as exc:
            log.error("sync step failed (will retry next round): %s", exc)
            return 0

    async def current_hash(self, owner: str, path: str, target: Path) -> str | None:
        """The hash of the regular file at target now (cached when size and mtime match)."""
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return "<not a file>"
        rel = f"{owner}/{path}"
        cached = self.state.cache_get(rel)
        if cached is not None and cached[:2] == (st.st_size, st.st_mtime_ns):
            return cached[2]
        sha, size, mtime_ns = await self.hasher.hash(target)
        self.state.cache_put(rel, size, mtime_ns, sha)
        return sha

    async def to_trash(self, rec: FileRecord, target: Path) -> None:
        """Move a locally edited replica out of the way, keeping it, and tell the user."""
        dest = self.trash / rec.owner / f"{rec.path}.{time.time_ns()}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(shutil.move, target, dest)
        self.state.cache_drop(f"{rec.owner}/{rec.path}")
        log.warning("%s/%s was changed on this node; kept it as %s", rec.owner, rec.path, dest)

    async def delete(self, rec: FileRecord) -> int:
        """Apply a tombstone: remove the replica, or trash it if it was edited here."""
        target = confine(self.root, rec.owner, rec.path)
        have = self._haves.get((rec.owner, rec.path))
        current = await self.current_hash(rec.owner, rec.path, target)
        if current is not None and current == have:
            await asyncio.to_thread(os.unlink, target)
            self.state.cache_drop(f"{rec.owner}/{rec.path}")
        elif current is not None:
            await self.to_trash(rec, target)
        self.state.set_have(rec.owner, rec.path, None)
        self._haves[(rec.owner, rec.path)] = None
        if have is not None:
            self.holdings.drop(have)
        await asyncio.to_thread(_prune, self.root / rec.owner, target.parent)
        log.info("deleted %s/%s (seq %d)", rec.owner, rec.path, rec.seq)
        return 1

    async def satisfy_locally(self, rec: FileRecord, copyable: bool) -> int:
        """Meet a fetch need without the network if possible; -1 when a download is needed.

        Bytes already at the target are adopted; a local edit there goes to the trash; a
        local file with the same content elsewhere is copied (`copyable`: the hash cache knows
        a file with that content, checked again here).
        """
        target = self._confine(rec.owner, rec.path)
        have = self._haves.get((rec.owner, rec.path))
        current = await self.current_hash(rec.owner, rec.path, target)
        if current == rec.sha256:
            await asyncio.to_thread(os.utime, target, ns=(rec.mtime_ns, rec.mtime_ns))
            self._installed(rec)
            return 1
        if current is not None and current != have:
            await self.to_trash(rec, target)
        found = self.server.local_file(rec.sha256) if copyable else None
        if found is None:
            return -1
        tmp = self.receiver.temp_path(rec.sha256)
        await asyncio.to_thread(copy_verified, found[0], tmp, rec)
        await self.install([(rec, tmp)])
        log.debug("copied %s/%s from local %s", rec.owner, rec.path, found[0])
        return 1

    async def install(self, done: list[tuple[FileRecord, Path]]) -> int:
        """Rename verified temp files into place and record them; returns how many landed.

        Names were checked when the record was merged and the target confined before the
        download; `place_many` checks again with lstat that no folder on the way is a symlink
        (the tree may have changed since), and os.replace never follows a final symlink.
        """
        recs = [rec for rec, _tmp in done]
        moves = [(self.root / rec.owner / rec.path, tmp) for rec, tmp in done]
        results = await asyncio.to_thread(place_many, self.root, moves)
        landed = 0
        with self.state.transaction():
            for rec, error in zip(recs, results, strict=True):
                if error is not None:
                    log.error("cannot place %s/%s (will retry): %s", rec.owner, rec.path, error)
                    continue
                self._installed(rec)
                landed += 1
        return landed

    def _installed(self, rec: FileRecord) -> None:
        old_have = self._haves.get((rec.owner, rec.path))
        self._haves[(rec.owner, rec.path)] = rec.sha256
        self.state.cache_put(f"{rec.owner}/{rec.path}", rec.size, rec.mtime_ns, rec.sha256)
        self.state.set_have(rec.owner, rec.path, rec.sha256)
        self.holdings.add(rec.sha256)
        if old_have is not None:
            self.holdings.drop(old_have)

    async def _sources(
        self, rec: FileRecord, prev: Peer | None, peers: dict[str, Peer]
    ) -> list[Peer]:
        located: list[Peer] = []
        if self.locate is not None:
            try:
                located = await self.locate(rec.sha256)
            except Exception as exc:  # the locator is pluggable; its failure must not stop sync
                log.info("locating %s failed: %s", rec.sha256[:12], exc)
        seq_held = self._prev_holds.get((rec.owner, rec.path))
        prev_holds = seq_held is not None and seq_held == (rec.seq, True)
        owner = peers.get(rec.owner)
        return rank(located, prev, prev_holds, owner, self.name, self.round_trips)

    async def download(
        self, recs: list[FileRecord], prev: Peer | None, peers: dict[str, Peer]
    ) -> int:
        """Fetch every record over the network: small ones batched per first source."""
        lookups = asyncio.Semaphore(LOCATE_CONCURRENCY)

        async def plan_one(rec: FileRecord) -> tuple[FileRecord, list[Peer]]:
            async with lookups:
                return rec, await self._sources(rec, prev, peers)

        plans = await asyncio.gather(*(plan_one(rec) for rec in recs))
        await asyncio.to_thread(
            prune_partials, self.root / PARTIAL_DIR, {r.sha256 for r in recs if r.size > BLOCK_SIZE}
        )
        batches: dict[Peer, list[tuple[FileRecord, list[Peer]]]] = {}
        same: dict[str, list[tuple[FileRecord, list[Peer]]]] = {}
        jobs: list[Awaitable[int]] = []
        for rec, order in plans:
            if not order:
                log.info("no source for %s/%s this round", rec.owner, rec.path)
            elif rec.size <= SMALL_FILE:
                batches.setdefault(order[0], []).append((rec, order))
            else:
                same.setdefault(rec.sha256, []).append((rec, order))
        jobs.extend(self.fetch_same(group) for group in same.values())
        for peer, items in batches.items():
            chunk: list[tuple[FileRecord, list[Peer]]] = []
            size = 0
            for item in items:
                if len(chunk) == BATCH_MAX_FILES or size + item[0].size > BATCH_MAX_BYTES // 2:
                    jobs.append(self.fetch_batch(peer, chunk))
                    chunk, size = [], 0
                chunk.append(item)
                size += item[0].size
            if chunk:
                jobs.append(self.fetch_batch(peer, chunk))
        return sum(await asyncio.gather(*(self._guarded(j) for j in jobs)))

    async def fetch_one(self, rec: FileRecord, order: list[Peer]) -> int:
        """Download one file from the first source that serves it right (large ones in blocks,
        from several sources at once)."""
        if rec.size > BLOCK_SIZE:
            return await self.fetch_blocks(rec, order)
        for peer in order:
            try:
                async with self._slots:
                    tmp, rtt = await asyncio.to_thread(self.receiver.fetch, peer, rec)
            except FETCH_ERRORS as exc:
                log.info("fetching %s/%s from %s failed: %s", rec.owner, rec.path, peer.name, exc)
                continue
            self.on_rtt(peer.name, rtt)
            landed = await self.install([(rec, tmp)])
            if landed:
                log.info(
                    "fetched %s/%s: %d bytes from %s", rec.owner, rec.path, rec.size, peer.name
                )
            return landed
        return 0

    async def fetch_same(self, group: list[tuple[FileRecord, list[Peer]]]) -> int:
        """Fetch one content once for every path that wants it: the rest are local copies."""
        first, order = group[0]
        landed = await self._guarded(self.fetch_one(first, order))
        for rec, rest_order in group[1:]:
            done = await self._guarded(self.satisfy_locally(rec, True)) if landed else -1
            if done < 0:
                done = await self._guarded(self.fetch_one(rec, rest_order))
            landed += done
        return landed

    async def fetch_blocks(self, rec: FileRecord, order: list[Peer]) -> int:
        """Download a large file in blocks from its sources at once; a failure keeps the blocks
        verified so far for the next round (unless this node cannot store them)."""
        try:
            async with self._slots:
                path, served = await self.swarm.fetch(rec, order)
        except LocalDiskError as exc:
            log.error("%s/%s: %s", rec.owner, rec.path, exc)
            return 0
        except FETCH_ERRORS as exc:
            log.info("fetching %s/%s in blocks failed: %s", rec.owner, rec.path, exc)
            return 0
        log.debug("%s/%s served by %s", rec.owner, rec.path, served)
        return await self.install([(rec, path)])

    async def fetch_batch(self, peer: Peer, items: list[tuple[FileRecord, list[Peer]]]) -> int:
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
        landed = await self.install([(recs[i], tmp) for i, tmp in got.items()])
        for i in got:
            rec = recs[i]
            log.info("fetched %s/%s: %d bytes from %s", rec.owner, rec.path, rec.size, peer.name)
        rest = [
            self.fetch_one(rec, order[1:] + again)
            for i, (rec, order) in enumerate(items)
            if i not in got
        ]
        return landed + sum(await asyncio.gather(*(self._guarded(j) for j in rest)))


def _prune(top: Path, folder: Path) -> None:
    """Remove folders left empty by a delete, up to (not including) the owner folder."""
    while folder != top and top in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
