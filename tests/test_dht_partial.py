"""Partial holders without sockets: the flag on the wire (records, announce_many), old entries
read as full ones, the holders_many reply cut at a byte budget, and when a node's own partial
entry is queued, renewed, replaced and withdrawn."""

from __future__ import annotations

import random

import pytest

from dht.batch import decode_batch, decode_reply, encode_batches, encode_reply
from dht.errors import BadRecord
from dht.index import Holder, HolderIndex
from dht.records import Entry, Record, decode_entry, decode_record, encode_record
from dht.rpc import MAX_REQUEST, pack
from tests.credentials import dht_seal
from tests.helpers_dht import content_hash

NOW = 1000.0


def entry(stamp: float = 1.0, present: bool = True, partial: bool = False) -> Entry:
    return Entry("10.0.0.1", 8091, stamp, present, NOW + 60, partial)


class TestRecordFlag:
    def test_a_partial_entry_travels_as_a_sixth_item_and_comes_back_partial(self) -> None:
        record = {"a": entry(partial=True), "b": entry()}
        wire = encode_record(record, NOW)
        assert len(wire["a"]) == 6 and wire["a"][5] is True
        assert len(wire["b"]) == 5
        back = decode_record(wire, NOW, 600.0)
        assert back["a"].partial and not back["b"].partial

    def test_an_entry_from_before_partial_holders_reads_as_a_full_holder(self) -> None:
        _, old = decode_entry("a", ["10.0.0.1", 8091, 1.0, True, 30.0], NOW, 600.0)
        assert not old.partial

    @pytest.mark.parametrize("flag", [1, "yes", None])
    def test_a_sixth_item_that_is_not_a_bool_is_refused(self, flag: object) -> None:
        with pytest.raises(BadRecord):
            decode_entry("a", ["10.0.0.1", 8091, 1.0, True, 30.0, flag], NOW, 600.0)

    def test_a_full_entry_with_a_newer_stamp_replaces_a_partial_one(self) -> None:
        wire = encode_record({"a": entry(2.0)}, NOW)
        merged = decode_record(encode_record({"a": entry(1.0, partial=True)}, NOW), NOW, 600.0)
        merged.update(decode_record(wire, NOW, 600.0))
        assert not merged["a"].partial

    def test_announce_many_carries_the_flag(self) -> None:
        items: list[tuple[bytes, Record]] = [
            (bytes(20), {"a": entry(partial=True), "b": entry()}),
        ]
        (holders, batch_items), *_rest = list(encode_batches(items, NOW))
        decoded = decode_batch(holders, batch_items, NOW, 600.0)
        (key, record), *_ = decoded.records
        assert record["a"].partial and not record["b"].partial and decoded.dropped == 0


def asked(count: int, holders: int = 1, seed: int = 1) -> list[tuple[bytes, Record]]:
    """``count`` keys, each with ``holders`` entries of 64-hex-digit holder ids."""
    rng = random.Random(seed)
    return [
        (rng.randbytes(20), {f"{h:064x}": entry(float(h)) for h in range(holders)})
        for _ in range(count)
    ]


LOOKUP_KEYS_ONE_HOLDER = 160
"""Fewest keys a holders_many reply answers when each record has one holder (docs/DHT.md)."""
LOOKUP_KEYS_FOUR_HOLDERS = 60
"""... and when each has four (partial ones included)."""


