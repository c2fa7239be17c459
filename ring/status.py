"""Where a node stands with respect to a ring, the moves allowed between standings, and what a
standing lets a handler do.

Every status change goes through `next_status`, checked against `TRANSITIONS` (a pair not in the
table is a bug in this node, as in h11's `_state.py`). The guards turn a status into the answer
a handler gives before it acts: silence from a crashed node, `not_member` from one in no ring.
"""

from __future__ import annotations

import enum

from ring.errors import LocalProtocolError, Refused


class Status(enum.Enum):
    """Where a node stands with respect to a ring."""

    IDLE = "idle"
    JOINING = "joining"
    MEMBER = "member"
    LEAVING = "leaving"
    LEFT = "left"
    CRASHED = "crashed"


TRANSITIONS: dict[Status, dict[str, Status]] = {
    Status.IDLE: {"start": Status.JOINING, "crash": Status.CRASHED},
    Status.JOINING: {
        "joined": Status.MEMBER,
        "founded": Status.MEMBER,
        "crash": Status.CRASHED,
        "leave": Status.LEFT,
    },
    Status.MEMBER: {
        "rejoin": Status.JOINING,
        "leave": Status.LEAVING,
        "crash": Status.CRASHED,
    },
    Status.LEAVING: {"left": Status.LEFT, "crash": Status.CRASHED},
    Status.LEFT: {"crash": Status.CRASHED},
    Status.CRASHED: {},
}
"""Every status change a node may make; anything else is a bug in this node."""


def next_status(status: Status, event: str) -> Status:
    """The status after `event`.

    Raises:
        LocalProtocolError: `event` is not allowed in `status`.
    """
    try:
        return TRANSITIONS[status][event]
    except KeyError:
        raise LocalProtocolError(f"{event!r} is not allowed while {status.value}") from None


def check_alive(status: Status) -> None:
    """Handlers call this first: a crashed node drops the connection without a word.

    Raises:
        ConnectionResetError: the node crashed (the server then closes without replying).
    """
    if status is Status.CRASHED:
        raise ConnectionResetError("node crashed")


def require_member(status: Status) -> None:
    """Handlers acting on the ring call this first: silent if crashed, refused if no member.

    Raises:
        ConnectionResetError: the node crashed.
        Refused: `not_member`, the node is in no ring.
    """
    check_alive(status)
    if status is not Status.MEMBER:
        raise Refused("not_member", "this node is in no ring")
