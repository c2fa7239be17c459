"""Memory a peer can make a node hold: frames that have begun and not ended (`FrameBudget`),
and file bodies on their way out to a peer that may not be reading them (`SendBudget`).

A frame's payload grows only as its bytes arrive (`FrameParser`), but every connection may be
in the middle of one: 64 connections each sending half of a 16 MiB frame once held 1 GiB for as
long as the idle timeout. So the bytes every accepted connection holds in a partial frame are
charged to one `FrameBudget` per node, before they are added to the frame.

At the bound the node sheds the biggest partial frame rather than waiting: waiting would let
whoever filled the budget first stall everyone else, members' small requests included, for as
long as the idle timeout. The connection holding the most is closed (cut) and its bytes given
back; when that is the connection asking for more, its read fails with `FrameMemoryFull` and
the server answers ERROR "busy" and closes it. A small frame therefore always gets through,
and a frame up to MAX_FRAME always fits when no one else holds much (the budget holds several).

This module counts and decides; closing a connection is the `cut` its owner handed in (the
shed connection's partial frame is emptied at once, not when its task next runs: many can be
shed in one turn of the event loop).
"""

from __future__ import annotations

from collections.abc import Callable

from ring.errors import FrameMemoryFull
from ring.wire.framing import FrameParser

FRAME_BUDGET = 64 * 1024 * 1024
"""Bytes all accepted connections of a node may hold in partially read frames together
(four frames of the largest size, MAX_FRAME)."""


SEND_BUDGET = 64 * 1024 * 1024
"""Bytes of file bodies all accepted connections of a node may hold in full-size chunks while
sending (read ahead, written and not yet encrypted, or encrypted and not yet taken by the
kernel), beside the TLS buffers of each connection."""

SMALL_SEND = 64 * 1024
"""The chunk a body is sent in while the send budget is spent: always granted, so a member's
download goes on (more slowly) while peers that read nothing hold the budget."""


class FrameBudget:
    """The bytes held in partial frames by the connections of one node, and their bound."""

    def __init__(self, limit: int = FRAME_BUDGET) -> None:
        self.limit = limit
        self.held = 0
        """Bytes charged now."""
        self.peak = 0
        """The most bytes charged at once since the budget was made."""
        self.shed = 0
        """Connections closed because the budget was full."""
        self._holds: set[Hold] = set()

    def hold(self, cut: Callable[[], None]) -> Hold:
        """A new connection's account; `cut` closes that connection (when it is shed)."""
        account = Hold(self, cut)
        self._holds.add(account)
        return account

    def _make_room(self, asking: Hold, more: int) -> None:
        while self.held + more > self.limit:
            biggest = max(self._holds, key=lambda h: h.bytes)
            self.shed += 1
            if biggest is asking or biggest.bytes == 0:
                asking.release()
                raise FrameMemoryFull(
                    f"frame memory of this node is full ({self.held} of {self.limit} bytes held)"
                )
            biggest.release()
            biggest.shed = True
            if biggest.frame is not None:
                biggest.frame.discard()
            biggest.cut()


class Hold:
    """The bytes one connection holds in the frame it is reading."""

    def __init__(self, budget: FrameBudget, cut: Callable[[], None]) -> None:
        self.budget = budget
        self.cut = cut
        self.bytes = 0
        self.shed = False
        """Whether the budget cut this connection (its reader stops at its next read)."""
        self.frame: FrameParser | None = None
        """The parser of the frame being read: emptied at once when this connection is shed."""

    def charge(self, n: int) -> None:
        """Take `n` more bytes for the frame being read, shedding the biggest holder if needed.

        Raises:
            FrameMemoryFull: this connection holds the most (it gave back what it held), or
                was shed already.
        """
        if self.shed:
            raise FrameMemoryFull("this connection was shed: the node's frame memory was full")
        budget = self.budget
        budget._make_room(self, n)
        self.bytes += n
        budget.held += n
        budget.peak = max(budget.peak, budget.held)

    def release(self) -> None:
        """The frame ended (or was dropped): give back what it held."""
        self.budget.held -= self.bytes
        self.bytes = 0

    def close(self) -> None:
        """The connection closed: give back what it held, and leave the budget."""
        self.release()
        self.budget._holds.discard(self)


class SendBudget:
    """The bytes of bodies being sent in full-size chunks, and their bound.

    200 members that asked for a file and read nothing once held 813 MiB for the 30 s of the
    write timeout: each connection a chunk read ahead and one written but not taken. Past the
    bound a chunk is SMALL_SEND instead of waiting (waiting would stall every member's download
    behind the peers that do not read), so the grants never pass the budget plus two small
    chunks per connection.
    """

    def __init__(self, limit: int = SEND_BUDGET, small: int = SMALL_SEND) -> None:
        self.limit = limit
        self.small = small
        self.held = 0
        """Bytes granted and not yet given back."""
        self.peak = 0
        """The most bytes granted at once since the budget was made."""

    def take(self, want: int) -> int:
        """Grant a chunk of `want` bytes if the budget has room, else of at most `small`."""
        granted = want if self.held + want <= self.limit else min(want, self.small)
        self.held += granted
        self.peak = max(self.peak, self.held)
        return granted

    def give(self, n: int) -> None:
        """A chunk of `n` bytes was taken by the peer (or dropped): its grant goes back."""
        self.held -= n
