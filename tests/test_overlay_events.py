"""The lines a person sees without asking: the banner and ring changes (issue 15, item 3)."""

from __future__ import annotations

from pathlib import Path

from overlay.events import banner_lines, ring_changes
from ring.membership import Member

A = Member("a" * 64, "alpha", "10.0.0.1", 8091)
B = Member("b" * 64, "bravo", "10.0.0.2", 8091)
C = Member("c" * 64, "charlie", "10.0.0.3", 8091)


class TestBanner:
    def test_name_folder_network_ring_and_help(self) -> None:
        lines = banner_lines("alpha", Path("/s/Shared/alpha"), "3f9c0e6a1b2d4c5e" * 2, 3, True)
        text = "\n".join(lines)
        assert "'alpha'" in text and "/s/Shared/alpha/" in text
        assert "network 3f9c0e6a1b2d4c5e," in text and "ring of 3" in text
        assert "'help'" in text and "--dht" in text

    def test_alone(self) -> None:
        assert "alone in its ring" in banner_lines("a", Path("/x"), "00", 1, False)[1]


class TestRingChanges:
    def test_the_first_view_says_nothing(self) -> None:
        assert ring_changes(None, (A, B), A.key) == []

    def test_a_join_and_a_leave(self) -> None:
        assert ring_changes((A, B), (A, C), A.key) == [
            "+ charlie joined the ring (ring of 2)",
            "- bravo left the ring (ring of 2)",
        ]

    def test_this_node_is_never_announced(self) -> None:
        assert ring_changes((B,), (A, B), A.key) == []

    def test_no_change_no_line(self) -> None:
        assert ring_changes((A, B), (B, A), A.key) == []

    def test_many_at_once_are_one_line(self) -> None:
        many = [Member(str(i) * 64, f"n{i}", "10.0.0.9", 8091) for i in range(1, 7)]
        assert ring_changes((A,), (A, *many), A.key) == ["+ 6 hosts joined the ring (ring of 7)"]
