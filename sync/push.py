"""Pushed changes: NOTIFY round the ring, from the owner to every node, one hop at a time.

Theory of operation. When the owner's scan gives new records, `Pusher.publish` sends them at
once, as NOTIFY, to the owner's next node in the ring. Each node keeps every record that
supersedes what it knows (the same rule as a manifest pull), answers OK, asks its engine to
apply those records (fetch, copy or delete), and passes the NOTIFY on to its own next node, in
the order received, one at a time. It stops before the owner (it has gone round) or after as
many hops as the ring has members. A push that cannot be delivered is dropped after a few
tries: the periodic manifest pull is the catch-up path, so a push only ever makes things
faster, never different. A node advances its "since" counter for the owner only when the
pushed seqs follow on from it without a gap, so a missed push is still pulled later. Only
records the owner signed are kept or passed on (`signing.py`): whoever relays a push, a
forged record in it goes no further than the first node it reaches.

Applying a push plans only the paths its records name, beside any pull round (`apply.py`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from ring.errors import BadRequest, PeerUnreachable, RemoteError, RemoteProtocolError
from ring.wire import Connection, Door, Handler, Message, Ok, cancel_and_wait, expect
from sync.manifest import (
    FileRecord,
    Peer,
    entry_to_record,
    fills_signature,
    record_to_entry,
    supersedes,
)
from sync.messages import NOTIFY_MAX_ENTRIES, Notify
from sync.paths import check_owner
from sync.signing import Verifier
from sync.state import State

log = logging.getLogger(__name__)

SEND_TRIES = 3
RETRY_DELAY = 0.5
QUEUE_MAX = 1000
"""Pushes waiting to be forwarded; past this, changes wait for the pull instead."""
BACKLOG_MAX = 64
"""Own pushes kept while this node has no next node; past this, changes wait for the pull."""


def merge_pushed(state: State, origin: str, me: str, entries: list[Any]) -> list[FileRecord]:
    """Keep every pushed record of `origin` that supersedes the known one; returns them.

    Entries of other owners, of this node, or that break the rules are skipped (logged).
    """
    fresh: list[FileRecord] = []
    seqs: list[int] = []
    with state.transaction():
        for entry in entries:
            try:
                rec, _held = entry_to_record(entry)
                if rec.owner != origin or rec.owner == me:
                    raise BadRequest(f"an entry of {rec.owner} inside a push of {origin}")
                old = state.record(rec.owner, rec.path)
                if supersedes(rec, None if old is None else old[0]):
                    state.put_record(rec, None if old is None else old[1])
                    fresh.append(rec)
                elif old is not None and fills_signature(old[0], rec):
                    state.set_sig(rec)
            except Exception as exc:  # one entry's trouble is that entry's alone
                log.warning("skipping a bad pushed entry from %s: %s", origin, exc)
                continue
            seqs.append(rec.seq)
        counter = state.counter(origin)
        for seq in sorted(seqs):
            if seq == counter + 1:
                counter = seq
        if counter > state.counter(origin):
            state.set_counter(origin, counter)
    return fresh


class Pusher:
    """Sends this node's own changes and forwards others' along the ring, in order."""

    def __init__(
        self,
        door: Door,
        name: str,
        state: State,
        timeout: float,
        on_pushed: Callable[[str, list[FileRecord]], None],
        verifier: Verifier,
    ) -> None:
        """
        Args:
            door: the node's door, through which pushes go out.
            name: this node's folder name.
            state: the node's sync state (records and counters).
            timeout: seconds to wait on the next node per try.
            on_pushed: called with (origin, superseding records) when a push brings news.
            verifier: checks the owner's signature of each pushed record.
        """
        self.door = door
        self.verifier = verifier
        self.name = name
        self.state = state
        self.timeout = timeout
        self.on_pushed = on_pushed
        self.next: Peer | None = None
        self.ring_size = 1
        self.sent = 0
        self.received: dict[str, float] = {}
        self._queue: asyncio.Queue[Notify] = asyncio.Queue(QUEUE_MAX)
        self._backlog: list[Notify] = []
        self._task: asyncio.Task[None] | None = None

    def routes(self) -> list[tuple[type[Message], Handler]]:
        """The NOTIFY route for a FrameServer."""
        return [(Notify, self.on_notify)]

    def start(self) -> None:
        """Start the forwarding task."""
        self._task = asyncio.create_task(self._forward(), name=f"push-{self.name}")

    async def stop(self) -> None:
        """Stop forwarding; queued pushes are dropped (the pull catches up)."""
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None

    def set_next(self, peer: Peer | None, ring_size: int) -> None:
        """The node to pass pushes to, and how many nodes the ring has (the hop limit).

        Own changes made while this node had no next node (alone, or scanning at start-up
        before joining: files deleted while it was down) are pushed as soon as it has one.
        """
        self.next = peer
        self.ring_size = max(1, ring_size)
        if peer is not None and self._backlog:
            backlog, self._backlog = self._backlog, []
            for msg in backlog:
                self._enqueue(msg)

    def publish(self, records: list[FileRecord]) -> None:
        """Push this node's new records (in seq order) round the ring."""
        entries = [record_to_entry(rec, not rec.deleted) for rec in records]
        for start in range(0, len(entries), NOTIFY_MAX_ENTRIES):
            self._enqueue(Notify(self.name, entries[start : start + NOTIFY_MAX_ENTRIES], 0))

    def _enqueue(self, msg: Notify) -> None:
        if self.next is None and msg.origin == self.name:
            if len(self._backlog) < BACKLOG_MAX:
                self._backlog.append(msg)
            return
        if self.next is None or self.next.name == msg.origin or msg.hops >= self.ring_size:
            return
        try:
            self._queue.put_nowait(msg)
        except asyncio.QueueFull:
            log.warning("push queue full; %s's change waits for the next pull", msg.origin)

    async def on_notify(self, msg: Message, conn: Connection) -> Message:
        """Handle a NOTIFY: keep what supersedes, pass it on, ask for the change to be applied."""
        assert isinstance(msg, Notify)
        if not (isinstance(msg.hops, int) and msg.hops >= 0):
            raise BadRequest("NOTIFY hops must be a non-negative int")
        if len(msg.entries) > NOTIFY_MAX_ENTRIES:
            raise BadRequest(f"NOTIFY carries at most {NOTIFY_MAX_ENTRIES} entries")
        check_owner(msg.origin)
        if msg.origin == self.name:
            return Ok()
        signed = await self.verifier.check(msg.entries, f"a push of {msg.origin}")
        fresh = merge_pushed(self.state, msg.origin, self.name, signed)
        self.received[msg.origin] = time.time()
        if signed:
            self._enqueue(Notify(msg.origin, signed, msg.hops + 1))
        if fresh:
            log.info("push from %s: %d new record(s)", msg.origin, len(fresh))
            self.on_pushed(msg.origin, fresh)
        return Ok()

    async def _forward(self) -> None:
        while True:
            msg = await self._queue.get()
            for attempt in range(SEND_TRIES):
                peer = self.next
                if peer is None or peer.name == msg.origin:
                    break
                try:
                    reply = await self.door.request(
                        peer.host, peer.port, msg, self.timeout, reuse=True
                    )
                    expect(reply, Ok)
                    self.sent += 1
                    break
                except (PeerUnreachable, RemoteError, RemoteProtocolError) as exc:
                    log.info(
                        "push of %s to %s failed (try %d): %s",
                        msg.origin,
                        peer.name,
                        attempt + 1,
                        exc,
                    )
                    await asyncio.sleep(RETRY_DELAY)
                except Exception:  # one bad push must not end forwarding for good
                    log.exception("push of %s to %s failed", msg.origin, peer.name)
                    break
