"""Holder records: merge (newest per holder wins), withdrawals, expiry, cap, wire checks."""

from __future__ import annotations

import hashlib

import pytest

from dht.errors import BadRecord, InvalidKey
from dht.records import (
    MAX_HOLDERS,
    Entry,
    changed_entries,
    decode_record,
    dht_key,
    encode_record,
    merge,
    prune,
)


def entry(stamp: float, present: bool = True, expires_at: float = 100.0, port: int = 9000) -> Entry:
    return Entry("10.0.0.1", port, stamp, present, expires_at)


class TestKey:
    def test_key_is_first_20_bytes_of_the_sha256(self) -> None:
        digest = hashlib.sha256(b"hello").digest()
        assert dht_key(digest.hex()) == digest[:20]

    @pytest.mark.parametrize("bad", ["", "ab" * 31, "zz" * 32, "ab" * 33])
    def test_bad_hex_is_refused(self, bad: str) -> None:
        with pytest.raises(InvalidKey):
            dht_key(bad)


class TestMerge:
    def test_newest_entry_per_holder_wins_in_either_order(self) -> None:
        old, new = {"a": entry(1.0, port=1)}, {"a": entry(2.0, port=2)}
        assert merge(old, new)["a"].port == 2
        assert merge(new, old)["a"].port == 2

    def test_holders_accumulate(self) -> None:
        merged = merge({"a": entry(1.0)}, {"b": entry(5.0)})
        assert set(merged) == {"a", "b"}

    def test_withdrawal_with_newer_stamp_beats_presence(self) -> None:
        merged = merge({"a": entry(1.0)}, {"a": entry(2.0, present=False)})
        assert merged["a"].present is False

    def test_stale_presence_does_not_resurrect_a_withdrawal(self) -> None:
        merged = merge({"a": entry(2.0, present=False)}, {"a": entry(1.0, present=True)})
        assert merged["a"].present is False

    def test_withdrawal_wins_a_tie(self) -> None:
        assert merge({"a": entry(1.0)}, {"a": entry(1.0, present=False)})["a"].present is False

    def test_merge_does_not_mutate_its_inputs(self) -> None:
        base = {"a": entry(1.0)}
        merge(base, {"a": entry(2.0)})
        assert base["a"].stamp == 1.0

    def test_changed_entries_ignores_lifetime_only_differences(self) -> None:
        old = {"a": entry(1.0, expires_at=50.0), "b": entry(1.0)}
        merged = {"a": entry(1.0, expires_at=90.0), "b": entry(2.0), "c": entry(1.0)}
        assert set(changed_entries(old, merged)) == {"b", "c"}


class TestExpiryAndCap:
    def test_expired_entries_are_dropped(self) -> None:
        record = {"a": entry(1.0, expires_at=10.0), "b": entry(1.0, expires_at=20.0)}
        assert set(prune(record, now=10.0)) == {"b"}

    def test_cap_drops_tombstones_then_soonest_expiring(self) -> None:
        record = {
            "gone": entry(1.0, present=False, expires_at=99.0),
            "old": entry(1.0, expires_at=11.0),
            "mid": entry(1.0, expires_at=50.0),
            "new": entry(1.0, expires_at=90.0),
        }
        assert set(prune(record, now=0.0, limit=2)) == {"mid", "new"}

    def test_wire_carries_remaining_lifetime_not_a_deadline(self) -> None:
        wire = encode_record({"a": entry(7.0, expires_at=30.0)}, now=10.0)
        assert wire == {"a": ["10.0.0.1", 9000, 7.0, True, 20.0]}
        again = decode_record(wire, now=1000.0, max_ttl=600.0)
        assert again["a"].expires_at == 1020.0

    def test_peer_cannot_extend_a_lifetime_past_the_ttl(self) -> None:
        record = decode_record({"a": ["h", 1, 1.0, True, 1e9]}, now=0.0, max_ttl=600.0)
        assert record["a"].expires_at == 600.0

    def test_already_expired_wire_entry_is_not_kept(self) -> None:
        assert decode_record({"a": ["h", 1, 1.0, True, 0.0]}, now=5.0, max_ttl=600.0) == {}


class TestDecode:
    @pytest.mark.parametrize(
        "bad_entry",
        [
            ["h", 1, 1.0, True],
            ["h", 0, 1.0, True, 5.0],
            ["h", 70000, 1.0, True, 5.0],
            ["", 1, 1.0, True, 5.0],
            ["h", "1", 1.0, True, 5.0],
            ["h", 1, "x", True, 5.0],
            ["h", 1, 1.0, 1, 5.0],
            ["h", True, 1.0, True, 5.0],
            "not a list",
        ],
    )
    def test_bad_entries_are_skipped_not_fatal(self, bad_entry: object) -> None:
        record = decode_record({"bad": bad_entry, "good": ["h", 1, 1.0, True, 5.0]}, 0.0, 600.0)
        assert set(record) == {"good"}

    def test_non_map_record_is_refused(self) -> None:
        with pytest.raises(BadRecord):
            decode_record([1, 2], 0.0, 600.0)

    def test_record_over_the_cap_is_refused(self) -> None:
        raw = {f"h{i}": ["h", 1, 1.0, True, 5.0] for i in range(MAX_HOLDERS + 1)}
        with pytest.raises(BadRecord):
            decode_record(raw, 0.0, 600.0)
