"""Whether an owner's own changes have reached every member: a plain tracker, no I/O.

Theory of operation. When the owner publishes new records of its own, `published` notes, per
path, the seq published and the other members of the ring at that moment. A member's PLACED
acknowledgement (`sync/placed.py`) of (path, seq) equal to the tracked seq counts for that
member; once every one of those members still in the ring has counted, the path is done.
Members that leave meanwhile are not waited for (`set_members`), members that join later
never were; a newer seq of a path replaces the older one, whose acknowledgements no longer
count. Done paths gather in a `Reached` until taken, and `reached_text` words them as one line.
With no other member there is nobody to reach: nothing is tracked, nothing is said.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sync.reports import printable

TRACK_MAX = 10_000
"""Paths tracked at once; past this the oldest is forgotten (its line never comes)."""


@dataclass
class _Tracked:
    seq: int
    deleted: bool
    waiting: set[str]
    reached: int = 0


@dataclass
class Reached:
    """The changes done since last taken: how many files and deletes, the fewest members any
    of them reached, and the path of the one change when there is only one."""

    files: int = 0
    deletes: int = 0
    members: int = 0
    path: str = ""

    @property
    def count(self) -> int:
        return self.files + self.deletes

    def add(self, path: str, deleted: bool, members: int) -> None:
        self.path = path if self.count == 0 else ""
        self.members = members if self.count == 0 else min(self.members, members)
        if deleted:
            self.deletes += 1
        else:
            self.files += 1


class ReachTracker:
    """Own changes waiting to be placed by every other member, by path."""

    def __init__(self, limit: int = TRACK_MAX) -> None:
        self.limit = limit
        self._paths: dict[str, _Tracked] = {}  # oldest first
        self._members: frozenset[str] = frozenset()
        self._done = Reached()

    def __len__(self) -> int:
        return len(self._paths)

    @property
    def done(self) -> int:
        """How many changes are done and not taken yet."""
        return self._done.count

    def set_members(self, members: Iterable[str]) -> None:
        """The other members of the ring now: one that left is waited for no longer (which
        may finish paths it alone had not placed)."""
        self._members = frozenset(members)
        for path, item in list(self._paths.items()):
            item.waiting &= self._members
            self._settle(path, item)

    def published(self, changes: Iterable[tuple[str, int, bool]]) -> None:
        """The owner published these (path, seq, deleted): wait for every member on each."""
        for path, seq, deleted in changes:
            self._paths.pop(path, None)  # an older seq of the path is no longer wanted
            if not self._members:
                continue
            self._paths[path] = _Tracked(seq, deleted, set(self._members))
            while len(self._paths) > self.limit:
                del self._paths[next(iter(self._paths))]

    def ack(self, member: str, pairs: Iterable[tuple[str, int]]) -> int:
        """`member` placed these (path, seq); returns how many counted. Untracked paths,
        other seqs and members not waited for are ignored."""
        counted = 0
        for path, seq in pairs:
            item = self._paths.get(path)
            if item is None or item.seq != seq or member not in item.waiting:
                continue
            item.waiting.discard(member)
            item.reached += 1
            counted += 1
            self._settle(path, item)
        return counted

    def take_done(self) -> Reached:
        """The changes that reached every member since the last call."""
        done, self._done = self._done, Reached()
        return done

    def _settle(self, path: str, item: _Tracked) -> None:
        if item.waiting:
            return
        del self._paths[path]
        if item.reached:  # every member it waited for left: it reached nobody
            self._done.add(path, item.deleted, item.reached)


def reached_text(done: Reached) -> str | None:
    """The one line for changes that reached every member, None for none, e.g.
    "✓ docs/report.pdf reached every member (3)",
    "✓ 1,000 of your files reached every member (3)"; the number is how many members
    placed it (the fewest, for many changes)."""
    every = f"reached every member ({done.members})"
    if done.count == 0:
        return None
    if done.count == 1:
        what = printable(done.path) if done.files else f"delete of {printable(done.path)}"
        return f"✓ {what} {every}"
    parts = []
    if done.files:
        parts.append(f"{done.files:,} of your files")
    if done.deletes:
        kind = "delete" if done.deletes == 1 else "deletes"
        parts.append(f"{done.deletes:,} {kind}" + ("" if done.files else " of your files"))
    return f"✓ {' and '.join(parts)} {every}"
