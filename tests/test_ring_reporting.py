"""Routing a failure report without sockets: made-up replies in, whom to tell next out."""

from __future__ import annotations

import pytest

from ring.errors import LocalProtocolError, PeerUnreachable, RemoteError
from ring.membership import Member, View, remove
from ring.messages import Redirect, ViewReply
from ring.reporting import Done, FailReport, Report, Verify
from ring.wire import Ok

A, B, C, D = (Member(k, k, "127.0.0.1", 9000 + i) for i, k in enumerate("abcd"))
RING = View("r", 5, (A, B, C, D))


def view_reply(view: View) -> ViewReply:
    return ViewReply(view.to_wire())


def redirect(member: Member) -> Redirect:
    return Redirect(member.key, member.host, member.port)


class TestRouting:
    def test_the_suspects_go_to_the_leader_and_its_view_ends_the_report(self) -> None:
        report = FailReport(C, RING, {"d"})
        assert report.next_step(RING) == Report(A, ("d",))
        new = remove(RING, ["d"])
        report.replied(view_reply(new))
        assert report.next_step(new) == Done(new)
        assert report.next_step(RING) == Done(new)

    def test_suspects_outside_the_view_are_not_reported(self) -> None:
        report = FailReport(C, RING, {"x"})
        assert report.next_step(RING) == Done(None)

    def test_a_dead_leader_is_skipped_for_the_next_lowest(self) -> None:
        report = FailReport(D, RING, {"a"})
        assert report.next_step(RING) == Report(B, ("a",))

    def test_an_unreachable_leader_joins_the_dead(self) -> None:
        report = FailReport(D, RING, {"c"})
        assert report.next_step(RING) == Report(A, ("c",))
        report.failed(PeerUnreachable("down"))
        assert report.next_step(RING) == Report(B, ("a", "c"))
        report.failed(PeerUnreachable("down"))
        assert report.next_step(RING) == Verify(frozenset({"a", "b", "c"}))

    def test_the_reporter_that_is_the_acting_leader_verifies_itself(self) -> None:
        report = FailReport(B, RING, {"a", "d"})
        assert report.next_step(RING) == Verify(frozenset({"a", "d"}))
        new = remove(RING, ["a", "d"])
        report.replied(view_reply(new))
        assert report.next_step(new) == Done(new)

    def test_a_redirect_to_one_we_thought_dead_sends_the_report_there(self) -> None:
        report = FailReport(D, RING, {"c"})
        report.next_step(RING)
        report.failed(PeerUnreachable("slow"))
        assert report.next_step(RING) == Report(B, ("a", "c"))
        report.replied(redirect(A))
        assert report.dead == {"c"}
        assert report.next_step(RING) == Report(A, ("c",))

    def test_a_redirect_from_our_own_check_goes_to_the_lower_member_alive(self) -> None:
        report = FailReport(B, RING, {"a"})
        assert report.next_step(RING) == Verify(frozenset({"a"}))
        report.replied(redirect(A))
        assert report.next_step(RING) == Done(None)

    def test_the_current_view_picks_the_leader(self) -> None:
        report = FailReport(D, RING, {"c"})
        report.next_step(RING)
        report.failed(PeerUnreachable("down"))
        newcomer = Member("0", "0", "127.0.0.1", 8999)
        grown = View("r", 6, (newcomer, *RING.members))
        assert report.next_step(grown) == Report(newcomer, ("a", "c"))

    def test_a_report_takes_at_most_one_step_per_member_and_one(self) -> None:
        report = FailReport(C, RING, {"b"})
        steps = []
        for _ in range(20):
            step = report.next_step(RING)
            if isinstance(step, Done):
                break
            steps.append(step)
            if isinstance(step, Report):
                report.failed(PeerUnreachable("down"))
            else:
                report.replied(redirect(A))
        assert steps == [
            Report(A, ("b",)),
            Verify(frozenset({"a", "b"})),
            Report(A, ("b",)),
            Verify(frozenset({"a", "b"})),
            Report(A, ("b",)),
        ]
        assert len(steps) == len(RING.members) + 1
        assert step == Done(None)

    def test_every_member_dead_leaves_nobody_to_tell(self) -> None:
        outside = Member("z", "z", "127.0.0.1", 9100)
        report = FailReport(outside, RING, {"a", "b", "c", "d"})
        assert report.next_step(RING) == Done(None)


class TestEndings:
    @pytest.mark.parametrize(
        "reply",
        [redirect(B), Ok(), ViewReply({"ring_id": "r", "version": 1, "members": "all"})],
    )
    def test_any_other_reply_ends_the_report_with_nothing_to_adopt(
        self, reply: Redirect | Ok | ViewReply
    ) -> None:
        report = FailReport(D, RING, {"c"})
        report.next_step(RING)
        report.replied(reply)
        assert report.next_step(RING) == Done(None)

    def test_a_refusal_ends_the_report(self, caplog: pytest.LogCaptureFixture) -> None:
        report = FailReport(D, RING, {"c"})
        report.next_step(RING)
        report.failed(RemoteError("not_member", "in no ring"))
        assert report.next_step(RING) == Done(None)
        assert any("FAIL report refused" in r.getMessage() for r in caplog.records)

    def test_asking_again_before_an_outcome_repeats_the_step(self) -> None:
        report = FailReport(D, RING, {"c"})
        assert report.next_step(RING) == report.next_step(RING) == Report(A, ("c",))

    def test_feeding_an_outcome_with_nothing_asked_is_our_bug(self) -> None:
        report = FailReport(D, RING, {"c"})
        with pytest.raises(LocalProtocolError):
            report.replied(Ok())
        with pytest.raises(LocalProtocolError):
            report.failed(PeerUnreachable("down"))
