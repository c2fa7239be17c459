"""The owner's tracker of its changes reaching every member, and the one line that says so."""

from __future__ import annotations

from sync.reach import TRACK_MAX, Reached, ReachTracker, reached_text


def tracker(members: set[str], limit: int = TRACK_MAX) -> ReachTracker:
    out = ReachTracker(limit)
    out.set_members(members)
    return out


def done(t: ReachTracker) -> str | None:
    return reached_text(t.take_done())


class TestCompletion:
    def test_a_file_is_done_when_every_member_placed_it_not_before(self) -> None:
        t = tracker({"b", "c", "d"})
        t.published([("docs/report.pdf", 7, False)])
        assert t.ack("b", [("docs/report.pdf", 7)]) == 1
        assert t.ack("c", [("docs/report.pdf", 7)]) == 1
        assert t.done == 0 and done(t) is None
        t.ack("d", [("docs/report.pdf", 7)])
        assert done(t) == "✓ docs/report.pdf reached every member (3)"
        assert len(t) == 0

    def test_an_ack_counts_once_per_member(self) -> None:
        t = tracker({"b", "c"})
        t.published([("x", 1, False)])
        t.ack("b", [("x", 1)])
        assert t.ack("b", [("x", 1)]) == 0
        assert t.done == 0

    def test_a_delete_is_told_as_a_delete(self) -> None:
        t = tracker({"b"})
        t.published([("old.txt", 4, True)])
        t.ack("b", [("old.txt", 4)])
        assert done(t) == "✓ delete of old.txt reached every member (1)"

    def test_many_files_are_told_in_one_line(self) -> None:
        t = tracker({"b", "c", "d"})
        t.published([(f"f{i}", i + 1, False) for i in range(1000)])
        for m in ("b", "c", "d"):
            t.ack(m, [(f"f{i}", i + 1) for i in range(1000)])
        assert done(t) == "✓ 1,000 of your files reached every member (3)"
        assert done(t) is None  # taken

    def test_files_and_deletes_together(self) -> None:
        t = tracker({"b"})
        t.published([("a", 1, False), ("b", 2, False), ("c", 3, True)])
        t.ack("b", [("a", 1), ("b", 2), ("c", 3)])
        assert done(t) == "✓ 2 of your files and 1 delete reached every member (1)"

    def test_a_rename_is_a_file_and_a_delete(self) -> None:
        t = tracker({"b"})
        t.published([("old", 1, True), ("new", 2, False)])
        t.ack("b", [("old", 1), ("new", 2)])
        assert done(t) == "✓ 1 of your files and 1 delete reached every member (1)"

    def test_deletes_alone(self) -> None:
        t = tracker({"b"})
        t.published([("a", 1, True), ("b", 2, True)])
        t.ack("b", [("a", 1), ("b", 2)])
        assert done(t) == "✓ 2 deletes of your files reached every member (1)"

    def test_a_ring_of_one_tracks_and_says_nothing(self) -> None:
        t = tracker(set())
        t.published([("x", 1, False)])
        assert len(t) == 0
        assert t.ack("b", [("x", 1)]) == 0
        assert done(t) is None


class TestMembers:
    def test_a_member_that_left_is_not_waited_for(self) -> None:
        t = tracker({"b", "c"})
        t.published([("x", 1, False)])
        t.ack("b", [("x", 1)])
        t.set_members({"b"})
        assert done(t) == "✓ x reached every member (1)"

    def test_a_change_whose_members_all_left_reached_nobody(self) -> None:
        t = tracker({"b"})
        t.published([("x", 1, False)])
        t.set_members(set())
        assert len(t) == 0 and done(t) is None

    def test_a_member_that_joined_later_is_not_waited_for_and_does_not_count(self) -> None:
        t = tracker({"b"})
        t.published([("x", 1, False)])
        t.set_members({"b", "new"})
        assert t.ack("new", [("x", 1)]) == 0
        assert t.done == 0
        t.ack("b", [("x", 1)])
        assert done(t) == "✓ x reached every member (1)"

    def test_a_stranger_counts_for_nothing(self) -> None:
        t = tracker({"b"})
        t.published([("x", 1, False)])
        assert t.ack("mallory", [("x", 1)]) == 0
        assert len(t) == 1

    def test_the_line_gives_the_fewest_members_any_change_reached(self) -> None:
        t = tracker({"b", "c"})
        t.published([("x", 1, False)])
        t.ack("b", [("x", 1)])
        t.ack("c", [("x", 1)])
        t.set_members({"b"})
        t.published([("y", 2, False)])
        t.ack("b", [("y", 2)])
        assert done(t) == "✓ 2 of your files reached every member (1)"


class TestSeqs:
    def test_an_ack_of_another_seq_is_ignored(self) -> None:
        t = tracker({"b"})
        t.published([("x", 5, False)])
        assert t.ack("b", [("x", 4), ("x", 6)]) == 0
        assert len(t) == 1

    def test_a_newer_seq_replaces_the_older_one(self) -> None:
        t = tracker({"b"})
        t.published([("x", 1, False)])
        t.published([("x", 2, False)])
        assert t.ack("b", [("x", 1)]) == 0
        t.ack("b", [("x", 2)])
        assert done(t) == "✓ x reached every member (1)"

    def test_a_change_published_alone_forgets_the_older_tracked_one(self) -> None:
        t = tracker({"b"})
        t.published([("x", 1, False)])
        t.set_members(set())  # done: reached nobody
        t.set_members({"b"})
        t.published([("y", 2, False)])
        t.set_members(set())
        t.published([("y", 3, False)])
        t.set_members({"b"})
        assert t.ack("b", [("y", 2)]) == 0
        assert done(t) is None

    def test_an_untracked_path_is_ignored(self) -> None:
        t = tracker({"b"})
        assert t.ack("b", [("never", 1)]) == 0


class TestBounds:
    def test_the_oldest_path_is_dropped_past_the_limit(self) -> None:
        t = tracker({"b"}, limit=3)
        t.published([(f"f{i}", i + 1, False) for i in range(5)])
        assert len(t) == 3
        assert t.ack("b", [("f0", 1), ("f1", 2)]) == 0
        assert t.ack("b", [("f2", 3), ("f3", 4), ("f4", 5)]) == 3
        assert done(t) == "✓ 3 of your files reached every member (1)"

    def test_republishing_a_path_makes_it_the_newest(self) -> None:
        t = tracker({"b"}, limit=2)
        t.published([("a", 1, False), ("b", 2, False)])
        t.published([("a", 3, False), ("c", 4, False)])
        assert t.ack("b", [("b", 2)]) == 0
        assert t.ack("b", [("a", 3), ("c", 4)]) == 2


class TestText:
    def test_names_are_shown_printable(self) -> None:
        line = reached_text(Reached(files=1, members=2, path="evil\x1b[2J.txt"))
        assert line == "✓ evil\\x1b[2J.txt reached every member (2)"

    def test_nothing_done_is_no_line(self) -> None:
        assert reached_text(Reached()) is None
