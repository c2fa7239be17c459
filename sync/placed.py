"""PLACED: replicas tell owners which of their records they placed, so an owner hears when a
change of its own has reached every member.

Theory of operation. As a replica's passes place records (`apply.py` hands over the rows it
took and the rows it changed), `Placements.placed` gathers (path, seq) per owner; one sender
task tells each owner its pairs at most once every ACK_DELAY seconds, in PLACED messages of at
most PLACED_MAX_ENTRIES pairs, one try each, never waited for by a pass: a lost PLACED only
costs the owner its line. On the owner's side, each PLACED counts for the member the
connection proved (`member_of`, wired by the node), never for a name in the message, in a
`ReachTracker` (`reach.py`); the changes it finds done are gathered for TELL_DELAY seconds and
told as one line (`tell`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

from ring.errors import BadRequest
from ring.wire import Connection, Door, Handler, Message, Ok, cancel_and_wait, expect
from sync.manifest import FileRecord, Peer
from sync.messages import PLACED_MAX_ENTRIES, Placed
from sync.reach import ReachTracker, reached_text

log = logging.getLogger(__name__)

ACK_DELAY = 0.5
"""Seconds a replica gathers placed records before telling their owners (a batch per owner)."""

PENDING_MAX = 10_000
"""(path, seq) pairs waiting per owner; further ones are not told until those have gone."""

TELL_DELAY = 0.3
"""Seconds an owner gathers changes found done before one line tells of them all."""

MemberOf = Callable[[Connection], str | None]
"""The ring member a connection proved to be (its name), None for none."""

Row = tuple[FileRecord, str | None]


def is_placed(rec: FileRecord, have: str | None) -> bool:
    """Whether the bytes held (`have`) are the record's: its file, or nothing for a delete."""
    return have == (None if rec.deleted else rec.sha256)


class Placements:
    """Both sides of PLACED for one node: telling owners, and hearing members."""

    def __init__(
        self,
        door: Door,
        name: str,
        timeout: float,
        member_of: MemberOf | None,
        tell: Callable[[str], None],
    ) -> None:
        """
        Args:
            door: the node's door, through which PLACED goes out.
            name: this node's folder name (the owner of its own records).
            timeout: seconds to wait on an owner's OK.
            member_of: who a connection is; None: no PLACED counts (nobody is proven).
            tell: shows one line at the prompt.
        """
        self.door, self.name, self.timeout = door, name, timeout
        self.member_of, self.tell = member_of, tell
        self.tracker = ReachTracker()
        self.peers: dict[str, Peer] = {}
        self._pending: dict[str, dict[str, int]] = {}
        self._sender: asyncio.Task[None] | None = None
        self._telling: asyncio.TimerHandle | None = None

    def routes(self) -> list[tuple[type[Message], Handler]]:
        """The PLACED route for a FrameServer."""
        return [(Placed, self.on_placed)]

    async def stop(self) -> None:
        """Drop what was not sent or told yet (best effort: nothing depends on it)."""
        if self._telling is not None:
            self._telling.cancel()
        if self._sender is not None:
            await cancel_and_wait([self._sender])

    def set_peers(self, peers: dict[str, Peer]) -> None:
        """Every other member by name: whom to tell, and whom own changes wait for."""
        self.peers = dict(peers)
        self.tracker.set_members(peers)
        self._tell_soon()

    def published(self, records: Iterable[FileRecord]) -> None:
        """Own records just published: each waits for every other member."""
        self.tracker.published((rec.path, rec.seq, rec.deleted) for rec in records)

    def placed(self, rows: Iterable[Row]) -> None:
        """Rows a pass took or changed: tell the owners of those now placed here, soon."""
        for rec, have in rows:
            if rec.owner == self.name or not is_placed(rec, have):
                continue
            pending = self._pending.setdefault(rec.owner, {})
            if len(pending) < PENDING_MAX or rec.path in pending:
                pending[rec.path] = rec.seq
        if self._pending and self._sender is None:
            self._sender = asyncio.create_task(self._send_all(), name=f"placed-{self.name}")

    async def on_placed(self, msg: Message, conn: Connection) -> Message:
        """Handle a PLACED: count its pairs for the member the connection proved."""
        assert isinstance(msg, Placed)
        if len(msg.entries) > PLACED_MAX_ENTRIES:
            raise BadRequest(f"PLACED carries at most {PLACED_MAX_ENTRIES} entries")
        pairs = [_pair(entry) for entry in msg.entries]
        member = None if self.member_of is None else self.member_of(conn)
        if msg.owner != self.name or member is None or member == self.name:
            log.debug("ignoring PLACED for %r from %s (member %r)", msg.owner, conn.peer, member)
            return Ok()
        if self.tracker.ack(member, pairs):
            self._tell_soon()
        return Ok()

    async def _send_all(self) -> None:
        """Tell every owner its pairs, ACK_DELAY apart, until none are waiting."""
        while self._pending:
            await asyncio.sleep(ACK_DELAY)
            pending, self._pending = self._pending, {}
            await asyncio.gather(*(self._send(owner, pairs) for owner, pairs in pending.items()))
        self._sender = None

    async def _send(self, owner: str, pairs: dict[str, int]) -> None:
        peer = self.peers.get(owner)
        if peer is None:
            return
        entries = [[path, seq] for path, seq in pairs.items()]
        for start in range(0, len(entries), PLACED_MAX_ENTRIES):
            msg = Placed(owner, entries[start : start + PLACED_MAX_ENTRIES])
            try:  # OK is one frame: a kept connection serves every batch (`ring/wire/pool.py`)
                reply = await self.door.request(peer.host, peer.port, msg, self.timeout, reuse=True)
                expect(reply, Ok)
            except Exception as exc:  # best effort: the owner only misses a line
                log.debug("telling %s of %d placed records failed: %s", owner, len(entries), exc)
                return

    def _tell_soon(self) -> None:
        if self._telling is None and self.tracker.done:
            loop = asyncio.get_running_loop()
            self._telling = loop.call_later(TELL_DELAY, self._tell_done)

    def _tell_done(self) -> None:
        self._telling = None
        line = reached_text(self.tracker.take_done())
        if line is not None:
            self.tell(line)


def _pair(entry: Any) -> tuple[str, int]:
    """A [path, seq] entry from the wire, checked."""
    if (
        isinstance(entry, (list, tuple))
        and len(entry) == 2
        and isinstance(entry[0], str)
        and isinstance(entry[1], int)
        and not isinstance(entry[1], bool)
    ):
        return entry[0], entry[1]
    raise BadRequest("a PLACED entry is [path, seq]")
