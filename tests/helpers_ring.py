"""Helpers for ring tests: nodes on 127.0.0.1 port 0, waiting on conditions, ring checks."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from ring.membership import Member, View
from ring.service import RingService
from ring.wire import FrameServer


@dataclass
class Cluster:
    """Every node a test made, so that all of them are shut down at the end."""

    heartbeat: float = 0.5
    misses: int = 3
    nodes: list[tuple[FrameServer, RingService]] = field(default_factory=list)

    async def node(self, name: str, key: str | None = None) -> RingService:
        """A started server and a ring service on it, not yet in any ring."""
        server = FrameServer("127.0.0.1", 0)
        port = await server.start()
        me = Member(key or secrets.token_hex(8), name, "127.0.0.1", port)
        svc = RingService(server, me, heartbeat=self.heartbeat, misses=self.misses)
        self.nodes.append((server, svc))
        return svc

    def server_of(self, svc: RingService) -> FrameServer:
        return next(server for server, s in self.nodes if s is svc)

    async def kill(self, svc: RingService) -> None:
        """kill -9 in-process: stop the service's tasks and close its server, sending nothing."""
        await svc.crash()
        await self.server_of(svc).close()

    async def close(self) -> None:
        for server, svc in self.nodes:
            await svc.crash()
            await server.close()


def whole(services: list[RingService]) -> bool:
    """Every node holds the same view of exactly these nodes, ids 0..n-1, neighbours agreeing."""
    if not services:
        return False
    view: View = services[0].view
    if {m.key for m in view.members} != {s.me.key for s in services}:
        return False
    if any(s.view != view for s in services):
        return False
    size = len(services)
    for svc in services:
        index = svc.my_id
        if size > 1:
            assert svc.next == view.members[(index + 1) % size]
            assert svc.prev == view.members[index - 1]
            nxt = next(s for s in services if s.me == svc.next)
            if nxt.prev != svc.me:
                return False
        elif svc.next is not None or svc.prev is not None:
            return False
    return sorted(s.my_id for s in services) == list(range(size))
