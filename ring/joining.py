"""The join walk without sockets: whom to ask next for a JOIN, and when to stop.

Theory of operation. A node joins through its peers in turn. Each attempt sends JOIN to a peer
and follows REDIRECTs towards the leader, at most `MAX_REDIRECTS` requests per attempt. An
attempt ends with the view of a JOIN_OK that holds the joiner (the walk is done), or with a
failure that moves on to the next peer. Some failures mean a ring in transition and make another
round worth it: a `leaving` leader, a leader that a REDIRECT named but that does not answer, a
REDIRECT chain that never ends; for a `patient` re-join also `not_member`, from a peer that is on
its way into the same ring. After a round with such a failure the caller pauses (one heartbeat)
and the walk starts over, until its deadline; after a round without one it gives up.

`JoinWalk` does no I/O: the caller asks `next_step(now)`, sends JOIN where it says, and feeds
back the reply (`replied`) or the failure (`failed`), like h11's `Connection`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from ring.errors import LocalProtocolError, PeerUnreachable, RemoteError, RemoteProtocolError
from ring.membership import View
from ring.messages import JoinOk, Redirect
from ring.wire import Message, expect

log = logging.getLogger(__name__)

MAX_REDIRECTS = 8
"""Requests per attempt at following REDIRECTs (JOIN, and LEAVE towards the leader)."""

Address = tuple[str, int]


@dataclass(frozen=True)
class Ask:
    """Send JOIN to host:port and feed back what comes of it."""

    host: str
    port: int


@dataclass(frozen=True)
class Pause:
    """Every peer was tried and the ring seemed in transition: wait a beat, then ask again."""


@dataclass(frozen=True)
class Done:
    """The walk is over: the view of the ring that admitted us, or None if nobody did."""

    view: View | None


Step = Ask | Pause | Done


class JoinWalk:
    """One join (or re-join) of the node with key `me` through `peers`, as data in and out."""

    def __init__(
        self, me: str, peers: Sequence[Address], *, deadline: float, patient: bool = False
    ) -> None:
        self.me = me
        self.peers = list(peers)
        self.deadline = deadline
        self.patient = patient
        self._next_peer = 0
        self._again = False
        self._asking: Address | None = None
        self._hop = 0
        self._result: Done | None = None

    def next_step(self, now: float) -> Step:
        """What to do now: ask an address, pause before another round, or stop."""
        if self._result is not None:
            return self._result
        if self._asking is None and self._next_peer < len(self.peers):
            self._asking, self._hop = self.peers[self._next_peer], 0
            self._next_peer += 1
        if self._asking is not None:
            return Ask(*self._asking)
        if not self._again or now >= self.deadline:
            self._result = Done(None)
            return self._result
        self._next_peer, self._again = 0, False
        return Pause()

    def replied(self, reply: Message) -> None:
        """The asked address answered `reply`: follow a REDIRECT, or take the JOIN_OK's view."""
        host, port = self._current()
        if isinstance(reply, Redirect):
            self._hop += 1
            if self._hop < MAX_REDIRECTS:
                self._asking = (reply.host, reply.port)
            else:
                self._end_attempt(host, port, "too many redirects", again=True)
            return
        try:
            view = View.from_wire(expect(reply, JoinOk).view)
            if view.position(self.me) is None:
                raise RemoteProtocolError("JOIN_OK view does not hold the joiner")
        except RemoteProtocolError as exc:
            self._end_attempt(host, port, f"failed: {exc}", again=False)
            return
        self._asking = None
        self._result = Done(view)

    def failed(self, exc: PeerUnreachable | RemoteError | RemoteProtocolError) -> None:
        """The asked address could not be reached, refused, or answered garbage."""
        host, port = self._current()
        if isinstance(exc, PeerUnreachable):
            after_redirect = self._hop > 0
            self._end_attempt(host, port, f"unreachable: {exc}", again=after_redirect)
        elif isinstance(exc, RemoteError):
            retry = exc.code == "leaving" or (self.patient and exc.code == "not_member")
            self._end_attempt(host, port, f"refused: {exc}", again=retry)
        else:
            self._end_attempt(host, port, f"failed: {exc}", again=False)

    def _current(self) -> Address:
        if self._asking is None:
            raise LocalProtocolError("no JOIN is outstanding")
        return self._asking

    def _end_attempt(self, host: str, port: int, why: str, *, again: bool) -> None:
        log.debug("join via %s:%d %s%s", host, port, why, "; will retry" if again else "")
        self._asking = None
        self._again = self._again or again
