"""Opening paths under the shared root one component at a time, never through a link.

Theory of operation. A path checked with lstat and then opened by name can be swapped for a
symlink in between: a FILE request raced with such a swap once served bytes from outside
Shared/ (259 of 15,225 tries). Here every component below the root is opened relative to the
folder before it (`dir_fd`) with O_NOFOLLOW, folders with O_DIRECTORY as well, so a link
anywhere on the way fails the open itself (ELOOP, ENOTDIR), and what is checked afterwards
(fstat) is the very file that will be read. The root itself is opened as given: a user may keep
Shared/ behind a link of their own. Names are checked as strings before they get here
(`paths.py`); a ".." would still be refused by `_part`.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
"""How each folder below the root is opened: a folder, and not through a link."""

READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
"""How a file is opened to be read: not through a link, and without waiting on a FIFO (which
fstat then refuses as not a regular file)."""


def _part(part: str) -> str:
    if not part or part in (".", "..") or "/" in part or "\x00" in part:
        raise OSError(errno.EINVAL, f"not a name: {part!r}")
    return part


def open_folder(root: Path, parts: Iterable[str], create: bool = False) -> int:
    """Open `root/parts...` as a folder, component by component; the caller closes the fd.

    Args:
        root: the shared root (opened as given).
        parts: the components below it.
        create: make missing folders on the way (never through a link).

    Raises:
        OSError: a component is missing (FileNotFoundError, unless `create`), is a link
            (ELOOP) or is not a folder (ENOTDIR).
    """
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts:
            name = _part(part)
            try:
                step = os.open(name, FOLDER_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(name, dir_fd=fd)
                except FileExistsError:
                    pass
                step = os.open(name, FOLDER_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = step
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_regular(root: Path, parts: list[str]) -> tuple[BinaryIO, os.stat_result]:
    """Open the regular file `root/parts...` for reading, and fstat what was opened.

    Raises:
        OSError: as `open_folder`, or the last component is a link (ELOOP) or not a regular
            file (EINVAL).
    """
    folder = open_folder(root, parts[:-1])
    try:
        fd = os.open(_part(parts[-1]), READ_FLAGS, dir_fd=folder)
    finally:
        os.close(folder)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, f"not a regular file: {'/'.join(parts)}")
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb"), st


def lstat_at(folder: int, name: str) -> os.stat_result | None:
    """What stands at `name` in an open folder, not following a link (None: nothing)."""
    try:
        return os.lstat(_part(name), dir_fd=folder)
    except FileNotFoundError:
        return None
