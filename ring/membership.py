"""Membership decisions of the ring, with no sockets: views, changes to them, and who decides.

Theory of operation.

Rule 1: a ring is one `View`: an id for the ring, a version, and the members in ring order.
A member's position in `members` is its ring id (0..n-1); members[0] is the leader, which
admits newcomers. prev and next are the neighbours in that order, wrapping around.

Rule 2: only the acting leader changes a view (admit, remove), one change at a time, and each
change bumps the version. Every node keeps the highest version it has seen of its own ring;
a view of another ring is never adopted silently, only by joining that ring.

Rule 3: the acting leader is the lowest member not known to be dead. When members[0] dies,
whoever finds out reports to the next lowest, which verifies and takes over; removing the
dead makes it members[0], so the view itself says who leads.

Rule 4: when two rings meet, the one with the smaller label (ring id, leader key) wins, and
every member of the other re-joins it through the ordinary JOIN path. A ring id starts with its
founding time, so the older ring wins and a later-founded ring never takes over an established
one; the leader key only decides between the halves of a ring that a partition split.

Everything here takes and returns plain data; `ring/service.py` moves it over the wire.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from ring.errors import BadRequest, LocalProtocolError
from ring.status import Status

log = logging.getLogger(__name__)

MAX_MEMBERS = 1024
"""Largest view accepted from the wire; far beyond a LAN, small enough to bound memory."""

SUCCESSORS = 3
"""How many members after a node it checks when its next stops answering."""


@dataclass(frozen=True)
class Member:
    """One node of the ring: a stable random key, a display name, and where it listens."""

    key: str
    name: str
    host: str
    port: int

    def to_wire(self) -> dict[str, Any]:
        """The msgpack-ready map of this member."""
        return {"key": self.key, "name": self.name, "host": self.host, "port": self.port}

    @classmethod
    def from_wire(cls, body: Any) -> Member:
        """Build a member from a peer's map.

        Raises:
            BadRequest: a missing field, a wrong type, an empty key or an impossible port.
        """
        if not isinstance(body, dict):
            raise BadRequest("a member is not a map")
        key, name, host, port = (body.get(f) for f in ("key", "name", "host", "port"))
        if not (isinstance(key, str) and isinstance(name, str) and isinstance(host, str)):
            raise BadRequest("member key, name and host must be strings")
        if not 0 < len(key) <= 128 or len(name) > 255 or not 0 < len(host) <= 255:
            raise BadRequest("member key, name or host has a bad length")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise BadRequest("member port must be 1..65535")
        return cls(key, name, host, port)

    @property
    def address(self) -> tuple[str, int]:
        """Where to send requests to this member."""
        return (self.host, self.port)


@dataclass(frozen=True)
class View:
    """The ring as one node knows it; the position in `members` is the ring id."""

    ring_id: str
    version: int
    members: tuple[Member, ...]

    def position(self, key: str) -> int | None:
        """The ring id of the member with `key`, or None if it is not in this view."""
        for index, member in enumerate(self.members):
            if member.key == key:
                return index
        return None

    def prev_of(self, key: str) -> Member | None:
        """The member before `key` (wrapping); None in a 1-node ring or if `key` is absent."""
        index = self.position(key)
        if index is None or len(self.members) < 2:
            return None
        return self.members[index - 1]

    def next_of(self, key: str) -> Member | None:
        """The member after `key` (wrapping); None in a 1-node ring or if `key` is absent."""
        index = self.position(key)
        if index is None or len(self.members) < 2:
            return None
        return self.members[(index + 1) % len(self.members)]

    def successors(self, key: str, count: int = SUCCESSORS) -> list[Member]:
        """Up to `count` members after `key` in ring order, never `key` itself."""
        index = self.position(key)
        if index is None:
            return []
        size = len(self.members)
        return [self.members[(index + step) % size] for step in range(1, min(count, size - 1) + 1)]

    @property
    def leader(self) -> Member:
        """members[0]: the node that admits newcomers."""
        return self.members[0]

    @property
    def keys(self) -> frozenset[str]:
        """The keys of every member."""
        return frozenset(m.key for m in self.members)

    def member(self, key: str) -> Member | None:
        """The member with `key`, if present."""
        index = self.position(key)
        return None if index is None else self.members[index]

    def to_wire(self) -> dict[str, Any]:
        """The msgpack-ready map of this view."""
        return {
            "ring_id": self.ring_id,
            "version": self.version,
            "members": [m.to_wire() for m in self.members],
        }

    @classmethod
    def from_wire(cls, body: Any) -> View:
        """Build a view from a peer's map, checking every field.

        Raises:
            BadRequest: a bad field, no members, too many, or one key twice.
        """
        if not isinstance(body, dict):
            raise BadRequest("a view is not a map")
        ring_id, version, members = body.get("ring_id"), body.get("version"), body.get("members")
        if not isinstance(ring_id, str) or not 0 < len(ring_id) <= 256:
            raise BadRequest("view ring_id must be a non-empty string")
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise BadRequest("view version must be a non-negative integer")
        if not isinstance(members, list) or not 0 < len(members) <= MAX_MEMBERS:
            raise BadRequest(f"view members must be a list of 1..{MAX_MEMBERS}")
        parsed = tuple(Member.from_wire(m) for m in members)
        if len({m.key for m in parsed}) != len(parsed):
            raise BadRequest("view lists one key twice")
        return cls(ring_id, version, parsed)


def found(me: Member, now_ns: int) -> View:
    """A new 1-node ring led by `me`; the id orders rings by founding time (Rule 4)."""
    return View(f"{now_ns:020d}-{me.key}", 1, (me,))


def admit(view: View, newcomer: Member) -> View:
    """The view after `newcomer` joins: appended at the end, so nobody else renumbers.

    A node already present at the same address is admitted again as a no-op (its JOIN_OK was
    lost); at a new address (a restart) its old entry is dropped first. So is any other entry
    at the newcomer's address: one address holds one node, and the old one is gone.
    """
    current = view.member(newcomer.key)
    if current == newcomer:
        return view
    kept = tuple(m for m in view.members if m.key != newcomer.key and m.address != newcomer.address)
    return View(view.ring_id, view.version + 1, kept + (newcomer,))


def remove(view: View, keys: Iterable[str]) -> View:
    """The view without `keys`; the members after them move down (the original's DECREMENT).

    Raises:
        LocalProtocolError: removing every member would leave no ring at all.
    """
    gone = set(keys) & view.keys
    if not gone:
        return view
    kept = tuple(m for m in view.members if m.key not in gone)
    if not kept:
        raise LocalProtocolError("a view cannot lose every member")
    return View(view.ring_id, view.version + 1, kept)


def acting_leader(view: View, dead: Iterable[str]) -> Member | None:
    """The lowest member not known dead (Rule 3); None if every member is dead."""
    dead_keys = set(dead)
    for member in view.members:
        if member.key not in dead_keys:
            return member
    return None


def supersedes(new: View, old: View) -> bool:
    """Whether `new` replaces `old` in place: the same ring, a higher version (Rule 2)."""
    return new.ring_id == old.ring_id and new.version > old.version


Label = tuple[str, str]
"""(ring id, leader key): what two rings compare when they meet (Rule 4)."""


def label(view: View) -> Label:
    """The label of `view`'s ring; the leader key tells apart two halves of one split ring."""
    return (view.ring_id, view.leader.key)


def wins_merge(theirs: Label, mine: Label) -> bool:
    """Whether the ring `theirs` absorbs the ring `mine` when they meet (Rule 4).

    Two halves of a ring that was split (a partition: each half cut the other out) keep the
    same ring id under different leaders; the leader keys then decide.
    """
    return theirs < mine


def renumbering(old: View, new: View, key: str) -> tuple[int | None, int | None]:
    """The ring id of `key` before and after a change, for the DECREMENT log line."""
    if old.ring_id != new.ring_id:
        return (None, new.position(key))
    return (old.position(key), new.position(key))


Source = Literal["update", "pong", "join_ok"]
"""Where a view came from: an UPDATE push (or the VIEW answering a FAIL), a PONG, a JOIN_OK."""


class Verdict(enum.Enum):
    """What a node does with a view it receives."""

    IGNORE = "ignore"
    INSTALL = "install"
    REJOIN = "rejoin"
    MERGE = "merge"


def judge(current: View, incoming: View, me: str, status: Status, source: Source) -> Verdict:
    """Decide what to do with `incoming`, given this node's view, key and status.

    - JOIN_OK: install, unless a newer view of that same ring (and leader) already came.
    - While joining, an UPDATE of another ring that holds us overtook our JOIN_OK: install.
    - Our ring, newer version: install if it holds us; if it cut us out, re-join (Rule 2).
    - A PONG showing another ring that wins: merge into it (Rule 4).
    - Anything else, and anything while not a member or joining: ignore.
    """
    holds_me = incoming.position(me) is not None
    if source == "join_ok":
        newer = label(incoming) != label(current) or incoming.version > current.version
        return Verdict.INSTALL if newer else Verdict.IGNORE
    if status not in (Status.MEMBER, Status.JOINING):
        return Verdict.IGNORE
    overtaken = source == "update" and holds_me and label(incoming) != label(current)
    if status is Status.JOINING and overtaken:
        return Verdict.INSTALL
    if incoming.ring_id == current.ring_id:
        if not supersedes(incoming, current):
            return Verdict.IGNORE
        if holds_me:
            return Verdict.INSTALL
        return Verdict.REJOIN if status is Status.MEMBER else Verdict.IGNORE
    if status is Status.MEMBER and source == "pong" and wins_merge(label(incoming), label(current)):
        return Verdict.MERGE
    return Verdict.IGNORE
