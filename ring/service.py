"""The ring's asyncio shell: a node's membership over a shared FrameServer.

`RingService` holds this node's view and status and moves the decisions of
`ring/membership.py` over the wire. It joins as `ring/joining.py` directs, adopts newer views
(UPDATE, or a PONG that carries one), and re-joins when a view leaves it out. It builds its
parts, which see it only as a `RingContext` (`ring/context.py`): `ring/leader.py` (changes made
as members[0]), `ring/heartbeat.py` (PING both ways, reporting the dead), `ring/merging.py`
(HELLO, MERGE). Every request of the ring goes out through `RingService.request` (or `ask`,
which also tells who answered). A view from a peer is acted on only if the member that handed
it over may (`ring/intake.py`); the roster that rides beside it (`ring/roster.py`) gives
this node the names bound to keys and the revoked keys. The server belongs to the caller: this
service routes its messages onto it and never closes it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from ring.errors import Forbidden, PeerUnreachable, RemoteError, RemoteProtocolError, RingError
from ring.heartbeat import Heartbeat
from ring.intake import Intake
from ring.joining import Ask, Done, JoinWalk, Pause
from ring.leader import Leader
from ring.membership import (
    Member,
    Source,
    Verdict,
    View,
    found,
    judge,
    label,
    remove,
    renumbering,
)
from ring.merging import Merger
from ring.messages import Join, JoinOk, Ping, Pong
from ring.roster import Roster, fingerprint
from ring.status import Status, check_alive, next_status, require_member
from ring.wire import FrameServer, Message, Tasks, expect

log = logging.getLogger(__name__)


class RingService:
    """One node's membership: join, lead, watch the next node, heal, merge, leave."""

    def __init__(
        self,
        server: FrameServer,
        me: Member,
        *,
        heartbeat: float = 0.5,
        misses: int = 3,
        clock: Callable[[], float] = time.monotonic,
        roster: Roster | None = None,
    ) -> None:
        """Nothing is sent until `start`.

        Args:
            server: the node's server, on which the ring's messages are routed.
            me: this node; `me.key` is its identity on every connection.
            heartbeat: seconds between pings of the next member.
            misses: failed pings in a row that make a member a suspect.
            clock: monotonic seconds.
            roster: the names bound to keys that this node knows (kept by the caller);
                this node's own name is bound to its key if free.
        """
        self.server = server
        self.me = me
        self.roster = roster if roster is not None else Roster()
        self._claim_name()
        self.roster.listen(self._cut_revoked)
        self.refused: set[tuple[str, int]] = set()
        self.heartbeat = heartbeat
        self.clock = clock
        self.view = View("", 0, (me,))
        self.status = Status.IDLE
        self.probe_timeout = max(0.25, heartbeat)
        self.timeout = max(1.0, 4 * heartbeat)
        self.join_patience = 10 * heartbeat
        self.peers: list[tuple[str, int]] = []
        self.leadership = Leader(self)
        self.merger = Merger(self, push=self.leadership.push)
        self.intake = Intake(self)
        self._heartbeat = Heartbeat(
            self,
            misses,
            interval=heartbeat,
            clock=clock,
            verify=self.leadership.remove_failed,
            contact=self.contact,
        )
        self.rtt: dict[str, float] = self._heartbeat.detector.rtt
        self._listeners: list[Callable[[View], None]] = []
        self._tasks = Tasks(me.name)
        self._rejoin: asyncio.Task[None] | None = None
        self.intake.route(server)
        self._heartbeat.route(server)
        self.leadership.route(server)
        self.merger.route(server)

    def _claim_name(self) -> None:
        """Bind this node's name to its key in its own roster, saying so if the roster had
        it bound to another key (the ring's leader decides at the JOIN; see `ring/roster.py`)."""
        taken = self.roster.conflict(self.me.name, self.me.key)
        if taken is not None:
            log.warning(
                "the name %r is bound to another key (%s) in this node's roster",
                self.me.name,
                fingerprint(taken.key),
            )
        self.roster.bind(self.me.name, self.me.key, time.time_ns())

    # -- public API ---------------------------------------------------------------------------

    @property
    def my_id(self) -> int:
        """This node's ring id (its position in the view)."""
        position = self.view.position(self.me.key)
        assert position is not None, "a node's own view always holds it"
        return position

    @property
    def prev(self) -> Member | None:
        """The member before this one, or None when alone."""
        return self.view.prev_of(self.me.key)

    @property
    def next(self) -> Member | None:
        """The member after this one, or None when alone."""
        return self.view.next_of(self.me.key)

    @property
    def is_leader(self) -> bool:
        """Whether this node is members[0] of a ring it belongs to."""
        return self.status is Status.MEMBER and self.view.leader.key == self.me.key

    def name_of(self, identity: str) -> str | None:
        """The name of the other member whose key a connection proved (`Connection.identity`),
        None if it is no member now (or proved nothing: "")."""
        member = self.view.member(identity) if identity != self.me.key else None
        return None if member is None else member.name

    def add_listener(self, cb: Callable[[View], None]) -> None:
        """Call `cb(view)` after every change of this node's view."""
        self._listeners.append(cb)

    async def start(self, peers: Sequence[tuple[str, int]] = ()) -> None:
        """Join the ring of the first peer that admits us, or found one as node 0.

        Returns once this node is a member (or once `leave()` or `crash()` cut the start
        short); heartbeats and merge probes then run until `leave()` or `crash()`.

        Raises:
            LocalProtocolError: the service was started before.
        """
        self._set_status("start")
        self.peers = [(host, port) for host, port in peers if (host, port) != self.me.address]
        view = await self._join_any(self.peers)
        if self.status is not Status.JOINING:
            return
        if view is None:
            self.install(found(self.me, time.time_ns()))
            self._set_status("founded")
            log.info("%s founded ring %s as node 0", self.me.name, self.view.ring_id)
        else:
            self.receive(view, "join_ok")
            self._set_status("joined")
        self.spawn(self._heartbeat.run(self.peers))

    def contact(self, host: str, port: int) -> None:
        """Probe a node seen on the LAN; if its ring wins the merge, ours re-joins it."""
        self.spawn(self.merger.hello(host, port))

    async def leave(self) -> None:
        """Leave gracefully: the leader drops us (or we hand over if we lead), then stop.

        A node that is (re-)joining just stops; leaving twice, or before start, does nothing.
        """
        if self.status is Status.MEMBER:
            self._set_status("leave")
            try:
                await asyncio.wait_for(self.leadership.depart(), self.timeout)
            except (TimeoutError, RingError) as exc:
                log.warning("%s left without the leader's word: %s", self.me.name, exc)
            self._set_status("left")
        elif self.status is Status.JOINING:
            self._set_status("leave")
        else:
            return
        await self._tasks.stop()
        self.view = View("", 0, (self.me,))

    async def crash(self) -> None:
        """Stop at once, send nothing, answer nothing (as kill -9 would); again does nothing.

        Tests use it to kill a node in-process; a node's shutdown uses it after `leave()`.
        """
        if self.status is Status.CRASHED:
            return
        self.status = next_status(self.status, "crash")
        await self._tasks.stop()

    # -- view changes -------------------------------------------------------------------------

    def install(self, view: View) -> None:
        """Make `view` (which holds this node) current; log renumbering; tell the listeners.

        Only this service and its `Leader` call it; everyone else reads `view`.
        """
        old, self.view = self.view, view
        before, after = renumbering(old, view, self.me.key)
        if before is not None and after is not None and after < before:
            log.info(
                "%s DECREMENT: ring id %d -> %d (view v%d)",
                self.me.name,
                before,
                after,
                view.version,
            )
        self._heartbeat.detector.prune(view)
        for cb in self._listeners:
            try:
                cb(view)
            except Exception:
                log.exception("view listener failed")

    def receive_from(self, view: View, source: Source, sender: str, roster: Any = None) -> None:
        """Act on a view (and the roster beside it) that the member `sender` handed over, if
        that member may (`ring/intake.py`)."""
        self.intake.receive_from(view, source, sender, roster)

    def receive(self, view: View, source: Source) -> None:
        """Act on a trusted view as `judge` decides: install, re-join, merge, or ignore."""
        verdict = judge(self.view, view, self.me.key, self.status, source)
        if verdict is Verdict.INSTALL:
            self.install(view)
        elif verdict is Verdict.REJOIN:
            log.warning("%s was cut out of view v%d: re-joining", self.me.name, view.version)
            self.rejoin([view.leader.address])
        elif verdict is Verdict.MERGE:
            self.merger.merge_into(label(view), view.leader.address)

    # -- joining ------------------------------------------------------------------------------

    async def _join_any(
        self, peers: Sequence[tuple[str, int]], patient: bool = False
    ) -> View | None:
        """JOIN through each peer in turn, as `JoinWalk` directs; None if nobody admits us.

        A peer that is in no ring ends the attempt at start (it is starting too: found a ring,
        and the merge probes unite them); a `patient` re-join retries it, because the ring
        it re-joins exists and that peer is only on its way into it.
        """
        walk = JoinWalk(
            self.me.key, peers, deadline=self.clock() + self.join_patience, patient=patient
        )
        join = Join(self.me.to_wire(), self.roster.wire())
        while True:
            step = walk.next_step(self.clock())
            if isinstance(step, Done):
                return step.view
            if isinstance(step, Pause):
                if self.status is not Status.JOINING:
                    return None
                await asyncio.sleep(self.heartbeat)
                continue
            try:
                reply = await self._join_at(step, join)
            except (PeerUnreachable, RemoteError, RemoteProtocolError) as exc:
                walk.failed(exc)
            else:
                walk.replied(reply)

    async def _join_at(self, step: Ask, join: Join) -> Message:
        """Send JOIN where the walk says; a JOIN_OK must come from the leader of its view, and
        its roster is taken. A refusal of this node's name is told, and remembered.

        Raises:
            PeerUnreachable, RemoteError, RemoteProtocolError: as `request`, and a JOIN_OK
                that a member other than its view's leader sent.
        """
        try:
            reply, sender = await self.ask(step.host, step.port, join, self.timeout)
        except RemoteError as exc:
            if exc.code == "name_taken":
                self.refused.add((step.host, step.port))
                log.error(
                    "%s cannot join the ring at %s:%d: %s",
                    self.me.name,
                    step.host,
                    step.port,
                    exc.reason,
                )
            raise
        if isinstance(reply, JoinOk):
            view = View.from_wire(reply.view)
            if view.leader.key != sender:
                raise Forbidden(f"a JOIN_OK from {fingerprint(sender)}, not its leader")
            self.intake.take_roster(reply.roster, bindings=True)
        return reply

    def rejoin(self, first: list[tuple[str, int]]) -> None:
        """Re-join a ring through `first`, then our old members, then the configured peers."""
        if self._rejoin is not None and not self._rejoin.done():
            return
        self._set_status("rejoin")
        others = [m.address for m in self.view.members if m.key != self.me.key]
        self._rejoin = self.spawn(self._rejoin_via(first + others + self.peers))

    async def _rejoin_via(self, peers: list[tuple[str, int]]) -> None:
        view = await self._join_any(list(dict.fromkeys(peers)), patient=True)
        if self.status is not Status.JOINING:
            return
        if view is None:
            self.install(found(self.me, time.time_ns()))
            log.warning("%s could not re-join; founded ring %s", self.me.name, self.view.ring_id)
        else:
            self.receive(view, "join_ok")
            log.info("%s re-joined as node %d of %s", self.me.name, self.my_id, view.ring_id)
        self._set_status("joined")

    async def ping(self, member: Member, timeout: float) -> Pong | None:
        """One PING; None if `member` itself (its key on the connection) does not answer PONG
        in time."""
        msg = Ping(self.me.key, self.view.ring_id, self.view.version)
        try:
            reply, sender = await self.ask(member.host, member.port, msg, timeout)
            if sender != member.key:
                raise Forbidden(f"{fingerprint(sender)} answers at {member.name}'s address")
            return expect(reply, Pong)
        except RingError as exc:
            log.debug("%s: no pong from %s: %s", self.me.name, member.name, exc)
            return None

    async def listening(self, member: Member, timeout: float) -> bool:
        """Whether `member`'s process still listens (`Door.knock`)."""
        return await self.server.door.knock(member.host, member.port, timeout)

    async def request(self, host: str, port: int, msg: Message, timeout: float) -> Message:
        """Send one request and return its reply: every request of the ring goes out here, on
        a connection kept for the next one (ring replies are single frames), so heartbeats
        cost no handshake and measure the round trip alone.

        Raises:
            PeerUnreachable: no connection, or no reply in `timeout` seconds.
            RemoteError: the peer answered ERROR.
            RemoteProtocolError: the peer answered with a malformed frame.
        """
        return (await self.ask(host, port, msg, timeout))[0]

    async def ask(self, host: str, port: int, msg: Message, timeout: float) -> tuple[Message, str]:
        """`request`, and the identity of the member that answered.

        Raises:
            As `request`.
        """
        return await self.server.door.ask(host, port, msg, timeout, reuse=True)

    # -- handlers -----------------------------------------------------------------------------

    def check_alive(self) -> None:
        """Handlers call this first: a crashed node drops the connection without a word."""
        check_alive(self.status)

    def require_member(self) -> None:
        """Handlers acting on the ring call this first: silent if crashed, refused if no member."""
        require_member(self.status)

    def _cut_revoked(self) -> None:
        """The roster changed: as leader, cut out the members whose key it revokes."""
        gone = [m for m in self.view.members if self.roster.is_revoked(m.key)]
        if gone and self.is_leader and self.me not in gone:
            log.warning("%s cuts out forgotten %s", self.me.name, ", ".join(m.name for m in gone))
            keys = {m.key for m in gone}
            self.leadership.change(remove(self.view, keys), exclude=keys)

    # -- plumbing -----------------------------------------------------------------------------

    def _set_status(self, event: str) -> None:
        self.status = next_status(self.status, event)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run `coro` as a task this service owns (cancelled by leave and crash)."""
        return self._tasks.spawn(coro)
