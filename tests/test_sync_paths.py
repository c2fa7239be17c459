"""Confinement: names from the network never reach outside the shared folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sync.errors import UnsafePath
from sync.paths import check_owner, check_relpath, confine


class TestCheckRelpath:
    @pytest.mark.parametrize(
        "path",
        [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            ".",
            "..",
            "a//b",
            "a/",
            "a\x00b",
            "a\\..\\x",
            "x" * 256,
            "d/" + "é" * 128,
        ],
    )
    def test_refuses(self, path: str) -> None:
        with pytest.raises(UnsafePath):
            check_relpath(path)

    @pytest.mark.parametrize(
        "path",
        [
            "END",
            "JOIN.txt",
            "FILE",
            "MANIFEST.md",
            "name with spaces.txt",
            "ünïcødé/日本語.bin",
            "a/b/c/d.png",
            ".hidden",
            "..dots",
            "x" * 255,
        ],
    )
    def test_accepts_ordinary_names(self, path: str) -> None:
        assert check_relpath(path) == path

    @pytest.mark.parametrize("owner", [".lanshare-tmp", ".x", "a/b", "..", ""])
    def test_refuses_bad_owner(self, owner: str) -> None:
        with pytest.raises(UnsafePath):
            check_owner(owner)


class TestConfine:
    def test_plain_path_inside_root(self, tmp_path: Path) -> None:
        assert confine(tmp_path, "n1", "a/b c/ü.txt") == tmp_path / "n1" / "a/b c/ü.txt"

    def test_symlinked_folder_pointing_outside_is_refused(self, tmp_path: Path) -> None:
        root, outside = tmp_path / "root", tmp_path / "outside"
        (root / "n1").mkdir(parents=True)
        outside.mkdir()
        (outside / "secret").write_text("s")
        os.symlink(outside, root / "n1" / "link")
        with pytest.raises(UnsafePath):
            confine(root, "n1", "link/secret")

    def test_symlinked_file_is_refused_even_inside(self, tmp_path: Path) -> None:
        (tmp_path / "n1").mkdir()
        (tmp_path / "n1" / "real").write_text("r")
        os.symlink(tmp_path / "n1" / "real", tmp_path / "n1" / "alias")
        with pytest.raises(UnsafePath):
            confine(tmp_path, "n1", "alias")

    def test_symlinked_owner_folder_is_refused(self, tmp_path: Path) -> None:
        root = tmp_path / "root"
        root.mkdir()
        os.symlink(tmp_path, root / "n1")
        with pytest.raises(UnsafePath):
            confine(root, "n1", "x")
