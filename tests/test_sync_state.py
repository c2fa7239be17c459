"""The sqlite state: manifest paging in (owner, seq) order, rows by key, the journal of
overlapping passes, counters, and persistence."""

from __future__ import annotations

from pathlib import Path

from sync.manifest import FileRecord
from sync.state import State


def fill(state: State) -> None:
    with state.transaction():
        for owner, count in (("a", 5), ("b", 3), ("c", 4)):
            for seq in range(1, count + 1):
                state.put_record(FileRecord(owner, f"f{seq}", 1, 1, "0" * 64, seq, False), None)


class TestPaging:
    def test_pages_cover_every_record_once_in_order(self, tmp_path: Path) -> None:
        state = State(tmp_path)
        fill(state)
        got, cursor = [], None
        for _ in range(20):
            page, cursor = state.page({}, cursor, 5)
            assert len(page) <= 5
            got += [(r.owner, r.seq) for r, _held in page]
            if cursor is None:
                break
        want = [(o, s) for o, n in (("a", 5), ("b", 3), ("c", 4)) for s in range(1, n + 1)]
        assert got == want

    def test_delta_since_skips_what_the_asker_has(self, tmp_path: Path) -> None:
        state = State(tmp_path)
        fill(state)
        page, cursor = state.page({"a": 4, "b": 3, "c": 0}, None, 100)
        assert [(r.owner, r.seq) for r, _ in page] == [
            ("a", 5),
            ("c", 1),
            ("c", 2),
            ("c", 3),
            ("c", 4),
        ]
        assert cursor is None

    def test_held_flag_follows_have(self, tmp_path: Path) -> None:
        state = State(tmp_path)
        state.put_record(FileRecord("a", "x", 1, 1, "1" * 64, 1, False), "1" * 64)
        state.put_record(FileRecord("a", "y", 1, 1, "2" * 64, 2, False), "1" * 64)
        page, _ = state.page({}, None, 10)
        assert [held for _, held in page] == [True, False]


class TestRowsAndJournal:
    def test_rows_by_key_give_record_and_have_and_skip_unknown_keys(self, tmp_path: Path) -> None:
        state = State(tmp_path)
        fill(state)
        state.set_have("b", "f2", "0" * 64)
        keys = [("a", "f1"), ("b", "f2"), ("b", "nope"), ("zz", "f1")]
        got = sorted((r.owner, r.path, r.seq, have) for r, have in state.rows(keys))
        assert got == [("a", "f1", 1, None), ("b", "f2", 2, "0" * 64)]
        many = [("c", f"f{seq}") for seq in range(1, 5)] + [("c", f"x{i}") for i in range(1200)]
        assert sorted(r.seq for r, _have in state.rows(many)) == [1, 2, 3, 4]
        assert state.rows([]) == []

    def test_overlapping_passes_each_take_the_changes_of_their_own_paths(
        self, tmp_path: Path
    ) -> None:
        state = State(tmp_path)
        fill(state)
        state.start_journal()  # a round
        state.set_have("a", "f1", "1" * 64)
        state.start_journal()  # a push applied meanwhile
        state.set_have("a", "f2", "2" * 64)
        assert state.take_journal([("a", "f2")]) == {("a", "f2"): None}  # the push's path
        state.end_journal()
        assert state.take_journal([("a", "f1")]) == {("a", "f1"): None}  # the round lets go
        state.set_have("a", "f1", "3" * 64)  # a later pass's edit, while the round goes on
        assert state.take_journal([("a", "f1"), ("a", "f2")]) == {("a", "f1"): "1" * 64}
        state.end_journal()
        state.set_have("a", "f3", "3" * 64)  # nobody journals now
        assert state.take_journal([("a", "f3")]) == {}


def test_state_survives_reopening(tmp_path: Path) -> None:
    state = State(tmp_path)
    state.set_counter("me", 42)
    state.cache_put("me/a", 3, 4, "5" * 64)
    state.close()
    again = State(tmp_path)
    assert again.counter("me") == 42
    assert again.cache_get("me/a") == (3, 4, "5" * 64)
