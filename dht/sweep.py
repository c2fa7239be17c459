"""Sweeps: which of the nodes one lookup found are the k nearest of each key near that lookup.

Theory of operation (after IPFS's "reprovide sweep"). Announcing keys one by one costs one
iterative lookup per key. Keys sorted by their position in the keyspace come in runs whose k
nearest nodes are the same few; a sweep walks the sorted keys, does one lookup per run (a
`Region`) and sends each node the keys it is among the k nearest of, many per request.

How far one lookup reaches. A lookup around ``origin`` that asked for its ``width`` nearest
nodes and got all of them knows every node within ``reach`` (the distance of the farthest one
found) of the origin: any node it did not find is farther. For a key at distance ``delta``
from the origin, XOR distance obeys ``d(n, key) >= d(n, origin) - delta``, so an unseen node is
farther from the key than ``reach - delta``. The k nearest of the key among the nodes found are
therefore its true k nearest when the farthest of them is within ``reach - delta``. A lookup
that found fewer than ``width`` nodes found every node there is, and covers the whole keyspace.
With width 2k a region spans about k nodes' share of the keyspace; on a LAN of at most 2k + 1
nodes one lookup covers every key.

Everything here is plain data in, plain data out; no sockets.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

from kademlia.node import Node


def position(key: bytes) -> int:
    """A key's position in the keyspace (its 160-bit big-endian value)."""
    return int.from_bytes(key, "big")


@dataclass(frozen=True)
class Region:
    """What one lookup around ``origin`` tells: the nodes found and how far that is known."""

    origin: int
    found: tuple[Node, ...]
    reach: int | None
    """Distance from the origin within which every node was found; None: all nodes were."""

    @classmethod
    def of(cls, origin: bytes, found: Sequence[Node], width: int) -> Region:
        """The region of a lookup around ``origin`` that asked for ``width`` nodes.

        Raises:
            ValueError: nothing was found (no region can be drawn from no node).
        """
        if not found:
            raise ValueError("a region needs at least one node")
        at = position(origin)
        reach = max(n.long_id ^ at for n in found) if len(found) >= width else None
        return cls(at, tuple(found), reach)

    @classmethod
    def whole(cls, origin: bytes, nodes: Sequence[Node]) -> Region:
        """The region of ``nodes`` known to be every node there is (the ring's census), which
        covers every key."""
        return cls(position(origin), tuple(nodes), None)

    def nearest(self, key: bytes, k: int) -> list[Node]:
        """The ``k`` nodes found nearest ``key``, nearest first."""
        at = position(key)
        return heapq.nsmallest(k, self.found, key=lambda n: n.long_id ^ at)

    def covers(self, key: bytes, k: int) -> list[Node] | None:
        """The true k nearest nodes of ``key`` if this region knows them, else None."""
        near = self.nearest(key, k)
        if self.reach is None:
            return near
        at = position(key)
        delta = at ^ self.origin
        farthest = max(n.long_id ^ at for n in near)
        return near if farthest + delta <= self.reach else None


def assign(keys: Sequence[bytes], region: Region, k: int) -> tuple[dict[bytes, list[bytes]], int]:
    """Give each node the keys it is among the k nearest of, from the start of ``keys`` on.

    Args:
        keys: sorted by `position`; ``keys[0]`` should be the region's origin.

    Returns:
        ``({node id: [key, ...]}, n)``: the assignment of ``keys[:n]``, the longest run from the
        start that the region covers (at least 1: a region always covers its origin).
    """
    plan: dict[bytes, list[bytes]] = {}
    taken = 0
    for key in keys:
        near = region.covers(key, k)
        if near is None and taken:
            break
        for node in near if near is not None else region.nearest(key, k):
            plan.setdefault(node.id, []).append(key)
        taken += 1
    return plan, taken
