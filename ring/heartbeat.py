"""The heartbeat: ping the next member, find the dead through the successor list, report them.

Every `heartbeat` seconds (start to start) a node pings the first member after it that it does
not suspect (`ring/failure.py` decides whom, and when a silence makes a suspect). A PONG may
carry a view: a newer one of our ring is adopted (this repairs lost UPDATEs), one of a ring
that wins a merge starts the merge. Suspects go to the acting leader in a FAIL; if that
leader does not answer, it joins the suspects and the report goes to the next lowest member
(`ring/reporting.py` routes the report; this module only carries it). Each beat also times one
other member in turn (a miss there counts for nothing), so `rtt` covers the whole ring; every
few beats the node probes the configured peers not in its view. The other side is here too:
PING is answered with PONG, carrying our view when the pinger's is stale or leaves it out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from ring.context import RingContext
from ring.errors import Refused, RemoteProtocolError, RingError
from ring.failure import FailureDetector
from ring.membership import Member, View
from ring.messages import Fail, Ping, Pong
from ring.reporting import Done, FailReport, Verify
from ring.status import Status, check_alive
from ring.wire import Connection, FrameServer, Message

log = logging.getLogger(__name__)

CONTACT_EVERY = 4
"""Beats between merge probes of the configured peers that are not in the view."""


class Heartbeat:
    """Failure detection and reporting for one node.

    Args:
        ring: the node it watches for.
        misses: failed pings in a row that make the next member a suspect.
        interval: seconds from the start of one beat to the start of the next.
        clock: monotonic seconds, for beats and round-trip times.
        verify: checks reported dead and cuts them out when this node is the acting leader
            (`Leader.remove_failed`).
        contact: probes a peer for a merge (`RingService.contact`).
    """

    def __init__(
        self,
        ring: RingContext,
        misses: int,
        *,
        interval: float,
        clock: Callable[[], float],
        verify: Callable[[set[str]], Awaitable[Message]],
        contact: Callable[[str, int], None],
    ) -> None:
        self.ring = ring
        self.interval = interval
        self.clock = clock
        self.verify = verify
        self.contact = contact
        self.detector = FailureDetector(ring.me.key, misses)
        self._report: asyncio.Task[None] | None = None
        self._turn = 0

    def route(self, server: FrameServer) -> None:
        """Answer PING on `server`."""
        server.route(Ping, self._on_ping)

    async def run(self, peers: Sequence[tuple[str, int]]) -> None:
        """Beat until the node leaves or crashes; probe the `peers` not in the view now and then."""
        ring = self.ring
        tick = 0
        while ring.status not in (Status.LEFT, Status.CRASHED):
            began = self.clock()
            if ring.status is Status.MEMBER:
                if tick % CONTACT_EVERY == 0:
                    addresses = {m.address for m in ring.view.members}
                    for host, port in peers:
                        if (host, port) not in addresses:
                            self.contact(host, port)
                await self.beat()
            tick += 1
            await asyncio.sleep(max(0.0, self.interval - (self.clock() - began)))

    async def beat(self) -> None:
        """Ping the next member not suspected; on its last allowed miss, check the successors."""
        ring, detector = self.ring, self.detector
        extra = detector.measure_target(ring.view, self._turn)
        self._turn += 1
        if extra is not None:
            ring.spawn(self.watch(extra))
        target = detector.target(ring.view)
        if target is not None and not await self.watch(target) and detector.on_miss(target.key):
            rest = detector.to_probe(ring.view, target.key)
            alive = await asyncio.gather(*(self.watch(m) for m in rest))
            for member, ok in zip(rest, alive, strict=True):
                if not ok:
                    detector.suspects.add(member.key)
        if detector.suspects & ring.view.keys and (self._report is None or self._report.done()):
            self._report = ring.spawn(self.report_dead())

    async def watch(self, member: Member) -> bool:
        """Ping `member`, record the outcome, and act on a view its PONG carries."""
        ring = self.ring
        started = self.clock()
        pong = await ring.ping(member, ring.probe_timeout)
        if pong is None:
            return False
        if pong.view is not None:
            try:
                view = View.from_wire(pong.view)
            except RemoteProtocolError as exc:
                log.warning("%s: bad view in PONG from %s: %s", ring.me.name, member.name, exc)
                return False
            ring.receive_from(view, "pong", member.key, pong.roster)
        if (pong.key, pong.ring_id) != (member.key, ring.view.ring_id):
            return False
        self.detector.on_reply(member.key, self.clock() - started)
        return True

    async def report_dead(self) -> None:
        """Report the suspects as `FailReport` routes them; adopt the VIEW that ends it."""
        ring = self.ring
        report = FailReport(ring.me, ring.view, self.detector.suspects)
        sender = ring.me.key
        while not isinstance(step := report.next_step(ring.view), Done):
            if isinstance(step, Verify):
                sender = ring.me.key
                report.replied(await self.verify(set(step.dead)))
                continue
            msg = Fail(ring.me.key, list(step.dead))
            try:
                reply, sender = await ring.ask(*step.leader.address, msg, 4 * ring.probe_timeout)
            except RingError as exc:
                report.failed(exc)
            else:
                report.replied(reply)
        if step.view is not None:
            ring.receive_from(step.view, "update", sender)
            self.detector.cleared(step.view)

    async def _on_ping(self, msg: Message, conn: Connection) -> Message:
        """PONG, with our view if the pinger's is stale or leaves it out (a lost UPDATE)."""
        ring = self.ring
        check_alive(ring.status)
        assert isinstance(msg, Ping)
        if ring.status in (Status.IDLE, Status.LEFT):
            raise Refused("not_member", "this node is in no ring")
        view = ring.view
        stale = msg.ring_id != view.ring_id or msg.version < view.version
        if not stale and view.position(msg.key) is not None:
            return Pong(ring.me.key, view.ring_id, view.version)
        return Pong(ring.me.key, view.ring_id, view.version, view.to_wire(), ring.roster.wire())
