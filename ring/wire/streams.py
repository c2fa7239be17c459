"""Connections: frames both ways over one TCP stream, raw file bytes beside them.

`Connection` is the asyncio side (the event loop's requests, and every accepted connection a
handler serves); `Channel` is the blocking side, for worker threads that stream file bodies
straight into files. Both read frames through the one `FrameParser`, asking it for no more than
the frame still lacks, so raw bytes after a header stay on the stream for the body reader. Only
`ring/wire/door.py` makes them: no other module opens a socket to a peer. Each knows the
`identity` its peer proved in the TLS handshake (`ring/wire/tls.py`).

Writes are bounded in time: a peer that asks for a file and never reads it would otherwise hold
its connection (and the sender's task) for ever, since the idle timeout only runs between
requests. A `Connection`'s writer is a `TimedWriter`, whose every `drain` (the wait for the
peer to take the bytes) gives up after `write_timeout` and aborts the connection; handlers that
stream bodies on `conn.writer` get the bound too. A `Channel`'s socket has a timeout on every
read and write (`Door.open_blocking`).
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import ssl
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO, TypeVar

from ring.errors import ConnectionClosed, PeerUnreachable, TruncatedFrame
from ring.wire.budget import Hold, SendBudget
from ring.wire.codec import Message, decode_payload, encode, raise_for_error
from ring.wire.framing import FrameParser

DEFAULT_TIMEOUT = 5.0
"""Seconds a request waits for its connection, and again for its reply, unless told otherwise."""

READ_CHUNK = 256 * 1024
"""Most bytes read at once while a frame arrives (the parser's buffer grows as bytes come)."""

SEND_CHUNK = 1024 * 1024
"""Bytes of a file body read and encrypted at once on a TLS connection (`Connection.sendfile`)."""

WRITE_TIMEOUT = 30.0
"""Seconds a write may wait for the peer to take bytes (a drain); then the connection is
aborted. A body of SEND_CHUNK in that time is a rate of 35 KB/s, far below any LAN's."""

BODY_READERS = 4
"""Threads that read file bodies for sending (`read_for_sending`)."""

_body_readers = ThreadPoolExecutor(BODY_READERS, thread_name_prefix="wire-body")

T = TypeVar("T")


async def read_for_sending(read: Callable[..., T], *args: Any) -> T:
    """Run `read` (file bytes a server is about to send) on threads of its own.

    Not on the loop's default executor: blocking downloads fill that one, and each of them may
    be waiting for a server (in tests, one of this process) whose reply waits for such a read.
    """
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_body_readers, functools.partial(read, *args))


async def read_message(
    reader: asyncio.StreamReader, parser: FrameParser | None = None, hold: Hold | None = None
) -> Message:
    """Read one frame from a stream and decode it.

    Args:
        hold: the connection's account in its node's frame budget: every byte is charged to
            it before the frame takes it, and given back when the frame ends either way.

    Raises:
        ConnectionClosed: clean end of stream before a new frame began.
        TruncatedFrame: the stream ended inside a frame.
        FrameTooLarge, MalformedFrame, UnknownMessage: the peer broke the protocol.
        FrameMemoryFull: the node's frame budget is full and this frame is its biggest.
    """
    parser = parser or FrameParser()
    if hold is not None:
        hold.frame = parser
    try:
        while (payload := parser.next_payload()) is None:
            data = await reader.read(min(parser.need, READ_CHUNK))
            if not data:
                parser.end()
            if hold is not None:
                hold.charge(len(data))
            parser.feed(data)
    finally:
        if hold is not None:
            hold.release()
            hold.frame = None
    return decode_payload(payload)


class TimedWriter(asyncio.StreamWriter):
    """A stream writer whose `drain` waits at most `write_timeout`, then aborts the connection.

    Made around the writer asyncio handed out (kept, so that its finalizer does not close the
    transport under us), sharing its transport and protocol.
    """

    def __init__(
        self, inner: asyncio.StreamWriter, reader: asyncio.StreamReader, write_timeout: float
    ) -> None:
        transport = inner.transport
        super().__init__(transport, transport.get_protocol(), reader, asyncio.get_running_loop())
        self.inner = inner
        self.write_timeout = write_timeout

    async def drain(self) -> None:
        """Wait until the peer has taken enough of the buffered bytes.

        Raises:
            TimeoutError: not within `write_timeout`; the connection is aborted.
            ConnectionError: the connection broke.
        """
        try:
            await asyncio.wait_for(super().drain(), self.write_timeout)
        except TimeoutError:
            self.transport.abort()
            raise TimeoutError(f"peer took no bytes for {self.write_timeout:.0f} s") from None


