"""The leader's changes, run against a fake RingContext: what it pings, installs and sends."""

from __future__ import annotations

import asyncio

import pytest

from ring.errors import PeerUnreachable, RingError
from ring.joining import MAX_REDIRECTS
from ring.leader import BUSY_PATIENCE, Leader, redirect_to
from ring.membership import Member, View, remove
from ring.messages import Leave, Pong, Update, ViewReply
from ring.wire import Message, Ok
from tests.helpers_ring import FakeRing

A, B, C, D = (Member(k, k, "127.0.0.1", 9000 + i) for i, k in enumerate("abcd"))
RING = View("r", 5, (A, B, C, D))


async def settle() -> None:
    """Let the tasks the leader spawned (its UPDATE pushes) run to their end."""
    for _ in range(5):
        await asyncio.sleep(0)


class TestRemoveFailed:
    async def test_the_leader_cuts_out_the_confirmed_dead_and_pushes_the_view(self) -> None:
        ring = FakeRing(A, RING, replies={B.address: [Ok()], D.address: [Ok()]})
        reply = await Leader(ring).remove_failed({"c"})
        await settle()
        new = remove(RING, ["c"])
        assert reply == ViewReply(new.to_wire())
        assert ring.calls == [
            ("ping", "c"),
            ("ping", "c"),
            ("install", new),
            ("request", B.address, Update(new.to_wire()), 1.0),
            ("request", D.address, Update(new.to_wire()), 1.0),
        ]

    async def test_a_lower_member_found_alive_gets_the_report_instead(self) -> None:
        ring = FakeRing(B, RING, alive={"a"})
        reply = await Leader(ring).remove_failed({"a", "c"})
        assert reply == redirect_to(A)
        assert ("install", remove(RING, ["c"])) not in ring.calls


class TestDepart:
    async def test_a_member_asks_the_leader_following_redirects(self) -> None:
        ring = FakeRing(
            C, RING, replies={A.address: [redirect_to(B)], B.address: [ViewReply(RING.to_wire())]}
        )
        await Leader(ring).depart()
        assert ring.calls == [
            ("request", A.address, Leave("c"), 1.0),
            ("request", B.address, Leave("c"), 1.0),
        ]

    async def test_an_endless_redirect_chain_is_cut(self) -> None:
        ring = FakeRing(C, RING, replies={A.address: [redirect_to(A)] * MAX_REDIRECTS})
        with pytest.raises(PeerUnreachable):
            await Leader(ring).depart()
        assert len(ring.calls) == MAX_REDIRECTS

    async def test_the_leader_hands_over_by_pushing_the_view_without_it(self) -> None:
        new = remove(RING, ["a"])
        replies: dict[tuple[str, int], list[Message | RingError]] = {
            m.address: [Ok()] for m in new.members
        }
        ring = FakeRing(A, RING, replies=replies)
        await Leader(ring).depart()
        assert ring.calls == [
            ("request", m.address, Update(new.to_wire()), 1.0) for m in new.members
        ]


class TestBusyIsNotDead:
    """A member that answers late is kept; only silence for the whole patience cuts it out."""

    class SlowRing(FakeRing):
        """Members answer PING after `delay` seconds; a PING gives up after its timeout."""

        delay: float = 0.0

        async def ping(self, member: Member, timeout: float) -> Pong | None:
            self.calls.append(("ping", member.key))
            if self.delay > timeout:
                await asyncio.sleep(timeout)
                return None
            await asyncio.sleep(self.delay)
            return Pong(member.key, self.view.ring_id, self.view.version)

    async def test_a_pong_later_than_the_probe_timeout_still_counts(self) -> None:
        ring = self.SlowRing(A, RING, probe_timeout=0.05)
        ring.delay = 2 * ring.probe_timeout
        reply = await Leader(ring).remove_failed({"c"})
        assert reply == ViewReply(RING.to_wire())
        assert ring.calls == [("ping", "c")]

    async def test_silence_for_the_whole_patience_cuts_out_after_one_try(self) -> None:
        ring = self.SlowRing(
            A, RING, probe_timeout=0.05, replies={B.address: [Ok()], D.address: [Ok()]}
        )
        ring.delay = 10.0
        loop = asyncio.get_running_loop()
        started = loop.time()
        reply = await Leader(ring).remove_failed({"c"})
        assert reply == ViewReply(remove(RING, ["c"]).to_wire())
        assert loop.time() - started < 4 * ring.probe_timeout, "within a reporter's FAIL timeout"
        assert ring.calls[0] == ("ping", "c") and ("ping", "c") not in ring.calls[1:]

    async def test_silent_but_listening_is_busy_and_kept(self) -> None:
        ring = self.SlowRing(A, RING, probe_timeout=0.02, listens={"c"})
        ring.delay = 10.0
        reply = await Leader(ring).remove_failed({"c"})
        assert reply == ViewReply(RING.to_wire())
        assert ring.knocked == ["c"]

    async def test_busy_for_longer_than_the_busy_patience_is_cut_out(self) -> None:
        ring = self.SlowRing(
            A,
            RING,
            probe_timeout=0.002,
            listens={"c"},
            replies={B.address: [Ok()], D.address: [Ok()]},
        )
        ring.delay = 10.0
        leader = Leader(ring)
        assert await leader.remove_failed({"c"}) == ViewReply(RING.to_wire())
        await asyncio.sleep(BUSY_PATIENCE * ring.probe_timeout)
        assert await leader.remove_failed({"c"}) == ViewReply(remove(RING, ["c"]).to_wire())

    async def test_an_answer_in_between_starts_the_busy_patience_again(self) -> None:
        ring = self.SlowRing(A, RING, probe_timeout=0.002, listens={"c"})
        ring.delay = 10.0
        leader = Leader(ring)
        await leader.remove_failed({"c"})
        await asyncio.sleep(BUSY_PATIENCE * ring.probe_timeout)
        ring.delay = 0.0
        await leader.remove_failed({"c"})
        ring.delay = 10.0
        assert await leader.remove_failed({"c"}) == ViewReply(RING.to_wire())

    async def test_a_refusal_is_not_silence_and_is_not_knocked(self) -> None:
        ring = FakeRing(A, RING, listens={"c"}, replies={B.address: [Ok()], D.address: [Ok()]})
        reply = await Leader(ring).remove_failed({"c"})
        assert reply == ViewReply(remove(RING, ["c"]).to_wire())
        assert ring.knocked == []
