"""Helpers for ring tests: nodes on 127.0.0.1 port 0, ring checks, and a fake RingContext."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from overlay.credentials import Credentials
from ring.errors import RingError
from ring.membership import Member, Source, View
from ring.messages import Pong
from ring.roster import Roster
from ring.service import RingService
from ring.status import Status
from ring.wire import FrameServer, Message
from tests.credentials import member


@dataclass
class Cluster:
    """Every node a test made, so that all of them are shut down at the end."""

    heartbeat: float = 0.5
    misses: int = 3
    nodes: list[tuple[FrameServer, RingService]] = field(default_factory=list)
    credentials: dict[str, Credentials] = field(default_factory=dict)

    async def node(self, name: str, key: str | None = None) -> RingService:
        """A started server and a ring service on it, not yet in any ring; its key is the
        identity of its door (`key`: the node with that key again, as after a restart)."""
        creds = self.credentials[key] if key is not None else member()
        self.credentials[creds.key] = creds
        server = FrameServer("127.0.0.1", 0, door=creds.door())
        port = await server.start()
        me = Member(creds.key, name, "127.0.0.1", port)
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


Address = tuple[str, int]


@dataclass
class FakeRing:
    """A RingContext with no sockets: `replies` scripts each address's answers (a RingError is
    raised), only the keys in `alive` answer PING, and every call a part makes is recorded in
    `calls`, in order (a view handed over by a member as one it receives)."""

    me: Member
    view: View
    status: Status = Status.MEMBER
    timeout: float = 1.0
    probe_timeout: float = 0.25
    replies: dict[Address, list[Message | RingError]] = field(default_factory=dict)
    alive: set[str] = field(default_factory=set)
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    roster: Roster = field(default_factory=Roster)
    refused: set[Address] = field(default_factory=set)
    listens: set[str] = field(default_factory=set)
    """Keys whose port completes a TCP handshake though they answer no PING (busy)."""
    knocked: list[str] = field(default_factory=list)
    """Keys whose port was knocked on (`listening`), in order; sends nothing, so not a call."""

    def install(self, view: View) -> None:
        self.calls.append(("install", view))
        self.view = view

    def receive(self, view: View, source: Source) -> None:
        self.calls.append(("receive", view, source))

    def receive_from(self, view: View, source: Source, sender: str, roster: Any = None) -> None:
        self.calls.append(("receive", view, source))

    def rejoin(self, first: list[Address]) -> None:
        self.calls.append(("rejoin", first))

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        return asyncio.get_running_loop().create_task(coro)

    async def ping(self, member: Member, timeout: float) -> Pong | None:
        self.calls.append(("ping", member.key))
        if member.key not in self.alive:
            return None
        return Pong(member.key, self.view.ring_id, self.view.version)

    async def listening(self, member: Member, timeout: float) -> bool:
        self.knocked.append(member.key)
        return member.key in self.listens

    async def request(self, host: str, port: int, msg: Message, timeout: float) -> Message:
        self.calls.append(("request", (host, port), msg, timeout))
        outcome = self.replies[(host, port)].pop(0)
        if isinstance(outcome, RingError):
            raise outcome
        return outcome

    async def ask(self, host: str, port: int, msg: Message, timeout: float) -> tuple[Message, str]:
        """`request`; the answer comes from the member of the view at that address."""
        reply = await self.request(host, port, msg, timeout)
        at = [m.key for m in self.view.members if m.address == (host, port)]
        return reply, at[0] if at else ""
