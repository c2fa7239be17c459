"""Merging rings: two rings that meet become one, the younger re-joining the older.

`contact(host, port)` sends HELLO with our ring's id, leader and size; the reply says the same
of theirs. Both sides compare ring labels (`wins_merge`), so whichever side learns that its ring
lost starts the merge: its leader sends MERGE to every member and re-joins the winner; a member
that learns first asks its leader to do so (or re-joins alone if the leader is gone). Each
re-join is an ordinary JOIN that the winning leader admits, one at a time.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ring.errors import Refused, RingError
from ring.membership import Label, label, wins_merge
from ring.messages import Hello, HelloOk, Merge
from ring.server import Connection, FrameServer
from ring.status import Status
from ring.wire import Message, Ok, expect, request

if TYPE_CHECKING:
    from ring.service import RingService

log = logging.getLogger(__name__)


class Merger:
    """HELLO and MERGE for one service."""

    def __init__(self, service: RingService) -> None:
        self.svc = service

    def route(self, server: FrameServer) -> None:
        """Serve HELLO and MERGE on `server`."""
        server.route(Hello, self._on_hello)
        server.route(Merge, self._on_merge)

    async def hello(self, host: str, port: int) -> None:
        """Probe host:port; merge into its ring if that ring wins."""
        svc = self.svc
        if svc.status is not Status.MEMBER or (host, port) in {m.address for m in svc.view.members}:
            return
        leader = svc.view.leader
        size = len(svc.view.members)
        msg = Hello(svc.me.key, svc.view.ring_id, leader.key, leader.host, leader.port, size)
        try:
            reply = expect(await request(host, port, msg, svc.timeout), HelloOk)
        except RingError as exc:
            log.debug("%s: no hello from %s:%d: %s", svc.me.name, host, port, exc)
            return
        theirs = (reply.ring_id, reply.leader)
        if svc.status is Status.MEMBER and wins_merge(theirs, label(svc.view)):
            self.merge_into(theirs, (reply.host, reply.port))

    def merge_into(self, winner: Label, address: tuple[str, int], told: bool = False) -> None:
        """Our ring lost to `winner`: the leader sends everyone MERGE and re-joins; a member
        that was `told` (by MERGE) re-joins, one that found out itself asks the leader."""
        svc = self.svc
        if svc.status is not Status.MEMBER:
            return
        log.info("%s: ring %s merges into %s", svc.me.name, label(svc.view), winner)
        msg = Merge(winner[0], winner[1], address[0], address[1])
        if svc.is_leader:
            others = [m for m in svc.view.members if m.key != svc.me.key]
            svc.spawn(svc.leadership.push(others, msg))
            svc.rejoin([address])
        elif told:
            svc.rejoin([address])
        else:
            svc.spawn(self._ask_leader(msg))

    async def _ask_leader(self, msg: Merge) -> None:
        svc = self.svc
        leader = svc.view.leader
        try:
            await request(leader.host, leader.port, msg, svc.timeout)
        except RingError as exc:
            log.info("%s: leader did not take MERGE (%s); re-joining alone", svc.me.name, exc)
            if svc.status is Status.MEMBER:
                svc.rejoin([(msg.host, msg.port)])

    async def _on_hello(self, msg: Message, conn: Connection) -> Message:
        svc = self.svc
        svc.require_member()
        assert isinstance(msg, Hello)
        theirs = (msg.ring_id, msg.leader)
        if msg.key not in svc.view.keys and wins_merge(theirs, label(svc.view)):
            self.merge_into(theirs, (msg.host, msg.port))
        leader = svc.view.leader
        return HelloOk(
            svc.view.ring_id, leader.key, leader.host, leader.port, len(svc.view.members)
        )

    async def _on_merge(self, msg: Message, conn: Connection) -> Message:
        svc = self.svc
        svc.require_member()
        assert isinstance(msg, Merge)
        theirs = (msg.ring_id, msg.leader)
        if not wins_merge(theirs, label(svc.view)):
            raise Refused("no_merge", f"ring {theirs} does not win over {label(svc.view)}")
        self.merge_into(theirs, (msg.host, msg.port), told=True)
        return Ok()
