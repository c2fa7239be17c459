"""The roster in the state folder: names bound to node keys, and revoked keys, across restarts.

The ring keeps the roster in memory (`ring/roster.py`) and tells every change; this module
reads it at start and writes it, atomically, after each change, as `roster.json`: the same map
the roster travels as on the wire (`{"names": [[name, key, since], ...], "revoked": [...]}`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from overlay.keystore import replace
from ring.errors import RemoteProtocolError
from ring.roster import Roster

log = logging.getLogger(__name__)

ROSTER_FILE = "roster.json"


def load_roster(state_dir: Path) -> Roster:
    """The stored roster (empty if none); it is saved again after every change.

    A file that cannot be read is logged and replaced at the next change: the ring's members
    hand a node their roster again when it joins.
    """
    path = state_dir / ROSTER_FILE
    roster = Roster()
    if path.exists():
        try:
            roster = Roster.from_wire(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, RemoteProtocolError) as exc:
            log.warning("cannot read the roster %s (%s); starting with an empty one", path, exc)

    def save() -> None:
        try:
            replace(path, json.dumps(roster.to_wire()).encode("utf-8"))
        except OSError as exc:
            log.error("cannot save the roster %s: %s", path, exc)

    roster.listen(save)
    return roster
