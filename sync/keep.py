"""Keeping what a user changed in a replica: moved out of sync's way, never lost, and told.

Where a kept copy goes: `<state>/trash/<owner>/<folders>/<name> (conflict <host> <date>).<ext>`
(`kept_name`: the host whose edit it was, the local date and time to the second), in the state
folder beside Shared/, never inside it. The extension stays last, so the copy still opens with
the program that made it. Inside `Shared/<owner>/` a copy would sit in a folder that only the
owner's records describe: it would be in the way of a file or folder the owner makes at that
name later, it would block the removal of a folder the owner deleted, and a user browsing the
folder could take it for the owner's. In the trash it is never shared (only Shared/ is served
and published), never deleted or overwritten by a later sync, and it keeps the folders it sat
in. The user hears where it went at once (a `kept` line), and `status` lists the newest.

Names: every name made here fits MAX_COMPONENT bytes and stays apart from every other (a second
copy in the same second gets a counter after the time); a name too long for its mark is cut at
a character boundary and marked with HASH_DIGITS hex digits of the whole name's SHA-256.
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


MAX_EXT = 16
"""Bytes of a name's last suffix kept apart as its extension; a longer one is no extension."""

MAX_HOST = 64
"""Characters of the host name written into a kept copy's name."""


def split_ext(name: str) -> tuple[str, str]:
    """(stem, extension with its dot): "a.tar.gz" -> ("a.tar", ".gz"); a leading dot
    (".bashrc"), a suffix with a space or over MAX_EXT bytes is no extension."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or " " in ext or len(ext.encode("utf-8", "surrogateescape")) >= MAX_EXT:
        return name, ""
    return stem, "." + ext


def kept_name(name: str, host: str, when: str) -> str:
    """The name of a copy of `name` kept from `host`'s edit at `when` ("YYYY-MM-DD HHMMSS",
    a counter after it for a second copy in one second): `<stem> (conflict <host> <when>)<ext>`,
    shortened to fit MAX_COMPONENT bytes when it must (`<start of stem>~<hash> (...)<ext>`)."""
    stem, ext = split_ext(name)
    mark = f" (conflict {host[:MAX_HOST]} {when})"
    whole = stem + mark + ext
    if len(whole.encode("utf-8", "surrogateescape")) <= MAX_COMPONENT:
        return whole
    raw = stem.encode("utf-8", "surrogateescape")
    cut = "~" + hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:HASH_DIGITS]
    room = MAX_COMPONENT - len((cut + mark + ext).encode("utf-8", "surrogateescape"))
    return raw[:room].decode("utf-8", "ignore") + cut + mark + ext


def _move_in(trash: Path, owner: str, path: str, source: Path, host: str) -> Path:
    """Move `source` to a fresh kept name for owner/path in the trash (blocking)."""
    *folders, name = path.split("/")
    where = trash.joinpath(owner, *folders)
    where.mkdir(parents=True, exist_ok=True)
    when = time.strftime("%Y-%m-%d %H%M%S")
    dest = where / kept_name(name, host, when)
    count = 1
    while os.path.lexists(dest):
        count += 1
        dest = where / kept_name(name, host, f"{when} {count}")
    shutil.move(source, dest)
    return dest


class Keeper:
    """Moves what a user changed in replicas to the trash, notes it, and tells the user."""

    def __init__(
        self, trash: Path, state: State, tell: Callable[[Change], None], host: str
    ) -> None:
        """Args:
        host: this node's name, written into each kept copy's name (whose edit it was).
        """
        self.trash, self.state, self.tell, self.host = trash, state, tell, host

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
        dest = await asyncio.to_thread(_move_in, self.trash, owner, path, source, self.host)
        self.state.note_kept(owner, path, dest.relative_to(self.trash).as_posix(), time.time())
        log.warning("%s/%s: %s was kept as %s", owner, path, what, dest)
        self.tell(kept(owner, path, dest, what))
        return dest
