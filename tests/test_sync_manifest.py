"""Manifest decisions without sockets: sequence numbers, superseding, needs, entries."""

from __future__ import annotations

import pytest

from ring.errors import BadRequest
from sync.manifest import (
    FileRecord,
    Need,
    entry_to_record,
    own_changes,
    plan,
    record_to_entry,
    supersedes,
)

H1, H2, H3 = "1" * 64, "2" * 64, "3" * 64


def rec(path: str, sha: str, seq: int, deleted: bool = False, size: int = 10) -> FileRecord:
    return FileRecord("n1", path, size, 1000, sha, seq, deleted)


class TestSequenceNumbers:
    def test_new_files_get_consecutive_seqs_from_the_counter(self) -> None:
        out = own_changes({}, {"b": (1, 5, H1), "a": (2, 6, H2)}, "n1", 7)
        assert [(r.path, r.seq, r.deleted) for r in out] == [("a", 8, False), ("b", 9, False)]

    def test_unchanged_files_get_nothing(self) -> None:
        known = {"a": FileRecord("n1", "a", 1, 5, H1, 3, False)}
        assert own_changes(known, {"a": (1, 5, H1)}, "n1", 3) == []

    def test_an_edit_bumps_seq(self) -> None:
        known = {"a": FileRecord("n1", "a", 1, 5, H1, 3, False)}
        (out,) = own_changes(known, {"a": (2, 9, H2)}, "n1", 4)
        assert (out.seq, out.sha256, out.size, out.deleted) == (5, H2, 2, False)

    def test_a_delete_makes_a_tombstone_with_a_new_seq(self) -> None:
        known = {"a": FileRecord("n1", "a", 1, 5, H1, 3, False)}
        (out,) = own_changes(known, {}, "n1", 4)
        assert (out.path, out.seq, out.deleted) == ("a", 5, True)
        assert own_changes({"a": out}, {}, "n1", 5) == []

    def test_a_recreated_file_gets_a_new_seq_over_its_tombstone(self) -> None:
        known = {"a": FileRecord("n1", "a", 0, 5, "", 6, True)}
        (out,) = own_changes(known, {"a": (1, 7, H1)}, "n1", 6)
        assert (out.seq, out.deleted) == (7, False)


class TestSupersedes:
    def test_only_a_higher_seq_wins(self) -> None:
        current = rec("a", H2, 5)
        assert supersedes(rec("a", H3, 6), current)
        assert not supersedes(rec("a", H1, 4), current)
        assert not supersedes(rec("a", H1, 5), current)
        assert supersedes(rec("a", H1, 1), None)

    def test_a_stale_live_record_never_resurrects_a_tombstone(self) -> None:
        assert not supersedes(rec("a", H1, 3), rec("a", "", 4, deleted=True))


class TestPlan:
    def test_needs(self) -> None:
        rows = [
            (rec("held", H1, 1), H1),
            (rec("missing", H1, 1, size=50), None),
            (rec("older", H2, 2, size=5), H1),
            (rec("gone", "", 3, deleted=True), H3),
            (rec("gone-never-held", "", 3, deleted=True), None),
        ]
        assert plan(rows) == [
            Need("delete", rows[3][0]),
            Need("fetch", rows[2][0]),
            Need("fetch", rows[1][0]),
        ]


class TestEntries:
    def test_round_trip(self) -> None:
        r = rec("dir/END", H1, 4)
        assert entry_to_record(record_to_entry(r, True)) == (r, True)

    @pytest.mark.parametrize(
        "change",
        [
            {"path": "../x"},
            {"path": "/tmp/x"},
            {"path": "a/../../x"},
            {"owner": ".lanshare-tmp"},
            {"owner": "a/b"},
            {"sha256": "nothex"},
            {"size": -1},
            {"seq": 0},
            {"seq": True},
            {"size": "10"},
        ],
    )
    def test_hostile_entries_are_refused(self, change: dict[str, object]) -> None:
        entry = {**record_to_entry(rec("a", H1, 1), True), **change}
        with pytest.raises(BadRequest):
            entry_to_record(entry)
