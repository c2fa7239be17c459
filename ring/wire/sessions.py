"""TLS sessions a node resumes: one per peer address, so a new connection skips the certificates.

A full TLS 1.3 handshake with certificates both ways costs this machine's OpenSSL 3.0 about
2.7 ms of CPU (both ends), a resumed one about 1.1 ms; a node opens a connection for every ring
request, manifest pull and download, and tests run dozens of nodes on one event loop, so the
difference decides whether heartbeats keep up. After a connection closes, the door keeps the
session that the peer's ticket made (`Sessions.keep`) and offers it on the next connection to
that address (`Sessions.resuming`). A resumed session keeps the peer's certificate, so the
identity it proved stays known; a peer that cannot resume it (it restarted, or someone else
now listens there) simply makes a full handshake.

asyncio builds its TLS objects itself and takes no session for them, so the client context is
a `ResumingContext`, which takes the session to offer from a context variable set around the
connect (each connect runs in a task of its own, so concurrent connects do not mix).
"""

from __future__ import annotations

import ssl
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

MAX_SESSIONS = 256
"""Most peer addresses whose session is kept (the least recently used is dropped first)."""

_offer: ContextVar[ssl.SSLSession | None] = ContextVar("lanshare_tls_offer", default=None)


class ResumingContext(ssl.SSLContext):
    """A client context that offers the session `Sessions.resuming` set, also to asyncio."""

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        offered = session if session is not None else _offer.get()
        return super().wrap_bio(incoming, outgoing, server_side, server_hostname, offered)


class Sessions:
    """The resumable session of each peer address; shared by the loop and worker threads."""

    def __init__(self, limit: int = MAX_SESSIONS) -> None:
        self.limit = limit
        self._by_peer: OrderedDict[
            tuple[str, int], tuple[ssl.SSLSession, ssl.SSLContext | None]
        ] = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self, peer: tuple[str, int], context: ssl.SSLContext | None = None
    ) -> ssl.SSLSession | None:
        """The session to offer `peer`, if one is kept (and made by `context`, if given: a
        session can only be resumed by the context that made it)."""
        with self._lock:
            kept = self._by_peer.get(peer)
        if kept is None or (context is not None and kept[1] not in (None, context)):
            return None
        return kept[0]

    def keep(
        self,
        peer: tuple[str, int],
        session: ssl.SSLSession | None,
        context: ssl.SSLContext | None = None,
    ) -> None:
        """Keep `session` (made by `context`) for `peer` if it can be resumed (it holds the
        peer's ticket)."""
        if session is None or not session.has_ticket:
            return
        with self._lock:
            self._by_peer[peer] = (session, context)
            self._by_peer.move_to_end(peer)
            while len(self._by_peer) > self.limit:
                self._by_peer.popitem(last=False)

    def clear(self) -> None:
        """Forget every session (the client context they belong to was replaced)."""
        with self._lock:
            self._by_peer.clear()

    @contextmanager
    def resuming(
        self, peer: tuple[str, int], context: ssl.SSLContext | None = None
    ) -> Iterator[ssl.SSLSession | None]:
        """Offer `peer`'s session (made by `context`) to the connections made inside (by a
        `ResumingContext`)."""
        session = self.get(peer, context)
        token = _offer.set(session)
        try:
            yield session
        finally:
            _offer.reset(token)
