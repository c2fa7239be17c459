"""The connection table of a door: how many accepted connections a node keeps, and whose.

Every accepted connection holds a file descriptor (and, once its handshake is done, buffers and
a task). Without a bound, 1,100 idle connections once used up the node's 1,024 descriptors:
its accept loop then failed on every try ("too many open files", 151,142 log lines), its
members' requests timed out and the ring cut it out. So a door keeps at most `Caps.total`
accepted connections, and at most `Caps.per_address` from one address, both derived from the
descriptor limit (`Caps.for_descriptors`) and kept well under it: downloads, the state folder
and the DHT need descriptors too.

Members always get through. A slot is taken at accept, before the TLS handshake, when nothing
tells a member from a stranger; it becomes `authenticated` once the handshake proved a member.
When a newcomer finds its address's share or the whole table full, the oldest connection that
has not proved anything (of that address, or of any) is evicted to make room: a stranger
can fill the table, but only with connections that a member's next one pushes out. A stranger
cannot hold a slot past the handshake timeout either. Only when every slot in the way is held by
a proven member is the newcomer refused.

This module decides and counts; it closes nothing (`ring/wire/door.py` does).
"""

from __future__ import annotations

import itertools
from collections import Counter, OrderedDict
from dataclasses import dataclass

CONNECTIONS_CEILING = 1024
"""Most accepted connections a node keeps, however high its descriptor limit: each costs a
task and stream buffers, and a LAN of tens of hosts needs a few per peer."""

PER_ADDRESS = 64
"""Most accepted connections from one address (less when the descriptor limit is low)."""

DESCRIPTOR_SHARE = 4
"""The table takes at most 1/DESCRIPTOR_SHARE of the descriptor soft limit."""


@dataclass(frozen=True)
class Caps:
    """The two bounds of a connection table."""

    total: int
    per_address: int

    @classmethod
    def for_descriptors(cls, soft_limit: int) -> Caps:
        """The caps for a process allowed `soft_limit` open descriptors: a quarter of them at
        most (and CONNECTIONS_CEILING), and PER_ADDRESS or a quarter of the total per address."""
        total = max(8, min(CONNECTIONS_CEILING, soft_limit // DESCRIPTOR_SHARE))
        return cls(total, max(2, min(PER_ADDRESS, total // 4)))


@dataclass(frozen=True)
class Admission:
    """What the table decided for a newcomer.

    Attributes:
        slot: the newcomer's slot, or None when it is refused.
        evict: the slot of the connection to close to make room, if any.
        cause: why it was refused or had to evict: "per_address" or "total" ("" when it fit).
    """

    slot: int | None
    evict: int | None = None
    cause: str = ""


@dataclass
class _Entry:
    address: str
    authenticated: bool = False


class Slots:
    """The accepted connections of one door, oldest first, and what was turned away."""

    def __init__(self, caps: Caps) -> None:
        self.caps = caps
        self.refused: Counter[str] = Counter()
        """Newcomers closed at once, per cause."""
        self.evicted: Counter[str] = Counter()
        """Unproven connections closed to make room for a newcomer, per cause."""
        self._open: OrderedDict[int, _Entry] = OrderedDict()
        self._per_address: Counter[str] = Counter()
        self._ids = itertools.count(1)

    def __len__(self) -> int:
        return len(self._open)

    def from_address(self, address: str) -> int:
        """How many slots `address` holds."""
        return self._per_address[address]

    def arrive(self, address: str) -> Admission:
        """A connection from `address` was accepted: give it a slot, maybe by evicting another.

        The evicted slot is already free when this returns; its connection must be closed by
        the caller (and `leave` it again later does nothing).
        """
        evict, cause = None, ""
        if self._per_address[address] >= self.caps.per_address:
            cause = "per_address"
            evict = self._oldest_unproven(address)
        elif len(self._open) >= self.caps.total:
            cause = "total"
            evict = self._oldest_unproven(None)
        if cause and evict is None:
            self.refused[cause] += 1
            return Admission(None, None, cause)
        if evict is not None:
            self.evicted[cause] += 1
            self.leave(evict)
        slot = next(self._ids)
        self._open[slot] = _Entry(address)
        self._per_address[address] += 1
        return Admission(slot, evict, cause)

    def authenticated(self, slot: int) -> None:
        """The connection in `slot` proved a member: it is never evicted for a newcomer."""
        entry = self._open.get(slot)
        if entry is not None:
            entry.authenticated = True

    def leave(self, slot: int) -> None:
        """The connection in `slot` closed (nothing if it was evicted already)."""
        entry = self._open.pop(slot, None)
        if entry is None:
            return
        self._per_address[entry.address] -= 1
        if not self._per_address[entry.address]:
            del self._per_address[entry.address]

    def _oldest_unproven(self, address: str | None) -> int | None:
        for slot, entry in self._open.items():
            if not entry.authenticated and (address is None or entry.address == address):
                return slot
        return None
