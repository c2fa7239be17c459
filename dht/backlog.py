"""The backlog: DHT work this node owes the network, kept in the order it arose.

Three queues, each drained oldest first by `dht/publisher.py`:
- own entries (announce, withdraw, re-announce), one per key: a newer entry for a key still
  waiting replaces the older one in place, so a file added and dropped before the next sweep
  costs one withdrawal, not two messages. Each entry is due at a time the caller gives: an
  announce at once, a withdrawal later (`dht/own.py` says why), and a sweep waits until one
  entry is due, then carries every entry waiting;
- parcels for one contact (hand-over, repair), merged per key;
- contacts met for the first time, waiting for their hand-over to be planned.

The backlog's depth is what `status` shows. Parcels are best-effort: past `MAX_PARCEL_KEYS`
keys waiting in all, new ones are dropped and counted (lookups repair what they find missing,
and holders re-announce within the re-announce interval).
Everything here is plain data; no sockets, no clock (times are passed in).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from kademlia.node import Node

from dht.pacing import HAND_OVER, REPAIR
from dht.records import Entry, Record, merge

MAX_PARCEL_KEYS = 100_000
"""Most keys waiting in hand-over and repair parcels together."""


@dataclass(frozen=True)
class Depth:
    """How much work waits, by kind (the `status` line)."""

    announce: int = 0
    withdraw: int = 0
    hand_over: int = 0
    repair: int = 0
    newcomers: int = 0

    @property
    def total(self) -> int:
        return self.announce + self.withdraw + self.hand_over + self.repair + self.newcomers

    def text(self) -> str:
        """One line for `status`."""
        if not self.total:
            return "holder index: nothing queued"
        parts = [
            f"{self.announce} to announce",
            f"{self.withdraw} to withdraw",
            f"{self.hand_over} to hand over",
            f"{self.repair} to repair",
        ]
        if self.newcomers:
            parts.append(f"{self.newcomers} new contact(s) to welcome")
        return "holder index: " + ", ".join(parts)


@dataclass(frozen=True)
class Parcel:
    """Records for one contact, sent as one kind of work."""

    kind: str
    node: Node
    items: list[tuple[bytes, Record]]


class Backlog:
    """The three queues; ``notify`` is called whenever work is added."""

    def __init__(
        self, notify: Callable[[], None] | None = None, limit: int = MAX_PARCEL_KEYS
    ) -> None:
        self.notify = notify or (lambda: None)
        self.limit = limit
        self.dropped = 0
        self._own: OrderedDict[bytes, Entry] = OrderedDict()
        self._due: dict[bytes, float] = {}
        self._soonest = math.inf
        self._parcels: OrderedDict[tuple[str, bytes], tuple[Node, dict[bytes, Record]]] = (
            OrderedDict()
        )
        self._parcel_keys = {HAND_OVER: 0, REPAIR: 0}
        self._newcomers: OrderedDict[bytes, Node] = OrderedDict()

    def __bool__(self) -> bool:
        return bool(self._own or self._parcels or self._newcomers)

    def own(self, key: bytes, entry: Entry, due: float = 0.0) -> None:
        """Queue this node's newest entry for ``key`` (replacing one still waiting), to be swept
        from time ``due`` on; an entry replaced keeps the sooner of the two times."""
        self._own[key] = entry
        due = min(due, self._due.get(key, due))
        self._due[key] = due
        self._soonest = min(self._soonest, due)
        self.notify()

    def own_due_in(self, now: float) -> float:
        """Seconds from ``now`` until an own entry is due (0: one is; inf: none waits)."""
        return max(0.0, self._soonest - now)

    def due_in(self, now: float) -> float:
        """Seconds from ``now`` until a round has work: 0 while a parcel or a newcomer waits,
        else `own_due_in` (inf: nothing waits at all)."""
        return 0.0 if self._parcels or self._newcomers else self.own_due_in(now)

    def owes(self, key: bytes) -> bool:
        """Whether this node's own entry for ``key`` waits to be swept."""
        return key in self._own

    def parcel(self, kind: str, node: Node, key: bytes, record: Record) -> bool:
        """Queue ``record`` for ``key`` to ``node``; False if dropped at the cap."""
        node_id: bytes = node.id
        slot = self._parcels.get((kind, node_id))
        if slot is None:
            slot = self._parcels[(kind, node_id)] = (node, {})
        records = slot[1]
        if key not in records:
            if sum(self._parcel_keys.values()) >= self.limit:
                self.dropped += 1
                if not records:
                    del self._parcels[(kind, node_id)]
                return False
            self._parcel_keys[kind] += 1
        records[key] = merge(records.get(key, {}), record)
        self.notify()
        return True

    def welcome(self, node: Node) -> None:
        """Queue a contact met for the first time, for its hand-over to be planned."""
        self._newcomers[node.id] = node
        self.notify()

    def take_own(self, limit: int) -> list[tuple[bytes, Entry]]:
        """The ``limit`` oldest own entries, removed from the queue."""
        taken: list[tuple[bytes, Entry]] = []
        while self._own and len(taken) < limit:
            key, entry = self._own.popitem(last=False)
            del self._due[key]
            taken.append((key, entry))
        self._soonest = min(self._due.values(), default=math.inf)
        return taken

    def take_parcels(self, limit: int) -> list[Parcel]:
        """The oldest parcels, about ``limit`` keys in all (the last one may be split)."""
        taken: list[Parcel] = []
        budget = limit
        while self._parcels and budget > 0:
            (kind, node_id), (node, records) = next(iter(self._parcels.items()))
            keys = list(records)[:budget]
            taken.append(Parcel(kind, node, [(key, records.pop(key)) for key in keys]))
            self._parcel_keys[kind] -= len(keys)
            budget -= len(keys)
            if not records:
                del self._parcels[(kind, node_id)]
        return taken

    def take_newcomers(self) -> list[Node]:
        """Every contact waiting to be welcomed, removed from the queue."""
        taken = list(self._newcomers.values())
        self._newcomers.clear()
        return taken

    def depth(self) -> Depth:
        """How much waits now."""
        withdraw = sum(1 for entry in self._own.values() if not entry.present)
        return Depth(
            announce=len(self._own) - withdraw,
            withdraw=withdraw,
            hand_over=self._parcel_keys[HAND_OVER],
            repair=self._parcel_keys[REPAIR],
            newcomers=len(self._newcomers),
        )
