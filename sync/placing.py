"""Changing a replica path on disk only while it is still what sync last saw there.

Theory of operation. Before sync changes a replica path (renames a download into place,
deletes a file, renames one for the owner's rename) it checks what stands there: the bytes it
placed, or nothing. The check takes time (hashing a large file) and a download much longer, and
a user may edit the file meanwhile. So the check notes what it saw (`Seen`: device, inode, size,
mtime and ctime, from the lstat taken before the bytes were read), and the change itself, in a
worker thread, looks again right before it acts, relative to the opened parent folder (no link
followed, `opening.py`). Anything else there now is set aside, renamed in one step into
`<shared>/ASIDE_DIR/`, for the caller to keep (`keep.py`): never overwritten, never deleted.
ctime moves with every write, rename and chmod, so even an edit that restores the size and the
mtime is seen. What is left is the moment between that last look and the rename itself.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path

from sync.hashing import stamp_of
from sync.opening import lstat_at, open_folder

log = logging.getLogger(__name__)

ASIDE_DIR = ".lanshare-kept"
"""Where a user's file found in sync's way is set aside, on the tree's own file system (so
the rename is one step), until it is moved to the trash. Never emptied by sync: whatever a
failed move to the trash leaves here is the user's."""

Seen = tuple[int, int, int, int, int] | None
"""What stood at a path when sync checked it: (device, inode, size, mtime_ns, ctime_ns), or
None for nothing."""


def seen(st: os.stat_result | None) -> Seen:
    """The `Seen` of an lstat result (None: nothing there)."""
    if st is None:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclass
class Outcome:
    """What one change did: `error` when it did not happen, `aside` when a user's file that
    was in its way was set aside there (keep it, whatever `error` says)."""

    error: Exception | None = None
    aside: Path | None = None
    ident: tuple[int, int] = (0, 0)
    """(inode, ctime_ns) of the file placed, as it stood right after (for the hash cache)."""


def _set_aside(folder: int, name: str, expected: Seen, aside_dir: Path) -> Path | None:
    """Set aside what stands at `name` unless it is what was seen (or nothing); where it went.

    Raises:
        IsADirectoryError: a folder stands there (the next pass makes room, `Replicas`).
    """
    st = lstat_at(folder, name)
    if st is None or seen(st) == expected:
        return None
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, f"a folder stands where {name!r} goes")
    aside = aside_dir / f"{uuid.uuid4().hex}.kept"
    os.rename(name, aside, src_dir_fd=folder)
    return aside


def _ident(folder: int, name: str) -> tuple[int, int]:
    """(inode, ctime_ns) of what stands at `name` now ((0, 0) if nothing: not known)."""
    st = lstat_at(folder, name)
    return (0, 0) if st is None else stamp_of(st)[2:]


def _fsync_folders(root: Path, folders: set[tuple[str, ...]]) -> None:
    for parts in folders:
        try:
            fd = open_folder(root, parts)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:  # the rename is done; only its durability is in doubt
            log.warning("cannot fsync %s: %s", "/".join(parts), exc)


def place_many(
    root: Path, aside_dir: Path, moves: list[tuple[list[str], Path, Seen]]
) -> list[Outcome]:
    """Rename verified temp files into the tree, each over only what was seen at its target.

    Args:
        root: the shared root.
        aside_dir: where a user's file in the way is set aside (`ASIDE_DIR`).
        moves: (the target's components below the root, the temp file, what was seen at the
            target when its need was checked).

    Returns:
        Per move, its outcome; a move that failed has its temp file removed. Each folder
        written to is fsynced once at the end.
    """
    out: list[Outcome] = []
    folders: set[tuple[str, ...]] = set()
    for parts, tmp, expected in moves:
        outcome = Outcome()
        try:
            fd = open_folder(root, parts[:-1], create=True)
            try:
                outcome.aside = _set_aside(fd, parts[-1], expected, aside_dir)
                os.replace(tmp, parts[-1], dst_dir_fd=fd)
                outcome.ident = _ident(fd, parts[-1])
            finally:
                os.close(fd)
            folders.add(tuple(parts[:-1]))
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            outcome.error = exc
        out.append(outcome)
    _fsync_folders(root, folders)
    return out


def remove(root: Path, parts: list[str], expected: Seen, aside_dir: Path) -> Outcome:
    """Delete the file at `parts` if it is still what was seen; else set it aside.

    A folder standing there now is left alone: it holds nothing of the removed file.
    """
    outcome = Outcome()
    try:
        fd = open_folder(root, parts[:-1])
    except FileNotFoundError:
        return outcome
    try:
        st = lstat_at(fd, parts[-1])
        if st is None or stat.S_ISDIR(st.st_mode):
            return outcome
        if seen(st) == expected:
            os.unlink(parts[-1], dir_fd=fd)
        else:
            outcome.aside = _set_aside(fd, parts[-1], expected, aside_dir)
    except OSError as exc:
        outcome.error = exc
    finally:
        os.close(fd)
    return outcome


def move(
    root: Path,
    src: tuple[list[str], Seen],
    dest: tuple[list[str], Seen],
    aside_dir: Path,
    mtime_ns: int,
) -> Outcome:
    """Rename a replica file to another replica path, if the source is still what was seen
    (else `error` is set and nothing moves), over only what was seen at the destination; give
    it `mtime_ns` and make the rename durable."""
    (src_parts, src_seen), (dest_parts, dest_seen) = src, dest
    outcome = Outcome()
    try:
        sfd = open_folder(root, src_parts[:-1])
        try:
            if seen(lstat_at(sfd, src_parts[-1])) != src_seen:
                raise FileExistsError(errno.EEXIST, "the source changed since it was checked")
            dfd = open_folder(root, dest_parts[:-1], create=True)
            try:
                outcome.aside = _set_aside(dfd, dest_parts[-1], dest_seen, aside_dir)
                os.replace(src_parts[-1], dest_parts[-1], src_dir_fd=sfd, dst_dir_fd=dfd)
                os.utime(dest_parts[-1], ns=(mtime_ns, mtime_ns), dir_fd=dfd)
                outcome.ident = _ident(dfd, dest_parts[-1])
                os.fsync(dfd)
            finally:
                os.close(dfd)
            os.fsync(sfd)
        finally:
            os.close(sfd)
    except OSError as exc:
        outcome.error = exc
    return outcome
