"""The TCP service shell: accept connections, read frames, dispatch them to handlers, reply.

This module only moves bytes; connections are accepted through the node's `Door`. Which
handler serves which message type is decided by whoever builds the node (`overlay/node.py`
routes ring and sync messages onto one server). A peer that breaks the protocol gets an ERROR
reply and a closed connection; the server itself never stops because of what a peer sent. A
peer the door's gate no longer admits (forgotten since the connection began) gets its
connection closed before its next request is served, with no reply (`cut` ends it at once).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable

from ring.errors import (
    ConnectionClosed,
    Refused,
    RemoteProtocolError,
    TruncatedFrame,
    reply_for,
)
from ring.wire.codec import Error, Message
from ring.wire.door import Door
from ring.wire.streams import Connection
from ring.wire.tasks import cancel_and_wait

log = logging.getLogger(__name__)

IDLE_TIMEOUT = 120.0
"""A connection that sends no frame for this long is closed (no slow-loris fills the node)."""


Handler = Callable[[Message, Connection], Awaitable[Message | None]]
"""Serve one request: return the reply, or None when the handler wrote the reply itself."""


class FrameServer:
    """A TCP server on (host, port) that routes each message type to one handler."""

    def __init__(
        self,
        host: str,
        port: int,
        idle_timeout: float = IDLE_TIMEOUT,
        *,
        door: Door,
    ) -> None:
        """Nothing is bound until `start`.

        Args:
            host: the address to listen on.
            port: the port (0: any free one; `start` returns it).
            idle_timeout: seconds a connection may stay silent between requests.
            door: the node's door, through which connections are accepted (and which the
                node's parts use to dial).
        """
        self.door = door
        self.host = host
        self.port = port
        self.idle_timeout = idle_timeout
        self._routes: dict[str, Handler] = {}
        self._server: asyncio.base_events.Server | None = None
        self._tasks: dict[asyncio.Task[None], Connection] = {}

    @property
    def connections(self) -> int:
        """Connections being served now (past the handshake and the gate)."""
        return len(self._tasks)

    def route(self, msg_type: type[Message], handler: Handler) -> None:
        """Serve every message of `msg_type` with `handler`."""
        self._routes[msg_type.TYPE] = handler

    def handler(self, msg_type: type[Message]) -> Handler | None:
        """The handler serving `msg_type`, if any."""
        return self._routes.get(msg_type.TYPE)

    def wrap(self, wrapper: Callable[[Handler], Handler]) -> None:
        """Put `wrapper` around every route (a measuring, delaying or failing middleman).

        Tests use it to make one node slow or faulty without a proxy in front of it.
        """
        self._routes = {name: wrapper(handler) for name, handler in self._routes.items()}

    async def start(self) -> int:
        """Bind (with address reuse, so a restart works at once) and return the bound port."""
        # IPPROTO_TCP, not 0: accepted sockets copy it, and asyncio turns Nagle off only on
        # sockets that say TCP. With Nagle on, the second of the two TLS session tickets waited
        # for the client's delayed ACK: 40 ms before the first reply on every new connection.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self._server = await self.door.listen(sock, self._serve)
        self.port = sock.getsockname()[1]
        log.debug("serving on %s:%d", self.host, self.port)
        return self.port

    async def cut(self, identity: str) -> None:
        """End every connection from the peer `identity` now (it was forgotten)."""
        await cancel_and_wait([t for t, conn in self._tasks.items() if conn.identity == identity])

    async def close(self) -> None:
        """Stop accepting and cut every open connection."""
        if self._server is not None:
            self._server.close()
        await cancel_and_wait(list(self._tasks))
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, conn: Connection) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks[task] = conn
        try:
            await self._serve_frames(conn)
        except asyncio.CancelledError:
            pass
        finally:
            self._tasks.pop(task, None)
            await conn.close()

    async def _serve_frames(self, conn: Connection) -> None:
        while True:
            try:
                msg = await asyncio.wait_for(conn.read(), self.idle_timeout)
            except ConnectionClosed:
                return
            except TimeoutError:
                log.debug("closing idle connection from %s:%d", *conn.peer)
                return
            except TruncatedFrame as exc:
                log.warning("peer %s:%d cut a frame short: %s", conn.peer[0], conn.peer[1], exc)
                return
            except RemoteProtocolError as exc:
                log.warning("bad frame from %s:%d: %s", conn.peer[0], conn.peer[1], exc)
                await self._reply_error(conn, *reply_for(exc, "")[:2])
                return
            except OSError as exc:
                log.debug("connection from %s:%d broke: %s", conn.peer[0], conn.peer[1], exc)
                return
            if not self.door.admits(conn):
                log.debug("closing a connection of %s, no longer admitted", conn.identity[:16])
                return
            if not await self._dispatch(msg, conn):
                return

    async def _dispatch(self, msg: Message, conn: Connection) -> bool:
        """Run the handler; False when the connection must close."""
        handler = self._routes.get(msg.TYPE)
        if handler is None:
            log.warning("no handler for %s from %s:%d", msg.TYPE, *conn.peer)
            await self._reply_error(conn, "unknown_type", f"{msg.TYPE} is not served here")
            return False
        try:
            reply = await handler(msg, conn)
        except (OSError, ConnectionError) as exc:
            log.debug("connection from %s:%d broke during %s: %s", *conn.peer, msg.TYPE, exc)
            return False
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if isinstance(exc, RemoteProtocolError):
                log.warning("refused %s from %s:%d: %s", msg.TYPE, *conn.peer, exc)
            elif not isinstance(exc, Refused):
                log.exception("handler for %s failed", msg.TYPE)
            code, reason, keep_open = reply_for(exc, msg.TYPE)
            await self._reply_error(conn, code, reason)
            return keep_open
        if reply is not None:
            try:
                await conn.send(reply)
            except (OSError, ConnectionError):
                return False
        return True

    async def _reply_error(self, conn: Connection, code: str, reason: str) -> None:
        try:
            await asyncio.wait_for(conn.send(Error(code, reason)), 5.0)
        except (TimeoutError, OSError, ConnectionError):
            pass
