"""The acting leader's side of the ring: admit, remove the departed and the dead, hand over.

Every change of a view happens here, under one lock, so concurrent JOINs, LEAVEs and FAIL
reports are applied one at a time, each with the next version (Rule 2 of
`ring/membership.py`). The new view goes back in the reply and is pushed to every other member
with UPDATE in the background; a lost UPDATE is repaired by the heartbeat, whose PONG carries
newer views. A node that is not members[0] answers JOIN and LEAVE with REDIRECT.

Every request is checked against the member that sent it (`conn.identity`): a JOIN names the
joiner's own key and a name that is free or already its own (the roster binds it then), a
LEAVE is only for the sender itself, a FAIL comes from a member of the ring about others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from ring.context import RingContext
from ring.errors import BadRequest, Forbidden, PeerUnreachable, Refused, RingError
from ring.joining import MAX_REDIRECTS
from ring.membership import Member, View, acting_leader, admit, remove
from ring.messages import Fail, Join, JoinOk, Leave, Redirect, Update, ViewReply
from ring.roster import Roster, fingerprint
from ring.status import Status, check_alive, require_member
from ring.wire import Connection, FrameServer, Message

log = logging.getLogger(__name__)

VERIFY_PATIENCE = 3
"""Probe timeouts a reported member is given to answer before it is cut out: a loaded member
answers late, a dead one not at all. With `KNOCK_PATIENCE` it stays below the four probe
timeouts a reporter waits for the FAIL's reply (`ring/heartbeat.py`)."""
KNOCK_PATIENCE = 0.5
"""Probe timeouts a silent member's port is given to complete a TCP handshake (`Door.knock`):
a kernel answers one at once while the process behind it is too busy to."""
BUSY_PATIENCE = 240
"""Probe timeouts (2 minutes at the default heartbeat) a member may stay silent but listening
before it counts as dead all the same: a process stopped or stuck for good must not hold its
place in the ring for ever. Cutting out a live node costs more than waiting on it (it re-joins
and catches up); 8 processes taking in 10,000 files on 2 cores left one silent for 40 s."""


def redirect_to(member: Member) -> Redirect:
    """The REDIRECT that points at `member`."""
    return Redirect(member.key, member.host, member.port)


