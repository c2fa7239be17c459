"""Which pass works on which replica path now: per-path claims, with no I/O.

Theory of operation. Work on one replica path (a fetch, a local copy, a delete, the trash) is
done by one pass at a time: a pull round, or the apply of a push. A pass takes the paths it
means to work on (`Claim.take`) and gets those nobody else holds. A path held elsewhere is not
waited for: it is noted, and when its holder lets go of it (`Claim.release`) it comes back to
that holder as "again", for the engine to apply once more from the records stored by then. So
whichever pass reaches a path first, the newest record stored is applied last; nothing ever
waits on a claim, so passes never deadlock and a pushed edit never queues behind a download.
"""

from __future__ import annotations

from collections.abc import Iterable

Key = tuple[str, str]
"""(owner, path) of a replica."""


class Claims:
    """Every path some pass holds now, and those another pass asked for meanwhile."""

    def __init__(self) -> None:
        self._holders: dict[Key, Claim] = {}
        self._again: set[Key] = set()

    def claim(self) -> Claim:
        """A new pass's claim, holding nothing yet."""
        return Claim(self)

    def held(self) -> set[Key]:
        """Every path held by some pass now."""
        return set(self._holders)


class Claim:
    """The paths one pass holds; give them back with `release` or `close`."""

    def __init__(self, claims: Claims) -> None:
        self._claims = claims
        self.held: set[Key] = set()

    def take(self, keys: Iterable[Key]) -> set[Key]:
        """Hold every path of `keys` that no other pass holds.

        Returns:
            The paths of `keys` this pass holds now (those it held already included). The
            others are noted: their holder gets them back as "again" when it lets go.
        """
        got: set[Key] = set()
        for key in keys:
            holder = self._claims._holders.setdefault(key, self)
            if holder is self:
                got.add(key)
            else:
                self._claims._again.add(key)
        self.held |= got
        return got

    def release(self, keys: Iterable[Key]) -> set[Key]:
        """Let go of `keys` (those this pass holds; others are ignored).

        Returns:
            The paths let go of that another pass asked for while this one held them: they
            must be applied again, from the records stored now.
        """
        again: set[Key] = set()
        for key in set(keys) & self.held:
            self.held.discard(key)
            del self._claims._holders[key]
            if key in self._claims._again:
                self._claims._again.discard(key)
                again.add(key)
        return again

    def close(self) -> set[Key]:
        """Let go of everything still held; returns the paths to apply again (see `release`)."""
        return self.release(set(self.held))
