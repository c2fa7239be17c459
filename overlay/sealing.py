"""Sealed datagrams: ChaCha20-Poly1305 under a key of the network, stamped, never taken twice.

Theory of operation. DHT datagrams and LAN beacons travel over UDP, where anyone on the LAN can
send, sniff, replay and spoof. Each is sealed with a key derived from the network key
(`NetworkKey.dht_key`, `.beacon_key`); a receiver opens it before parsing a byte of it and drops
whatever does not open, silently. A sealed datagram is

    nonce (12 bytes) | ciphertext | tag (16 bytes)

where the nonce is the sender's wall-clock time in milliseconds since 1970 (6 bytes, big-endian)
followed by 6 random bytes, and the caller's associated data (the DHT: the sender's address; a
beacon: its clear header) is authenticated but not sent. The nonce is authenticated with the
rest, so the stamp cannot be altered. A datagram that opens is taken only if

- its stamp is within `WINDOW` seconds of the receiver's clock, either way: hosts whose clocks
  differ by seconds, or by a minute, never notice. A member whose clock is off by more than
  that is cut off: every datagram it sends is dropped (and it drops everyone's), so it has no
  DHT and its beacons go unheard, while its ring, sync and files (TLS, no clock involved) go
  on. The first such datagram is logged once, as a warning naming the offset; the rest are
  counted in `stats` only.
- its nonce is not in the `ReplayCache`, which holds every nonce taken within the window, at
  most `CAPACITY` of them.

Keys change at run time (a network re-key): `rekey` seals with the new key at once and still
opens with the previous one for `REKEY_GRACE` seconds, while the members take the new key one
after another.
"""

from __future__ import annotations

import heapq
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from enum import Enum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from overlay.network_key import NetworkKey

log = logging.getLogger(__name__)

KEY_SIZE = 32
NONCE_SIZE = 12
STAMP_SIZE = 6
TAG_SIZE = 16
OVERHEAD = NONCE_SIZE + TAG_SIZE
"""Bytes a sealed datagram has on top of its plaintext."""

WINDOW = 120.0
"""Seconds a stamp may be off the receiver's clock, either way."""

CAPACITY = 32768
"""Nonces remembered at most (about 6 MB at worst: a heap entry and a set entry, ~180 bytes
each). Past it the oldest are forgotten and the `ReplayCache.floor` rises to their stamps."""

REKEY_GRACE = 60.0
"""Seconds the previous key still opens datagrams after a re-key."""


class Verdict(Enum):
    """What the replay cache makes of an authentic datagram."""

    FRESH = "fresh"
    STALE = "stale"
    REPLAYED = "replayed"


class ReplayCache:
    """Which nonces were taken lately, to refuse any datagram a second time (sans-IO).

    A nonce is kept until its stamp leaves the window (`window` seconds after the stamp), then
    forgotten: a copy arriving later is stale anyway. When more than `capacity` nonces are
    within the window, the one with the oldest stamp is forgotten and `floor` rises to that
    stamp: from then on nothing stamped at or before the floor is taken, so a forgotten nonce
    can never come back. Under a load above `capacity / (2 * window)` datagrams a second the
    window therefore shrinks, for senders whose clocks lag, to about `capacity / rate` seconds.
    """

    def __init__(self, window: float = WINDOW, capacity: int = CAPACITY) -> None:
        if window <= 0 or capacity < 1:
            raise ValueError("window must be positive and capacity at least 1")
        self.window = window
        self.capacity = capacity
        self.floor = float("-inf")
        self._by_stamp: list[tuple[float, bytes]] = []
        self._seen: set[bytes] = set()

    def __len__(self) -> int:
        return len(self._seen)

    def check(self, nonce: bytes, stamp: float, now: float) -> Verdict:
        """Take `nonce` (stamped `stamp`, received at `now`) unless it is stale or seen."""
        while self._by_stamp and self._by_stamp[0][0] < now - self.window:
            self._seen.discard(heapq.heappop(self._by_stamp)[1])
        if abs(stamp - now) > self.window:
            return Verdict.STALE
        if stamp <= self.floor or nonce in self._seen:
            return Verdict.REPLAYED
        self._seen.add(nonce)
        heapq.heappush(self._by_stamp, (stamp, nonce))
        if len(self._seen) > self.capacity:
            oldest, forgotten = heapq.heappop(self._by_stamp)
            self._seen.discard(forgotten)
            self.floor = max(self.floor, oldest)
        return Verdict.FRESH


