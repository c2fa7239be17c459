"""Regions: which nodes a sweep or a batched lookup sends each key to, drawn around one key.

Theory of operation. A region (`dht/sweep.py`) is what one `find_node` lookup around a key
tells: the nodes found, and how far from the key they are known to be every node there is. On
a LAN that lookup asks every other node (N - 1 requests, and as many replies), and what it
finds is the routing table this node already has, whenever that table holds every node.
Kademlia alone cannot tell when it does; the ring can. Every node of a lanshare DHT is a
member of the ring (its id is the SHA-1 of the member's key, `node_id_of`, and its datagrams
are sealed with the network's key), and the ring's view lists every member it has not cut
out. So the overlay hands the ids and addresses of its view to `Regions.census`, and a region
is drawn from the census, with no request at all, while the routing table holds a contact for
every member other than those that failed to answer lately (a lookup would skip those too).
The table says who runs the DHT and answers; the addresses are the view's, which the ring
vouches for, not whatever address last sent a datagram under a member's id.

A lookup is made, as before, when the table lacks a member (one that just joined and has not
been heard from, or one running without the DHT), when the table holds only some members (a
network large enough for its buckets of k to fill), and when no census was given (a DHT
without a ring: the DHT's own tests and benchmarks).

Views differ for a moment while a member joins or leaves. A key stored on the k nearest
members of one view and looked up on those of the next still finds k - 1 of them, and the
lookup's repairs and the newcomer's hand-over close the gap, as they do after a lookup that
missed a node.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Iterable

from kademlia.node import Node

from dht.crawling import find_region
from dht.pacing import STEP
from dht.protocol import HolderProtocol
from dht.sweep import Region, assign

REGION_WIDTH = 2
"""A region lookup asks for this many times k nodes (see `dht/sweep.py`)."""

Nearest = Callable[[Node, int], Awaitable[list[Node]]]
Plan = dict[bytes, tuple[Node, list[bytes]]]
"""node id -> the node, and the keys it is among the k nearest of."""


def node_id_of(member_key: str) -> bytes:
    """The DHT node id of the ring member whose public key is ``member_key`` (hex): its SHA-1,
    so that the ring's view names every member's place in the keyspace."""
    return hashlib.sha1(bytes.fromhex(member_key)).digest()


class Regions:
    """Draws the regions of one node's sweeps and batched lookups; see the module docstring.

    Args:
        protocol: the node's protocol (routing table, requests, who is silent).
        nearest: ``(target, count)`` -> known contacts nearest ``target``, re-joining through
            the seeds when none is left (`HolderIndex._nearest`).
    """

    def __init__(
        self, protocol: HolderProtocol, nearest: Nearest, *, ksize: int, alpha: int
    ) -> None:
        self.protocol = protocol
        self.nearest = nearest
        self.ksize = ksize
        self.width = REGION_WIDTH * ksize
        self.alpha = alpha
        self.looked_up = 0
        """Regions drawn with a `find_node` lookup."""
        self.counted = 0
        """Regions drawn from the census, without a request."""
        self._members: dict[bytes, Node] = {}

    def census(self, members: Iterable[tuple[bytes, str, int]]) -> None:
        """The ring's members as its view lists them now: DHT node id, IP and UDP port (this
        node's own is left out); an empty census means lookups only."""
        me = self.protocol.source_node.id
        self._members = {
            node_id: Node(node_id, host, port) for node_id, host, port in members if node_id != me
        }

    def known(self) -> list[Node] | None:
        """Every member of the census that answers, at the address of the view, if the
        routing table holds all of them (the silent apart); else None."""
        if not self._members:
            return None
        table = {c.id for bucket in self.protocol.router.buckets for c in bucket.get_nodes()}
        live = [node for node_id, node in self._members.items() if node_id in table]
        missing = [node for node_id, node in self._members.items() if node_id not in table]
        if not live or not all(self.protocol.is_silent(node) for node in missing):
            return None
        return live

    async def around(self, origin: bytes) -> Region | None:
        """The region around the key ``origin``: from the census if it is complete, else from a
        lookup for `width` nodes; None when no node answered the lookup."""
        known = self.known()
        if known is not None:
            self.counted += 1
            return Region.whole(origin, known)
        self.looked_up += 1
        seeds = await self.nearest(Node(origin), self.width)
        found = await find_region(self.protocol, origin, seeds, self.width, self.alpha)
        return Region.of(origin, found, self.width) if found else None

    async def plan(self, keys: list[bytes]) -> tuple[Plan, int, int]:
        """Walk ``keys`` (sorted by `position`) region by region and give each node the keys it
        is among the k nearest of, yielding to the event loop every `STEP` keys.

        Returns:
            ``(plan, regions, covered)``: the plan of ``keys[:covered]`` and how many regions it
            took; ``covered < len(keys)`` when no node answered the lookup of a region.
        """
        plan: Plan = {}
        regions = done = 0
        while done < len(keys):
            regions += 1
            region = await self.around(keys[done])
            if region is None:
                break
            by_id = {n.id: n for n in region.found}
            while done < len(keys):
                part = keys[done : done + STEP]
                assigned, taken = assign(part, region, self.ksize)
                for node_id, node_keys in assigned.items():
                    plan.setdefault(node_id, (by_id[node_id], []))[1].extend(node_keys)
                done += taken
                await asyncio.sleep(0)
                if taken < len(part):
                    break
        return plan, regions, done
