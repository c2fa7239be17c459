"""What a `who-has` query finds without sockets: the files it means, near misses for a typo,
and the holders a node knows without the holder index.

A ring may mix modes (a node started without --dht, or a --dht node whose index lacks an
entry): the asking node still knows that it holds a file itself, that a file's owner holds it,
and what its previous node's manifest said it holds (the `held` flag of each entry). Those are
answers, marked as such, never "no holder known" for a file the node holds itself.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

from ring.membership import Member
from sync.manifest import FileRecord

MAX_SUGGESTIONS = 5
"""Near matches offered for a query that matched nothing."""

SIMILARITY = 0.6
"""difflib's cut-off for a near match (its default: a typo or two in a short name)."""


def by_path(query: str, records: Iterable[FileRecord]) -> list[FileRecord]:
    """Records whose path (under any owner) is `query` or ends with "/<query>": a path typed
    without its owner, or with only its last folders."""
    query = query.strip().strip("/")
    tail = "/" + query
    found = [r for r in records if r.path == query or r.path.endswith(tail)]
    return sorted(found, key=lambda r: (r.owner, r.path))


def suggestions(query: str, records: Iterable[FileRecord]) -> list[str]:
    """Up to MAX_SUGGESTIONS "<owner>/<path>" names close to `query` (whole names, and bare
    file names, compared case-insensitively), best first."""
    full: dict[str, str] = {}
    for rec in records:
        name = f"{rec.owner}/{rec.path}"
        full.setdefault(name.lower(), name)
        full.setdefault(rec.path.lower(), name)
        full.setdefault(rec.path.rsplit("/", 1)[-1].lower(), name)
    close = difflib.get_close_matches(query.lower(), list(full), MAX_SUGGESTIONS * 3, SIMILARITY)
    out: list[str] = []
    for key in close:
        if full[key] not in out:
            out.append(full[key])
    return out[:MAX_SUGGESTIONS]


def miss_text(query: str, records: Sequence[FileRecord]) -> str:
    """The answer to a query that matched no file: near matches if any, and how to browse."""
    near = suggestions(query, records)
    if not near:
        return f"no file matches {query!r}; 'ls' lists the files, 'files' the owners"
    return "\n".join([f"no file matches {query!r}; did you mean:", *(f"  {n}" for n in near)])


def known_holders(
    record: FileRecord,
    members: Sequence[Member],
    me: Member,
    held_here: bool,
    prev: Member | None,
    prev_says: tuple[int, bool] | None,
) -> dict[str, str]:
    """Holders of `record` known without the index: member key -> how it is known.

    Args:
        members: the ring as this node sees it (a holder outside it is no answer).
        held_here: this node has the record's bytes on disk.
        prev: this node's previous member, whose manifest this node reads.
        prev_says: (seq, held) for the record's path in that manifest, if it listed it.
    """
    out: dict[str, str] = {}
    if held_here:
        out[me.key] = "held here"
    owner = next((m for m in members if m.name == record.owner), None)
    if owner is not None:
        out.setdefault(owner.key, "owner")
    if prev is not None and prev_says == (record.seq, True):
        out.setdefault(prev.key, "its manifest says held")
    return out
