"""Routing a failure report without sockets: whom to tell that members died, and when to stop.

Theory of operation. A node that suspects members reports them in a FAIL to the acting leader,
the lowest member not known dead (Rule 3 of `ring/membership.py`). If that leader does not
answer, it is dead too: it joins the dead and the report goes to the next lowest. If the
reporter itself is then the acting leader, it verifies and cuts out the dead itself. A REDIRECT
names a lower member that the leader found alive: if we had it among the dead, it is not, and
the report goes there next. A VIEW ends the report: the caller adopts it and stops suspecting
its members. Anything else ends the report too. One report takes at most one step per member,
plus one.

`FailReport` does no I/O: the caller asks `next_step(view)` with its current view, does what it
says, and feeds back the reply (`replied`) or the failure (`failed`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from ring.errors import LocalProtocolError, PeerUnreachable, RemoteProtocolError, RingError
from ring.membership import Member, View, acting_leader
from ring.messages import Redirect, ViewReply
from ring.wire import Message

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Report:
    """Send FAIL naming `dead` to `leader` and feed back what comes of it."""

    leader: Member
    dead: tuple[str, ...]


@dataclass(frozen=True)
class Verify:
    """This node is the acting leader: verify `dead` and cut them out here, then feed back the
    reply it would have sent (VIEW, or REDIRECT to a lower member found alive)."""

    dead: frozenset[str]


@dataclass(frozen=True)
class Done:
    """The report is over: adopt `view` (its members are alive), or do nothing if None."""

    view: View | None


Step = Report | Verify | Done


class FailReport:
    """One report by `me` of the `suspects` that are members of `view`, as data in and out."""

    def __init__(self, me: Member, view: View, suspects: Iterable[str]) -> None:
        self.me = me
        self.dead = set(suspects) & view.keys
        self._steps_left = len(view.members) + 1
        self._pending: Report | Verify | None = None
        self._result: Done | None = None

    def next_step(self, view: View) -> Step:
        """What to do now, given this node's current `view`: report, verify here, or stop."""
        if self._result is not None:
            return self._result
        if self._pending is not None:
            return self._pending
        leader = acting_leader(view, self.dead)
        if self._steps_left == 0 or leader is None or not self.dead:
            return self._finish(None)
        self._steps_left -= 1
        if leader.key == self.me.key:
            self._pending = Verify(frozenset(self.dead))
        else:
            self._pending = Report(leader, tuple(sorted(self.dead)))
        return self._pending

    def replied(self, reply: Message) -> None:
        """The report got `reply` (from the leader asked, or from verifying here)."""
        self._take_pending()
        if isinstance(reply, Redirect) and reply.key in self.dead:
            self.dead.discard(reply.key)
            return
        if not isinstance(reply, ViewReply):
            self._finish(None)
            return
        try:
            self._finish(View.from_wire(reply.view))
        except RemoteProtocolError as exc:
            log.warning("%s: bad view in reply to FAIL: %s", self.me.name, exc)
            self._finish(None)

    def failed(self, exc: RingError) -> None:
        """The FAIL did not get a reply: an unreachable leader is dead too; a refusal ends it."""
        pending = self._take_pending()
        if isinstance(exc, PeerUnreachable) and isinstance(pending, Report):
            self.dead.add(pending.leader.key)
            return
        log.warning("%s: FAIL report refused: %s", self.me.name, exc)
        self._finish(None)

    def _take_pending(self) -> Report | Verify:
        pending, self._pending = self._pending, None
        if pending is None:
            raise LocalProtocolError("no FAIL report is outstanding")
        return pending

    def _finish(self, view: View | None) -> Done:
        self._result = Done(view)
        return self._result
