"""One node per shared folder (issue 15, item 8); the process side is in test_newcomer.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from overlay.folderlock import FolderInUse, FolderLock


def test_a_second_lock_names_the_holder_pid_and_port(tmp_path: Path) -> None:
    first = FolderLock(tmp_path / ".Shared-state")
    first.acquire()
    first.note_port(9001)
    with pytest.raises(FolderInUse, match=f"pid {os.getpid()}, port 9001"):
        FolderLock(tmp_path / ".Shared-state").acquire()
    first.release()


def test_a_released_lock_is_taken_again(tmp_path: Path) -> None:
    first = FolderLock(tmp_path)
    first.acquire()
    first.release()
    second = FolderLock(tmp_path)
    second.acquire()
    assert (tmp_path / "node.lock").read_text().split() == [str(os.getpid())]
    second.release()
