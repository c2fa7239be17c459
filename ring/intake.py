"""Views and rosters that members hand over: whether to believe them, then acting on them.

A view comes in an UPDATE, a PONG, or the VIEW that answers a FAIL; `ring/authority.py` says
whether the member that handed it over may (`vouch`). A view from the leader goes to the node's
`receive`; news from any other member is checked with the leader first (`_consult`), one check
at a time; an UPDATE from a member that leads neither view is refused (`forbidden`). The roster
beside a view (`ring/roster.py`) gives its revocations whoever sent it (any member may forget
another), and its bindings only with a view this node takes.
"""

from __future__ import annotations

import logging
from typing import Any

from ring.authority import Vouch, may_update, takeover, vouch
from ring.context import RingContext
from ring.errors import Forbidden, RemoteProtocolError
from ring.membership import Source, Verdict, View, judge
from ring.messages import Update
from ring.roster import Roster, fingerprint
from ring.status import check_alive
from ring.wire import Connection, FrameServer, Message, Ok

log = logging.getLogger(__name__)


class Intake:
    """What one node makes of the views and rosters other members send it."""

    def __init__(self, ring: RingContext) -> None:
        self.ring = ring
        self._consulting = False

    def route(self, server: FrameServer) -> None:
        """Serve UPDATE on `server`."""
        server.route(Update, self._on_update)

    def receive_from(self, view: View, source: Source, sender: str, roster: Any = None) -> None:
        """Act on a view that the member `sender` handed over, as `vouch` says: take it, check
        it with the leader first, or ignore it. The roster beside it gives its revocations, and
        its bindings if the view is taken."""
        ring = self.ring
        verdict = judge(ring.view, view, ring.me.key, ring.status, source)
        trust = vouch(ring.view, view, sender)
        taken = trust is Vouch.ACCEPT and verdict in (Verdict.INSTALL, Verdict.REJOIN)
        self.take_roster(roster, bindings=taken)
        if verdict is Verdict.IGNORE:
            return
        if verdict is Verdict.MERGE or trust is Vouch.ACCEPT:
            ring.receive(view, source)
        elif trust is Vouch.CONSULT and not self._consulting:
            self._consulting = True
            ring.spawn(self._consult(view, source, sender, roster))
        elif trust is Vouch.REFUSE:
            log.warning(
                "%s ignores view v%d of %s from %s: not its leader",
                ring.me.name,
                view.version,
                view.ring_id[:32],
                fingerprint(sender),
            )

    async def _consult(self, view: View, source: Source, sender: str, roster: Any) -> None:
        """News of our ring from a member that does not lead it: ask the leader (its PONG
        carries its newer view, if any). Only a silent leader lets a takeover through; a
        leader asks another member of the takeover view instead (`ring/authority.py`)."""
        ring = self.ring
        try:
            leader = ring.view.leader
            if leader.key != ring.me.key:
                pong = await ring.ping(leader, ring.probe_timeout)
                if pong is not None and pong.view is not None:
                    self.receive_from(View.from_wire(pong.view), "pong", leader.key, pong.roster)
                    return
                confirmed = pong is None
            else:
                confirmed = takeover(ring.view, view, sender) and await self._witnessed(
                    view, sender
                )
            if confirmed and takeover(ring.view, view, sender):
                self.take_roster(roster, bindings=True)
                ring.receive(view, source)
            else:
                log.info(
                    "%s: view v%d from %s not taken",
                    ring.me.name,
                    view.version,
                    fingerprint(sender),
                )
        except RemoteProtocolError as exc:
            log.warning("%s: a bad view from the leader: %s", ring.me.name, exc)
        finally:
            self._consulting = False

    async def _witnessed(self, view: View, sender: str) -> bool:
        """Whether another member of `view` (than this leader and `sender`) holds it too: its
        PONG to our stale ping carries its view. True when there is no other member."""
        ring = self.ring
        others = [m for m in view.members if m.key not in (ring.me.key, sender)]
        if not others:
            return True
        pong = await ring.ping(others[0], ring.probe_timeout)
        if pong is None or pong.view is None:
            return False
        seen = View.from_wire(pong.view)
        return (seen.ring_id, seen.leader.key) == (view.ring_id, sender) and seen.version >= (
            view.version
        )

    def take_roster(self, body: Any, *, bindings: bool) -> None:
        """Merge a roster a member sent: its revocations always (any member may forget
        another), its bindings only from a member this node believes about the ring."""
        if body is None:
            return
        try:
            other = Roster.from_wire(body)
        except RemoteProtocolError as exc:
            log.warning("%s: a bad roster: %s", self.ring.me.name, exc)
            return
        if not bindings:
            other = Roster(revoked=other.revoked)
        for kept, refused in self.ring.roster.merge(other):
            log.warning(
                "the ring binds the name %r to key %s; this node keeps key %s for it"
                " ('forget %s' here to give it up)",
                kept.name,
                fingerprint(refused.key),
                fingerprint(kept.key),
                kept.name,
            )

    async def _on_update(self, msg: Message, conn: Connection) -> Message:
        ring = self.ring
        check_alive(ring.status)
        assert isinstance(msg, Update)
        view = View.from_wire(msg.view)
        if not may_update(ring.view, view, conn.identity):
            raise Forbidden("an UPDATE comes only from the ring's leader")
        self.receive_from(view, "update", conn.identity, msg.roster)
        return Ok()
