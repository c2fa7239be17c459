"""Replicas edited here: found at `status`, before the owner's next change sets them aside.

A replica is placed with its record's size and mtime (`sync/replica.py`), so one whose size or
mtime on disk differs was changed here. Sync notices only when the owner's next version comes
(then the edit is kept, `sync/keep.py`); until then `status` names it, so a user knows their
edit is not shared and will be set aside. A bounded number of replicas is looked at per
`status` (MAX_CHECKED lstat calls), so a huge tree never stalls the prompt.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from sync.manifest import FileRecord

MAX_CHECKED = 5000
"""Replicas looked at by one `status` at most."""

MAX_SHOWN = 10
"""Diverged replicas named by `status`; the rest are counted."""

MTIME_SLACK_NS = 2_000_000_000
"""An mtime this close to the record's counts as the record's (file systems that round it)."""


def diverged(root: Path, records: Iterable[FileRecord], limit: int = MAX_CHECKED) -> list[str]:
    """ "<owner>/<path>" of each replica under `root` whose size or mtime on disk is not its
    record's, or that is gone; `records` are the held replicas to look at, `limit` at most."""
    out = []
    for count, rec in enumerate(records):
        if count >= limit:
            break
        try:
            st = os.lstat(root / rec.owner / rec.path)
        except FileNotFoundError:
            out.append(f"{rec.owner}/{rec.path} (removed here)")
            continue
        except OSError:
            continue
        if st.st_size != rec.size or abs(st.st_mtime_ns - rec.mtime_ns) > MTIME_SLACK_NS:
            out.append(f"{rec.owner}/{rec.path}")
    return sorted(out)


def diverged_lines(names: list[str]) -> list[str]:
    """What `status` adds: none when no replica diverged."""
    if not names:
        return []
    lines = [
        f"replicas edited here: {len(names)} (not shared; set aside as a conflict copy when"
        " the owner changes them)"
    ]
    lines += [f"  {name}" for name in names[:MAX_SHOWN]]
    if len(names) > MAX_SHOWN:
        lines.append(f"  ... and {len(names) - MAX_SHOWN} more")
    return lines
