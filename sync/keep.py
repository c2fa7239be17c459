"""Keeping what a user changed in a replica: moved out of sync's way, never lost, and told.

Where a kept copy goes: `<state>/trash/<owner>/<path>.<stamp>`, in the state folder beside
Shared/, never inside it. Inside `Shared/<owner>/` a copy would sit in a folder that only the
owner's records describe: it would be in the way of a file or folder the owner makes at that
name later, it would block the removal of a folder the owner deleted, and a user browsing the
folder could take it for the owner's. In the trash it is never shared (only Shared/ is served
and published), never deleted or overwritten by a later sync, and it keeps the folders it sat
in. The user hears where it went at once (a `kept` line), and `status` lists the newest.

Names: every name made here fits MAX_COMPONENT bytes and stays apart from every other; a name
too long for its stamp is cut at a character boundary and marked with HASH_DIGITS hex digits of
the whole name's SHA-256 (`kept_name`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from sync.paths import MAX_COMPONENT
from sync.reports import Change, kept
from sync.state import State

log = logging.getLogger(__name__)

HASH_DIGITS = 8
"""Hex digits of a long name's SHA-256 kept in its shortened copy's name (tells two apart)."""


def kept_name(name: str, stamp: str) -> str:
    """The name of a kept copy of `name` made at `stamp`: `<name>.<stamp>`, shortened to fit
    MAX_COMPONENT bytes when it must (`<start of name>~<hash>.<stamp>`)."""
    suffix = f".{stamp}"
    whole = name + suffix
    if len(whole.encode("utf-8", "surrogateescape")) <= MAX_COMPONENT:
        return whole
    raw = name.encode("utf-8", "surrogateescape")
    mark = "~" + hashlib.sha256(raw).hexdigest()[:HASH_DIGITS]
    room = MAX_COMPONENT - len(mark) - len(suffix.encode())
    return raw[:room].decode("utf-8", "ignore") + mark + suffix


def _move_in(trash: Path, owner: str, path: str, source: Path) -> Path:
    """Move `source` to a fresh kept name for owner/path in the trash (blocking)."""
    *folders, name = path.split("/")
    where = trash.joinpath(owner, *folders)
    where.mkdir(parents=True, exist_ok=True)
    stamp = time.time_ns()
    while True:
        dest = where / kept_name(name, str(stamp))
        if not os.path.lexists(dest):
            break
        stamp += 1
    shutil.move(source, dest)
    return dest


class Keeper:
    """Moves what a user changed in replicas to the trash, notes it, and tells the user."""

    def __init__(self, trash: Path, state: State, tell: Callable[[Change], None]) -> None:
        self.trash, self.state, self.tell = trash, state, tell

    async def keep(self, owner: str, path: str, source: Path, what: str) -> Path:
        """Move `source` (a file, link or folder of the user's, found at replica path
        owner/path or already set aside) into the trash, and tell the user.

        Args:
            what: what is kept, as the user reads it ("your local edit").

        Returns:
            Where it went.

        Raises:
            OSError: it could not be moved (it stays where it is: nothing is lost).
        """
        dest = await asyncio.to_thread(_move_in, self.trash, owner, path, source)
        self.state.note_kept(owner, path, dest.relative_to(self.trash).as_posix(), time.time())
        log.warning("%s/%s: %s was kept as %s", owner, path, what, dest)
        self.tell(kept(owner, path, dest, what))
        return dest
