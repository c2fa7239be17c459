"""Hand-over: which stored keys this node owes a contact it meets for the first time.

Kademlia (section 2.5): a node that learns of a new contact gives it the records it is now among
the k nearest for, but only if this node is nearer the key than every other contact it knows,
so that one node, not k, sends each record. Departures from the library:
- the stored key is the key (the library hashes it again and so misses most hand-overs);
- "among the k nearest" counts this node itself among them (the library compares with the k-th
  other contact, one too far), and holds whenever fewer than k nodes are known at all (on a LAN
  of four nodes with k = 8, every node stores every key).

Newcomers met together are planned together, one pass over the keys for all of them.
Everything here is plain data in, plain data out; no sockets.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence

from kademlia.node import Node

from dht.sweep import position


def plan_hand_over(
    me: Node, contacts: Sequence[Node], newcomers: Sequence[Node], keys: Iterable[bytes], k: int
) -> dict[bytes, list[bytes]]:
    """The keys owed to each newcomer.

    Args:
        me: this node.
        contacts: every contact known, newcomers included or not (they are left out here).
        newcomers: the contacts to plan for.
        keys: the keys this node stores.
        k: replicas per key.

    Returns:
        ``{newcomer id: [key, ...]}``, keys in the order given; newcomers owed nothing are absent.
    """
    fresh = {n.id for n in newcomers}
    known = [c for c in contacts if c.id not in fresh and c.id != me.id] + [me]
    plan: dict[bytes, list[bytes]] = {}
    for key in keys:
        at = position(key)
        near = heapq.nsmallest(k, known, key=lambda n: n.long_id ^ at)
        if near[0] is not me:
            continue
        farthest = near[-1].long_id ^ at if len(near) == k else None
        for newcomer in newcomers:
            if farthest is None or newcomer.long_id ^ at < farthest:
                plan.setdefault(newcomer.id, []).append(key)
    return plan
