"""Merging rings: two rings that meet become one, the younger re-joining the older.

`contact(host, port)` sends HELLO with our ring's id, leader and size; the reply says the same
of theirs. Both sides compare ring labels (`wins_merge`), so whichever side learns that its ring
lost starts the merge: its leader sends MERGE to every member and re-joins the winner; a member
that learns first asks its leader to do so (or re-joins alone if the leader is gone). Each
re-join is an ordinary JOIN that the winning leader admits, one at a time.

Any member of the network may propose a merge (two rings of one network belong together), but a
HELLO must name its sender's own key, and a MERGE ("your ring lost") is taken only from this
node's leader, or, by the leader, from a member of its ring. A node never merges into a ring
whose leader refused its name: it would be refused again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from ring.context import RingContext
from ring.errors import Forbidden, Refused, RingError
from ring.membership import Label, Member, label, wins_merge
from ring.messages import Hello, HelloOk, Merge
from ring.status import Status, require_member
from ring.wire import Connection, FrameServer, Message, Ok, expect

log = logging.getLogger(__name__)


class Merger:
    """HELLO and MERGE for one node.

    Args:
        ring: the node whose ring may merge.
        push: sends a message to each of some members at once (`Leader.push`).
    """

    def __init__(
        self, ring: RingContext, push: Callable[[list[Member], Message], Coroutine[Any, Any, None]]
    ) -> None:
        self.ring = ring
        self.push = push

    def route(self, server: FrameServer) -> None:
        """Serve HELLO and MERGE on `server`."""
        server.route(Hello, self._on_hello)
        server.route(Merge, self._on_merge)

    async def hello(self, host: str, port: int) -> None:
        """Probe host:port; merge into its ring if that ring wins."""
        ring = self.ring
        in_view = (host, port) in {m.address for m in ring.view.members}
        if ring.status is not Status.MEMBER or in_view:
            return
        leader = ring.view.leader
        size = len(ring.view.members)
        msg = Hello(ring.me.key, ring.view.ring_id, leader.key, leader.host, leader.port, size)
        try:
            reply = expect(await ring.request(host, port, msg, ring.timeout), HelloOk)
        except RingError as exc:
            log.debug("%s: no hello from %s:%d: %s", ring.me.name, host, port, exc)
            return
        theirs = (reply.ring_id, reply.leader)
        if ring.status is Status.MEMBER and wins_merge(theirs, label(ring.view)):
            self.merge_into(theirs, (reply.host, reply.port))

    def merge_into(self, winner: Label, address: tuple[str, int], told: bool = False) -> None:
        """Our ring lost to `winner`: the leader sends everyone MERGE and re-joins; a member
        that was `told` (by MERGE) re-joins, one that found out itself asks the leader."""
        ring = self.ring
        if ring.status is not Status.MEMBER or address in ring.refused:
            return
        log.info("%s: ring %s merges into %s", ring.me.name, label(ring.view), winner)
        msg = Merge(winner[0], winner[1], address[0], address[1])
        if ring.view.leader.key == ring.me.key:
            others = [m for m in ring.view.members if m.key != ring.me.key]
            ring.spawn(self.push(others, msg))
            ring.rejoin([address])
        elif told:
            ring.rejoin([address])
        else:
            ring.spawn(self._ask_leader(msg))

    async def _ask_leader(self, msg: Merge) -> None:
        ring = self.ring
        leader = ring.view.leader
        try:
            await ring.request(leader.host, leader.port, msg, ring.timeout)
        except RingError as exc:
            log.info("%s: leader did not take MERGE (%s); re-joining alone", ring.me.name, exc)
            if ring.status is Status.MEMBER:
                ring.rejoin([(msg.host, msg.port)])

    async def _on_hello(self, msg: Message, conn: Connection) -> Message:
        ring = self.ring
        require_member(ring.status)
        assert isinstance(msg, Hello)
        if msg.key != conn.identity:
            raise Forbidden("a HELLO must name its sender's own key")
        theirs = (msg.ring_id, msg.leader)
        if msg.key not in ring.view.keys and wins_merge(theirs, label(ring.view)):
            self.merge_into(theirs, (msg.host, msg.port))
        leader = ring.view.leader
        return HelloOk(
            ring.view.ring_id, leader.key, leader.host, leader.port, len(ring.view.members)
        )

    async def _on_merge(self, msg: Message, conn: Connection) -> Message:
        ring = self.ring
        require_member(ring.status)
        assert isinstance(msg, Merge)
        theirs = (msg.ring_id, msg.leader)
        if not wins_merge(theirs, label(ring.view)):
            raise Refused("no_merge", f"ring {theirs} does not win over {label(ring.view)}")
        leader = ring.view.leader.key
        told_by = {leader} if leader != ring.me.key else ring.view.keys - {leader}
        if conn.identity not in told_by:
            raise Forbidden("a MERGE comes from the ring's leader, or to it from a member")
        self.merge_into(theirs, (msg.host, msg.port), told=True)
        return Ok()