class DatagramSeal:
    """Seals and opens the datagrams of one use (DHT or beacon); a `dht.sealing.Sealer`.

    Args:
        key: 32 bytes (e.g. `NetworkKey.dht_key`).
        what: what the datagrams are, for the one log line (e.g. "DHT datagram").
        window, capacity: of the replay cache.
        grace: seconds the previous key still opens datagrams after `rekey`.
        clock: wall-clock seconds since 1970 (stamps, the window and the grace period).
    """

    def __init__(
        self,
        key: bytes,
        what: str,
        *,
        window: float = WINDOW,
        capacity: int = CAPACITY,
        grace: float = REKEY_GRACE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.what = what
        self.grace = grace
        self.clock = clock
        self.replays = ReplayCache(window, capacity)
        self.stats: Counter[str] = Counter()
        self._aead = _aead(key)
        self._previous: ChaCha20Poly1305 | None = None
        self._previous_until = float("-inf")
        self._told_stale = False

    def rekey(self, key: bytes) -> None:
        """Seal with `key` from now on; open with the key it replaces for `grace` seconds more."""
        self._previous, self._aead = self._aead, _aead(key)
        self._previous_until = self.clock() + self.grace

    def seal(self, plain: bytes, aad: bytes = b"") -> bytes:
        """`plain` sealed under the current key, stamped now."""
        stamp = int(self.clock() * 1000).to_bytes(STAMP_SIZE, "big")
        nonce = stamp + os.urandom(NONCE_SIZE - STAMP_SIZE)
        return nonce + self._aead.encrypt(nonce, plain, aad)

    def open(self, sealed: bytes, aad: bytes = b"") -> bytes | None:
        """The plaintext of an authentic, fresh datagram seen for the first time; else None.

        Costs one failed AEAD check (two during a grace period) for anything forged, and writes
        nothing anywhere but `stats` for it.
        """
        if len(sealed) < OVERHEAD:
            self.stats["forged"] += 1
            return None
        nonce, body = sealed[:NONCE_SIZE], sealed[NONCE_SIZE:]
        now = self.clock()
        plain = self._decrypt(nonce, body, aad, now)
        if plain is None:
            self.stats["forged"] += 1
            return None
        stamp = int.from_bytes(nonce[:STAMP_SIZE], "big") / 1000
        verdict = self.replays.check(nonce, stamp, now)
        self.stats[verdict.value] += 1
        if verdict is Verdict.STALE:
            self._tell_stale(stamp - now)
        return plain if verdict is Verdict.FRESH else None

    def _decrypt(self, nonce: bytes, body: bytes, aad: bytes, now: float) -> bytes | None:
        keys = [self._aead]
        if self._previous is not None and now < self._previous_until:
            keys.append(self._previous)
        for aead in keys:
            try:
                return aead.decrypt(nonce, body, aad)
            except InvalidTag:
                continue
        return None

    def _tell_stale(self, offset: float) -> None:
        if self._told_stale:
            return
        self._told_stale = True
        log.warning(
            "a %s stamped %.0f s %s this host's clock was dropped (members' clocks must agree"
            " within %.0f s): a member's clock is off, or old datagrams are being replayed."
            " Set the clocks (e.g. with NTP); more like it are dropped without a word",
            self.what,
            abs(offset),
            "ahead of" if offset > 0 else "behind",
            self.replays.window,
        )


def _aead(key: bytes) -> ChaCha20Poly1305:
    if len(key) != KEY_SIZE:
        raise ValueError(f"a datagram key has {KEY_SIZE} bytes, not {len(key)}")
    return ChaCha20Poly1305(key)


class NetworkSeals:
    """The two datagram seals of a member: DHT datagrams and LAN beacons, from one network key."""

    def __init__(self, network: NetworkKey, clock: Callable[[], float] = time.time) -> None:
        self.dht = DatagramSeal(network.dht_key, "DHT datagram", clock=clock)
        self.beacon = DatagramSeal(network.beacon_key, "beacon", clock=clock)

    def rekey(self, network: NetworkKey) -> None:
        """The network key changed (a re-key): both seals take their new keys (see `rekey`)."""
        self.dht.rekey(network.dht_key)
        self.beacon.rekey(network.beacon_key)