class Connection:
    """One connection on the event loop; a handler may also stream raw bytes on `writer`."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: tuple[str, int],
        identity: str = "",
        on_close: Callable[[], None] | None = None,
        issuer: str = "",
        *,
        write_timeout: float = WRITE_TIMEOUT,
        hold: Hold | None = None,
        send_budget: SendBudget | None = None,
    ) -> None:
        """Args:
        reader, writer: the stream (TLS already done when the door made it).
        peer: the peer's address, for logs.
        identity: the peer's key as its certificate proved it (hex); "" without TLS.
        on_close: called once as `close` begins (the door keeps the TLS session then).
        issuer: who signed the peer's certificate (its issuer name); "" without TLS.
        write_timeout: seconds any write may wait for the peer (see `TimedWriter`).
        hold: this connection's account in its node's frame budget (accepted connections).
        send_budget: its node's budget for bodies being sent (accepted connections).
        """
        self.reader = reader
        self.writer: asyncio.StreamWriter = (
            writer
            if isinstance(writer, TimedWriter)
            else TimedWriter(writer, reader, write_timeout)
        )
        self.peer = peer
        self.identity = identity
        self.issuer = issuer
        self.write_timeout = write_timeout
        self._on_close = on_close
        self._hold = hold
        self._send_budget = send_budget

    async def read(self) -> Message:
        """The next frame from the peer (see `read_message`)."""
        return await read_message(self.reader, hold=self._hold)

    async def send(self, msg: Message) -> None:
        """Send one message and wait until the transport's buffer drains."""
        self.writer.write(encode(msg))
        await self.writer.drain()

    async def sendfile(self, file: BinaryIO, offset: int, count: int) -> int:
        """Send `count` raw bytes of `file` from `offset` (a body after its header frame).

        On a plain connection this is the kernel's zero-copy `sendfile`. TLS must encrypt every
        byte on the loop, and asyncio's own fallback for that takes a trip to a worker thread per
        16 KiB (it made large transfers more than twice as slow); here a worker reads
        SEND_CHUNK while the loop encrypts and sends the chunk before it. On an accepted
        connection each chunk is granted by the node's `SendBudget` first (a small one when
        the budget is spent), and given back once the next chunk has drained: the drain of a
        chunk waits for its plaintext to be encrypted, and the next one's for its ciphertext to
        leave for the kernel.

        Returns:
            The bytes sent: fewer than `count` only if the file ended early.

        Raises:
            ConnectionError, OSError: the connection broke or the file could not be read.
        """
        if self.writer.get_extra_info("ssl_object") is None:
            loop = asyncio.get_running_loop()
            return await loop.sendfile(self.writer.transport, file, offset, count)
        return await self._send_encrypted(file, offset, count)

    async def _send_encrypted(self, file: BinaryIO, offset: int, count: int) -> int:
        """`sendfile` on a TLS connection: read ahead in a worker, chunks granted by the budget."""
        budget, end, owed = self._send_budget, offset + count, 0

        def grant(at: int) -> int:
            nonlocal owed
            want = min(SEND_CHUNK, end - at)
            if budget is None:
                return want
            granted = budget.take(want)
            owed += granted
            return granted

        def read(at: int, size: int) -> bytes:
            return os.pread(file.fileno(), size, at)

        sent, granted, previous = 0, grant(offset) if count else 0, 0
        ahead = asyncio.ensure_future(read_for_sending(read, offset, granted)) if count else None
        try:
            while ahead is not None:
                chunk = await ahead
                held, ahead = granted, None
                sent += len(chunk)
                if chunk and sent < count:
                    granted = grant(offset + sent)
                    ahead = asyncio.ensure_future(read_for_sending(read, offset + sent, granted))
                self.writer.write(chunk)
                try:
                    await self.writer.drain()
                except BaseException:
                    if ahead is not None:
                        await asyncio.shield(ahead)  # the worker owns `file` until it is done
                    raise
                if budget is not None:  # that chunk's encrypted bytes are gone by now
                    budget.give(previous)
                    owed -= previous
                previous = held
        finally:
            if budget is not None:
                budget.give(owed)
        return sent

    async def exchange(self, msg: Message, timeout: float = DEFAULT_TIMEOUT) -> Message:
        """Send a request and read its reply; an ERROR reply raises RemoteError.

        Raises:
            PeerUnreachable: the peer timed out or the connection broke.
            RemoteError: the peer answered ERROR.
            RemoteProtocolError: the peer answered with a malformed frame.
        """
        try:
            await asyncio.wait_for(self.send(msg), timeout)
            reply = await asyncio.wait_for(self.read(), timeout)
        except (TimeoutError, OSError, ConnectionClosed, TruncatedFrame) as exc:
            raise PeerUnreachable(f"no reply to {msg.TYPE}: {exc or 'timed out'}") from None
        return raise_for_error(reply)

    def abort(self) -> None:
        """Drop the connection at once, sending nothing more: for one that failed (no reply in
        time, or broken), where a TLS close would wait for a peer that is not answering."""
        self._closing()
        self.writer.transport.abort()

    async def close(self) -> None:
        """Close without raising if the peer already went away, and without waiting more than
        `write_timeout` for a peer that does not take what is still buffered (then abort)."""
        self._closing()
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), self.write_timeout)
        except (TimeoutError, asyncio.CancelledError) as exc:
            self.writer.transport.abort()
            if isinstance(exc, asyncio.CancelledError):
                raise
        except OSError:
            pass

    def _closing(self) -> None:
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()
        if self._hold is not None:
            self._hold.close()


