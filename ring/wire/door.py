"""The one door of a node: every connection it opens or accepts passes through a `Door`.

Like syncthing's `lib/connections/service.go`, this is the only place that dials and accepts:
the asyncio requests of the ring and of sync, the blocking sockets of download threads, and the
server's accepted connections are all made here, so a handshake or a per-connection limit put
here applies to every byte in and out of the node. One `Door` belongs to one node (tests run
many nodes in one process); nothing else in the node opens a socket to a peer.

The door holds the node's credentials (`Tls`): every connection it opens or accepts is mutual
TLS 1.3 against the network's CA, and every `Connection` and `Channel` it makes carries the
peer's proven `identity` and who signed its certificate (`issuer`). A peer that fails the
handshake is dropped before any frame is read or written, and nothing is logged for it above
debug level (a stranger must not fill the log).

What a peer can make the door hold is bounded (`docs/LIMITS.md`): accepted connections by its
`Slots` (in total and per address, taken before the handshake, so a connection over the caps
costs no handshake and a member's pushes out a stranger's: `ring/wire/slots.py`), bytes of
partial frames by its `FrameBudget` and of bodies being sent by its `SendBudget`
(`ring/wire/budget.py`), and writes by `write_timeout` (`TimedWriter` in
`ring/wire/streams.py`).

A handshake proves only that the peer holds a certificate of the network (or of its previous
key, after a re-key). Whom of those the node still talks to is its `Gate`'s decision (the
overlay's: a forgotten member is refused): asked after every handshake, before a kept
connection is used again, and by the server before every request, since a resumed session or
a kept connection skips the certificate check.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
import ssl
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from ring.errors import PeerUnreachable
from ring.wire.budget import FrameBudget, SendBudget
from ring.wire.codec import Message
from ring.wire.pool import Pool
from ring.wire.slots import Caps, Slots
from ring.wire.streams import DEFAULT_TIMEOUT, WRITE_TIMEOUT, Channel, Connection
from ring.wire.tls import Tls, peer_identity, peer_issuer

log = logging.getLogger(__name__)

STREAM_LIMIT = 256 * 1024
"""Buffer of an accepted stream before the transport pauses reading (it holds up to twice
this): bytes a peer can park in a node per connection beside its frame."""

KNOCKERS = 4
"""Threads that knock (`Door.knock`): their own, so a knock never waits behind the blocking
downloads in the loop's default executor while the leader's verification runs."""

_knockers = ThreadPoolExecutor(KNOCKERS, thread_name_prefix="door-knock")


class Gate(Protocol):
    """Who, of the peers that passed the handshake, this node talks with."""

    def admits(self, identity: str, issuer: str) -> bool:
        """Whether the peer `identity`, whose certificate `issuer` signed, may talk with us."""

    def dialed(self, address: tuple[str, int], identity: str, issuer: str) -> None:
        """This node opened a connection to `address` and the gate admitted the peer there
        (the overlay gives a peer on an older network key the current one)."""


class Door:
    """Opens and accepts the connections of one node, all of them through its TLS."""

    def __init__(
        self,
        tls: Tls | None,
        *,
        caps: Caps | None = None,
        budget: FrameBudget | None = None,
        write_timeout: float = WRITE_TIMEOUT,
    ) -> None:
        """Args:
        tls: the node's credentials. None only through `plain`.
        caps: the bounds of the connection table; by default derived, when `listen` starts,
            from the descriptor limit the process has then (`Caps.for_descriptors`).
        budget: the bytes of partial frames accepted connections may hold together.
        write_timeout: seconds a write on any of the door's connections may wait for the peer.
        """
        self.tls = tls
        self.gate: Gate | None = None
        self.caps = caps
        self.slots: Slots | None = None
        self.budget = budget or FrameBudget()
        self.send_budget = SendBudget()
        self.write_timeout = write_timeout
        self._kept = Pool()

    def admits(self, conn: Connection | Channel) -> bool:
        """Whether the gate (if any) lets the peer on `conn` talk with this node now."""
        return self.gate is None or self.gate.admits(conn.identity, conn.issuer)

    def drop(self, identity: str) -> None:
        """Close the kept connections to the peer `identity` (it was forgotten)."""
        self._kept.drop(identity)

    @classmethod
    def plain(cls) -> Door:
        """A door without TLS: for measuring what TLS costs (bench/tls_bench.py), and for the
        one exchange a host without credentials has with a member, joining by code, whose
        encryption is its PAKE (overlay/pairing_wire.py).

        Never a node's own door: a node always has credentials, and a plain door can talk to no
        node's (their doors drop it in the handshake).
        """
        return cls(None)

    async def open(
        self, host: str, port: int, timeout: float = DEFAULT_TIMEOUT, *, source: str | None = None
    ) -> Connection:
        """Connect to a peer on the event loop (connect and handshake within `timeout`).

        Args:
            source: the local address to dial from (by default the kernel's choice); tests on
                loopback play several hosts with it.

        Raises:
            PeerUnreachable: refused, timed out, no route, or the handshake failed.
        """
        tls, peer = self.tls, (host, port)
        local = None if source is None else (source, 0)
        try:
            if tls is None:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port, local_addr=local), timeout
                )
                return Connection(reader, writer, peer, write_timeout=self.write_timeout)
            client = tls.client  # one context for the whole connection, even if renewed
            with tls.sessions.resuming(peer, client):
                opening = asyncio.open_connection(
                    host,
                    port,
                    ssl=client,
                    server_hostname="",
                    ssl_handshake_timeout=tls.handshake_timeout,
                    local_addr=local,
                )
                reader, writer = await asyncio.wait_for(opening, timeout)
        except (TimeoutError, OSError) as exc:
            raise PeerUnreachable(f"{host}:{port}: {exc or 'timed out'}") from None
        ssl_object: ssl.SSLObject = writer.get_extra_info("ssl_object")

        def keep_session() -> None:
            tls.sessions.keep(peer, ssl_object.session, client)

        der = ssl_object.getpeercert(binary_form=True)
        conn = Connection(
            reader,
            writer,
            peer,
            peer_identity(der),
            on_close=keep_session,
            issuer=peer_issuer(der),
            write_timeout=self.write_timeout,
        )
        if not self.admits(conn):
            writer.close()
            raise PeerUnreachable(f"{host}:{port}: this node does not talk with that peer")
        if self.gate is not None:
            self.gate.dialed(peer, conn.identity, conn.issuer)
        return conn

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
        if conn is not None and not self.admits(conn):
            conn.writer.close()
            conn = None
        if conn is None:
            conn = await self.open(host, port, timeout)
        try:
            reply = await conn.exchange(msg, timeout)
        except PeerUnreachable:
            conn.abort()  # a graceful close would wait on the peer that just failed to answer
            raise
        except BaseException:
            await conn.close()
            raise
        if reuse:
            self._kept.give(peer, conn)
        else:
            await conn.close()
        return reply, conn.identity

    async def knock(self, host: str, port: int, timeout: float) -> bool:
        """Whether a process listens at host:port: a TCP handshake, closed at once, no TLS,
        nothing sent.

        The kernel completes the handshake for a listening socket even while the process
        behind it is too busy to run (its event loop held, the host short of CPU), and refuses
        it, or lets it time out, once the process or its host is gone: a member that does not
        answer but is knocked on is busy, not dead. The knock runs in a thread, timed by the
        socket: a stall of this node's own event loop cannot make it time out.
        """

        def knock() -> bool:
            try:
                socket.create_connection((host, port), timeout).close()
            except OSError:
                return False
            return True

        return await asyncio.get_running_loop().run_in_executor(_knockers, knock)

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
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # requests go at once
        except OSError as exc:
            raise PeerUnreachable(f"{host}:{port}: {exc}") from None
        tls, peer = self.tls, (host, port)
        if tls is None:
            return Channel(sock, peer)
        try:
            client = tls.client
            wrapped = client.wrap_socket(sock, session=tls.sessions.get(peer, client))
        except OSError as exc:  # ssl.SSLError and a timeout are OSErrors too
            sock.close()
            raise PeerUnreachable(f"{host}:{port}: handshake failed: {exc}") from None
        der = wrapped.getpeercert(binary_form=True)
        channel = Channel(
            wrapped,
            peer,
            peer_identity(der),
            on_close=lambda: tls.sessions.keep(peer, wrapped.session, client),
            issuer=peer_issuer(der),
        )
        if not self.admits(channel):
            wrapped.close()
            raise PeerUnreachable(f"{host}:{port}: this node does not talk with that peer")
        return channel

    async def listen(
        self, sock: socket.socket, serve: Callable[[Connection], Awaitable[None]]
    ) -> asyncio.Server:
        """Accept connections on a bound socket and hand each to `serve` as a Connection.

        Each accepted connection first takes a slot in the door's table (`Slots`): over the
        caps it is closed at once, before any handshake, or makes room by evicting the oldest
        connection that has not proved a member. With TLS, `serve` then sees only connections
        whose handshake succeeded within the handshake timeout; the others are closed with
        nothing logged above debug level.
        """
        if self.caps is None:
            self.caps = Caps.for_descriptors(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        slots = self.slots = Slots(self.caps)
        tasks: dict[int, asyncio.Task[None]] = {}

        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peername = writer.get_extra_info("peername") or ("?", 0)
            admission = slots.arrive(peername[0])
            if admission.evict is not None:
                # cancelled, not aborted: a transport cut under `start_tls` leaves its writer
                # without one, and that writer's finalizer then fails on stderr
                tasks.pop(admission.evict).cancel()
            if admission.slot is None:
                writer.transport.abort()
                log.warning("connection table full (%s): refusing %s", admission.cause, peername[0])
                return
            task = asyncio.current_task()
            assert task is not None
            tasks[admission.slot] = task
            try:
                conn = await self._accept(reader, writer, (peername[0], peername[1]))
                if conn is not None:
                    if conn.identity:  # a member proved itself; a plain peer proves nothing
                        slots.authenticated(admission.slot)
                    await serve(conn)
            except asyncio.CancelledError:
                writer.transport.abort()  # evicted, or the server is closing
            finally:
                if tasks.pop(admission.slot, None) is not None:
                    slots.leave(admission.slot)

        return await asyncio.start_server(accepted, sock=sock, limit=STREAM_LIMIT)

    async def _accept(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: tuple[str, int]
    ) -> Connection | None:
        """The TLS handshake on an accepted stream, then the gate: the Connection, or None
        (closed) when the peer failed either.

        Nothing may be awaited before `start_tls`: the client's first bytes must reach TLS,
        not the plain stream.
        """
        if self.tls is not None:
            try:
                await writer.start_tls(
                    self.tls.server, ssl_handshake_timeout=self.tls.handshake_timeout
                )
            except (OSError, TimeoutError) as exc:
                log.debug("handshake with %s:%d failed: %s", *peer, exc)
                writer.transport.abort()
                return None
        ssl_object: ssl.SSLObject | None = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        conn = Connection(
            reader,
            writer,
            peer,
            peer_identity(der),
            issuer=peer_issuer(der),
            write_timeout=self.write_timeout,
            hold=self.budget.hold(writer.transport.abort),
            send_budget=self.send_budget,
        )
        if not self.admits(conn):
            await conn.close()
            return None
        return conn
