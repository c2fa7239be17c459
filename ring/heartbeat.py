"""The heartbeat: ping the next member, find the dead through the successor list, report them.

Every `heartbeat` seconds (start to start) a node pings the first member after it that it does
not suspect (`ring/failure.py` decides whom, and when a silence makes a suspect). A PONG may
carry a view: a newer one of our ring is adopted (this repairs lost UPDATEs), one of a ring
that wins a merge starts the merge. Suspects go to the acting leader in a FAIL; if that
leader does not answer, it joins the suspects and the report goes to the next lowest member.
Each beat also times one other member in turn (a miss there counts for nothing), so `rtt`
covers the whole ring; every few beats the node probes the configured peers not in its view.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ring.errors import RemoteProtocolError, RingError
from ring.failure import FailureDetector
from ring.membership import Member, View
from ring.messages import Fail
from ring.reporting import Done, FailReport, Verify
from ring.status import Status

if TYPE_CHECKING:
    from ring.service import RingService

log = logging.getLogger(__name__)

CONTACT_EVERY = 4
"""Beats between merge probes of the configured peers that are not in the view."""


class Heartbeat:
    """Failure detection and reporting for one service."""

    def __init__(self, service: RingService, misses: int) -> None:
        self.svc = service
        self.detector = FailureDetector(service.me.key, misses)
        self._report: asyncio.Task[None] | None = None
        self._turn = 0

    async def run(self) -> None:
        """Beat until the service leaves or crashes."""
        svc = self.svc
        tick = 0
        while svc.status not in (Status.LEFT, Status.CRASHED):
            began = svc.clock()
            if svc.status is Status.MEMBER:
                if tick % CONTACT_EVERY == 0:
                    addresses = {m.address for m in svc.view.members}
                    for host, port in svc.peers:
                        if (host, port) not in addresses:
                            svc.contact(host, port)
                await self.beat()
            tick += 1
            await asyncio.sleep(max(0.0, svc.heartbeat - (svc.clock() - began)))

    async def beat(self) -> None:
        """Ping the next member not suspected; on its last allowed miss, check the successors."""
        svc, detector = self.svc, self.detector
        extra = detector.measure_target(svc.view, self._turn)
        self._turn += 1
        if extra is not None:
            svc.spawn(self.watch(extra))
        target = detector.target(svc.view)
        if target is not None and not await self.watch(target) and detector.on_miss(target.key):
            rest = detector.to_probe(svc.view, target.key)
            alive = await asyncio.gather(*(self.watch(m) for m in rest))
            for member, ok in zip(rest, alive, strict=True):
                if not ok:
                    detector.suspects.add(member.key)
        if detector.suspects & svc.view.keys and (self._report is None or self._report.done()):
            self._report = svc.spawn(self.report_dead())

    async def watch(self, member: Member) -> bool:
        """Ping `member`, record the outcome, and act on a view its PONG carries."""
        svc = self.svc
        started = svc.clock()
        pong = await svc.ping(member, svc.probe_timeout)
        if pong is None:
            return False
        if pong.view is not None:
            try:
                svc.receive(View.from_wire(pong.view), "pong")
            except RemoteProtocolError as exc:
                log.warning("%s: bad view in PONG from %s: %s", svc.me.name, member.name, exc)
                return False
        if (pong.key, pong.ring_id) != (member.key, svc.view.ring_id):
            return False
        self.detector.on_reply(member.key, svc.clock() - started)
        return True

    async def report_dead(self) -> None:
        """Report the suspects as `FailReport` routes them; adopt the VIEW that ends it."""
        svc = self.svc
        report = FailReport(svc.me, svc.view, self.detector.suspects)
        while not isinstance(step := report.next_step(svc.view), Done):
            if isinstance(step, Verify):
                report.replied(await svc.leadership.remove_failed(set(step.dead)))
                continue
            msg = Fail(svc.me.key, list(step.dead))
            try:
                reply = await svc.request(*step.leader.address, msg, 4 * svc.probe_timeout)
            except RingError as exc:
                report.failed(exc)
            else:
                report.replied(reply)
        if step.view is not None:
            svc.receive(step.view, "update")
            self.detector.cleared(step.view)
