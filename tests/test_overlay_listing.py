"""`ls` and the file list of `files` (issue 15, item 6)."""

from __future__ import annotations

from overlay.listing import Entry, files_list, ls_text

ENTRIES = [
    Entry("alpha", "docs/report.pdf", 2048, True),
    Entry("alpha", "docs/old/a.txt", 10, True),
    Entry("alpha", "readme.txt", 5, True),
    Entry("bravo", "photo.png", 3 * 1024 * 1024, False),
]


class TestLs:
    def test_no_argument_lists_the_owners(self) -> None:
        assert ls_text(ENTRIES).splitlines() == [
            "owners:",
            "  alpha/  3 file(s), 2.0 KiB",
            "  bravo/  1 file(s), 3.0 MiB",
        ]

    def test_an_owner_lists_folders_then_files(self) -> None:
        assert ls_text(ENTRIES, "alpha").splitlines() == [
            "alpha/:",
            "  docs/  2 file(s), 2.0 KiB",
            "  readme.txt  5 B",
        ]

    def test_a_folder_and_a_file_not_here_yet(self) -> None:
        assert ls_text(ENTRIES, "alpha/docs/").splitlines()[1:] == [
            "  old/  1 file(s), 10 B",
            "  report.pdf  2.0 KiB",
        ]
        assert "(not here yet)" in ls_text(ENTRIES, "bravo")

    def test_no_such_folder(self) -> None:
        assert "nothing under 'carol'" in ls_text(ENTRIES, "carol")
        assert ls_text([], "") == "no files yet"

    def test_no_partial_names(self) -> None:
        assert "nothing under" in ls_text(ENTRIES, "alp")

    def test_bounded(self) -> None:
        many = [Entry("a", f"f{i:03d}", 1, True) for i in range(100)]
        lines = ls_text(many, "a", limit=10).splitlines()
        assert len(lines) == 12 and lines[-1] == "  ... and 90 more; narrow the path"


def test_files_names_a_few_and_counts_the_rest() -> None:
    lines = files_list(ENTRIES, limit=2).splitlines()
    assert lines == [
        "  alpha/docs/old/a.txt  10 B",
        "  alpha/docs/report.pdf  2.0 KiB",
        "  ... and 2 more; 'ls <owner>' browses one folder",
    ]
