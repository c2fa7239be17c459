"""Replica bookkeeping: the bytes placed for each record, and a user's changes kept aside.

Everything here works on one replica path at a time, for a pass that holds that path's claim
(`claims.py`): apply a tombstone (remove the file), meet a fetch without the network (bytes
already at the target, or a local file with the same content, copied), and install verified
temp files (rename into place, note what is held, tell the holdings). Which needs to meet is
`apply.py`'s; downloads are `fetcher.py`'s; records merged from pages are `pull.py`'s.

A user's change is never lost. Every look at a path notes what stood there (`placing.Seen`),
and every change on disk goes through `placing.py`, which looks again right before it acts and
sets aside whatever changed meanwhile: a file edited while the owner's update of it downloads,
while it is checked before a delete, or before a rename. What a user changed, or put where the
owner's file or folder must go, is moved to the trash (`keep.py`) and the user is told; what
this node placed for the owner is only ever removed by that owner's records, so the state
always says what the disk holds. A file waiting on the owner's other records (a folder of
theirs that became a file, before the deletes of what it held arrive) raises `Waiting`.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import stat
from collections.abc import Awaitable, Iterable
from pathlib import Path

from ring.errors import RemoteProtocolError
from sync.claims import Key
from sync.errors import SyncError, UnsafePath, Waiting
from sync.hashing import Hasher, stamp_of
from sync.holdings import Holdings
from sync.keep import Keeper
from sync.manifest import FileRecord
from sync.paths import Confiner, confine
from sync.placing import ASIDE_DIR, Outcome, Seen, move, place_many, remove, seen
from sync.reports import Change, kept, printable
from sync.resume import disk_error
from sync.serve import Server
from sync.state import State
from sync.transfer import Receiver, copy_verified

log = logging.getLogger(__name__)

NAME_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.EILSEQ})
"""Errors that say a name cannot be stored on this host (told once, listed in `status`)."""

NOT_A_FILE = "<not a file>"
"""`current_hash` of a folder, link or anything else that is not a regular file."""


async def guarded(work: Awaitable[int]) -> int:
    """Run one need; trouble is logged and the need retried by a later pass (0 changed).

    Anything at all is caught here, so one bad file or record never ends the pass, page or
    batch it is part of; what is not local or a peer's trouble is logged as a bug.
    """
    try:
        return await work
    except Waiting as exc:
        log.info("not yet: %s", exc)
    except OSError as exc:
        log.error("sync step failed: %s", disk_error(exc, "a file"))
    except (SyncError, RemoteProtocolError) as exc:
        log.error("sync step failed (will retry next round): %s", exc)
    except Exception:
        log.exception("sync step failed (will retry next round)")
    return 0


def _parts(rec: FileRecord) -> list[str]:
    return [rec.owner, *rec.path.split("/")]


class Replicas:
    """The replicas under the shared root, kept in step with the records in `state`."""

    def __init__(
        self,
        root: Path,
        name: str,
        state: State,
        hasher: Hasher,
        server: Server,
        receiver: Receiver,
        holdings: Holdings,
        keeper: Keeper,
    ) -> None:
        self.root, self.name, self.state, self.hasher = root, name, state, hasher
        self.server, self.receiver, self.holdings, self.keeper = server, receiver, holdings, keeper
        self.aside = root / ASIDE_DIR
        self.confine = Confiner(root)
        """Confines names for the passes running now; `renew` it as each pass starts (it
        remembers the folders it found real, see `Confiner`)."""
        self.not_stored: dict[Key, str] = {}
        """Replica paths that could not be placed here, and why (until one lands)."""
        self._seen: dict[Key, Seen] = {}

    def renew(self) -> None:
        """Forget the folders found real so far (a new pass starts)."""
        self.confine = Confiner(self.root)

    def forget(self, keys: Iterable[Key]) -> None:
        """Forget what was seen at these paths (their pass let go of them)."""
        for key in keys:
            self._seen.pop(key, None)

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
        """The hash of the regular file at target now (cached when size and mtime match);
        NOT_A_FILE for anything else, None for nothing. What stood there before it was read
        is noted for the change that follows (`placing.py`)."""
        try:
            st = os.lstat(target)
        except (FileNotFoundError, NotADirectoryError):
            self._seen[(owner, path)] = None
            return None
        self._seen[(owner, path)] = seen(st)
        if not stat.S_ISREG(st.st_mode):
            return NOT_A_FILE
        rel = f"{owner}/{path}"
        cached = self.state.cache_get(rel, stamp_of(st))
        if cached is not None:
            return cached[2]
        fh = await self.hasher.hash(target)
        self.state.cache_put(rel, fh.size, fh.mtime_ns, fh.sha256, fh.stamp[2:])
        if fh.hashes:
            self.state.blocks.put(fh.sha256, fh.size, fh.block_size, fh.hashes)
        return fh.sha256

    async def to_trash(self, owner: str, path: str, source: Path, what: str) -> None:
        """Move a user's file, link or folder out of sync's way into the trash, and tell."""
        await self.keeper.keep(owner, path, source, what)
        if source == self.root / owner / path:
            self._seen[(owner, path)] = None
            self.state.cache_drop(f"{owner}/{path}")

    async def _kept_aside(self, rec: FileRecord, outcome: Outcome) -> None:
        """Move to the trash what a change on disk set aside; if that fails, it stays set aside
        (in ASIDE_DIR, which sync never empties) and the user is told so."""
        if outcome.aside is None:
            return
        try:
            await self.to_trash(rec.owner, rec.path, outcome.aside, "your local edit")
        except OSError as exc:
            log.error(
                "kept %s/%s at %s (not in the trash: %s)", rec.owner, rec.path, outcome.aside, exc
            )
            self.keeper.tell(kept(rec.owner, rec.path, outcome.aside, "your local edit"))

    async def delete(self, rec: FileRecord) -> int:
        """Apply a tombstone: remove the replica, or keep it if it was edited here. A folder
        standing there is left alone (it holds nothing of the removed file), and so is a path
        that a file or link of the user's on the way makes unreachable (nothing of the owner's
        can be there)."""
        have = self.have(rec.owner, rec.path)
        try:
            target = confine(self.root, rec.owner, rec.path)
        except UnsafePath:
            self.state.set_have(rec.owner, rec.path, None)
            if have is not None:
                self.holdings.drop(have)
            return 1
        current = await self.current_hash(rec.owner, rec.path, target)
        if current is not None and current == have:
            expected = self._seen.get((rec.owner, rec.path))
            outcome = await asyncio.to_thread(remove, self.root, _parts(rec), expected, self.aside)
            await self._kept_aside(rec, outcome)
            if outcome.error is not None:
                raise outcome.error
            self.state.cache_drop(f"{rec.owner}/{rec.path}")
        elif current is not None and not _is_folder(target):
            await self.to_trash(rec.owner, rec.path, target, "your local edit")
        self.state.set_have(rec.owner, rec.path, None)
        self.not_stored.pop((rec.owner, rec.path), None)
        if have is not None:
            self.holdings.drop(have)
        await asyncio.to_thread(_prune, self.root / rec.owner, target.parent)
        log.info("deleted %s/%s (seq %d)", rec.owner, rec.path, rec.seq)
        return 1

    async def satisfy_locally(self, rec: FileRecord, copyable: bool) -> int:
        """Meet a fetch need without the network if possible; -1 when a download is needed.

        Room is made first (`_make_room`). Bytes already at the target are adopted; a local
        edit there is kept; a local file with the same content elsewhere is copied
        (`copyable`: the hash cache knows a file with that content, checked again here). A
        name this host cannot store (too long for it, say) is reported (`_not_stored`).
        """
        try:
            return await self._satisfy_locally(rec, copyable)
        except OSError as exc:
            if exc.errno in NAME_ERRNOS:
                self._not_stored(rec, exc)
            raise

    async def _satisfy_locally(self, rec: FileRecord, copyable: bool) -> int:
        await self._make_room(rec)
        target = self.confine(rec.owner, rec.path)
        have = self.have(rec.owner, rec.path)
        current = await self.current_hash(rec.owner, rec.path, target)
        if current == rec.sha256:
            self._installed(rec, await asyncio.to_thread(_touch, target, rec.mtime_ns))
            return 1
        if current is not None and current != have:
            await self.to_trash(rec.owner, rec.path, target, "your local edit")
        found = self.server.open_local(rec.sha256) if copyable else None
        if found is None:
            return -1
        tmp = self.receiver.temp_path(rec.sha256)
        await asyncio.to_thread(copy_verified, found.file, tmp, rec)
        await self.install([(rec, tmp)])
        log.debug("copied %s/%s from a local file", rec.owner, rec.path)
        return 1

    async def _make_room(self, rec: FileRecord) -> None:
        """Clear the way for a file at rec.path: a file or link where one of its folders must
        go, or a folder where the file must go, is moved to the trash if it is the user's.

        Raises:
            Waiting: what stands in the way is the owner's, as far as this node knows (it holds
                it, or records say the owner still has it): its deletes must come first.
        """
        parts = rec.path.split("/")
        where = self.root / rec.owner
        for depth, part in enumerate(parts):
            where = where / part
            last = depth == len(parts) - 1
            try:
                folder = stat.S_ISDIR(os.lstat(where).st_mode)
            except FileNotFoundError:
                return
            if folder and not last:
                continue  # a folder on the way: as it should be
            if not folder and last:
                return  # the file itself, if any, is checked by the caller
            path = "/".join(parts[: depth + 1])
            if last and self.state.busy_under(rec.owner, path):
                raise Waiting(f"{rec.owner}/{path}/ still holds the owner's files here")
            known = self.state.record(rec.owner, path)
            if not last and known is not None and (not known[0].deleted or known[1]):
                raise Waiting(f"{rec.owner}/{path} is still the owner's file here")
            what = "your folder in the way of the owner's file" if last else "your file"
            await self.to_trash(rec.owner, path, where, what)
            return

    async def move(self, gone: FileRecord, target: FileRecord) -> bool:
        """Meet `target` by renaming the replica file of `gone` (a path about to be deleted,
        holding the same content, untouched here) to it: a rename then arrives as one, with no
        byte copied and no moment showing both names or neither. False when it cannot be (the
        file was changed, even while it was checked: then it is left for the delete to keep).
        """
        src = confine(self.root, gone.owner, gone.path)
        have = self.have(gone.owner, gone.path)
        if have != target.sha256 or await self.current_hash(gone.owner, gone.path, src) != have:
            return False
        src_seen = self._seen.get((gone.owner, gone.path))
        await self._make_room(target)
        dest = self.confine(target.owner, target.path)
        current = await self.current_hash(target.owner, target.path, dest)
        if current is not None and current != self.have(target.owner, target.path):
            await self.to_trash(target.owner, target.path, dest, "your local edit")
        dest_seen = self._seen.get((target.owner, target.path))
        outcome = await asyncio.to_thread(
            move,
            self.root,
            (_parts(gone), src_seen),
            (_parts(target), dest_seen),
            self.aside,
            target.mtime_ns,
        )
        await self._kept_aside(target, outcome)
        if outcome.error is not None:
            log.info("cannot rename %s/%s here: %s", gone.owner, gone.path, outcome.error)
            return False
        self.state.cache_drop(f"{gone.owner}/{gone.path}")
        with self.state.transaction():
            self.state.set_have(gone.owner, gone.path, None)
            self.holdings.drop(have)
            self._installed(target, outcome.ident)
        log.debug("moved %s/%s to %s", gone.owner, gone.path, target.path)
        return True

    async def install(self, done: list[tuple[FileRecord, Path]]) -> int:
        """Rename verified temp files into place and record them; returns how many landed.

        Names were checked when the record was merged; `place_many` opens every folder on the
        way without following a link, and renames each file only over what its need saw at
        the target (else the user's file there is set aside, and kept here). A record
        superseded while its bytes came is installed all the same (they are the bytes of a
        version the owner had): the newer one is applied after this pass lets go of it.
        """
        seen_then = [self._seen.pop((rec.owner, rec.path), None) for rec, _tmp in done]
        moves = [(_parts(rec), tmp, was) for (rec, tmp), was in zip(done, seen_then, strict=True)]
        outcomes = await asyncio.to_thread(place_many, self.root, self.aside, moves)
        for (rec, _tmp), outcome in zip(done, outcomes, strict=True):
            await self._kept_aside(rec, outcome)
        landed = 0
        with self.state.transaction():
            for (rec, _tmp), outcome in zip(done, outcomes, strict=True):
                if outcome.error is not None:
                    self._not_stored(rec, outcome.error)
                    continue
                try:
                    self._installed(rec, outcome.ident)
                except Exception:  # placed; the next pass finds the bytes there and adopts them
                    log.exception("cannot record %s/%s as placed", rec.owner, rec.path)
                    continue
                landed += 1
        return landed

    def _not_stored(self, rec: FileRecord, error: Exception) -> None:
        """Note (and tell, once per path) a file that could not be placed here."""
        key = (rec.owner, rec.path)
        why = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        log.error("cannot place %s/%s (will retry): %s", rec.owner, rec.path, why)
        if key not in self.not_stored:
            self.keeper.tell(
                Change("warning", rec.owner, rec.path, f"cannot be stored here: {why}")
            )
        self.not_stored[key] = why

    def _installed(self, rec: FileRecord, ident: tuple[int, int]) -> None:
        """Note bytes placed at a replica path: `ident` is the (inode, ctime_ns) they stood
        with right after (for the hash cache)."""
        old_have = self.have(rec.owner, rec.path)
        rel = f"{rec.owner}/{rec.path}"
        self.state.cache_put(rel, rec.size, rec.mtime_ns, rec.sha256, ident)
        self.state.set_have(rec.owner, rec.path, rec.sha256)
        self.not_stored.pop((rec.owner, rec.path), None)
        self.holdings.add(rec.sha256)
        if old_have is not None:
            self.holdings.drop(old_have)

    def unstored(self) -> dict[str, str]:
        """ "owner/path" (printable) -> why, for every replica file that could not be placed."""
        return {printable(f"{o}/{p}"): why for (o, p), why in self.not_stored.items()}


def _touch(target: Path, mtime_ns: int) -> tuple[int, int]:
    """Give the file at `target` the record's mtime; its (inode, ctime_ns) after that."""
    os.utime(target, ns=(mtime_ns, mtime_ns))
    return stamp_of(os.lstat(target))[2:]


def _is_folder(path: Path) -> bool:
    """Whether a real folder (not a link to one) stands at `path`."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def _prune(top: Path, folder: Path) -> None:
    """Remove folders left empty by a delete, up to (not including) the owner folder."""
    while folder != top and top in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
