"""The join walk without sockets: made-up replies in, the next address (or the result) out."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ring.errors import LocalProtocolError, MalformedFrame, PeerUnreachable, RemoteError
from ring.joining import MAX_REDIRECTS, Address, Ask, Done, JoinWalk, Pause, Step
from ring.membership import Member, View
from ring.messages import JoinOk, Pong, Redirect
from ring.wire import Message, Ok

ME = Member("me", "me", "127.0.0.1", 9000)
LEADER = Member("lead", "lead", "127.0.0.1", 9001)
A, B, L = ("127.0.0.1", 9002), ("127.0.0.1", 9003), LEADER.address

Outcome = Message | PeerUnreachable | RemoteError | MalformedFrame
Network = Callable[[Address], Outcome]


def admitted(*members: Member) -> JoinOk:
    return JoinOk(View("r", 2, (LEADER, *members)).to_wire())


def to_leader() -> Redirect:
    return Redirect(LEADER.key, *LEADER.address)


def script(replies: dict[Address, list[Outcome]]) -> Network:
    """Each address answers its outcomes in order, the last one for ever after."""

    def answer(address: Address) -> Outcome:
        queue = replies[address]
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return answer


def walk_on(walk: JoinWalk, network: Network, now: float = 0.0) -> tuple[list[Address], Step]:
    """Drive `walk` until it pauses or is done; return every address asked and that step."""
    asked: list[Address] = []
    while True:
        step = walk.next_step(now)
        if not isinstance(step, Ask):
            return asked, step
        asked.append((step.host, step.port))
        outcome = network((step.host, step.port))
        if isinstance(outcome, Message):
            walk.replied(outcome)
        else:
            walk.failed(outcome)


def walk(*peers: Address, patient: bool = False, deadline: float = 10.0) -> JoinWalk:
    return JoinWalk(ME.key, list(peers), deadline=deadline, patient=patient)


class TestAdmitted:
    def test_the_first_peer_that_leads_admits_us(self) -> None:
        asked, step = walk_on(walk(L, A), script({L: [admitted(ME)]}))
        assert asked == [L]
        assert step == Done(View.from_wire(admitted(ME).view))

    def test_a_member_redirects_to_the_leader(self) -> None:
        asked, step = walk_on(walk(A), script({A: [to_leader()], L: [admitted(ME)]}))
        assert asked == [A, L]
        assert isinstance(step, Done) and step.view is not None
        assert step.view.position(ME.key) == 1

    def test_an_unreachable_peer_is_skipped(self) -> None:
        network = script({A: [PeerUnreachable("down")], B: [to_leader()], L: [admitted(ME)]})
        asked, step = walk_on(walk(A, B), network)
        assert asked == [A, B, L]
        assert isinstance(step, Done) and step.view is not None

    def test_done_stays_done(self) -> None:
        w = walk(L)
        _, step = walk_on(w, script({L: [admitted(ME)]}))
        assert w.next_step(99.0) == step


class TestGivingUp:
    def test_no_peers_at_all(self) -> None:
        assert walk_on(walk(), script({})) == ([], Done(None))

    def test_an_unreachable_first_peer_is_not_retried(self) -> None:
        asked, step = walk_on(walk(A), script({A: [PeerUnreachable("down")]}))
        assert (asked, step) == ([A], Done(None))

    def test_a_peer_in_no_ring_ends_a_start(self) -> None:
        network = script({A: [RemoteError("not_member", "in no ring")]})
        assert walk_on(walk(A), network) == ([A], Done(None))

    @pytest.mark.parametrize(
        "bad",
        [
            admitted(),
            JoinOk({"ring_id": "r", "version": 1, "members": "all"}),
            Pong("k", "r", 1),
            Ok(),
            MalformedFrame("garbage"),
            RemoteError("bad_request", "no"),
        ],
    )
    def test_a_bad_answer_moves_on_without_retrying(self, bad: Outcome) -> None:
        asked, step = walk_on(walk(A, L), script({A: [bad], L: [admitted(ME)]}))
        assert asked == [A, L] and isinstance(step, Done) and step.view is not None
        assert walk_on(walk(A), script({A: [bad]})) == ([A], Done(None))


class TestRingInTransition:
    def test_a_leaving_leader_is_asked_again_after_a_pause(self) -> None:
        w = walk(A)
        network = script({A: [to_leader()], L: [RemoteError("leaving", "bye"), admitted(ME)]})
        asked, step = walk_on(w, network)
        assert (asked, step) == ([A, L], Pause())
        asked, step = walk_on(w, network, now=1.0)
        assert asked == [A, L] and isinstance(step, Done) and step.view is not None

    def test_a_leader_unreachable_after_a_redirect_is_worth_another_round(self) -> None:
        w = walk(A, B)
        network = script(
            {A: [to_leader()], B: [PeerUnreachable("down")], L: [PeerUnreachable("dead")]}
        )
        assert walk_on(w, network) == ([A, L, B], Pause())

    def test_the_redirect_chain_is_cut_at_the_cap(self) -> None:
        w = walk(A, B)
        network = script({A: [Redirect("a", *A)], B: [PeerUnreachable("down")]})
        asked, step = walk_on(w, network)
        assert asked == [A] * MAX_REDIRECTS + [B]
        assert step == Pause()

    def test_a_patient_rejoin_waits_for_a_peer_on_its_way_in(self) -> None:
        w = walk(A, B, patient=True)
        network = script(
            {
                A: [RemoteError("not_member", "joining"), admitted(ME)],
                B: [PeerUnreachable("down")],
            }
        )
        assert walk_on(w, network) == ([A, B], Pause())
        asked, step = walk_on(w, network, now=1.0)
        assert asked == [A] and isinstance(step, Done) and step.view is not None

    def test_patience_is_only_for_not_member(self) -> None:
        network = script({A: [RemoteError("bad_request", "no")]})
        assert walk_on(walk(A, patient=True), network) == ([A], Done(None))

    def test_no_round_starts_after_the_deadline(self) -> None:
        w = walk(A, deadline=5.0)
        network = script({A: [RemoteError("leaving", "bye")]})
        assert walk_on(w, network, now=0.0) == ([A], Pause())
        assert walk_on(w, network, now=4.9) == ([A], Pause())
        assert walk_on(w, network, now=5.0) == ([A], Done(None))
        assert w.next_step(6.0) == Done(None)

    def test_one_retry_reason_in_a_round_is_enough(self) -> None:
        w = walk(A, B)
        network = script({A: [RemoteError("leaving", "bye")], B: [PeerUnreachable("down")]})
        assert walk_on(w, network) == ([A, B], Pause())


class TestMisuse:
    def test_feeding_an_outcome_with_nothing_asked_is_our_bug(self) -> None:
        w = walk(A)
        with pytest.raises(LocalProtocolError):
            w.replied(admitted(ME))
        with pytest.raises(LocalProtocolError):
            w.failed(PeerUnreachable("down"))
