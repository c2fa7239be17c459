"""Browsing the shared folders at the prompt (`ls`, and the file list of `files`): plain
functions from (owner, path, size, held) rows to bounded text, tested without a node.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from overlay.reports import human_size

MAX_LISTED = 40
"""Lines `ls` prints at most; the rest are counted in one "and N more" line."""

MAX_FILES = 15
"""Files `files` names at most (it is a summary; `ls` browses)."""


@dataclass(frozen=True)
class Entry:
    """One live file as the prompt lists it; `held` when its bytes are on this node."""

    owner: str
    path: str
    size: int
    held: bool

    @property
    def name(self) -> str:
        """`<owner>/<path>`, as who-has takes it."""
        return f"{self.owner}/{self.path}"


def _line(entry: Entry, shown: str) -> str:
    missing = "" if entry.held else "  (not here yet)"
    return f"  {shown}  {human_size(entry.size)}{missing}"


def _bounded(lines: list[str], limit: int, hint: str) -> list[str]:
    if len(lines) <= limit:
        return lines
    return [*lines[:limit], f"  ... and {len(lines) - limit} more{hint}"]


def ls_text(entries: Iterable[Entry], where: str = "", limit: int = MAX_LISTED) -> str:
    """`ls [owner[/folder]]`: with no argument the owners, else the folders (with how many
    files and bytes are under each) and the files directly in `where`, folders first."""
    where = where.strip().strip("/")
    prefix = f"{where}/" if where else ""
    folders: dict[str, list[int]] = {}
    files: list[tuple[str, Entry]] = []
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        rest = entry.name[len(prefix) :]
        head, sep, _ = rest.partition("/")
        if sep:
            tally = folders.setdefault(head, [0, 0])
            tally[0] += 1
            tally[1] += entry.size
        else:
            files.append((rest, entry))
    if not folders and not files:
        return f"nothing under {where!r}; 'ls' lists the owners" if where else "no files yet"
    lines = [
        f"  {name}/  {count} file(s), {human_size(size)}"
        for name, (count, size) in sorted(folders.items())
    ]
    lines += [_line(entry, name) for name, entry in sorted(files, key=lambda f: f[0])]
    title = f"{where}/:" if where else "owners:"
    return "\n".join([title, *_bounded(lines, limit, "; narrow the path")])


def files_list(entries: Sequence[Entry], limit: int = MAX_FILES) -> str:
    """The files of `files`, by name, at most `limit` of them, then how to see the rest."""
    lines = [_line(entry, entry.name) for entry in sorted(entries, key=lambda e: e.name)]
    return "\n".join(_bounded(lines, limit, "; 'ls <owner>' browses one folder"))
