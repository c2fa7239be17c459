"""Merging rings: two rings that meet become one, the younger re-joining the older.

`contact(host, port)` sends HELLO with our ring's id, leader and size; the reply says the same
of theirs. Both sides compare ring ids (`wins_merge`), so whichever side learns that its ring
lost starts the merge: its leader sends MERGE to every member and re-joins the winner; a member
that learns first asks its leader to do so (or re-joins alone if the leader is gone). Each
re-join is an ordinary JOIN that the winning leader admits, one at a time.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ring.errors import Refused, RingError
from ring.membership import Status, wins_merge
from ring.messages import Hello, HelloOk, Merge
from ring.server import Connection, FrameServer
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
        msg = Hello(svc.me.key, svc.view.ring_id, leader.host, leader.port, len(svc.view.members))
        try:
            reply = expect(await request(host, port, msg, svc.timeout), HelloOk)
        except RingError as exc:
            log.debug("%s: no hello from %s:%d: %s", svc.me.name, host, port, exc)
            return
        if svc.status is Status.MEMBER and wins_merge(reply.ring_id, svc.view.ring_id):
            self.merge_into(reply.ring_id, (reply.host, reply.port))

    def merge_into(self, ring_id: str, address: tuple[str, int]) -> None:
        """Our ring lost to `ring_id`: the leader sends everyone MERGE; members ask the leader."""
        svc = self.svc
        if svc.status is not Status.MEMBER:
            return
        log.info("%s: ring %s merges into %s", svc.me.name, svc.view.ring_id, ring_id)
        msg = Merge(ring_id, address[0], address[1])
        if svc.is_leader:
            others = [m for m in svc.view.members if m.key != svc.me.key]
            svc.spawn(svc.leadership.push(others, msg))
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
        svc.check_alive()
        assert isinstance(msg, Hello)
        if svc.status is not Status.MEMBER:
            raise Refused("not_member", "this node is in no ring")
        if msg.ring_id != svc.view.ring_id and wins_merge(msg.ring_id, svc.view.ring_id):
            self.merge_into(msg.ring_id, (msg.host, msg.port))
        leader = svc.view.leader
        return HelloOk(svc.view.ring_id, leader.host, leader.port, len(svc.view.members))

    async def _on_merge(self, msg: Message, conn: Connection) -> Message:
        svc = self.svc
        svc.check_alive()
        assert isinstance(msg, Merge)
        if svc.status is not Status.MEMBER:
            raise Refused("not_member", "this node is in no ring")
        if not wins_merge(msg.ring_id, svc.view.ring_id):
            raise Refused("no_merge", f"ring {msg.ring_id} does not win over {svc.view.ring_id}")
        self.merge_into(msg.ring_id, (msg.host, msg.port))
        return Ok()
