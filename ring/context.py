"""What the ring's parts (leader, heartbeat, merger) may see and do of the node they serve.

`RingService` implements `RingContext` and builds the parts; the parts know only this protocol,
never the service, so no module of `ring/` imports one that imports it back (like syncthing's
`protocol.Model`, which `lib/model` implements). What one part needs of another is handed to it
as a callback when the service wires them.

Every request a part sends goes through `request`, the one method of the ring that dials.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Protocol

from ring.membership import Member, Source, View
from ring.messages import Pong
from ring.roster import Roster
from ring.status import Status
from ring.wire import Message


class RingContext(Protocol):
    """This node as its ring parts see it: who it is, its view, its standing, how it talks."""

    @property
    def me(self) -> Member:
        """This node."""

    @property
    def view(self) -> View:
        """This node's current view of its ring."""

    @property
    def status(self) -> Status:
        """Where this node stands with respect to a ring."""

    @property
    def roster(self) -> Roster:
        """Which key each name belongs to, and the revoked keys (`ring/roster.py`)."""

    @property
    def refused(self) -> set[tuple[str, int]]:
        """Addresses of leaders that refused this node's name: it does not merge into them."""

    @property
    def timeout(self) -> float:
        """Seconds a control request (JOIN, LEAVE, UPDATE, HELLO, MERGE) may take."""

    @property
    def probe_timeout(self) -> float:
        """Seconds a PING may take; a FAIL report gets four times as long."""

    def install(self, view: View) -> None:
        """Make `view` (which holds this node) current and tell the listeners."""

    def receive(self, view: View, source: Source) -> None:
        """Act on a view this node trusts: install, re-join, merge, or ignore it."""

    def receive_from(self, view: View, source: Source, sender: str, roster: Any = None) -> None:
        """Act on a view (and the roster beside it) that the member `sender` handed over, if
        that member may (`ring/authority.py`)."""

    def rejoin(self, first: list[tuple[str, int]]) -> None:
        """Re-join a ring, trying `first` before anyone else."""

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run `coro` as a task the node owns (cancelled when it leaves or crashes)."""

    async def ping(self, member: Member, timeout: float) -> Pong | None:
        """One PING; None if `member` does not answer PONG in time."""

    async def listening(self, member: Member, timeout: float) -> bool:
        """Whether `member`'s process still listens (`Door.knock`): busy, if it does not answer."""

    async def request(self, host: str, port: int, msg: Message, timeout: float) -> Message:
        """Send `msg` to host:port and return the reply.

        Raises:
            PeerUnreachable: no connection, or no reply in `timeout` seconds.
            RemoteError: the peer answered ERROR.
            RemoteProtocolError: the peer answered with a malformed frame.
        """

    async def ask(self, host: str, port: int, msg: Message, timeout: float) -> tuple[Message, str]:
        """`request`, and the identity of the member that answered.

        Raises:
            As `request`.
        """
