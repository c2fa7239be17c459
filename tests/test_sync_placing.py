"""Changing a path only while it is what was seen (`sync/placing.py`), driven directly on a
temporary folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sync.placing import move, place_many, remove, seen


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "root" / "o" / "sub").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "f").write_bytes(b"outside")
    (tmp_path / "aside").mkdir()
    return tmp_path / "root"


def look(path: Path) -> tuple[int, int, int, int, int] | None:
    return seen(os.lstat(path)) if os.path.lexists(path) else None


class TestPlacing:
    def test_a_file_edited_since_it_was_seen_is_set_aside_not_overwritten(self, root: Path) -> None:
        target = root / "o" / "sub" / "f"
        target.write_bytes(b"ours")
        was = look(target)
        target.write_bytes(b"the user's edit")
        tmp = root.parent / "tmp"
        tmp.write_bytes(b"new")
        (outcome,) = place_many(root, root.parent / "aside", [(["o", "sub", "f"], tmp, was)])
        assert outcome.error is None and target.read_bytes() == b"new"
        assert outcome.aside is not None and outcome.aside.read_bytes() == b"the user's edit"

    def test_what_was_seen_is_replaced_and_a_folder_is_never(self, root: Path) -> None:
        target = root / "o" / "sub" / "f"
        target.write_bytes(b"ours")
        tmp = root.parent / "tmp"
        tmp.write_bytes(b"new")
        moves = [(["o", "sub", "f"], tmp, look(target)), (["o", "sub"], tmp, None)]
        done, folder = place_many(root, root.parent / "aside", moves)
        assert done.error is None and done.aside is None and target.read_bytes() == b"new"
        assert isinstance(folder.error, OSError) and (root / "o" / "sub").is_dir()

    def test_remove_deletes_only_what_was_seen(self, root: Path) -> None:
        target = root / "o" / "sub" / "f"
        target.write_bytes(b"ours")
        assert remove(root, ["o", "sub", "f"], look(target), root.parent / "aside").aside is None
        assert not target.exists()
        target.write_bytes(b"ours")
        was = look(target)
        target.write_bytes(b"edited")
        outcome = remove(root, ["o", "sub", "f"], was, root.parent / "aside")
        assert not target.exists()
        assert outcome.aside is not None and outcome.aside.read_bytes() == b"edited"

    def test_move_refuses_a_source_changed_since_it_was_seen(self, root: Path) -> None:
        src = root / "o" / "sub" / "a"
        src.write_bytes(b"ours")
        was = look(src)
        src.write_bytes(b"edited")
        aside = root.parent / "aside"
        outcome = move(root, (["o", "sub", "a"], was), (["o", "b"], None), aside, 1)
        assert outcome.error is not None and src.read_bytes() == b"edited"
        assert not (root / "o" / "b").exists()
        outcome = move(root, (["o", "sub", "a"], look(src)), (["o", "b"], None), aside, 10**9)
        assert outcome.error is None and (root / "o" / "b").read_bytes() == b"edited"
        assert os.stat(root / "o" / "b").st_mtime_ns == 10**9
