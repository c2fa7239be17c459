"""The roster: which node key each name belongs to, and which keys are revoked, with no sockets.

Theory of operation.

Rule 1: a name belongs to the key that first joined with it. The leader that admits a JOIN
binds the joiner's name to the joiner's key (`bind`), and refuses a JOIN whose name is bound to
another key (`conflict`): two hosts named alike would otherwise overwrite each other's folder.
A key may hold several names (a host renamed with --name keeps its old one); a name has one key.

Rule 2: a binding a node knows is never replaced by another key for that name, whoever says
so (`merge` keeps the local binding and reports the conflict). So a member that later leads a
ring, or sends a roster of its own making, cannot take a name that others already know, nor
the right to sign that owner's records that comes with it. Only a revocation frees a name.

Rule 3: a revoked key stays revoked: revocations are only ever added (`revoke`, `merge`), and
revoking drops the key's names. Any member may revoke another (`forget` at its prompt), so a
revocation is taken from any member's roster.

The roster travels as a map (`to_wire`, `from_wire`) beside the views (JOIN_OK, UPDATE, PONG)
and in a JOIN; the overlay keeps it in the state folder and watches it with `listen`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ring.errors import BadRequest

log = logging.getLogger(__name__)

MAX_NAMES = 4096
"""Most bindings a roster from the wire may hold (a LAN has tens of hosts)."""

MAX_REVOKED = 4096
"""Most revoked keys a roster from the wire may hold."""


def fingerprint(key: str) -> str:
    """A short, stable mark of a node key for people: the first 8 hex digits of its SHA-256."""
    try:
        raw = bytes.fromhex(key)
    except ValueError:
        raw = key.encode("utf-8", "replace")
    return hashlib.sha256(raw).hexdigest()[:8]


@dataclass(frozen=True)
class Binding:
    """`name` belongs to `key` since `since` (ns of wall-clock time, as its binder saw it)."""

    name: str
    key: str
    since: int


class Roster:
    """Names bound to keys, and revoked keys; every change is told to the listeners."""

    def __init__(self, bindings: Iterable[Binding] = (), revoked: Iterable[str] = ()) -> None:
        self._names: dict[str, Binding] = {b.name: b for b in bindings}
        self.revoked: set[str] = set(revoked)
        self._listeners: list[Callable[[], None]] = []

    def listen(self, cb: Callable[[], None]) -> None:
        """Call `cb()` after every change."""
        self._listeners.append(cb)

    def _changed(self) -> None:
        for cb in self._listeners:
            try:
                cb()
            except Exception:
                log.exception("roster listener failed")

    # -- reading ------------------------------------------------------------------------------

    @property
    def bindings(self) -> list[Binding]:
        """Every binding, by name."""
        return [self._names[name] for name in sorted(self._names)]

    def key_of(self, name: str) -> str | None:
        """The key `name` belongs to, if any."""
        binding = self._names.get(name)
        return None if binding is None else binding.key

    def names_of(self, key: str) -> list[str]:
        """The names bound to `key`, sorted."""
        return sorted(b.name for b in self._names.values() if b.key == key)

    def is_revoked(self, key: str) -> bool:
        """Whether `key` was revoked (forgotten)."""
        return key in self.revoked

    def conflict(self, name: str, key: str) -> Binding | None:
        """The binding that keeps `key` from using `name` (another key holds it), if any."""
        binding = self._names.get(name)
        return binding if binding is not None and binding.key != key else None

    # -- changing -----------------------------------------------------------------------------

    def bind(self, name: str, key: str, now_ns: int) -> bool:
        """Bind `name` to `key` if the name is free and the key not revoked (Rule 1).

        Returns:
            Whether anything changed.
        """
        if key in self.revoked or name in self._names:
            return False
        self._names[name] = Binding(name, key, now_ns)
        self._changed()
        return True

    def revoke(self, key: str) -> bool:
        """Revoke `key` and free its names (Rule 3). Returns whether anything changed."""
        if key in self.revoked:
            return False
        self.revoked.add(key)
        self._names = {n: b for n, b in self._names.items() if b.key != key}
        self._changed()
        return True

    def merge(self, other: Roster) -> list[tuple[Binding, Binding]]:
        """Take `other`'s revocations and its bindings of names this roster does not know.

        Returns:
            (kept, refused) for every name `other` binds to another key than this roster does:
            this roster's binding stays (Rule 2); the caller tells the user.
        """
        changed = False
        for key in sorted(other.revoked - self.revoked):
            self.revoked.add(key)
            changed = True
        before = len(self._names)
        self._names = {n: b for n, b in self._names.items() if b.key not in self.revoked}
        changed = changed or len(self._names) != before
        conflicts: list[tuple[Binding, Binding]] = []
        for binding in other.bindings:
            if binding.key in self.revoked:
                continue
            mine = self._names.get(binding.name)
            if mine is None:
                self._names[binding.name] = binding
                changed = True
            elif mine.key != binding.key:
                conflicts.append((mine, binding))
        if changed:
            self._changed()
        return conflicts

    # -- the wire -----------------------------------------------------------------------------

    def to_wire(self) -> dict[str, Any]:
        """The msgpack-ready map: {"names": [[name, key, since], ...], "revoked": [key, ...]}."""
        return {
            "names": [[b.name, b.key, b.since] for b in self.bindings],
            "revoked": sorted(self.revoked),
        }

    def wire(self) -> dict[str, Any] | None:
        """`to_wire`, or None for an empty roster (which messages leave out)."""
        return self.to_wire() if self._names or self.revoked else None

    @classmethod
    def from_wire(cls, body: Any) -> Roster:
        """Build a roster from a peer's map, checking every field.

        Raises:
            BadRequest: not the shape above, a field of the wrong type, a name twice, too many.
        """
        if not isinstance(body, dict):
            raise BadRequest("a roster is not a map")
        names, revoked = body.get("names", []), body.get("revoked", [])
        if not isinstance(names, list) or len(names) > MAX_NAMES:
            raise BadRequest(f"roster names must be a list of at most {MAX_NAMES}")
        if not isinstance(revoked, list) or len(revoked) > MAX_REVOKED:
            raise BadRequest(f"roster revoked must be a list of at most {MAX_REVOKED}")
        bindings: dict[str, Binding] = {}
        for item in names:
            binding = _binding(item)
            if binding.name in bindings:
                raise BadRequest("a roster binds one name twice")
            bindings[binding.name] = binding
        if not all(isinstance(k, str) and 0 < len(k) <= 128 for k in revoked):
            raise BadRequest("roster revoked must hold keys")
        return cls(bindings.values(), revoked)


def _binding(item: Any) -> Binding:
    """One [name, key, since] of a roster map."""
    if not isinstance(item, list) or len(item) != 3:
        raise BadRequest("a roster binding is not [name, key, since]")
    name, key, since = item
    if not (isinstance(name, str) and isinstance(key, str)) or not 0 < len(key) <= 128:
        raise BadRequest("a roster binding needs a name and a key")
    if not 0 < len(name) <= 255:
        raise BadRequest("a roster name has a bad length")
    if not isinstance(since, int) or isinstance(since, bool) or not 0 <= since < 2**63:
        raise BadRequest("a roster binding's since must be an integer")
    return Binding(name, key, since)
