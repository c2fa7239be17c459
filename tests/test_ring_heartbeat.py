"""The heartbeat's report of the dead, run against a fake RingContext: what goes out, in order."""

from __future__ import annotations

from ring.errors import PeerUnreachable, RemoteError
from ring.heartbeat import Heartbeat
from ring.membership import Member, View, remove
from ring.messages import Fail, ViewReply
from ring.wire import Message
from tests.helpers_ring import FakeRing

A, B, C, D = (Member(k, k, "127.0.0.1", 9000 + i) for i, k in enumerate("abcd"))
RING = View("r", 5, (A, B, C, D))


def heartbeat(ring: FakeRing, verified: list[set[str]]) -> Heartbeat:
    async def verify(dead: set[str]) -> Message:
        verified.append(dead)
        return ViewReply(remove(ring.view, dead - ring.alive).to_wire())

    def contact(host: str, port: int) -> None:
        raise AssertionError("no merge probe expected")

    return Heartbeat(ring, 3, interval=0.1, clock=lambda: 0.0, verify=verify, contact=contact)


class TestReportDead:
    async def test_past_an_unreachable_leader_to_the_next_and_its_view_is_adopted(self) -> None:
        new = remove(RING, ["a", "c"])
        ring = FakeRing(
            D,
            RING,
            replies={A.address: [PeerUnreachable("down")], B.address: [ViewReply(new.to_wire())]},
        )
        verified: list[set[str]] = []
        beat = heartbeat(ring, verified)
        beat.detector.suspects |= {"c", "b-gone"}
        await beat.report_dead()
        assert ring.calls == [
            ("request", A.address, Fail("d", ["c"]), 1.0),
            ("request", B.address, Fail("d", ["a", "c"]), 1.0),
            ("receive", new, "update"),
        ]
        assert verified == []

    async def test_the_acting_leader_verifies_itself_and_sends_nothing(self) -> None:
        ring = FakeRing(B, RING, alive={"c"})
        verified: list[set[str]] = []
        beat = heartbeat(ring, verified)
        beat.detector.suspects |= {"a", "c"}
        await beat.report_dead()
        assert verified == [{"a", "c"}]
        assert ring.calls == [("receive", remove(RING, ["a"]), "update")]
        assert beat.detector.suspects == {"a"}

    async def test_a_refused_report_adopts_nothing(self) -> None:
        ring = FakeRing(D, RING, replies={A.address: [RemoteError("not_member", "no ring")]})
        beat = heartbeat(ring, [])
        beat.detector.suspects.add("c")
        await beat.report_dead()
        assert ring.calls == [("request", A.address, Fail("d", ["c"]), 1.0)]
