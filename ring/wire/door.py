"""The one door of a node: every connection it opens or accepts passes through a `Door`.

Like syncthing's `lib/connections/service.go`, this is the only place that dials and accepts:
the asyncio requests of the ring and of sync, the blocking sockets of download threads, and the
server's accepted connections are all made here, so a handshake or a per-connection limit put
here applies to every byte in and out of the node. One `Door` belongs to one node (tests run
many nodes in one process); nothing else in the node opens a socket to a peer.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

from ring.errors import PeerUnreachable
from ring.wire.codec import Message
from ring.wire.streams import DEFAULT_TIMEOUT, Channel, Connection

STREAM_LIMIT = 1 << 20
"""Buffer of an accepted stream before the transport pauses reading."""


class Door:
    """Opens and accepts the connections of one node."""

    async def open(self, host: str, port: int, timeout: float = DEFAULT_TIMEOUT) -> Connection:
        """Connect to a peer on the event loop.

        Raises:
            PeerUnreachable: refused, timed out, or no route.
        """
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except (TimeoutError, OSError) as exc:
            raise PeerUnreachable(f"{host}:{port}: {exc or 'timed out'}") from None
        return Connection(reader, writer, (host, port))

    async def request(
        self, host: str, port: int, msg: Message, timeout: float = DEFAULT_TIMEOUT
    ) -> Message:
        """One request on a fresh connection, one reply, then close (small control messages).

        Raises:
            PeerUnreachable, RemoteError, RemoteProtocolError: as `Connection.exchange`.
        """
        conn = await self.open(host, port, timeout)
        try:
            return await conn.exchange(msg, timeout)
        finally:
            await conn.close()

    def open_blocking(self, host: str, port: int, timeout: float) -> Channel:
        """Connect from a worker thread; every later read on it waits at most `timeout`.

        Raises:
            PeerUnreachable: refused, timed out, or no route.
        """
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise PeerUnreachable(f"{host}:{port}: {exc}") from None
        return Channel(sock, (host, port))

    async def listen(
        self, sock: socket.socket, serve: Callable[[Connection], Awaitable[None]]
    ) -> asyncio.Server:
        """Accept connections on a bound socket and hand each to `serve` as a Connection."""

        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peername = writer.get_extra_info("peername") or ("?", 0)
            await serve(Connection(reader, writer, (peername[0], peername[1])))

        return await asyncio.start_server(accepted, sock=sock, limit=STREAM_LIMIT)
