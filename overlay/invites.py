"""A member's open invites: each one a code, a short-lived pairing listener, and a beacon hint.

`invite` at the prompt opens one (`Invites.open`): a fresh code, a TCP listener on an ephemeral
port of the node's own address (through a plain `ring.wire.Door`: see `overlay/pairing_wire.py`)
and a hint `(number, port)` in the clear part of the node's beacons, so a host without
credentials on the LAN finds where to take it. The invite closes, and its listener with it,
when a host has taken it, when `MAX_WRONG` wrong codes were tried, or after `CODE_TTL`; the
prompt is told which (`notify`). Whatever a stranger does to a listener is bounded: at most
`MAX_ATTEMPTS` attempts at once (more are closed unanswered), each within `EXCHANGE_TIMEOUT`,
each frame at most `MAX_FRAME` bytes, and only while the invite is open.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from overlay.announcement import MAX_INVITES, InviteHint
from overlay.pairing import (
    CODE_TTL,
    MAX_RING,
    MAX_WRONG,
    Invitation,
    InviteClosed,
    InviteCode,
    PairingError,
    State,
    Welcome,
    WrongCode,
)
from overlay.pairing_wire import serve_attempt
from ring.errors import RingError
from ring.membership import View
from ring.wire import Connection, Door

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 4
"""Attempts one invite serves at once; a connection beyond them is closed unanswered."""

NUMBERS = range(1, 100)
"""Invite numbers drawn (two digits at most: short to type)."""


class TooManyInvites(Exception):
    """This node has as many invites open as a beacon can name; wait for one to close."""


@dataclass
class OpenInvite:
    """One open invite and what serves it."""

    invitation: Invitation
    port: int
    server: asyncio.Server | None = None
    attempts: int = 0
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)


class Invites:
    """The open invites of one member node.

    Args:
        host: the node's address; listeners bind there, and joiners without discovery are told it.
        network_key: the 32 bytes a joiner is given, read when an invite opens (so an invite
            opened after a re-key hands out the new key).
        view: the ring as this node knows it now; a joiner is told its members' addresses.
        notify: a line for the prompt (an invite was taken, refused, or expired).
        changed: called when the set of open invites changes (the beacon says so at once).
        ttl: seconds an invite is good for.
        clock: monotonic seconds.
    """

    def __init__(
        self,
        host: str,
        network_key: Callable[[], bytes],
        view: Callable[[], View],
        notify: Callable[[str], None],
        changed: Callable[[], None] = lambda: None,
        ttl: float = CODE_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.network_key = network_key
        self.view = view
        self.notify = notify
        self.changed = changed
        self.ttl = ttl
        self.clock = clock
        self._open: dict[int, OpenInvite] = {}
        self._door = Door.plain()

    async def command(self) -> str:
        """The `invite` command: open an invite and say what to type where."""
        try:
            invite = await self.open()
        except (TooManyInvites, OSError) as exc:
            return f"invite: {exc}"
        code = invite.invitation.code
        return (
            f"invite code: {code}  (one host, within {self.ttl / 60:.0f} minutes)\n"
            f"on the new host type: join {code}\n"
            f"  (where discovery cannot reach it: join {code} {self.host}:{invite.port})"
        )

    def hints(self) -> tuple[InviteHint, ...]:
        """The open invites as the beacon names them."""
        return tuple(InviteHint(n, invite.port) for n, invite in sorted(self._open.items()))

    async def open(self) -> OpenInvite:
        """Open a new invite: a code and a listener for it.

        Raises:
            TooManyInvites: `MAX_INVITES` are open already.
            OSError: no port could be bound on the node's address.
        """
        if len(self._open) >= MAX_INVITES:
            raise TooManyInvites(f"{len(self._open)} invites are open already")
        number = random.choice([n for n in NUMBERS if n not in self._open])
        ring = tuple((m.host, m.port) for m in self.view().members[:MAX_RING])
        welcome = Welcome(self.network_key(), ring)
        invitation = Invitation(InviteCode.generate(number), welcome, self.clock(), self.ttl)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((self.host, 0))
        except OSError:
            sock.close()
            raise
        invite = OpenInvite(invitation, sock.getsockname()[1])
        invite.server = await self._door.listen(sock, lambda conn: self._serve(invite, conn))
        invite.timer = asyncio.get_running_loop().call_later(
            invitation.expires - self.clock(), self._expire, number
        )
        self._open[number] = invite
        self.changed()
        return invite

    def _expire(self, number: int) -> None:
        invite = self._open.get(number)
        if invite is not None and invite.invitation.state(self.clock()) is State.EXPIRED:
            self._close(number, f"invite {number} expired unused; type 'invite' for a new code")

    def _close(self, number: int, why: str) -> None:
        invite = self._open.pop(number, None)
        if invite is None:
            return
        _stop(invite)
        self.changed()
        self.notify(why)

    async def _serve(self, invite: OpenInvite, conn: Connection) -> None:
        """One attempt at `invite` (bounded); closes the invite when the attempt decides it."""
        number = invite.invitation.code.number
        if invite.attempts >= MAX_ATTEMPTS:
            await conn.close()
            return
        invite.attempts += 1
        try:
            await serve_attempt(conn, invite.invitation, self.clock)
            self._close(number, f"invite {number}: a host at {conn.peer[0]} took the code")
        except WrongCode:
            if invite.invitation.state(self.clock()) is State.REFUSED:
                self._close(
                    number,
                    f"invite {number}: {MAX_WRONG} wrong codes; it refuses further attempts"
                    " (type 'invite' for a new code)",
                )
        except (InviteClosed, PairingError, RingError, TimeoutError, OSError) as exc:
            log.debug("an attempt at invite %d from %s ended: %s", number, conn.peer[0], exc)
        finally:
            invite.attempts -= 1
            await conn.close()

    async def close(self) -> None:
        """Close every open invite (the node is stopping); nothing is announced."""
        for invite in self._open.values():
            _stop(invite)
        self._open.clear()


def _stop(invite: OpenInvite) -> None:
    if invite.timer is not None:
        invite.timer.cancel()
    if invite.server is not None:
        invite.server.close()
