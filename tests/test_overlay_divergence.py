"""Replicas edited here are named by `status` before the owner's next change (issue 15, 7)."""

from __future__ import annotations

import os
from pathlib import Path

from overlay.divergence import MAX_SHOWN, diverged, diverged_lines
from sync.manifest import FileRecord

MTIME = 1_700_000_000_000_000_000


def placed(root: Path, owner: str, path: str, data: bytes) -> FileRecord:
    """A replica as sync places it: the record's size and mtime."""
    target = root / owner / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    os.utime(target, ns=(MTIME, MTIME))
    return FileRecord(owner, path, len(data), MTIME, "00" * 32, 1, False)


def test_untouched_replicas_are_not_named(tmp_path: Path) -> None:
    recs = [placed(tmp_path, "alpha", "a.txt", b"one"), placed(tmp_path, "alpha", "d/b", b"2")]
    assert diverged(tmp_path, recs) == []


def test_an_edit_or_a_removal_is_named(tmp_path: Path) -> None:
    same = placed(tmp_path, "alpha", "same.txt", b"abc")
    grown = placed(tmp_path, "alpha", "grown.txt", b"abc")
    (tmp_path / "alpha" / "grown.txt").write_bytes(b"abcdef")
    touched = placed(tmp_path, "alpha", "touched.txt", b"abc")
    (tmp_path / "alpha" / "touched.txt").write_bytes(b"xyz")  # same size, new mtime
    gone = placed(tmp_path, "alpha", "gone.txt", b"abc")
    (tmp_path / "alpha" / "gone.txt").unlink()
    assert diverged(tmp_path, [same, grown, touched, gone]) == [
        "alpha/gone.txt (removed here)",
        "alpha/grown.txt",
        "alpha/touched.txt",
    ]


def test_at_most_limit_replicas_are_looked_at(tmp_path: Path) -> None:
    recs = [FileRecord("alpha", f"missing{i}", 1, MTIME, "00" * 32, 1, False) for i in range(9)]
    assert len(diverged(tmp_path, recs, limit=4)) == 4


def test_the_status_lines_are_bounded() -> None:
    assert diverged_lines([]) == []
    lines = diverged_lines([f"a/{i}" for i in range(MAX_SHOWN + 3)])
    assert lines[0].startswith(f"replicas edited here: {MAX_SHOWN + 3}")
    assert lines[-1] == "  ... and 3 more" and len(lines) == MAX_SHOWN + 2
