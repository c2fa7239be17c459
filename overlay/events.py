"""The quiet lines a person sees without asking: the start-up banner, members joining and
leaving the ring, and a host with no LAN. Plain functions from data to text, tested alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ring.membership import Member

MAX_NAMED = 4
"""Members named one by one in a ring change; more are summed up in one line."""

NO_LAN = (
    "! no LAN found (no network interface with an IPv4 address): this host is alone;"
    " restart once the network is up, or reach a host with --peer HOST:PORT"
)


def banner_lines(name: str, folder: Path, network_id: str, ring_size: int, dht: bool) -> list[str]:
    """What a node says once it is up: who it is, what it shares, with whom, and how to go on.

    Args:
        folder: this host's own folder (`Shared/<name>`).
        network_id: the network's public id in hex (`Credentials.network_id`).
    """
    index = "holder index on (--dht)" if dht else "no holder index (start with --dht for one)"
    others = ring_size - 1
    ring = "alone in its ring so far" if others == 0 else f"in a ring of {ring_size} host(s)"
    return [
        f"this host is {name!r}; your files go in {folder}/",
        f"network {network_id[:16]}, {ring}; {index}",
        "type 'help' for the commands, 'exit' to leave",
    ]


def ring_changes(before: Sequence[Member] | None, after: Sequence[Member], me: str) -> list[str]:
    """One line per member that joined or left between two views of the ring (this node, key
    `me`, left out), or one line for many; none for the first view (`before` None)."""
    if before is None:
        return []
    old = {m.key: m.name for m in before if m.key != me}
    new = {m.key: m.name for m in after if m.key != me}
    joined = [new[k] for k in new if k not in old]
    left = [old[k] for k in old if k not in new]
    size = f"(ring of {len(after)})"
    lines = []
    for names, sign, verb in ((joined, "+", "joined"), (left, "-", "left")):
        if len(names) > MAX_NAMED:
            lines.append(f"{sign} {len(names)} hosts {verb} the ring {size}")
        else:
            lines.extend(f"{sign} {n} {verb} the ring {size}" for n in names)
    return lines
