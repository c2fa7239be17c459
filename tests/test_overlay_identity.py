"""A new host's default name: from its host name, never a loopback address (issue 15, item 1)."""

from __future__ import annotations

from pathlib import Path

from overlay.identity import base_name, load_or_create, name_from_host, name_taken_text
from ring.roster import fingerprint

KEY = "ab" * 32


class TestNameFromHost:
    def test_a_plain_host_name_is_kept(self) -> None:
        assert name_from_host("alice-laptop") == "alice-laptop"
        assert name_from_host("build.example.org") == "build.example.org"

    def test_unsafe_characters_become_one_dash(self) -> None:
        assert name_from_host("Alice's MacBook Pro") == "Alice-s-MacBook-Pro"
        assert name_from_host("a/../b") == "a-..-b"

    def test_leading_dots_go_so_the_folder_is_not_hidden(self) -> None:
        assert name_from_host("..evil") == "evil"

    def test_nothing_usable_or_loopback_is_none(self) -> None:
        for raw in ("", "...", "///", "localhost", "LOCALHOST", "127.0.0.1", "127.1.2.3", "::1"):
            assert name_from_host(raw) is None, raw

    def test_a_long_host_name_is_cut(self) -> None:
        name = name_from_host("x" * 300)
        assert name == "x" * 63


class TestBaseName:
    def test_the_host_name_wins_over_the_address(self) -> None:
        assert base_name("alice", "10.0.0.5", KEY) == "alice"

    def test_a_loopback_host_name_falls_back_to_a_lan_address(self) -> None:
        assert base_name("localhost", "10.0.0.5", KEY) == "10.0.0.5"

    def test_never_a_loopback_address(self) -> None:
        assert base_name("localhost", "127.0.0.1", KEY) == f"host-{fingerprint(KEY)}"

    def test_stable_across_restarts_once_stored(self, tmp_path: Path) -> None:
        first = load_or_create(tmp_path, None, base_name("alice", "10.0.0.5", KEY), KEY)
        again = load_or_create(tmp_path, None, base_name("renamed", "10.0.0.9", KEY), KEY)
        assert first.name == again.name == "alice"


def test_a_refused_name_is_told_with_a_name_to_use() -> None:
    text = name_taken_text("alice", KEY, ("10.0.0.7", 8091))
    assert "10.0.0.7:8091" in text and "'alice'" in text
    assert f"--name alice-{fingerprint(KEY)[:4]}" in text
