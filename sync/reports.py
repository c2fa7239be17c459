"""What the user hears and sees of sync: change lines at the prompt and the `status` figures.

`Change` is one quiet line (a replica added, updated, deleted, a local edit kept in the trash, a
warning about the own folder); `replica_changes` works out the lines a pass over replicas earned
from the bytes held per path before and after it, and the other functions word the rest.
`SyncStatus` is what the prompt's `status` shows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sync.manifest import FileRecord


@dataclass(frozen=True)
class Change:
    """Something the user should hear about, as one quiet line at the prompt."""

    kind: str  # added, updated, deleted, kept (a local edit moved to the trash), warning
    owner: str
    path: str
    detail: str = ""

    def text(self) -> str:
        """The line shown, e.g. "~ alice/report.pdf updated"."""
        mark = {"added": "+", "updated": "~", "deleted": "-"}.get(self.kind, "!")
        where = f"{self.owner}/{self.path}" if self.path else self.owner
        if self.kind in ("added", "updated", "deleted"):
            return f"{mark} {where} {self.kind}"
        return f"{mark} {where}: {self.detail}"


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


def kept(rec: FileRecord, where: Path) -> Change:
    """A replica edited here was moved to the trash at `where` rather than overwritten."""
    return Change("kept", rec.owner, rec.path, f"your local edit was kept in {where}")


def folder_warning(owner: str, problem: str | None) -> Change:
    """The own folder cannot be trusted to show deletes (`problem`), or is back (None)."""
    text = f"{problem}; pushing no deletes" if problem else "own folder is back"
    return Change("warning", owner, "", text)


def held_warning(owner: str, why: str, held: int, live: int) -> Change:
    """A scan's deletes are held back until the user types `confirm-deletes`."""
    text = f"{why}: {held} of {live} files' deletes held; type 'confirm-deletes' to push them"
    return Change("warning", owner, "", text)
