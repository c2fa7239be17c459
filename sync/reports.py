"""What the user hears and sees of sync: change lines at the prompt and the `status` figures.

`Change` is one quiet line (a replica added, updated, deleted, a local edit kept in the trash, a
warning about the own folder); `replica_changes` works out the lines a pass over replicas earned
from the bytes held per path before and after it, and the other functions word the rest.
`SyncStatus` is what the prompt's `status` shows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sync.manifest import FileRecord


@dataclass(frozen=True)
class Change:
    """Something the user should hear about, as one quiet line at the prompt."""

    kind: str  # added, updated, deleted, kept (a local edit moved to the trash), warning,
    # reached (own changes placed by every member: `detail` is the whole line, `reach.py`)
    owner: str
    path: str
    detail: str = ""

    def text(self) -> str:
        """The line shown, e.g. "~ alice/report.pdf updated"; names are shown `printable`."""
        if self.kind == "reached":
            return self.detail
        mark = {"added": "+", "updated": "~", "deleted": "-"}.get(self.kind, "!")
        where = printable(f"{self.owner}/{self.path}" if self.path else self.owner)
        if self.kind in ("added", "updated", "deleted"):
            return f"{mark} {where} {self.kind}"
        return f"{mark} {where}: {printable(self.detail)}"


def printable(text: str) -> str:
    """`text` safe to print at any terminal: control characters (a terminal escape, a
    carriage return) and bytes that are not UTF-8 (a name's surrogate escapes) shown as \\xNN.

    Names come from the world; printed raw, one could clear the screen or rewrite a line, and
    one with bytes that are not UTF-8 could not be printed at all.
    """
    out = []
    for char in text:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:  # a byte os.fsdecode could not decode
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x20 or 0x7F <= code < 0xA0 or 0xD800 <= code <= 0xDFFF:
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


@dataclass(frozen=True)
class SyncStatus:
    """What `status` at the prompt shows."""

    own_files: int
    own_seq: int
    problem: str | None
    unsettled: int
    held_deletes: int
    held_reason: str
    to_fetch: int
    to_delete: int
    round_running: bool
    transfers: int
    last_sync: dict[str, float]
    not_shared: dict[str, str] = field(default_factory=dict)
    """Own files this node cannot share, shown `printable` -> why."""
    not_stored: dict[str, str] = field(default_factory=dict)
    """Replica files ("owner/path", printable) this node cannot store now -> why."""
    kept: int = 0
    """Copies of users' changes to replicas kept in the trash, in all."""
    newest_kept: list[tuple[str, str]] = field(default_factory=list)
    """The newest of them: ("owner/path", the copy's path), newest first."""


def trouble_lines(status: SyncStatus) -> list[str]:
    """The lines `status` adds for names this node cannot share or store, and kept copies."""
    lines = [f"not shared: {n} ({printable(why)})" for n, why in sorted(status.not_shared.items())]
    lines += [
        f"cannot store: {n} ({printable(why)})" for n, why in sorted(status.not_stored.items())
    ]
    if status.kept:
        lines.append(f"local changes kept in the trash: {status.kept}, newest:")
        lines += [f"  {printable(name)} -> {printable(copy)}" for name, copy in status.newest_kept]
    return lines


def replica_changes(
    before: dict[tuple[str, str], str | None],
    after: Iterable[tuple[FileRecord, str | None]],
) -> list[Change]:
    """What a sync pass did to replicas, from the bytes held per path before and after."""
    out = []
    for rec, have in after:
        old = before.get((rec.owner, rec.path))
        if have == old:
            continue
        if have is None:
            out.append(Change("deleted", rec.owner, rec.path))
        else:
            out.append(Change("added" if old is None else "updated", rec.owner, rec.path))
    return sorted(out, key=lambda c: (c.owner, c.path))


def kept(owner: str, path: str, where: Path, what: str) -> Change:
    """`what` (a user's change to a replica) was moved to the trash at `where` rather than
    overwritten or deleted."""
    return Change("kept", owner, path, f"{what} was kept in {where}")


def folder_warning(owner: str, problem: str | None) -> Change:
    """The own folder cannot be trusted to show deletes (`problem`), or is back (None)."""
    text = f"{problem}; pushing no deletes" if problem else "own folder is back"
    return Change("warning", owner, "", text)


def held_warning(owner: str, why: str, held: int, live: int) -> Change:
    """A scan's deletes are held back until the user types `confirm-deletes`."""
    text = f"{why}: {held} of {live} files' deletes held; type 'confirm-deletes' to push them"
    return Change("warning", owner, "", text)
