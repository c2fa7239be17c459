"""Kept connections: a door's idle connections to its peers, reused for the next request.

The ring sends small requests to the same few peers all the time (a PING to its neighbour every
heartbeat, probes, control messages). On a fresh connection each would pay a TLS handshake:
CPU on both ends, and two more round trips inside the round-trip time the ring measures. So
`Door.request(..., reuse=True)` takes an idle connection to the peer from this pool, and gives
it back once the reply came. Only replies that are one frame with nothing after them may use
it (a raw body left on the stream would be read as the next reply).

A kept connection is dropped instead of reused when the peer has closed it, when it sat idle
longer than KEPT_IDLE (well under the server's own idle timeout, so a server never closes one
just as it is reused), or when it belongs to another event loop (tests run a loop per test).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable

from ring.wire.streams import Connection

KEPT_IDLE = 30.0
"""Seconds an idle connection is kept for reuse (servers close idle ones after 120 s)."""

MAX_KEPT = 64
"""Most idle connections a door keeps, one per peer address (the oldest is closed first)."""


class Pool:
    """At most one idle connection per peer address, with the time it became idle."""

    def __init__(
        self,
        idle: float = KEPT_IDLE,
        limit: int = MAX_KEPT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle = idle
        self.limit = limit
        self.clock = clock
        self._kept: OrderedDict[
            tuple[str, int], tuple[Connection, float, asyncio.AbstractEventLoop]
        ] = OrderedDict()
        self.closed = False

    def take(self, peer: tuple[str, int]) -> Connection | None:
        """An idle connection to `peer` that is still usable, or None (it is then the caller's)."""
        entry = self._kept.pop(peer, None)
        if entry is None:
            return None
        conn, since, loop = entry
        if loop is not asyncio.get_running_loop():
            return None  # that loop is gone: its transports cannot be used or closed from here
        if self.clock() - since > self.idle or conn.reader.at_eof() or conn.writer.is_closing():
            conn.writer.close()
            return None
        return conn

    def give(self, peer: tuple[str, int], conn: Connection) -> None:
        """Keep `conn` for the next request to `peer` (or close it if one is kept already)."""
        if self.closed or peer in self._kept or conn.reader.at_eof() or conn.writer.is_closing():
            conn.writer.close()
            return
        self._kept[peer] = (conn, self.clock(), asyncio.get_running_loop())
        while len(self._kept) > self.limit:
            oldest, _since, _loop = self._kept.popitem(last=False)[1]
            oldest.writer.close()

    def drop(self, identity: str) -> None:
        """Close every kept connection to the peer `identity` (it was forgotten)."""
        for peer, (conn, _since, _loop) in list(self._kept.items()):
            if conn.identity == identity:
                del self._kept[peer]
                conn.writer.close()

    async def close(self) -> None:
        """Close every kept connection of this loop; keep none from now on."""
        self.closed = True
        loop = asyncio.get_running_loop()
        kept, self._kept = list(self._kept.values()), OrderedDict()
        await asyncio.gather(*(conn.close() for conn, _since, owner in kept if owner is loop))