class Leader:
    """Membership changes made by (or on the way to) the leader of a service's ring."""

    def __init__(self, ring: RingContext) -> None:
        self.ring = ring
        self._lock = asyncio.Lock()
        self._busy: dict[str, float] = {}
        """Key -> loop time since when a reported member has been silent but listening."""

    def route(self, server: FrameServer) -> None:
        """Serve JOIN, LEAVE and FAIL on `server`."""
        server.route(Join, self._on_join)
        server.route(Leave, self._on_leave)
        server.route(Fail, self._on_fail)

    def _check_leading(self) -> Redirect | None:
        """Refuse unless a member; a REDIRECT to the leader unless this node is it."""
        ring = self.ring
        check_alive(ring.status)
        if ring.status is Status.LEAVING:
            raise Refused("leaving", "this node is leaving the ring")
        require_member(ring.status)
        if ring.view.leader.key != ring.me.key:
            return redirect_to(ring.view.leader)
        return None

    async def _on_join(self, msg: Message, conn: Connection) -> Message:
        assert isinstance(msg, Join)
        newcomer = Member.from_wire(msg.member)
        if newcomer.key == self.ring.me.key:
            raise BadRequest("the joiner has this node's key")
        redirect = self._check_leading()
        if redirect is not None:
            return redirect
        if newcomer.key != conn.identity:
            raise Forbidden("a JOIN must name the joiner's own key")
        if msg.roster is not None:
            self.ring.roster.merge(Roster(revoked=Roster.from_wire(msg.roster).revoked))
        async with self._lock:
            redirect = self._check_leading()
            if redirect is not None:
                return redirect
            self._bind(newcomer)
            view = admit(self.ring.view, newcomer)
            if view is not self.ring.view:
                log.info(
                    "%s admits %s as node %d",
                    self.ring.me.name,
                    newcomer.name,
                    len(view.members) - 1,
                )
                self.change(view, exclude={newcomer.key})
            return JoinOk(self.ring.view.to_wire(), self.ring.roster.wire())

    def _bind(self, newcomer: Member) -> None:
        """Bind the newcomer's name to its key (Rule 1 of `ring/roster.py`).

        Raises:
            Forbidden: the newcomer's key was revoked.
            Refused: `name_taken`, the name belongs to another key (also logged here).
        """
        roster = self.ring.roster
        if roster.is_revoked(newcomer.key):
            raise Forbidden("this key was revoked (forgotten)")
        taken = roster.conflict(newcomer.name, newcomer.key)
        if taken is not None:
            log.warning(
                "%s refused %s (key %s): the name %r belongs to key %s",
                self.ring.me.name,
                newcomer.name,
                fingerprint(newcomer.key),
                newcomer.name,
                fingerprint(taken.key),
            )
            raise Refused(
                "name_taken",
                f"the name {newcomer.name!r} belongs to another host (key"
                f" {fingerprint(taken.key)}); start this host with --name and another name",
            )
        roster.bind(newcomer.name, newcomer.key, time.time_ns())

    async def _on_leave(self, msg: Message, conn: Connection) -> Message:
        assert isinstance(msg, Leave)
        if msg.key == self.ring.me.key:
            raise BadRequest("a LEAVE names this node itself")
        redirect = self._check_leading()
        if redirect is not None:
            return redirect
        if msg.key != conn.identity:
            raise Forbidden("a LEAVE is only for the sender itself")
        async with self._lock:
            redirect = self._check_leading()
            if redirect is not None:
                return redirect
            leaver = self.ring.view.member(msg.key)
            view = remove(self.ring.view, [msg.key])
            if leaver is not None:
                log.info("%s: %s left the ring", self.ring.me.name, leaver.name)
                self.change(view, exclude={msg.key})
            return ViewReply(self.ring.view.to_wire())

    async def _on_fail(self, msg: Message, conn: Connection) -> Message:
        assert isinstance(msg, Fail)
        require_member(self.ring.status)
        if msg.key != conn.identity or conn.identity not in self.ring.view.keys:
            raise Forbidden("a FAIL comes from a member of this ring, under its own key")
        too_many = len(msg.dead) > len(self.ring.view.members)
        if too_many or not all(isinstance(k, str) for k in msg.dead):
            raise BadRequest("FAIL.dead must be a short list of keys")
        return await self.remove_failed(set(msg.dead))

    async def remove_failed(self, dead: set[str]) -> Message:
        """Verify the reported dead by pinging them; if this node then leads, cut them out.

        Returns:
            VIEW with the resulting view, or REDIRECT to a lower member found alive.
        """
        ring = self.ring
        async with self._lock:
            self._busy = {k: t for k, t in self._busy.items() if k in ring.view.keys}
            suspects = [m for m in ring.view.members if m.key in dead and m.key != ring.me.key]
            alive = await asyncio.gather(*(self._answers(m) for m in suspects))
            view = ring.view
            confirmed = {m.key for m, ok in zip(suspects, alive, strict=True) if not ok}
            leader = acting_leader(view, confirmed)
            if leader is None or leader.key != ring.me.key:
                return redirect_to(leader or ring.me)
            new = remove(view, confirmed)
            if new is not view:
                names = ", ".join(m.name for m in view.members if m.key in confirmed)
                log.warning("%s cuts out dead %s (view v%d)", ring.me.name, names, new.version)
                self.change(new, exclude=set())
            return ViewReply(ring.view.to_wire())

    async def _answers(self, member: Member, tries: int = 2) -> bool:
        """Whether `member` is alive: it answers a PING as itself, in this ring, within the
        patience, or it is busy.

        Busy is not dead. The patience is `VERIFY_PATIENCE` probe timeouts, so a PONG that
        comes after the heartbeat gave up on it still counts. A second try follows a failure
        that came before the patience ran out (a refused or reset connection: one lost packet
        on a lossy cable must not cut out a live node). A member silent for the whole patience
        whose port still completes a TCP handshake (`listening`) is busy, its event loop held
        or its host short of CPU, and is kept for up to `BUSY_PATIENCE` probe timeouts in a
        row. A dead process's port refuses, and a dead host's stays silent: both fail at once,
        so healing after kill -9 is no slower. Answering as someone else, or from another
        ring, is not alive either: those fail before the patience runs out, and are not knocked.
        """
        ring = self.ring
        loop = asyncio.get_running_loop()
        deadline = loop.time() + VERIFY_PATIENCE * ring.probe_timeout
        for _ in range(tries):
            left = deadline - loop.time()
            if left <= 0:
                break
            pong = await ring.ping(member, left)
            if pong is not None and (pong.key, pong.ring_id) == (member.key, ring.view.ring_id):
                self._busy.pop(member.key, None)
                return True
        silent = loop.time() >= deadline  # else every try failed before its time: not silence
        if not silent or not await ring.listening(member, KNOCK_PATIENCE * ring.probe_timeout):
            return False
        since = self._busy.setdefault(member.key, loop.time())
        busy_for = loop.time() - since
        if busy_for > BUSY_PATIENCE * ring.probe_timeout:
            log.warning(
                "%s: %s has not answered for %.0f s: counts as dead",
                ring.me.name,
                member.name,
                busy_for,
            )
            return False
        log.info("%s: %s answers late but still listens: busy, kept", ring.me.name, member.name)
        return True

    async def depart(self) -> None:
        """This node leaves: as leader, push the view without it (members[1] takes over);
        otherwise ask the leader, following REDIRECTs, to drop it."""
        ring = self.ring
        if ring.view.leader.key == ring.me.key:
            async with self._lock:
                if len(ring.view.members) > 1:
                    new = remove(ring.view, [ring.me.key])
                    log.info("%s hands the ring over to %s", ring.me.name, new.leader.name)
                    await self.push(new.members, Update(new.to_wire(), ring.roster.wire()))
            return
        target = ring.view.leader
        host, port = target.host, target.port
        for _ in range(MAX_REDIRECTS):
            reply = await ring.request(host, port, Leave(ring.me.key), ring.timeout)
            if not isinstance(reply, Redirect):
                return
            host, port = reply.host, reply.port
        raise PeerUnreachable("LEAVE redirected too many times")

    def change(self, view: View, exclude: set[str]) -> None:
        """Make `view` current here and push it to every other member not in `exclude`."""
        ring = self.ring
        ring.install(view)
        targets = [m for m in view.members if m.key != ring.me.key and m.key not in exclude]
        ring.spawn(self.push(targets, Update(view.to_wire(), ring.roster.wire())))

    async def push(self, members: Iterable[Member], msg: Message) -> None:
        """Send `msg` to each member concurrently; the unreachable are left to the heartbeat."""
        members = list(members)
        results = await asyncio.gather(
            *(self.ring.request(m.host, m.port, msg, self.ring.timeout) for m in members),
            return_exceptions=True,
        )
        for member, result in zip(members, results, strict=True):
            if isinstance(result, RingError):
                log.debug(
                    "%s: %s to %s failed: %s", self.ring.me.name, msg.TYPE, member.name, result
                )
            elif isinstance(result, BaseException):
                raise result
