"""The announce_many request without sockets: packing under the cap, and checking what comes in."""

from __future__ import annotations

import random

import pytest

from dht.batch import MAX_BATCH_HOLDERS, MAX_BATCH_KEYS, decode_batch, encode_batches
from dht.errors import BadRecord
from dht.records import MAX_HOLDERS, Entry, Record
from dht.rpc import MAX_REQUEST, pack

NOW = 1000.0
HOLDER = "f" * 64  # a node key as the overlay writes it: 64 hex digits


def own(rng: random.Random, count: int, holder: str = HOLDER) -> list[tuple[bytes, Record]]:
    """``count`` keys with one entry each from ``holder``: what a sweep of own entries sends."""
    return [
        (rng.randbytes(20), {holder: Entry("10.0.0.7", 8091, 1.7e9 + i, True, NOW + 600)})
        for i in range(count)
    ]


def request_size(batch: tuple[list[list[object]], list[list[object]]]) -> int:
    """Bytes of the whole request as rpcudp caps it: ``[name, [sender_id, holders, items]]``."""
    return len(pack(["announce_many", [bytes(20), *batch]]))


class TestEncode:
    def test_own_entries_go_about_140_keys_a_request_under_the_cap(self) -> None:
        batches = list(encode_batches(own(random.Random(1), 1000), NOW))
        sizes = [len(items) for _, items in batches]
        assert sum(sizes) == 1000
        assert min(sizes[:-1]) >= 140, sizes
        assert all(request_size(b) <= MAX_REQUEST for b in batches)

    def test_records_of_four_holders_go_at_least_60_keys_a_request(self) -> None:
        rng = random.Random(2)
        items = []
        for _ in range(500):
            record = {
                f"{h:064x}": Entry(f"10.0.0.{h}", 8091, 1.7e9, True, NOW + 600) for h in range(4)
            }
            items.append((rng.randbytes(20), record))
        batches = list(encode_batches(items, NOW))
        assert min(len(items) for _, items in batches[:-1]) >= 60
        assert all(request_size(b) <= MAX_REQUEST for b in batches)

    def test_a_record_too_large_for_one_request_is_split_and_comes_back_whole(self) -> None:
        key = bytes(range(20))
        record = {
            "h" * 200 + f"{i:03d}": Entry("x" * 200, 1 + i, float(i), True, NOW + 60)
            for i in range(MAX_HOLDERS)
        }
        batches = list(encode_batches([(key, record)], NOW))
        assert len(batches) > 1
        assert all(request_size(b) <= MAX_REQUEST for b in batches)
        merged: Record = {}
        for holders, items in batches:
            for got_key, got in decode_batch(holders, items, NOW, 600).records:
                assert got_key == key
                merged.update(got)
        assert merged == record

    def test_expired_entries_and_empty_keys_are_left_out(self) -> None:
        live = {"a": Entry("h", 1, 1.0, True, NOW + 5)}
        dead = {"b": Entry("h", 1, 1.0, True, NOW - 1)}
        batches = list(encode_batches([(b"k" * 20, {**live, **dead}), (b"d" * 20, dead)], NOW))
        assert batches == [([["a", "h", 1]], [[b"k" * 20, [[0, 1.0, True, 5.0]]]])]

    def test_round_trip_keeps_stamps_flags_and_remaining_lifetime(self) -> None:
        items: list[tuple[bytes, Record]] = [
            (b"a" * 20, {"x": Entry("h1", 1, 5.5, True, NOW + 10)}),
            (
                b"b" * 20,
                {"x": Entry("h1", 1, 6.5, False, NOW + 20), "y": Entry("h2", 2, 1, True, NOW + 30)},
            ),
        ]
        ((holders, wire),) = encode_batches(items, NOW)
        later = 2000.0
        decoded = decode_batch(holders, wire, later, 600).records
        assert decoded == [
            (b"a" * 20, {"x": Entry("h1", 1, 5.5, True, later + 10)}),
            (
                b"b" * 20,
                {
                    "x": Entry("h1", 1, 6.5, False, later + 20),
                    "y": Entry("h2", 2, 1, True, later + 30),
                },
            ),
        ]


class TestDecode:
    GOOD_HOLDERS = [["a", "h", 1]]

    @pytest.mark.parametrize(
        "holders, items",
        [
            ("not a list", []),
            ([["a", "h"]], []),
            ([["a", "h", 1]] * (MAX_BATCH_HOLDERS + 1), []),
            (GOOD_HOLDERS, "not a list"),
            (GOOD_HOLDERS, [[b"short", []]]),
            (GOOD_HOLDERS, [[b"k" * 20]]),
            (GOOD_HOLDERS, [[b"k" * 20, "not a list"]]),
            (GOOD_HOLDERS, [[b"k" * 20, [[0, 1.0, True, 5.0]] * (MAX_HOLDERS + 1)]]),
            (GOOD_HOLDERS, [[b"k" * 20, []]] * (MAX_BATCH_KEYS + 1)),
        ],
    )
    def test_a_malformed_request_is_refused_whole(self, holders: object, items: object) -> None:
        with pytest.raises(BadRecord):
            decode_batch(holders, items, NOW, 600)

    def test_bad_entries_are_dropped_and_counted_not_fatal(self) -> None:
        holders = [["a", "h", 1], ["", "h", 1], ["c", "h", 70000]]
        good = [0, 1.0, True, 5.0]
        bad = [[1, 1.0, True, 5.0], [2, 1.0, True, 5.0], [3, 1.0, True, 5.0], [0, "x", True, 5.0]]
        decoded = decode_batch(
            holders, [[b"k" * 20, [good, *bad, [True, 1.0, True, 1.0]]]], NOW, 600
        )
        assert decoded.dropped == 5
        assert decoded.records == [(b"k" * 20, {"a": Entry("h", 1, 1.0, True, NOW + 5.0)})]

    def test_a_lifetime_is_capped_at_the_receivers_ttl(self) -> None:
        decoded = decode_batch([["a", "h", 1]], [[b"k" * 20, [[0, 1.0, True, 1e9]]]], NOW, 600)
        assert decoded.records[0][1]["a"].expires_at == NOW + 600
