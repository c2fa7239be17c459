"""The sync engine: the asyncio shell that scans, serves and pulls for one node.

It owns the node's sync state and two kinds of work: serving (its `routes()` go on the node's
FrameServer) and one background loop that, every `interval` seconds, rescans the own folder
(new seq numbers for changes) and pulls from the previous node in the ring (`Replicator`).
Decisions live in `manifest.py`; this module only sequences them. The ring tells it who is
where with `set_topology`; a DHT may tell it who holds what through `locate`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from ring.errors import RemoteProtocolError
from ring.server import Handler
from ring.wire import Message
from sync.holdings import Holdings
from sync.manifest import FileRecord, Peer, is_sha256, own_changes
from sync.paths import check_owner, confine
from sync.replica import Locate, Replicator
from sync.scanner import TMP_DIR, Hasher, walk
from sync.serve import Server
from sync.state import State
from sync.tracker import TransferInfo
from sync.transfer import Receiver

__all__ = ["FileRecord", "Locate", "Peer", "SyncEngine"]

log = logging.getLogger(__name__)


class SyncEngine:
    """Keeps `<shared>/<name>/` published and every other owner's folder replicated here."""

    record_rtt: Callable[[str, float], None] | None

    def __init__(
        self,
        shared_root: Path,
        state_dir: Path,
        name: str,
        *,
        interval: float = 5.0,
        concurrency: int = 4,
        locate: Locate | None = None,
        timeout: float = 10.0,
    ) -> None:
        """Open (or create) the node's sync state; nothing runs until `start`.

        Args:
            shared_root: the Shared/ folder; this node's files live in `<shared_root>/<name>/`.
            state_dir: where sync.db and trash/ live (not inside shared_root).
            name: this node's folder name (one component, not starting with ".").
            interval: seconds between rounds of the background loop (rescan, then pull).
            concurrency: most downloads (FILE or BATCH) in flight at once.
            locate: "who holds hash H?", nearest first; None until a DHT is wired.
            timeout: seconds to wait on a peer (connect, each read) before trying the next.

        Raises:
            UnsafePath: `name` is not a valid owner folder name.
        """
        self.root = Path(shared_root)
        self.state_dir = Path(state_dir)
        self.name = check_owner(name)
        self.interval = interval
        self.timeout = timeout
        self.record_rtt = None
        self.state = State(self.state_dir)
        self.hasher = Hasher()
        self.holdings = Holdings()
        self.server = Server(self.root, self.state)
        self.receiver = Receiver(self.root / TMP_DIR, timeout)
        self.replicator = Replicator(
            self.root,
            self.state_dir / "trash",
            self.name,
            self.state,
            self.hasher,
            self.server,
            self.receiver,
            self.holdings,
            concurrency,
            locate,
            self._rtt,
        )
        self._prev: Peer | None = None
        self._peers: dict[str, Peer] = {}
        self._lock = asyncio.Lock()
        # pull rounds (downloads included) and scans lock apart: a long download never
        # holds up a rescan
        self._scan_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    @property
    def hash_count(self) -> int:
        """How many files this engine has hashed since it was made (tests prove caching with it)."""
        return self.hasher.count

    def routes(self) -> list[tuple[type[Message], Handler]]:
        """(message type, handler) pairs for MANIFEST, FILE and BATCH, to route on a FrameServer."""
        return self.server.routes()

    async def start(self) -> None:
        """Create the folders, clear stale temp files, check replicas, scan, start the loop."""
        (self.root / self.name).mkdir(parents=True, exist_ok=True)
        tmp = self.root / TMP_DIR
        if tmp.exists():
            await asyncio.to_thread(shutil.rmtree, tmp, True)
        tmp.mkdir(parents=True, exist_ok=True)
        self._check_replicas()
        for _owner, _path, sha, _size in list(self.state.held()):
            self.holdings.add(sha)
        await self.rescan()
        self._task = asyncio.create_task(self._loop(), name=f"sync-{self.name}")

    async def stop(self) -> None:
        """Stop the loop, cut running downloads, close the state database."""
        self.receiver.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        async with self._lock, self._scan_lock:
            self.state.close()

    def set_topology(self, prev: Peer | None, peers: dict[str, Peer]) -> None:
        """Who my previous node is, and every member by name (to reach owners)."""
        self._prev = prev
        self._peers = dict(peers)

    async def rescan(self) -> int:
        """Scan the own folder now; every change gets the next seq. Returns how many changed."""
        async with self._scan_lock:
            return await self._rescan()

    async def pull_once(self) -> int:
        """One pull round from the previous node plus the fetches; returns files changed."""
        async with self._lock:
            return await self.replicator.pull(self._prev, self._peers, self.timeout)

    def transfers(self) -> list[TransferInfo]:
        """Downloads running now (file, size, bytes done, rate, time left, holders), oldest first."""
        return self.replicator.transfers.snapshot()

    def summary(self) -> dict[str, tuple[int, int]]:
        """owner -> (files held, bytes held) on this node."""
        out: dict[str, tuple[int, int]] = {}
        for owner, _path, _sha, size in self.state.held():
            files, total = out.get(owner, (0, 0))
            out[owner] = (files + 1, total + size)
        return out

    def find(self, query: str) -> list[FileRecord]:
        """Live records matching "<owner>/<path>" exactly, a bare file name, or a sha256 prefix."""
        query = query.strip()
        if not query:
            return []
        hexlike = len(query) >= 4 and is_sha256(query.lower().ljust(64, "0"))
        out = []
        for rec in self.state.live_records():
            if (
                f"{rec.owner}/{rec.path}" == query
                or rec.path.rsplit("/", 1)[-1] == query
                or (hexlike and rec.sha256.startswith(query.lower()))
            ):
                out.append(rec)
        return sorted(out, key=lambda r: (r.owner, r.path))

    def held_hashes(self) -> set[str]:
        """Hashes of the files present on disk here (own and replicas)."""
        return self.holdings.hashes()

    def add_holding_listener(self, cb: Callable[[str, bool], None]) -> None:
        """Call cb(sha256, True) when this node starts holding a hash, (sha256, False) on drop.

        Listeners hear changes from now on; `held_hashes()` gives the current set.
        """
        self.holdings.listen(cb)

    def _rtt(self, peer: str, seconds: float) -> None:
        if self.record_rtt is not None:
            self.record_rtt(peer, seconds)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.rescan()
                await self.pull_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad round must not end replication for good
                log.exception("sync round failed on %s", self.name)

    async def _rescan(self) -> int:
        own = self.root / self.name
        on_disk = await asyncio.to_thread(walk, own)
        prefix = self.name + "/"
        cache = self.state.cached(prefix)
        stale = [
            rel for rel, st in on_disk.items() if (cache.get(prefix + rel) or (0, 0, ""))[:2] != st
        ]
        hashed = await self.hasher.hash_many(own, stale)
        known = self.state.records_of(self.name)
        scanned: dict[str, tuple[int, int, str]] = {}
        for rel, (size, mtime_ns) in on_disk.items():
            old = known.get(rel)
            if rel in hashed:
                sha, size, mtime_ns = hashed[rel]
                scanned[rel] = (size, mtime_ns, sha)
            elif rel not in stale:
                scanned[rel] = (size, mtime_ns, cache[prefix + rel][2])
            elif old is not None and not old.deleted:
                scanned[rel] = (old.size, old.mtime_ns, old.sha256)  # unreadable: not a delete
        changes = own_changes(known, scanned, self.name, self.state.counter(self.name))
        with self.state.transaction():
            for rel, (sha, size, mtime_ns) in hashed.items():
                self.state.cache_put(prefix + rel, size, mtime_ns, sha)
            for rel in cache.keys() - {prefix + r for r in on_disk}:
                self.state.cache_drop(rel)
            for rec in changes:
                self.state.put_record(rec, None if rec.deleted else rec.sha256)
            if changes:
                self.state.set_counter(self.name, changes[-1].seq)
        for rec in changes:
            old = known.get(rec.path)
            if not rec.deleted:
                self.holdings.add(rec.sha256)
            if old is not None and not old.deleted:
                self.holdings.drop(old.sha256)
        if changes:
            log.info(
                "%s: %d changes in own folder, now at seq %d",
                self.name,
                len(changes),
                changes[-1].seq,
            )
        return len(changes)

    def _check_replicas(self) -> None:
        """Forget replicas removed from disk while the node was down, so they are fetched again."""
        with self.state.transaction():
            for owner, path, _sha, _size in list(self.state.held()):
                if owner == self.name:
                    continue
                try:
                    present = os.path.isfile(confine(self.root, owner, path))
                except (OSError, RemoteProtocolError):
                    present = False
                if not present:
                    self.state.set_have(owner, path, None)
