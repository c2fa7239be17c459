"""Which holder to ask, and in what order: one round-trip table and one ranking, with no I/O.

Theory of operation. `RoundTrips` keeps, per peer name, what this node knows of the round trip
to it. Two kinds of measurement feed it: the ring's heartbeat estimates (`heard`; the ring times
one member per beat and smooths those timings itself) and single timings this node takes along
the way, a PING probe of a holder or a whole-file download (`sample`; smoothed here, one rule
for both). A heartbeat estimate, while the ring has one, is preferred: it is fresh every few
beats, whereas a sample is only as fresh as the last probe or download.

Before ranking, holders with neither a heartbeat estimate nor a sample younger than
PROBE_MAX_AGE are worth one probe (`to_probe`): the choice then rests on a measurement, not on
who happens to be our ring neighbour. `nearest` orders holders by the table; `rank` turns the
located holders plus the previous node and the owner into the sources to ask, in order; and
`spread` picks the few a block download uses at once. Time is passed in as `now`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol, TypeVar

from sync.manifest import Peer

PROBE_MAX_AGE = 30.0
"""A holder's round-trip sample older than this is measured again before ranking holders."""

SAMPLE_WEIGHT = 0.3
"""Weight of a new probe or transfer timing in a peer's smoothed round trip (the first one
counts in full)."""


class Named(Protocol):
    """Anything ranked by name: a sync `Peer`, or the overlay's ring member."""

    @property
    def name(self) -> str: ...


N = TypeVar("N", bound=Named)


class RoundTrips:
    """Round-trip estimates per peer name, from heartbeats, probes and transfers."""

    def __init__(self) -> None:
        self._heard: dict[str, float] = {}
        self._sampled: dict[str, tuple[float, float]] = {}

    def heard(self, estimates: Mapping[str, float]) -> None:
        """The ring's heartbeat estimates as they stand now, in seconds per peer name.

        They replace the last ones: a peer the ring no longer times falls back to its samples.
        """
        self._heard = dict(estimates)

    def sample(self, peer: str, seconds: float, now: float) -> None:
        """One timing of `peer` (a probe or a download), taken at `now`."""
        old = self._sampled.get(peer)
        smooth = seconds if old is None else (1 - SAMPLE_WEIGHT) * old[0] + SAMPLE_WEIGHT * seconds
        self._sampled[peer] = (smooth, now)

    def rtt(self, peer: str) -> float | None:
        """The best estimate for `peer`: the heartbeat's, else the smoothed samples, else None."""
        if peer in self._heard:
            return self._heard[peer]
        sample = self._sampled.get(peer)
        return None if sample is None else sample[0]

    def fresh(self, peer: str, now: float) -> bool:
        """Whether `peer` needs no probe: a heartbeat estimate, or a sample under PROBE_MAX_AGE."""
        if peer in self._heard:
            return True
        sample = self._sampled.get(peer)
        return sample is not None and now - sample[1] < PROBE_MAX_AGE


def to_probe(holders: Iterable[N], me: str, table: RoundTrips, now: float) -> list[N]:
    """The holders to time (PING) before ranking them: not this node, and not `fresh`."""
    return [h for h in holders if h.name != me and not table.fresh(h.name, now)]


def nearest(holders: Iterable[N], me: str, table: RoundTrips) -> list[N]:
    """Holders nearest first: measured ones by round trip, then the unmeasured; ties by name.

    This node (`me`) counts as measured at 0 s, so it leads a list that shows it (who-has).
    """

    def nearness(holder: N) -> tuple[bool, float, str]:
        if holder.name == me:
            return (False, 0.0, holder.name)
        rtt = table.rtt(holder.name)
        return (rtt is None, rtt or 0.0, holder.name)

    return sorted(holders, key=nearness)


def rank(
    located: Iterable[Peer],
    prev: Peer | None,
    prev_holds: bool,
    owner: Peer | None,
    me: str,
    table: RoundTrips,
) -> list[Peer]:
    """Where to fetch from, in order: located full holders (`nearest` first), prev, owner,
    then located partial holders (`Peer.fetching`, nearest first).

    The previous node goes before the owner when its manifest said it holds that version, and
    after the owner and the partial holders otherwise (it may have it by now; asking costs one
    short ERROR). This node and duplicates (by address; the first place wins) are left out.
    """
    ranked = nearest(located, me, table)
    order = [peer for peer in ranked if not peer.fetching]
    if prev is not None and prev_holds:
        order.append(prev)
    if owner is not None:
        order.append(owner)
    order.extend(peer for peer in ranked if peer.fetching)
    if prev is not None and not prev_holds:
        order.append(prev)
    out: list[Peer] = []
    seen: set[tuple[str, int]] = set()
    for peer in order:
        key = (peer.host, peer.port)
        if peer.name == me or key in seen:
            continue
        seen.add(key)
        out.append(peer)
    return out


def spread(holders: Sequence[Peer], me: str, sha256: str, most: int) -> list[Peer]:
    """At most `most` of the ranked `holders` for one download: the first (the nearest) and a
    share of the others that depends on this node's name, so many receivers of one file spread
    over its holders."""
    if len(holders) <= most:
        return list(holders)
    rest = list(holders[1:])
    turn = place(me, sha256, len(rest))
    return [holders[0], *(rest[turn:] + rest[:turn])[: most - 1]]


def place(me: str, sha256: str, count: int) -> int:
    """A number below `count` that this node takes for content `sha256` (where it starts in a
    list, or in a file's blocks): a hash of both, so receivers of one file spread evenly, even
    when their names differ in one character (a CRC, being linear, put h1 to h8 side by side)."""
    digest = hashlib.blake2b(f"{me}/{sha256}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count
