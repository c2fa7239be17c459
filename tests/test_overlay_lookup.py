"""who-has without sockets: paths without owners, near misses, holders known without the index."""

from __future__ import annotations

from overlay.lookup import by_path, known_holders, miss_text, suggestions
from ring.membership import Member
from sync.manifest import FileRecord

A = Member("a" * 64, "alpha", "10.0.0.1", 8091)
B = Member("b" * 64, "bravo", "10.0.0.2", 8091)
C = Member("c" * 64, "charlie", "10.0.0.3", 8091)


def rec(owner: str, path: str, seq: int = 1) -> FileRecord:
    return FileRecord(owner, path, 10, 0, "ab" * 32, seq, False)


FILES = [rec("alpha", "docs/report.pdf"), rec("bravo", "photo.png"), rec("bravo", "a/b/notes.txt")]


class TestByPath:
    def test_a_path_without_its_owner(self) -> None:
        assert by_path("docs/report.pdf", FILES) == [FILES[0]]

    def test_the_last_folders_of_a_path(self) -> None:
        assert by_path("b/notes.txt", FILES) == [FILES[2]]

    def test_no_partial_component(self) -> None:
        assert by_path("otes.txt", FILES) == []


class TestSuggestions:
    def test_a_typo_suggests_the_file(self) -> None:
        assert suggestions("reprot.pdf", FILES) == ["alpha/docs/report.pdf"]

    def test_case_does_not_matter(self) -> None:
        assert suggestions("PHOTO.PNG", FILES) == ["bravo/photo.png"]

    def test_nothing_close(self) -> None:
        assert suggestions("zzzzzzzz", FILES) == []

    def test_the_miss_line_names_the_suggestions_or_ls(self) -> None:
        assert "did you mean:\n  bravo/photo.png" in miss_text("fhoto.png", FILES)
        assert "'ls'" in miss_text("zzzzzzzz", FILES)


class TestKnownHolders:
    def test_held_here_and_the_owner(self) -> None:
        known = known_holders(FILES[1], [A, B, C], A, True, C, None)
        assert known == {A.key: "held here", B.key: "owner"}

    def test_the_previous_node_when_its_manifest_says_held_at_this_seq(self) -> None:
        known = known_holders(FILES[0], [A, B, C], B, False, C, (1, True))
        assert known == {A.key: "owner", C.key: "its manifest says held"}

    def test_a_stale_or_unheld_manifest_entry_is_no_holder(self) -> None:
        assert C.key not in known_holders(FILES[0], [A, B, C], B, False, C, (0, True))
        assert C.key not in known_holders(FILES[0], [A, B, C], B, False, C, (1, False))

    def test_an_owner_outside_the_ring_is_no_answer(self) -> None:
        assert known_holders(FILES[0], [B, C], B, False, None, None) == {}

    def test_the_owner_asking_is_held_here(self) -> None:
        assert known_holders(FILES[0], [A, B], A, True, B, None) == {A.key: "held here"}
