"""Failure detection without sockets: whom to ping, when a silent neighbour counts as dead.

Each node pings the first member after it that it does not suspect. `misses` failures in a row
make that member a suspect; the caller then probes the next few members (the successor list)
and reports every suspect to the acting leader, which verifies before removing anyone. Pinging
goes on with the first member not suspected, so a node is never left without a next to watch.
"""

from __future__ import annotations

import logging

from ring.membership import SUCCESSORS, Member, View

log = logging.getLogger(__name__)

RTT_WEIGHT = 0.25
"""Weight of a new sample in the smoothed round-trip time (as TCP's SRTT uses 1/8, but quicker)."""


class FailureDetector:
    """Miss counts, suspects and round-trip times for one node, driven by ping outcomes."""

    def __init__(self, me: str, misses: int, successors: int = SUCCESSORS) -> None:
        if misses < 1:
            raise ValueError("misses must be at least 1")
        self.me = me
        self.misses = misses
        self.successors = successors
        self.suspects: set[str] = set()
        self.rtt: dict[str, float] = {}
        self._missed: dict[str, int] = {}

    def target(self, view: View) -> Member | None:
        """The member to ping now: the first after this node that is not suspected."""
        index = view.position(self.me)
        if index is None:
            return None
        size = len(view.members)
        for step in range(1, size):
            member = view.members[(index + step) % size]
            if member.key not in self.suspects:
                return member
        return None

    def measure_target(self, view: View, turn: int) -> Member | None:
        """The member to time this beat besides the next: the others in turn, so that `rtt`
        covers every member (the sync layer ranks holders by it) at one extra ping a beat."""
        watched = self.target(view)
        others = [m for m in view.members if m.key != self.me and m != watched]
        return others[turn % len(others)] if others else None

    def on_reply(self, key: str, rtt: float) -> None:
        """`key` answered a ping after `rtt` seconds: it is alive."""
        self._missed.pop(key, None)
        self.suspects.discard(key)
        old = self.rtt.get(key)
        self.rtt[key] = rtt if old is None else (1 - RTT_WEIGHT) * old + RTT_WEIGHT * rtt

    def on_miss(self, key: str) -> bool:
        """`key` did not answer; True when this miss makes it a suspect."""
        count = self._missed.get(key, 0) + 1
        if count < self.misses:
            self._missed[key] = count
            return False
        self._missed.pop(key, None)
        self.suspects.add(key)
        log.info("%s missed %d pings in a row: suspected dead", key, count)
        return True

    def to_probe(self, view: View, dead: str) -> list[Member]:
        """The successor list after `dead` that is not already suspected (never this node)."""
        return [
            m
            for m in view.successors(dead, self.successors)
            if m.key != self.me and m.key not in self.suspects
        ]

    def cleared(self, alive: View) -> None:
        """The acting leader verified and kept the members of `alive`: stop suspecting them."""
        self.suspects -= alive.keys

    def prune(self, view: View) -> None:
        """Forget what concerns nodes no longer in `view` (removed, or another ring)."""
        keys = view.keys
        self.suspects &= keys
        self._missed = {k: v for k, v in self._missed.items() if k in keys}
        for key in [k for k in self.rtt if k not in keys]:
            del self.rtt[key]
