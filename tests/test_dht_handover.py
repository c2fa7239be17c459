"""Hand-over planning without sockets: who is owed which keys, and who sends them."""

from __future__ import annotations

import random

from kademlia.node import Node

from dht.handover import plan_hand_over
from dht.sweep import position

K = 8


def node(rng: random.Random, i: int) -> Node:
    return Node(rng.randbytes(20), "127.0.0.1", 30000 + i)


def nearest_ids(nodes: list[Node], key: bytes, k: int) -> list[bytes]:
    at = position(key)
    return [n.id for n in sorted(nodes, key=lambda n: n.long_id ^ at)[:k]]


class TestPlan:
    def test_exactly_one_node_hands_each_key_to_a_newcomer_among_its_k_nearest(self) -> None:
        rng = random.Random(1)
        nodes = [node(rng, i) for i in range(40)]
        newcomer = node(rng, 99)
        keys = [rng.randbytes(20) for _ in range(300)]
        senders: dict[bytes, list[bytes]] = {}
        for me in nodes:
            contacts = [n for n in nodes if n is not me] + [newcomer]
            for key in plan_hand_over(me, contacts, [newcomer], keys, K).get(newcomer.id, []):
                senders.setdefault(key, []).append(me.id)
        for key in keys:
            if newcomer.id in nearest_ids(nodes + [newcomer], key, K):
                assert senders.get(key) == [nearest_ids(nodes, key, 1)[0]]
            else:
                assert key not in senders

    def test_with_fewer_than_k_others_every_key_is_owed(self) -> None:
        rng = random.Random(2)
        me, a, b, newcomer = (node(rng, i) for i in range(4))
        keys = [rng.randbytes(20) for _ in range(200)]
        owed = []
        for sender in (me, a, b):
            others = [n for n in (me, a, b) if n is not sender]
            owed += plan_hand_over(sender, others + [newcomer], [newcomer], keys, K).get(
                newcomer.id, []
            )
        assert sorted(owed) == sorted(keys), "on a LAN smaller than k every node stores every key"

    def test_newcomers_met_together_are_planned_in_one_pass(self) -> None:
        rng = random.Random(3)
        me = node(rng, 0)
        newcomers = [node(rng, i) for i in range(1, 4)]
        keys = [rng.randbytes(20) for _ in range(50)]
        plan = plan_hand_over(me, newcomers, newcomers, keys, K)
        assert {n.id: sorted(v) for n, v in zip(newcomers, plan.values(), strict=True)} == {
            n.id: sorted(keys) for n in newcomers
        }

    def test_a_nearer_contact_sends_instead(self) -> None:
        key = bytes(20)
        me = Node(b"\x00" * 19 + b"\x0f", "127.0.0.1", 1)
        nearer = Node(b"\x00" * 19 + b"\x01", "127.0.0.1", 2)
        newcomer = Node(b"\x00" * 19 + b"\x02", "127.0.0.1", 3)
        assert plan_hand_over(me, [nearer, newcomer], [newcomer], [key], K) == {}
        assert plan_hand_over(nearer, [me, newcomer], [newcomer], [key], K) == {newcomer.id: [key]}
