"""The one door of a node: every connection it opens or accepts passes through a `Door`.

Like syncthing's `lib/connections/service.go`, this is the only place that dials and accepts:
the asyncio requests of the ring and of sync, the blocking sockets of download threads, and the
server's accepted connections are all made here, so a handshake or a per-connection limit put
here applies to every byte in and out of the node. One `Door` belongs to one node (tests run
many nodes in one process); nothing else in the node opens a socket to a peer.

The door holds the node's credentials (`Tls`): every connection it opens or accepts is mutual
TLS 1.3 against the network's CA, and every `Connection` and `Channel` it makes carries the
peer's proven `identity`. A peer that fails the handshake is dropped before any frame is read
or written, and nothing is logged for it above debug level (a stranger must not fill the log).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable

from ring.errors import PeerUnreachable
from ring.wire.codec import Message
from ring.wire.pool import Pool
from ring.wire.streams import DEFAULT_TIMEOUT, Channel, Connection
from ring.wire.tls import Tls, peer_identity

STREAM_LIMIT = 1 << 20
"""Buffer of an accepted stream before the transport pauses reading."""


class Door:
    """Opens and accepts the connections of one node, all of them through its TLS."""

    def __init__(self, tls: Tls | None) -> None:
        """Args:
        tls: the node's credentials. None only through `plain`.
        """
        self.tls = tls
        self._kept = Pool()

    @classmethod
    def plain(cls) -> Door:
        """A door without TLS, for measuring what TLS costs (bench/tls_bench.py).

        Never used by a node: a node always has credentials, and a plain door can talk to no
        node (their doors drop it in the handshake).
        """
        return cls(None)

    async def open(self, host: str, port: int, timeout: float = DEFAULT_TIMEOUT) -> Connection:
        """Connect to a peer on the event loop (connect and handshake within `timeout`).

        Raises:
            PeerUnreachable: refused, timed out, no route, or the handshake failed.
        """
        tls, peer = self.tls, (host, port)
        try:
            if tls is None:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port), timeout
                )
                return Connection(reader, writer, peer)
            with tls.sessions.resuming(peer):
                opening = asyncio.open_connection(
                    host,
                    port,
                    ssl=tls.client,
                    server_hostname="",
                    ssl_handshake_timeout=tls.handshake_timeout,
                )
                reader, writer = await asyncio.wait_for(opening, timeout)
        except (TimeoutError, OSError) as exc:
            raise PeerUnreachable(f"{host}:{port}: {exc or 'timed out'}") from None
        ssl_object: ssl.SSLObject = writer.get_extra_info("ssl_object")

        def keep_session() -> None:
            tls.sessions.keep(peer, ssl_object.session)

        return Connection(reader, writer, peer, _identity(writer), on_close=keep_session)

    async def request(
        self,
        host: str,
        port: int,
        msg: Message,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        reuse: bool = False,
    ) -> Message:
        """One request, one reply (small control messages).

        Args:
            reuse: send on a kept connection to this peer if there is one, and keep the
                connection for the next request (`ring/wire/pool.py`); only for requests whose
                reply is one frame with no raw body after it. Otherwise a fresh connection,
                closed after the reply.

        Raises:
            PeerUnreachable, RemoteError, RemoteProtocolError: as `Connection.exchange`.
        """
        return (await self.ask(host, port, msg, timeout, reuse=reuse))[0]

    async def ask(
        self,
        host: str,
        port: int,
        msg: Message,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        reuse: bool = False,
    ) -> tuple[Message, str]:
        """`request`, and the identity of the peer that answered (the ring checks who sent
        the views it is handed).

        Raises:
            PeerUnreachable, RemoteError, RemoteProtocolError: as `Connection.exchange`.
        """
        peer = (host, port)
        conn = self._kept.take(peer) if reuse else None
        if conn is None:
            conn = await self.open(host, port, timeout)
        try:
            reply = await conn.exchange(msg, timeout)
        except BaseException:
            await conn.close()
            raise
        if reuse:
            self._kept.give(peer, conn)
        else:
            await conn.close()
        return reply, conn.identity

    async def close(self) -> None:
        """Close the connections kept for reuse (the node is stopping)."""
        await self._kept.close()

    def open_blocking(self, host: str, port: int, timeout: float) -> Channel:
        """Connect from a worker thread; every later read on it waits at most `timeout`.

        Raises:
            PeerUnreachable: refused, timed out, no route, or the handshake failed.
        """
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise PeerUnreachable(f"{host}:{port}: {exc}") from None
        tls, peer = self.tls, (host, port)
        if tls is None:
            return Channel(sock, peer)
        try:
            wrapped = tls.client.wrap_socket(sock, session=tls.sessions.get(peer))
        except OSError as exc:  # ssl.SSLError and a timeout are OSErrors too
            sock.close()
            raise PeerUnreachable(f"{host}:{port}: handshake failed: {exc}") from None
        return Channel(
            wrapped,
            peer,
            peer_identity(wrapped.getpeercert(binary_form=True)),
            on_close=lambda: tls.sessions.keep(peer, wrapped.session),
        )

    async def listen(
        self, sock: socket.socket, serve: Callable[[Connection], Awaitable[None]]
    ) -> asyncio.Server:
        """Accept connections on a bound socket and hand each to `serve` as a Connection.

        With TLS, `serve` sees only connections whose handshake succeeded: asyncio drops the
        others (and logs them only in its debug mode), so nothing reaches a handler.
        """

        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peername = writer.get_extra_info("peername") or ("?", 0)
            await serve(Connection(reader, writer, (peername[0], peername[1]), _identity(writer)))

        if self.tls is None:
            return await asyncio.start_server(accepted, sock=sock, limit=STREAM_LIMIT)
        return await asyncio.start_server(
            accepted,
            sock=sock,
            limit=STREAM_LIMIT,
            ssl=self.tls.server,
            ssl_handshake_timeout=self.tls.handshake_timeout,
        )


def _identity(writer: asyncio.StreamWriter) -> str:
    """The peer's identity on an asyncio stream ("" on a plain one)."""
    ssl_object: ssl.SSLObject | None = writer.get_extra_info("ssl_object")
    return peer_identity(ssl_object.getpeercert(binary_form=True)) if ssl_object else ""