class TestHoldersManyReply:
    @pytest.mark.parametrize(
        ("holders", "partial", "least"),
        [
            (1, False, LOOKUP_KEYS_ONE_HOLDER),
            (4, False, LOOKUP_KEYS_FOUR_HOLDERS),
            (4, True, LOOKUP_KEYS_FOUR_HOLDERS),
        ],
    )
    def test_a_reply_answers_the_keys_docs_dht_counts_on(
        self, holders: int, partial: bool, least: int
    ) -> None:
        items = [
            (
                random.Random(i).randbytes(20),
                {
                    f"{h:064x}": Entry("192.168.100.107", 8091, 1.7e9 + h, True, NOW + 600, partial)
                    for h in range(holders)
                },
            )
            for i in range(400)
        ]
        reply = encode_reply(items, NOW)
        assert reply[2] >= least
        assert len(pack(list(reply))) <= MAX_REQUEST

    def test_everything_that_fits_is_answered_in_the_order_asked(self) -> None:
        items = asked(50)
        items[3] = (items[3][0], {})  # a key nobody holds is answered too, empty
        reply = encode_reply(items, NOW)
        records, answered = decode_reply(list(reply), [k for k, _ in items], NOW, 600.0)
        assert answered == 50
        assert records[items[3][0]] == {}
        assert all(set(records[k]) == set(r) for k, r in items)

    def test_a_reply_over_the_budget_answers_a_whole_prefix_and_the_rest_is_asked_again(
        self,
    ) -> None:
        items = asked(200, holders=4)
        keys = [k for k, _ in items]
        holders, wire_items, answered = encode_reply(items, NOW, budget=3000)
        assert 0 < answered < 200
        records, count = decode_reply([holders, wire_items, answered], keys, NOW, 600.0)
        assert count == answered and set(records) == set(keys[:answered])
        assert all(len(records[k]) == 4 for k in keys[:answered]), "no record cut in two"
        got = set(records)
        while answered < len(items):
            reply = encode_reply(items[answered:], NOW, budget=3000)
            more, count = decode_reply(list(reply), keys[answered:], NOW, 600.0)
            assert count > 0 and not got & set(more)
            got |= set(more)
            answered += count
        assert got == set(keys)

    def test_a_first_record_too_large_for_the_budget_answers_nothing(self) -> None:
        items = asked(3, holders=60)
        assert encode_reply(items, NOW, budget=2000)[2] == 0

    @pytest.mark.parametrize("bad", [None, [[], []], [[], [], -1], [[], [], 9], [[], [], True]])
    def test_a_malformed_reply_is_refused(self, bad: object) -> None:
        with pytest.raises(BadRecord):
            decode_reply(bad, [bytes(20)] * 3, NOW, 600.0)

    def test_entries_for_keys_not_answered_are_ignored(self) -> None:
        items = asked(3)
        holders, wire_items, _ = encode_reply(items, NOW)
        keys = [k for k, _ in items]
        records, _ = decode_reply([holders, wire_items, 1], keys, NOW, 600.0)
        assert set(records) == {keys[0]}


SHA = content_hash("big file")


def index() -> HolderIndex:
    """A node not listening: what it queues stays in its backlog, and its storage shows it."""
    return HolderIndex(bytes(20), Holder("me", "127.0.0.1", 9000), sealer=dht_seal(), ttl=600.0)


def mine(node: HolderIndex) -> Entry | None:
    return node.storage.record(bytes.fromhex(SHA)[:20]).get("me")


class TestOwnPartialEntry:
    def test_a_download_start_queues_a_short_lived_partial_entry(self) -> None:
        node = index()
        node.fetching(SHA, True)
        own = mine(node)
        assert own is not None and own.present and own.partial
        assert own.expires_at - node.storage.clock() <= node.partial_ttl
        assert node.backlog().announce == 1

    def test_the_file_placed_turns_it_into_a_full_entry_and_the_end_changes_nothing(
        self,
    ) -> None:
        node = index()
        node.fetching(SHA, True)
        node.queue(SHA, True)
        node.fetching(SHA, False)
        own = mine(node)
        assert own is not None and own.present and not own.partial
        assert SHA in node.held and node.backlog().announce == 1

    def test_a_download_given_up_withdraws_its_partial_entry(self) -> None:
        node = index()
        node.fetching(SHA, True)
        node.fetching(SHA, False)
        own = mine(node)
        assert own is not None and not own.present
        assert node.backlog().withdraw == 1 and SHA not in node.held

    def test_a_node_holding_the_content_is_never_listed_partial(self) -> None:
        node = index()
        node.queue(SHA, True)
        node.fetching(SHA, True)
        node.fetching(SHA, False)
        own = mine(node)
        assert own is not None and own.present and not own.partial

    def test_an_end_without_a_start_queues_nothing(self) -> None:
        node = index()
        node.fetching(SHA, False)
        assert mine(node) is None and not node.backlog().total

    async def test_lookups_mark_partial_holders(self) -> None:
        node = index()
        await node.listen(0, "127.0.0.1")  # alone: its own copy is the whole index
        try:
            node.fetching(SHA, True)
            assert await node.holders(SHA) == [Holder("me", "127.0.0.1", 9000, partial=True)]
            assert (await node.holders_many([SHA]))[SHA][0].partial
        finally:
            node.stop()

    def test_partial_ttl_is_kept_below_a_short_ttl(self) -> None:
        node = HolderIndex(
            bytes(20), Holder("me", "h", 1), sealer=dht_seal(), ttl=3.0, reannounce=1.0
        )
        assert node.partial_renew < node.partial_ttl <= 3.0
        with pytest.raises(ValueError):
            HolderIndex(bytes(20), Holder("me", "h", 1), sealer=dht_seal(), partial_ttl=700.0)
