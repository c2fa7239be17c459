"""Publishing the own folder: when to scan it, and what a scan's changes set going.

A scan runs on the engine's loop, soon after a file-system event (with `watch`), when a file
still settling is due, and on demand (`rescan`, `confirm_deletes`). Whatever it finds is signed
with this node's key and stored (`signing.sign_stored`), changes what this node holds (the DHT
hears of it through `Holdings`), goes to the next node at once (`Pusher.publish`), and waits
for every member to place it (`published`, `placed.py`). What the user must hear (a missing
folder, files not shared, deletes held back) goes to `tell`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from sync.holdings import Holdings
from sync.manifest import FileRecord
from sync.push import Pusher
from sync.reports import Change, folder_warning, held_warning
from sync.scanner import OwnFolder
from sync.signing import Signer, sign_stored
from sync.state import State
from sync.watcher import FolderWatcher

log = logging.getLogger(__name__)

DEBOUNCE = 0.05
"""Seconds without a file-system event before the rescan they ask for. Events come in bursts
(1,021 files moved in: 160-220 ms of events, handed over by watchdog with gaps of up to 20 ms),
and a scan begun inside one publishes part of it: the rest waits for a second scan, which hashes
while the first part's files are already being fetched (a 256 MiB file took 1-3 s then, against
0.5 s for all 1,021 files in one scan). Events that come while a scan runs are taken in by one
scan after it."""

BURST_MAX = 1.0
"""Seconds after the first event of a burst that never pauses (a file written for minutes)
by which the rescan runs anyway."""


class Publishing:
    """Scans of `own` and what their changes set going; one scan at a time (`lock`)."""

    def __init__(
        self,
        own: OwnFolder,
        state: State,
        sign: Signer,
        holdings: Holdings,
        pusher: Pusher,
        tell: Callable[[Change], None],
        allow_mass_delete: bool,
        published: Callable[[list[FileRecord]], None],
    ) -> None:
        """`published` is told of the own records each scan publishes (`placed.py` waits for
        every member to place them)."""
        self.own, self.state, self.sign = own, state, sign
        self.holdings, self.pusher, self.tell = holdings, pusher, tell
        self.allow_mass_delete, self.published = allow_mass_delete, published
        self.lock = asyncio.Lock()  # apart from rounds: a download never holds up a scan
        self.wanted = asyncio.Event()
        self._confirmed = False
        self._watcher: FolderWatcher | None = None

    def watch(self, folder: Path) -> None:
        """Rescan soon after each file-system event under `folder` (see `worker`)."""
        self._watcher = FolderWatcher(folder, self.wanted.set, asyncio.get_running_loop())
        self._watcher.start()

    async def stop_watching(self) -> None:
        if self._watcher is not None:
            await asyncio.to_thread(self._watcher.stop)
            self._watcher = None

    async def rescan(self) -> int:
        """Scan the own folder now; every change gets the next seq. Returns how many changed."""
        async with self.lock:
            return await self._rescan()

    async def confirm_deletes(self) -> int:
        """Push the deletes held back as too many at once; returns how many were pushed."""
        held = len(self.own.held)
        self._confirmed = True
        try:
            await self.rescan()
        finally:
            self._confirmed = False
        return held - len(self.own.held)

    async def worker(self) -> None:
        """Rescan soon after the watcher (or a file still settling) asks for it: once the
        burst of events is over (`DEBOUNCE`), or `BURST_MAX` after it began."""
        loop = asyncio.get_running_loop()
        while True:
            await self.wanted.wait()
            end = loop.time() + BURST_MAX
            while True:
                self.wanted.clear()
                try:
                    async with asyncio.timeout(min(DEBOUNCE, max(end - loop.time(), 0))):
                        await self.wanted.wait()
                except TimeoutError:
                    break
            if self._watcher is not None:
                self._watcher.check()
            try:
                await self.rescan()
            except Exception:
                log.exception("rescan failed on %s", self.own.name)

    async def _rescan(self) -> int:
        own, name = self.own, self.own.name
        closed: dict[str, int] = {}
        if self._watcher is not None:
            self._watcher.check()
            self._watcher.forget_closes(time.time_ns() - own.settle_ns)
            closed = dict(self._watcher.closed)
        problem, held = own.problem, len(own.held)
        changes, known = await own.scan(closed, self.allow_mass_delete or self._confirmed)
        changes = sign_stored(self.state, changes, self.sign)
        if own.problem != problem:
            self.tell(folder_warning(name, own.problem))
        for path, why in own.newly_not_shared.items():
            self.tell(Change("warning", name, path, f"not shared: {why}"))
        if own.held and len(own.held) != held:
            live = sum(1 for rec in known.values() if not rec.deleted)
            warning = held_warning(name, own.why_held, len(own.held), live)
            log.warning("%s: %s", name, warning.detail)
            self.tell(warning)
        if own.due is not None:
            asyncio.get_running_loop().call_later(own.due, self.wanted.set)
        for rec in changes:
            old = known.get(rec.path)
            if not rec.deleted:
                self.holdings.add(rec.sha256)
            if old is not None and not old.deleted:
                self.holdings.drop(old.sha256)
        if changes:
            log.info(
                "%s: %d changes in own folder, now at seq %d", name, len(changes), changes[-1].seq
            )
            self.pusher.publish(changes)
            self.published(changes)
        return len(changes)
