"""Replica bookkeeping: records merged from manifest pages, and the bytes placed for them.

Everything here works on one replica path at a time, for a pass that holds that path's claim
(`claims.py`): merge a page of the previous node's manifest delta (every record that supersedes
the known one is kept; hostile entries are skipped), apply a tombstone (remove the file), meet
a fetch without the network (bytes already at the target, or a local file with the same
content, copied), and install verified temp files (rename into place, note what is held, tell
the holdings). A replica file edited here is moved to `<state>/trash/<owner>/<path>.<time_ns>`,
never lost, and the user is told. Downloads are `fetcher.py`'s; which needs to meet, `apply.py`'s.
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

from ring.errors import RemoteProtocolError
from sync.errors import SyncError
from sync.holdings import Holdings
from sync.manifest import FileRecord, clamp_mtime, entry_to_record, supersedes
from sync.paths import Confiner, confine, make_parents
from sync.reports import Change, kept
from sync.resume import disk_error
from sync.scanner import Hasher
from sync.serve import Server
from sync.state import State
from sync.transfer import Receiver, copy_verified, place_many

log = logging.getLogger(__name__)


async def guarded(work: Awaitable[int]) -> int:
    """Run one need; local trouble is logged and the need retried next round (0 changed)."""
    try:
        return await work
    except OSError as exc:
        log.error("sync step failed: %s", disk_error(exc, "a file"))
        return 0
    except (SyncError, RemoteProtocolError) as exc:
        log.error("sync step failed (will retry next round): %s", exc)
        return 0


class Replicas:
    """The replicas under the shared root, kept in step with the records in `state`."""

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
        tell: Callable[[Change], None],
    ) -> None:
        self.root, self.trash, self.name = root, trash, name
        self.state, self.hasher, self.server = state, hasher, server
        self.receiver, self.holdings, self.tell = receiver, holdings, tell
        self.confine = Confiner(root)
        """Confines names for the passes running now; `renew` it as each pass starts (it
        remembers the folders it found real, see `Confiner`)."""

    def renew(self) -> None:
        """Forget the folders found real so far (a new pass starts)."""
        self.confine = Confiner(self.root)

    def merge(self, sender: str, entries: list) -> dict[tuple[str, str], tuple[int, bool]]:  # type: ignore[type-arg]
        """Keep every record of a manifest page from `sender` that supersedes the known one,
        and advance each owner's counter to the highest seq seen.

        Returns:
            (owner, path) -> (seq, whether `sender` holds those bytes), for every good entry
            of another owner: where to look first when fetching.
        """
        seen: dict[str, int] = {}
        holds: dict[tuple[str, str], tuple[int, bool]] = {}
        with self.state.transaction():
            for entry in entries:
                try:
                    rec, held = entry_to_record(entry)
                except RemoteProtocolError as exc:
                    log.warning("skipping a bad manifest entry from %s: %s", sender, exc)
                    continue
                seen[rec.owner] = max(seen.get(rec.owner, 0), rec.seq)
                if rec.owner == self.name:
                    continue
                old = self.state.record(rec.owner, rec.path)
                if supersedes(rec, None if old is None else old[0]):
                    self.state.put_record(rec, None if old is None else old[1])
                holds[(rec.owner, rec.path)] = (rec.seq, held)
            for owner, seq in seen.items():
                if seq > self.state.counter(owner):
                    self.state.set_counter(owner, seq)
        return holds

    def forget_missing(self) -> None:
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

    def have(self, owner: str, path: str) -> str | None:
        """The hash of the bytes this node placed at a replica path (None: nothing)."""
        known = self.state.record(owner, path)
        return None if known is None else known[1]

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
        if cached is not None and cached[:2] == (st.st_size, clamp_mtime(st.st_mtime_ns)):
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
        self.tell(kept(rec, dest))

    async def delete(self, rec: FileRecord) -> int:
        """Apply a tombstone: remove the replica, or trash it if it was edited here."""
        target = confine(self.root, rec.owner, rec.path)
        have = self.have(rec.owner, rec.path)
        current = await self.current_hash(rec.owner, rec.path, target)
        if current is not None and current == have:
            await asyncio.to_thread(os.unlink, target)
            self.state.cache_drop(f"{rec.owner}/{rec.path}")
        elif current is not None:
            await self.to_trash(rec, target)
        self.state.set_have(rec.owner, rec.path, None)
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
        target = self.confine(rec.owner, rec.path)
        have = self.have(rec.owner, rec.path)
        current = await self.current_hash(rec.owner, rec.path, target)
        if current == rec.sha256:
            await asyncio.to_thread(os.utime, target, ns=(rec.mtime_ns, rec.mtime_ns))
            self._installed(rec)
            return 1
        if current is not None and current != have:
            await self.to_trash(rec, target)
        found = self.server.open_local(rec.sha256) if copyable else None
        if found is None:
            return -1
        tmp = self.receiver.temp_path(rec.sha256)
        await asyncio.to_thread(copy_verified, found.file, tmp, rec)
        await self.install([(rec, tmp)])
        log.debug("copied %s/%s from a local file", rec.owner, rec.path)
        return 1

    async def move(self, gone: FileRecord, target: FileRecord) -> bool:
        """Meet `target` by renaming the replica file of `gone` (a path about to be deleted,
        holding the same content, untouched here) to it: a rename then arrives as one, with no
        byte copied and no moment showing both names or neither. False when it cannot be.
        """
        src = confine(self.root, gone.owner, gone.path)
        have = self.have(gone.owner, gone.path)
        if have != target.sha256 or await self.current_hash(gone.owner, gone.path, src) != have:
            return False
        dest = self.confine(target.owner, target.path)
        current = await self.current_hash(target.owner, target.path, dest)
        if current is not None and current != self.have(target.owner, target.path):
            await self.to_trash(target, dest)
        await asyncio.to_thread(_move, self.root, src, dest, target.mtime_ns)
        self.state.cache_drop(f"{gone.owner}/{gone.path}")
        with self.state.transaction():
            self.state.set_have(gone.owner, gone.path, None)
            self.holdings.drop(have)
            self._installed(target)
        log.debug("moved %s/%s to %s", gone.owner, gone.path, target.path)
        return True

    async def install(self, done: list[tuple[FileRecord, Path]]) -> int:
        """Rename verified temp files into place and record them; returns how many landed.

        Names were checked when the record was merged and the target confined before the
        download; `place_many` checks again with lstat that no folder on the way is a symlink
        (the tree may have changed since), and os.replace never follows a final symlink. A
        record superseded while its bytes came is installed all the same (they are the bytes
        of a version the owner had): the newer one is applied after this pass lets go of it.
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
        old_have = self.have(rec.owner, rec.path)
        self.state.cache_put(f"{rec.owner}/{rec.path}", rec.size, rec.mtime_ns, rec.sha256)
        self.state.set_have(rec.owner, rec.path, rec.sha256)
        self.holdings.add(rec.sha256)
        if old_have is not None:
            self.holdings.drop(old_have)


def _move(root: Path, src: Path, dest: Path, mtime_ns: int) -> None:
    """Rename a replica file within the tree (parents made, no symlink on the way), give it the
    record's mtime, and make the rename durable."""
    make_parents(root, dest)
    os.replace(src, dest)
    os.utime(dest, ns=(mtime_ns, mtime_ns))
    for folder in {src.parent, dest.parent}:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _prune(top: Path, folder: Path) -> None:
    """Remove folders left empty by a delete, up to (not including) the owner folder."""
    while folder != top and top in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
