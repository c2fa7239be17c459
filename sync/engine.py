"""The sync engine: the asyncio shell that scans, serves, pulls and pushes for one node.

It owns the node's sync state, wires the parts and runs their loops: serving (its `routes()` go
on the node's FrameServer); one background loop that, every `interval` seconds and at once when
the node gets a new previous node (it joined or rejoined the ring, or its neighbour changed),
rescans the own folder (new seq numbers for changes) and runs a pull round from the previous
node in the ring (`pull.py`); with `watch`, a rescan soon after each file-system event;
pushing its own changes to the next node at once, and applying the pushes of others
(`push.py`), each in a pass of its own beside any round (`apply.py`). Decisions live in
`manifest.py`; the own folder is scanned and published by `publishing.py`, replicas are kept by
`replica.py`, downloads run in `fetcher.py`, and what the user hears is worded in `reports.py`.
Replicas tell owners what they placed, and an owner hears when its change has reached every
member (`placed.py`; only a member the connection proves, `member_of`, counts).
The ring tells it who is where with `set_topology`; a DHT may tell it who holds what through
`locate`. Its `round_trips` table ranks where each fetch goes (`sources.py`): its own downloads
time peers, and the node feeds in probes and heartbeats.

Own records are signed with this node's key (`sign`) as the scan makes them; others' records
are checked against the key bound to their owner (`owner_key`) before they are kept.

Safety of the own folder: a missing or unreadable folder pushes no deletes; a file modified
less than `settle` seconds ago (and not closed since) waits; a scan that would delete more than
half of at least ten files holds those deletes until `confirm_deletes()`.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from ring.wire import Door, Handler, Message, cancel_and_wait
from sync.apply import Applier
from sync.fetcher import Fetcher, Locate, LocateMany
from sync.hashing import Hasher
from sync.holdings import Fetching, Holdings
from sync.keep import Keeper
from sync.manifest import FileRecord, Peer, is_sha256, plan
from sync.paths import check_owner
from sync.placed import MemberOf, Placements
from sync.placing import ASIDE_DIR
from sync.publishing import Publishing
from sync.pull import Puller
from sync.push import Pusher
from sync.replica import Replicas
from sync.reports import Change, SyncStatus
from sync.scanner import TMP_DIR, OwnFolder
from sync.serve import Server
from sync.signing import OwnerKeys, Signer, Verifier, start_signing
from sync.sources import RoundTrips
from sync.state import State
from sync.tracker import TransferInfo
from sync.transfer import Receiver

__all__ = ["Change", "FileRecord", "Locate", "LocateMany", "Peer", "SyncEngine", "SyncStatus"]

log = logging.getLogger(__name__)

KEPT_SHOWN = 5
"""Kept copies `status` names (the newest); it counts them all."""


class SyncEngine:
    """Keeps `<shared>/<name>/` published and every other owner's folder replicated here."""

    record_rtt: Callable[[str, float], None] | None = None
    """Told (peer, seconds) of every whole-file download besides `round_trips` (tests watch)."""

    def __init__(
        self,
        shared_root: Path,
        state_dir: Path,
        name: str,
        *,
        door: Door,
        sign: Signer,
        owner_key: OwnerKeys,
        interval: float = 5.0,
        concurrency: int = 4,
        locate: Locate | None = None,
        locate_many: LocateMany | None = None,
        timeout: float = 10.0,
        watch: bool = False,
        settle: float = 0.0,
        allow_mass_delete: bool = False,
        mass_delete_share: float = 0.5,
        mass_delete_min: int = 10,
        member_of: MemberOf | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Open (or create) the node's sync state; nothing runs until `start`. Long only for its
        arguments; the replication parts are built in `_build_replication`.

        Args:
            shared_root: the Shared/ folder; this node's files live in `<shared_root>/<name>/`.
            state_dir: where sync.db and trash/ live (not inside shared_root).
            name: this node's folder name (one component, not starting with ".").
            door: the node's door: every connection sync opens goes through it.
            sign: signs with this node's own key (its records).
            owner_key: the key bound to an owner name (to check others' records).
            interval: seconds between rounds of the background loop (rescan, then pull).
            concurrency: most downloads (FILE or BATCH) in flight at once.
            locate: "who holds hash H?" (any order); None until a DHT is wired.
            locate_many: the same for many hashes in one batched lookup (fetch planning).
            timeout: seconds to wait on a peer (connect, each read) before trying the next.
            watch: rescan on file-system events, not only every `interval`.
            settle: seconds a changed file must be left alone (or closed) before it is sent.
            allow_mass_delete: push large deletes without asking (`--allow-mass-delete`).
            mass_delete_share: a scan deleting more than this share of the own files...
            mass_delete_min: ...of a folder of at least this many files waits for confirmation.
            member_of: the ring member a connection proved to be (whose PLACED counts).
            clock: monotonic seconds, for the round-trip table (the node's clock).

        Raises:
            UnsafePath: `name` is not a valid owner folder name.
        """
        self.root, self.state_dir, self.name = Path(shared_root), Path(state_dir), check_owner(name)
        self.interval, self.timeout, self.watch, self.clock = interval, timeout, watch, clock
        self.round_trips, self.hasher, self.holdings = RoundTrips(), Hasher(), Holdings()
        self.fetching = Fetching()
        self.state = State(self.state_dir)
        self.server = Server(self.root, self.state)
        self.door, self.sign, self.verifier = door, sign, Verifier(owner_key)
        self.receiver = Receiver(self.door, self.root / TMP_DIR, timeout)
        mass = (mass_delete_share, mass_delete_min)
        self.own = OwnFolder(self.root, self.name, self.state, self.hasher, settle, *mass)
        self.placements = Placements(door, self.name, timeout, member_of, self._tell_reached)
        self._build_replication(concurrency, locate, locate_many)
        self.pusher = Pusher(
            self.door, self.name, self.state, timeout, self._on_pushed, self.verifier
        )
        self.publishing = Publishing(
            self.own,
            self.state,
            sign,
            self.holdings,
            self.pusher,
            self._tell,
            allow_mass_delete,
            self.placements.published,
        )
        self._listeners: list[Callable[[Change], None]] = []
        self._prev: Peer | None = None
        self._pull_soon = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._fetched: dict[str, float] = {}

    def _build_replication(
        self, concurrency: int, locate: Locate | None, locate_many: LocateMany | None
    ) -> None:
        """The parts that keep replicas: bookkeeping, downloads, passes, pull rounds."""
        self.replicas = Replicas(
            self.root,
            self.name,
            self.state,
            self.hasher,
            self.server,
            self.receiver,
            self.holdings,
            Keeper(self.state_dir / "trash", self.state, self._tell, self.name),
        )
        self.fetcher = Fetcher(
            self.root,
            self.name,
            self.receiver,
            self.server,
            self.replicas,
            concurrency,
            locate,
            self._rtt,
            self.round_trips,
            locate_many,
            self.fetching,
        )
        self.applier = Applier(
            self.name, self.state, self.replicas, self.fetcher, self._tell, self.placements.placed
        )
        self.puller = Puller(
            self.door,
            self.name,
            self.state,
            self.fetcher,
            self.applier,
            self.timeout,
            self.verifier,
        )

    @property
    def hash_count(self) -> int:
        """How many files this engine has hashed since it was made (tests prove caching with it)."""
        return self.hasher.count

    def routes(self) -> list[tuple[type[Message], Handler]]:
        """(message type, handler) pairs for MANIFEST, FILE, BATCH, NOTIFY and PLACED."""
        return self.server.routes() + self.pusher.routes() + self.placements.routes()

    async def start(self) -> None:
        """Create the folders, clear stale temp files, check replicas, scan, start the loops.

        The own folder is created only on a first run: if it is missing while this node has
        published files from it, it is treated as unmounted (no deletes), not as emptied.
        """
        own = self.root / self.name
        if not any(not rec.deleted for rec in self.state.records_of(self.name).values()):
            own.mkdir(parents=True, exist_ok=True)
        tmp = self.root / TMP_DIR
        if tmp.exists():
            await asyncio.to_thread(shutil.rmtree, tmp, True)
        tmp.mkdir(parents=True, exist_ok=True)
        (self.root / ASIDE_DIR).mkdir(exist_ok=True)
        self.replicas.forget_missing()
        start_signing(self.state, self.name, self.sign)
        for _owner, _path, sha, _size in list(self.state.held()):
            self.holdings.add(sha)
        try:
            await self.rescan()
        except Exception:  # a bad file must not keep the node from starting: the loop rescans
            log.exception("first scan of %s failed", self.name)
        self.pusher.start()
        self._tasks = [
            asyncio.create_task(self._loop(), name=f"sync-{self.name}"),
            asyncio.create_task(self.publishing.worker(), name=f"scan-{self.name}"),
            asyncio.create_task(self.applier.run(), name=f"apply-{self.name}"),
        ]
        if self.watch:
            self.publishing.watch(own)

    async def stop(self) -> None:
        """Stop the loops and the watcher, cut running downloads, close the state database."""
        self.receiver.close()
        await self.publishing.stop_watching()
        await self.pusher.stop()
        await cancel_and_wait(self._tasks)
        await self.applier.stop()
        await self.placements.stop()
        self.verifier.close()
        self._tasks = []
        async with self.puller.lock, self.publishing.lock:
            self.state.close()

    def set_topology(
        self, prev: Peer | None, peers: dict[str, Peer], next: Peer | None = None
    ) -> None:
        """Who my previous node is, every member by name (to reach owners), and my next node
        (where pushes go; None: push nothing).

        A running engine given a new previous node pulls from it at once: a node that joins or
        comes back catches up on what it missed without waiting for the next interval.
        """
        if self._tasks and prev is not None and prev != self._prev:
            self._pull_soon.set()
        self._prev = prev
        self.applier.peers = dict(peers)
        self.placements.set_peers(peers)
        self.pusher.set_next(next, len(peers) + 1)

    def add_change_listener(self, cb: Callable[[Change], None]) -> None:
        """Call cb(change) for each replica added, updated, deleted or kept, and each warning."""
        self._listeners.append(cb)

    async def confirm_deletes(self) -> int:
        """Push the deletes held back as too many at once; returns how many were pushed."""
        return await self.publishing.confirm_deletes()

    def status(self) -> SyncStatus:
        """Pending changes, work outstanding and the last sync with each peer, for `status`."""
        needs = plan(self.state.pending_rows(self.name))
        last: dict[str, float] = {}
        for source in (self.puller.pulled, self.pusher.received, self._fetched):
            for peer, when in source.items():
                last[peer] = max(last.get(peer, 0.0), when)
        own = self.state.records_of(self.name).values()
        kept, newest = self.state.kept(KEPT_SHOWN)
        return SyncStatus(
            own_files=sum(1 for rec in own if not rec.deleted),
            own_seq=self.state.counter(self.name),
            problem=self.own.problem,
            unsettled=len(self.own.unsettled),
            held_deletes=len(self.own.held),
            held_reason=self.own.why_held if self.own.held else "",
            to_fetch=sum(1 for n in needs if n.kind == "fetch"),
            to_delete=sum(1 for n in needs if n.kind == "delete"),
            round_running=self.puller.running,
            transfers=len(self.transfers()),
            last_sync=last,
            not_shared=dict(self.own.not_shared),
            not_stored=self.replicas.unstored(),
            kept=kept,
            newest_kept=[
                (f"{o}/{p}", str(self.replicas.keeper.trash / c)) for _at, o, p, c in newest
            ],
        )

    async def rescan(self) -> int:
        """Scan the own folder now; every change gets the next seq. Returns how many changed."""
        return await self.publishing.rescan()

    async def pull_once(self) -> int:
        """One pull round from the previous node plus the fetches; returns files changed (a
        catch-up round asked for by `set_topology` and not begun yet is this one)."""
        self._pull_soon.clear()
        return await self.puller.round(self._prev)

    def transfers(self) -> list[TransferInfo]:
        """Downloads running now (file, size, done, rate, time left, holders), oldest first."""
        return self.fetcher.transfers.snapshot()

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

    def add_fetching_listener(self, cb: Callable[[str, bool], None]) -> None:
        """Call cb(sha256, True) when a block download of a content starts here (this node is
        a partial holder of it from then on), (sha256, False) when it is over."""
        self.fetching.listen(cb)

    def _rtt(self, peer: str, seconds: float) -> None:
        self._fetched[peer] = time.time()
        self.round_trips.sample(peer, seconds, self.clock())
        if self.record_rtt is not None:
            self.record_rtt(peer, seconds)

    def _tell(self, change: Change) -> None:
        for cb in self._listeners:
            try:
                cb(change)
            except Exception:  # a listener's bug must not stop the sync engine
                log.exception("change listener failed")

    def _tell_reached(self, line: str) -> None:
        self._tell(Change("reached", self.name, "", line))

    def _on_pushed(self, origin: str, records: list[FileRecord]) -> None:
        """Apply what a push brought: the paths of its records, in a pass of their own."""
        self.applier.want((rec.owner, rec.path) for rec in records)

    async def _loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._pull_soon.wait(), self.interval)
                if not self._pull_soon.is_set():
                    continue  # a round begun meanwhile caught up already
            except TimeoutError:
                pass
            try:
                await self.rescan()
                await self.pull_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad round must not end replication for good
                log.exception("sync round failed on %s", self.name)
