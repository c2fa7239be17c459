"""Which content hashes this node holds on disk, with listeners told of every change.

The DHT announces this node as a holder of a hash when it starts holding it and withdraws the
announcement when it stops; several files may share one hash, so holdings are counted. It
announces a partial holder while a block download runs (`Fetching`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

log = logging.getLogger(__name__)


class Holdings:
    """A multiset of held hashes; listeners hear (sha, True) on 0->1 and (sha, False) on 1->0."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._listeners: list[Callable[[str, bool], None]] = []

    def listen(self, cb: Callable[[str, bool], None]) -> None:
        """Call `cb` on every change from now on."""
        self._listeners.append(cb)

    def add(self, sha256: str) -> None:
        """One more file holds this content."""
        self._counts[sha256] += 1
        if self._counts[sha256] == 1:
            self._tell(sha256, True)

    def drop(self, sha256: str) -> None:
        """One file fewer holds this content."""
        if self._counts[sha256] <= 0:
            return
        self._counts[sha256] -= 1
        if self._counts[sha256] == 0:
            del self._counts[sha256]
            self._tell(sha256, False)

    def hashes(self) -> set[str]:
        """Every hash held now."""
        return set(self._counts)

    def _tell(self, sha256: str, held: bool) -> None:
        _tell_all(self._listeners, sha256, held, "holding")


class Fetching:
    """Contents this node is downloading in blocks: while one runs, this node is a partial
    holder of it (it serves the blocks it has), and the DHT says so. Listeners hear
    (sha, True) when such a download starts and (sha, False) when it is over (the file placed,
    or the download given up)."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[str, bool], None]] = []

    def listen(self, cb: Callable[[str, bool], None]) -> None:
        """Call `cb` on every start and end from now on."""
        self._listeners.append(cb)

    def tell(self, sha256: str, active: bool) -> None:
        """A block download of `sha256` started (True) or is over (False)."""
        _tell_all(self._listeners, sha256, active, "fetching")


def _tell_all(
    listeners: list[Callable[[str, bool], None]], sha256: str, flag: bool, what: str
) -> None:
    for cb in listeners:
        try:
            cb(sha256, flag)
        except Exception:  # a listener's bug must not stop the sync engine
            log.exception("%s listener failed for %s", what, sha256[:12])
