"""Status without sockets: the table of allowed moves, and what a status lets a handler do."""

from __future__ import annotations

import pytest

from ring.errors import LocalProtocolError, Refused
from ring.status import Status, check_alive, next_status, require_member


class TestStatus:
    def test_a_life_of_a_node(self) -> None:
        status = Status.IDLE
        for event in ["start", "founded", "rejoin", "joined", "leave", "left"]:
            status = next_status(status, event)
        assert status is Status.LEFT

    @pytest.mark.parametrize(
        "status, event",
        [
            (Status.IDLE, "leave"),
            (Status.LEFT, "start"),
            (Status.CRASHED, "crash"),
            (Status.MEMBER, "joined"),
        ],
    )
    def test_transitions_not_in_the_table_are_our_bug(self, status: Status, event: str) -> None:
        with pytest.raises(LocalProtocolError):
            next_status(status, event)


class TestGuards:
    def test_a_crashed_node_answers_nothing(self) -> None:
        with pytest.raises(ConnectionResetError):
            check_alive(Status.CRASHED)
        with pytest.raises(ConnectionResetError):
            require_member(Status.CRASHED)

    @pytest.mark.parametrize("status", [Status.IDLE, Status.JOINING, Status.LEAVING, Status.LEFT])
    def test_a_node_in_no_ring_refuses_as_not_member(self, status: Status) -> None:
        check_alive(status)
        with pytest.raises(Refused) as info:
            require_member(status)
        assert info.value.code == "not_member"

    def test_a_member_passes_both_guards(self) -> None:
        check_alive(Status.MEMBER)
        require_member(Status.MEMBER)