class Channel:
    """One blocking connection, for a worker thread; every read obeys the socket's timeout."""

    def __init__(
        self,
        sock: socket.socket,
        peer: tuple[str, int],
        identity: str = "",
        on_close: Callable[[], None] | None = None,
        issuer: str = "",
    ) -> None:
        """Args:
        sock: a connected socket, or an `ssl.SSLSocket` whose handshake is done.
        peer: the peer's address, for messages.
        identity: the peer's key as its certificate proved it (hex); "" without TLS.
        on_close: called once as `close` begins (the door keeps the TLS session then).
        issuer: who signed the peer's certificate (its issuer name); "" without TLS.
        """
        self.sock = sock
        self.peer = peer
        self.identity = identity
        self.issuer = issuer
        self._on_close = on_close
        self._tls = isinstance(sock, ssl.SSLSocket)

    def send(self, msg: Message) -> None:
        """Send one request frame."""
        self.sock.sendall(encode(msg))

    def read(self) -> Message:
        """Read one reply frame; an ERROR reply raises RemoteError.

        Raises:
            PeerUnreachable: the peer closed the connection before a reply began.
            TruncatedFrame: the stream ended inside the reply.
            FrameTooLarge, MalformedFrame, UnknownMessage: the peer broke the protocol.
            OSError: the socket timed out or broke.
        """
        parser = FrameParser()
        while (payload := parser.next_payload()) is None:
            data = self.sock.recv(min(parser.need, READ_CHUNK))
            if not data:
                try:
                    parser.end()
                except ConnectionClosed:
                    host, port = self.peer
                    raise PeerUnreachable(f"{host}:{port} closed the connection") from None
            parser.feed(data)
        return raise_for_error(decode_payload(payload))

    def exchange(self, msg: Message) -> Message:
        """Send a request and read its reply (see `read`)."""
        self.send(msg)
        return self.read()

    def set_timeout(self, seconds: float) -> None:
        """Wait at most `seconds` for each read or write from now on."""
        self.sock.settimeout(seconds)

    def recv_into(self, view: memoryview) -> int:
        """Read raw body bytes into `view`, filling it unless the stream ends first: how many
        came (0: the peer closed the connection).

        A TLS socket takes no MSG_WAITALL and hands out one record (16 KiB) per call, so it is
        read in a loop; a plain socket fills the view in one call.
        """
        if not self._tls:
            return self.sock.recv_into(view, len(view), socket.MSG_WAITALL)
        got, size = 0, len(view)
        while got < size:
            n = self.sock.recv_into(view[got:], size - got)
            if n == 0:
                break
            got += n
        return got

    def shutdown(self) -> None:
        """Cut the connection from another thread: a blocked read returns at once.

        The TCP socket is shut down beneath TLS: `SSLSocket.shutdown` would also drop the TLS
        state, and a later read would then hand out raw ciphertext as if it were the body.
        """
        try:
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        """Release the socket."""
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()
        self.sock.close()
