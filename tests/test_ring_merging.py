"""A lost merge, run against a fake RingContext: who sends MERGE, who re-joins where."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from ring.errors import RemoteError
from ring.membership import Member, View
from ring.merging import Merger
from ring.messages import Merge
from ring.wire import Message
from tests.helpers_ring import FakeRing

A, B, C = (Member(k, k, "127.0.0.1", 9000 + i) for i, k in enumerate("abc"))
RING = View("2-ring", 3, (A, B, C))
WINNER = ("1-ring", "w")
THERE = ("127.0.0.1", 9100)


def merger(ring: FakeRing) -> Merger:
    async def push(members: Iterable[Member], msg: Message) -> None:
        ring.calls.append(("push", [m.key for m in members], msg))

    return Merger(ring, push=push)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


class TestMergeInto:
    async def test_the_leader_tells_every_member_and_rejoins(self) -> None:
        ring = FakeRing(A, RING)
        merger(ring).merge_into(WINNER, THERE)
        await settle()
        assert ring.calls == [
            ("rejoin", [THERE]),
            ("push", ["b", "c"], Merge("1-ring", "w", *THERE)),
        ]

    async def test_a_member_told_by_merge_rejoins(self) -> None:
        ring = FakeRing(B, RING)
        merger(ring).merge_into(WINNER, THERE, told=True)
        assert ring.calls == [("rejoin", [THERE])]

    async def test_a_member_that_found_out_asks_its_leader_or_goes_alone(self) -> None:
        ring = FakeRing(B, RING, replies={A.address: [RemoteError("no_merge", "no")]})
        merger(ring).merge_into(WINNER, THERE)
        await settle()
        assert ring.calls == [
            ("request", A.address, Merge("1-ring", "w", *THERE), 1.0),
            ("rejoin", [THERE]),
        ]
