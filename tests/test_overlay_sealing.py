"""Sealed datagrams without sockets: the AEAD, stamps and the window, the replay cache, re-keys."""

from __future__ import annotations

import logging

import pytest

from overlay.network_key import NetworkKey
from overlay.sealing import (
    OVERHEAD,
    DatagramSeal,
    NetworkSeals,
    ReplayCache,
    Verdict,
)

KEY, OTHER = bytes(range(32)), bytes(range(1, 33))
T0 = 1_750_000_000.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def seal_at(key: bytes, clock: Clock, **kw: float) -> DatagramSeal:
    return DatagramSeal(key, "test datagram", clock=clock, **kw)  # type: ignore[arg-type]


class TestAead:
    def test_a_member_opens_what_a_member_sealed_and_nothing_is_sent_in_the_clear(self) -> None:
        clock = Clock()
        sealed = seal_at(KEY, clock).seal(b"secret request", b"10.0.0.1:8091")
        assert b"secret" not in sealed
        assert len(sealed) == len(b"secret request") + OVERHEAD
        assert seal_at(KEY, clock).open(sealed, b"10.0.0.1:8091") == b"secret request"

    @pytest.mark.parametrize("case", ["other key", "other aad", "flipped bit", "short", "empty"])
    def test_anything_else_does_not_open_and_is_counted_as_forged(self, case: str) -> None:
        clock = Clock()
        sealed = seal_at(OTHER if case == "other key" else KEY, clock).seal(b"x" * 40, b"a")
        aad = b"b" if case == "other aad" else b"a"
        if case == "flipped bit":
            sealed = sealed[:20] + bytes([sealed[20] ^ 1]) + sealed[21:]
        elif case == "short":
            sealed = sealed[: OVERHEAD - 1]
        elif case == "empty":
            sealed = b""
        receiver = seal_at(KEY, clock)
        assert receiver.open(sealed, aad) is None
        assert receiver.stats == {"forged": 1}
        assert len(receiver.replays) == 0, "nothing is remembered of a forgery"

    def test_the_stamp_cannot_be_altered(self) -> None:
        clock = Clock()
        sealed = seal_at(KEY, clock).seal(b"x")
        moved = (int.from_bytes(sealed[:6], "big") + 1).to_bytes(6, "big") + sealed[6:]
        assert seal_at(KEY, clock).open(moved) is None


class TestWindow:
    @pytest.mark.parametrize("offset", [-119.0, -30.0, -2.5, 0.0, 3.0, 60.0, 119.0])
    def test_clocks_that_differ_by_seconds_or_a_minute_or_two_agree(self, offset: float) -> None:
        sender, receiver = Clock(T0 + offset), Clock(T0)
        assert seal_at(KEY, receiver).open(seal_at(KEY, sender).seal(b"hi")) == b"hi"

    @pytest.mark.parametrize("offset", [-121.0, 121.0, -600.0, 3600.0])
    def test_a_member_off_by_minutes_is_dropped_and_logged_once(
        self, offset: float, caplog: pytest.LogCaptureFixture
    ) -> None:
        sender, receiver = seal_at(KEY, Clock(T0 + offset)), seal_at(KEY, Clock(T0))
        with caplog.at_level(logging.DEBUG, logger="overlay.sealing"):
            for _ in range(50):
                assert receiver.open(sender.seal(b"hi")) is None
        assert receiver.stats == {"stale": 50}
        (record,) = caplog.records
        assert record.levelno == logging.WARNING
        side = "ahead of" if offset > 0 else "behind"
        assert f"{abs(offset):.0f} s {side} this host's clock" in record.getMessage()


class TestReplays:
    def test_a_datagram_is_taken_once(self) -> None:
        clock = Clock()
        sealed = seal_at(KEY, clock).seal(b"ping")
        receiver = seal_at(KEY, clock)
        clock.now += 1
        assert receiver.open(sealed) == b"ping"
        clock.now += 60
        assert receiver.open(sealed) is None
        assert receiver.stats == {"fresh": 1, "replayed": 1}

    def test_a_replay_after_the_window_is_stale_and_the_nonce_is_forgotten(self) -> None:
        clock = Clock()
        sealed = seal_at(KEY, clock).seal(b"ping")
        receiver = seal_at(KEY, clock)
        assert receiver.open(sealed) == b"ping"
        clock.now += 121
        assert receiver.open(sealed) is None
        assert receiver.stats["stale"] == 1
        assert len(receiver.replays) == 0

    def test_cache_is_bounded_and_a_forgotten_nonce_never_comes_back(self) -> None:
        cache = ReplayCache(window=120.0, capacity=3)
        nonces = [bytes([i]) * 12 for i in range(5)]
        for i, nonce in enumerate(nonces):
            assert cache.check(nonce, T0 + i, T0 + 5) is Verdict.FRESH
        assert len(cache) == 3
        assert cache.floor == T0 + 1
        assert cache.check(nonces[0], T0 + 0, T0 + 5) is Verdict.REPLAYED
        assert cache.check(nonces[1], T0 + 1, T0 + 5) is Verdict.REPLAYED
        assert cache.check(nonces[4], T0 + 4, T0 + 5) is Verdict.REPLAYED
        assert cache.check(b"n" * 12, T0 + 1.5, T0 + 5) is Verdict.FRESH, "newer than the floor"

    def test_entries_leave_with_their_window(self) -> None:
        cache = ReplayCache(window=10.0, capacity=100)
        for i in range(20):
            cache.check(bytes([i]) * 12, T0 + i, T0 + i)
        assert len(cache) == 11, "stamps T0+9 .. T0+19 are within 10 s of T0+19"

    def test_stale_both_ways(self) -> None:
        cache = ReplayCache(window=10.0, capacity=100)
        assert cache.check(b"a" * 12, T0 - 10.5, T0) is Verdict.STALE
        assert cache.check(b"b" * 12, T0 + 10.5, T0) is Verdict.STALE
        assert len(cache) == 0


class TestRekey:
    def test_the_previous_key_opens_for_the_grace_period_only(self) -> None:
        clock = Clock()
        old_sender = seal_at(KEY, clock)
        receiver = seal_at(KEY, clock, grace=60.0)
        receiver.rekey(OTHER)
        assert seal_at(OTHER, clock).open(receiver.seal(b"new")) == b"new", "seals with the new"
        clock.now += 59
        assert receiver.open(old_sender.seal(b"late")) == b"late"
        clock.now += 2
        assert receiver.open(old_sender.seal(b"too late")) is None
        assert receiver.open(seal_at(OTHER, clock).seal(b"current")) == b"current"

    def test_network_seals_take_both_new_keys(self) -> None:
        clock = Clock()
        old, new = NetworkKey.generate(), NetworkKey.generate()
        seals = NetworkSeals(old, clock=clock)
        seals.rekey(new)
        for seal, key in ((seals.dht, new.dht_key), (seals.beacon, new.beacon_key)):
            assert seal_at(key, clock).open(seal.seal(b"x")) == b"x"
