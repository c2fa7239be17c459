"""Opening without links (`sync/opening.py`), driven directly on a temporary folder."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from sync.opening import open_folder, open_regular


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "root" / "o" / "sub").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "f").write_bytes(b"outside")
    (tmp_path / "aside").mkdir()
    return tmp_path / "root"


class TestOpening:
    def test_a_regular_file_is_opened_and_checked(self, root: Path) -> None:
        (root / "o" / "sub" / "f").write_bytes(b"inside")
        f, st = open_regular(root, ["o", "sub", "f"])
        with f:
            assert f.read() == b"inside" and st.st_size == 6

    def test_a_link_as_the_file_is_refused(self, root: Path) -> None:
        os.symlink(root.parent / "outside" / "f", root / "o" / "sub" / "f")
        with pytest.raises(OSError) as err:
            open_regular(root, ["o", "sub", "f"])
        assert err.value.errno == errno.ELOOP

    def test_a_link_on_the_way_is_refused(self, root: Path) -> None:
        os.symlink(root.parent / "outside", root / "o" / "link")
        with pytest.raises(OSError):
            open_regular(root, ["o", "link", "f"])

    def test_a_fifo_is_refused_without_waiting_for_a_writer(self, root: Path) -> None:
        os.mkfifo(root / "o" / "fifo")
        with pytest.raises(OSError) as err:
            open_regular(root, ["o", "fifo"])
        assert err.value.errno == errno.EINVAL

    def test_dot_dot_is_no_name(self, root: Path) -> None:
        with pytest.raises(OSError):
            open_regular(root, ["o", "..", "outside", "f"])

    def test_folders_are_made_on_the_way_but_never_through_a_link(self, root: Path) -> None:
        os.close(open_folder(root, ["o", "new", "deeper"], create=True))
        assert (root / "o" / "new" / "deeper").is_dir()
        os.symlink(root.parent / "outside", root / "o" / "link")
        with pytest.raises(OSError):
            open_folder(root, ["o", "link", "x"], create=True)
        assert not (root.parent / "outside" / "x").exists()

    def test_a_file_on_the_way_is_no_folder(self, root: Path) -> None:
        (root / "o" / "a").write_text("file, not folder")
        with pytest.raises(NotADirectoryError):
            open_folder(root, ["o", "a", "b"], create=True)
