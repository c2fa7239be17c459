"""Walking a folder and hashing files, off the event loop, with a hash cache in front.

`walk` lists regular files with their `Stamp` (symlinks and special files are skipped: they are
never shared and never followed); `hashing.Hasher` hashes what the cache cannot vouch for, the
block list of a large file in the same read, and counts how many files it hashed, so tests and
logs can prove that an unchanged tree costs no hashing.
`OwnFolder.scan` turns the owner's folder into new records, and holds back what must wait: files
still being written, anything at all while the folder is missing, and too many deletes at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import time
from pathlib import Path

from sync.errors import UnsafePath
from sync.hashing import FileHash, Hasher, Stamp, fresh, stamp_of
from sync.manifest import FileRecord, held_deletes, own_changes
from sync.paths import check_relpath
from sync.reports import printable
from sync.state import State

log = logging.getLogger(__name__)

DEVICE_KEY = "own_device"
TMP_DIR = ".lanshare-tmp"


def walk(
    top: Path, unreadable: list[str] | None = None, refused: dict[str, str] | None = None
) -> dict[str, Stamp]:
    """Every regular file under `top`: relative POSIX path -> its stamp (size, mtime_ns, inode,
    ctime_ns).

    Symlinks (to files or folders) are skipped with a log line, as are names that would be
    refused on the wire (so a peer never sees a path it must reject) and names this host
    cannot even look at (a path too long for it).

    Args:
        top: the folder to walk.
        unreadable: if given, gets the prefix ("" for `top` itself, else "sub/dir/") of every
            folder that could not be listed, so the caller can tell "gone" from "unreadable"
            and never turn an unreadable folder into deletes.
        refused: if given, gets every name skipped for its name, shown `printable`, with why.
    """
    out: dict[str, Stamp] = {}
    stack = [(top, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            log.warning("cannot list %s: %s", folder, exc)
            if unreadable is not None:
                unreadable.append(prefix)
            continue
        for entry in entries:
            rel = prefix + entry.name
            try:
                check_relpath(rel)
                st = entry.stat(follow_symlinks=False)
            except (UnsafePath, OSError) as exc:
                log.info("skipping %s: %s", printable(entry.path), exc)
                if refused is not None:
                    why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                    refused[printable(rel)] = why
                continue
            if stat.S_ISDIR(st.st_mode):
                stack.append((Path(entry.path), rel + "/"))
            elif stat.S_ISREG(st.st_mode):
                out[rel] = stamp_of(st)
            elif stat.S_ISLNK(st.st_mode):
                log.info("not sharing symlink %s", entry.path)
    return out


def unsettled(
    on_disk: dict[str, Stamp],
    now_ns: int,
    settle_ns: int,
    closed: dict[str, int],
) -> set[str]:
    """Files that may still be being written: modified less than `settle_ns` ago.

    A file counts as settled at once when it arrived complete after its last modification
    (`closed`: rel -> when it was closed after writing or moved into place, in wall-clock ns;
    an entry "folder/" holds for everything below a folder moved in), so a file saved in one
    go or renamed into the folder is sent at once and one written slowly through an open
    handle waits until it is closed or quiet. A modification time far in the future (a copied
    file, a skewed clock) does not hold a file back forever.
    """
    if settle_ns <= 0:
        return set()
    out = set()
    for rel, stamp in on_disk.items():
        mtime_ns = stamp[1]
        if abs(now_ns - mtime_ns) >= settle_ns:
            continue
        if _arrived(rel, closed) >= mtime_ns:
            continue
        out.add(rel)
    return out


def _arrived(rel: str, closed: dict[str, int]) -> int:
    """When `rel`, or a folder above it, last arrived complete (-1: never seen to)."""
    best = closed.get(rel, -1)
    parts = rel.split("/")
    for depth in range(1, len(parts)):
        best = max(best, closed.get("/".join(parts[:depth]) + "/", -1))
    return best


def folder_problem(root: Path, name: str) -> str | None:
    """Why the own folder cannot be trusted to show deletes now, or None when it can.

    A missing or unreadable `Shared/` or `Shared/<name>/` (an unmounted disk, a folder renamed
    away) must read as "unknown", never as "every file deleted".
    """
    for folder in (root, root / name):
        try:
            st = os.stat(folder)
        except FileNotFoundError:
            return f"{folder} is missing"
        except OSError as exc:
            return f"{folder} cannot be read: {exc.strerror or exc}"
        if not stat.S_ISDIR(st.st_mode):
            return f"{folder} is not a folder"
        if not os.access(folder, os.R_OK | os.X_OK):
            return f"{folder} cannot be read"
    return None


class OwnFolder:
    """The owner's side of a scan: what changed in `<root>/<name>/`, and what must wait.

    After each `scan`: `problem` says why the folder cannot be trusted (None: it can),
    `unsettled` lists files not sent yet because they may still be being written, `held` the
    tombstones held back (and `why_held` says why), and `due` is when to scan again for the
    unsettled (seconds from now; None when nothing waits).

    Deletes are held when they are too many at once, and also, however few, when the own
    folder is on another device than at the last clean scan: an empty mount point where a disk
    used to be mounted exists and reads fine, but its emptiness is not a user's deletes.
    """

    def __init__(
        self,
        root: Path,
        name: str,
        state: State,
        hasher: Hasher,
        settle: float,
        mass_share: float,
        mass_min: int,
    ) -> None:
        self.root, self.name, self.state, self.hasher = root, name, state, hasher
        self.settle_ns = int(settle * 1e9)
        self.mass = (mass_share, mass_min)
        self.problem: str | None = None
        self.unsettled: set[str] = set()
        self.held: list[FileRecord] = []
        self.why_held = ""
        self.due: float | None = None
        self.not_shared: dict[str, str] = {}
        """Files not shared, by name (`printable`) -> why, as of the last scan."""
        self.newly_not_shared: dict[str, str] = {}
        """Those of `not_shared` that the scan before did not have (to tell the user once)."""

    async def scan(
        self, closed: dict[str, int], allow_mass_delete: bool
    ) -> tuple[list[FileRecord], dict[str, FileRecord]]:
        """Scan once and store the new records (each with the next seq).

        Args:
            closed: rel -> when it was last closed after writing (the watcher's notes).
            allow_mass_delete: push a mass delete rather than hold it.

        Returns:
            The new records in seq order, and the records known before the scan.
        """
        known = self.state.records_of(self.name)
        self.due = None
        self.newly_not_shared = {}
        problem = folder_problem(self.root, self.name)
        if problem is not None and problem != self.problem:
            log.warning("%s; no deletes are pushed until it is back", problem)
        self.problem = problem
        if problem is not None:
            return [], known
        own = self.root / self.name
        unreadable: list[str] = []
        refused: dict[str, str] = {}
        on_disk = await asyncio.to_thread(walk, own, unreadable, refused)
        self._settling(on_disk, closed)
        cache = self.state.cached(self.name + "/")
        hashed, scanned = await self._hash(on_disk, cache, known, unreadable, refused)
        self.newly_not_shared = {k: v for k, v in refused.items() if self.not_shared.get(k) != v}
        self.not_shared = refused
        changes = own_changes(known, scanned, self.name, self.state.counter(self.name))
        device = str(os.stat(own).st_dev)
        changes = self._hold(known, changes, scanned, device, allow_mass_delete)
        with self.state.transaction():
            for rel, fh in hashed.items():
                key = f"{self.name}/{rel}"
                self.state.cache_put(key, fh.size, fh.mtime_ns, fh.sha256, fh.stamp[2:])
                if fh.hashes:
                    self.state.blocks.put(fh.sha256, fh.size, fh.block_size, fh.hashes)
            for rel, st in on_disk.items():
                entry = cache.get(f"{self.name}/{rel}")
                if rel not in hashed and entry and entry[0][2] == 0 and fresh(entry[0], st):
                    # an entry from before stamps: it vouches for the file as it is now
                    self.state.cache_put(f"{self.name}/{rel}", st[0], st[1], entry[1], st[2:])
            for rel in cache.keys() - {f"{self.name}/{r}" for r in on_disk}:
                self.state.cache_drop(rel)
            self.state.blocks.prune()
            for rec in changes:
                self.state.put_record(rec, None if rec.deleted else rec.sha256)
            if changes:
                self.state.set_counter(self.name, changes[-1].seq)
            if not self.held:
                self.state.set_meta(DEVICE_KEY, device)
        return changes, known

    def _settling(self, on_disk: dict[str, Stamp], closed: dict[str, int]) -> None:
        """Note the files that may still be being written, and when to look at them again."""
        now = time.time_ns()
        self.unsettled = waiting = unsettled(on_disk, now, self.settle_ns, closed)
        if waiting:
            first = min(on_disk[rel][1] for rel in waiting)
            self.due = max(first + self.settle_ns - now, 0) / 1e9 + 0.05

    async def _hash(
        self,
        on_disk: dict[str, Stamp],
        cache: dict[str, tuple[Stamp, str]],
        known: dict[str, FileRecord],
        unreadable: list[str],
        failed: dict[str, str],
    ) -> tuple[dict[str, FileHash], dict[str, tuple[int, int, str]]]:
        """Hash what the cache cannot vouch for; what stands on disk now, as far as is known.
        Files that cannot be read go into `failed` (name -> why).

        Returns:
            rel -> the hashes of every file hashed now, and rel -> (size, mtime_ns, sha256) of
            every file to publish: unsettled files, and files in folders that could not be
            listed, keep their last record.
        """
        prefix = self.name + "/"
        waiting = self.unsettled
        stale = [
            rel
            for rel, st in on_disk.items()
            if rel not in waiting
            and not (prefix + rel in cache and fresh(cache[prefix + rel][0], st))
        ]
        hashed = await self.hasher.hash_many(self.root / self.name, stale, failed)
        scanned: dict[str, tuple[int, int, str]] = {}
        for rel, st in on_disk.items():
            old = known.get(rel)
            if rel in hashed:
                fh = hashed[rel]
                scanned[rel] = (fh.size, fh.mtime_ns, fh.sha256)
            elif rel not in stale and rel not in waiting:
                scanned[rel] = (st[0], st[1], cache[prefix + rel][1])
            elif old is not None and not old.deleted:
                scanned[rel] = (old.size, old.mtime_ns, old.sha256)  # unreadable or unsettled
        for rel, old in known.items():
            hidden = any(rel.startswith(folder) for folder in unreadable)
            if hidden and rel not in scanned and not old.deleted:
                scanned[rel] = (old.size, old.mtime_ns, old.sha256)  # in a folder not listed
        return hashed, scanned

    def _hold(
        self,
        known: dict[str, FileRecord],
        changes: list[FileRecord],
        scanned: dict[str, tuple[int, int, str]],
        device: str,
        allow_mass_delete: bool,
    ) -> list[FileRecord]:
        """Hold back the deletes that must wait (`held`, `why_held`); the changes to publish."""
        was = self.state.meta(DEVICE_KEY)
        own = self.root / self.name
        if allow_mass_delete:
            self.held = []
        elif was is not None and was != device:
            self.held = held_deletes(known, changes, 0.0, 0)
            self.why_held = f"{own} is on another device than before (a disk not mounted?)"
        else:
            self.held = held_deletes(known, changes, *self.mass)
            self.why_held = "too many files deleted at once"
        if not self.held:
            return changes
        for rec in self.held:
            old = known[rec.path]
            scanned[rec.path] = (old.size, old.mtime_ns, old.sha256)
        return own_changes(known, scanned, self.name, self.state.counter(self.name))
