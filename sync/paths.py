"""Confinement: every name that comes from the network stays inside the shared folder.

Rules (both sides, FILE requests and manifest entries alike): a path is a relative POSIX string
of "/"-separated components. Refused: the empty path, NUL bytes, a leading "/", backslashes
(they are a separator on Windows peers, so "a\\..\\x" must not mean something else there), empty
components ("a//b", a trailing "/"), "." and ".." components, components longer than 255 bytes
in UTF-8, and names that are not valid UTF-8 text. On disk, every existing component is checked
with lstat: none may be a symlink, and all but the last must be a real folder. With no symlink
and no "." or ".." below the root, the resolved path is the resolved root plus the relative
path, so it stays under the root without a realpath call (which would lstat every component
of the absolute path again, a third of the cost of syncing a small file).
Owner names are a single component that does not start with "." (".lanshare-tmp" is ours).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sync.errors import UnsafePath

MAX_COMPONENT = 255
MAX_PATH = 4096


def check_relpath(path: str) -> str:
    """Return `path` unchanged if it is a safe relative path, else raise UnsafePath.

    Raises:
        UnsafePath: the path breaks one of the rules in the module docstring.
    """
    if not isinstance(path, str) or not path:
        raise UnsafePath("empty path")
    if "\x00" in path:
        raise UnsafePath("NUL byte in path")
    if "\\" in path:
        raise UnsafePath("backslash in path")
    if path.startswith("/"):
        raise UnsafePath("absolute path")
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafePath("path is not valid UTF-8") from None
    if len(encoded) > MAX_PATH:
        raise UnsafePath("path too long")
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise UnsafePath(f"component {part!r} not allowed")
        if len(part.encode("utf-8")) > MAX_COMPONENT:
            raise UnsafePath("component longer than 255 bytes")
    return path


def check_owner(owner: str) -> str:
    """Return `owner` if it is a valid owner folder name, else raise UnsafePath."""
    check_relpath(owner)
    if "/" in owner or owner.startswith("."):
        raise UnsafePath(f"invalid owner name {owner[:60]!r}")
    return owner


def confine(root: Path, owner: str, path: str) -> Path:
    """The on-disk path of `<root>/<owner>/<path>`, checked against symlinks and escapes.

    Components that do not exist yet are fine (a download creates them); every one that does
    exist, except the last, must be a real directory, and the last must not be a symlink.

    Raises:
        UnsafePath: a bad name, a symlink on the way, or a file where a folder should be.
    """
    return Confiner(root)(owner, path)


class Confiner:
    """`confine` for many names at once: folders already found real are not lstat'ed again.

    Make a fresh one per batch or round (it remembers folders only for its own short life).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._dirs: set[str] = set()

    def __call__(self, owner: str, path: str) -> Path:
        """Confine one name (see `confine`)."""
        check_owner(owner)
        check_relpath(path)
        parts = [owner, *path.split("/")]
        current = self.root
        key = ""
        for index, part in enumerate(parts):
            current = current / part
            key = f"{key}/{part}"
            last = index == len(parts) - 1
            if not last and key in self._dirs:
                continue
            try:
                st = os.lstat(current)
            except FileNotFoundError:
                break
            if stat.S_ISLNK(st.st_mode):
                raise UnsafePath(f"symlink on the way: {owner}/{path}")
            if not last:
                if not stat.S_ISDIR(st.st_mode):
                    raise UnsafePath(f"not a directory on the way: {owner}/{path}")
                self._dirs.add(key)
        return self.root / owner / path
