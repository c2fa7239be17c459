"""Frames without sockets: a 4-byte big-endian length, then that many bytes of payload.

`FrameParser` is the one frame reader of the node, in the sans-IO style of h11: bytes go in with
`feed`, whole payloads come out of `next_payload`, and nothing here touches a socket. Both the
asyncio reader and the blocking reader of worker threads drive it. It asks for no more than the
current frame still lacks (`need`), so a reader that reads at most `need` bytes never swallows
the raw file bytes that follow a FILE_DATA header on the same stream. The payload buffer grows
only as bytes arrive: a declared length is checked against the cap and never allocated up front.
"""

from __future__ import annotations

import struct

from ring.errors import ConnectionClosed, FrameTooLarge, TruncatedFrame

HEADER = struct.Struct(">I")
MAX_FRAME = 16 * 1024 * 1024
"""Largest frame accepted: a manifest page of thousands of entries fits many times over."""


class FrameParser:
    """Split a byte stream into frame payloads, refusing a frame over `max_size` at its header.

    A payload is kept as the pieces it arrived in and joined once, when it is whole: a buffer
    grown by appending would be copied again and again as it grows, and the allocator keeps the
    holes (a node reading many large frames at once held about half as much again).
    """

    def __init__(self, max_size: int = MAX_FRAME) -> None:
        self.max_size = max_size
        self._buffer = bytearray()
        """Bytes that are no payload yet: a header, or what came after the current frame."""
        self._parts: list[bytes] = []
        self._got = 0
        self._length: int | None = None

    @property
    def need(self) -> int:
        """Bytes still missing from the frame being read (its header, then its payload)."""
        if self._length is None:
            return HEADER.size - len(self._buffer)
        return self._length - self._got

    @property
    def buffered(self) -> int:
        """Bytes fed and not yet returned as a payload (memory this parser holds)."""
        header = 0 if self._length is None else HEADER.size
        return header + self._got + len(self._buffer)

    @property
    def mid_frame(self) -> bool:
        """Whether part of a frame has arrived and the rest has not."""
        return self._length is not None or bool(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Take the next bytes of the stream, however they were chunked.

        Raises:
            FrameTooLarge: a header declares more than `max_size`; the stream is unusable.
        """
        if self._length is not None and not self._buffer:
            self._take_payload(data)
            return
        self._buffer += data
        self._check_header()

    def next_payload(self) -> bytes | None:
        """The next whole payload, or None until enough bytes have been fed."""
        if self._length is None or self._got < self._length:
            return None
        payload = b"".join(self._parts)
        self._parts, self._got, self._length = [], 0, None
        self._check_header()
        return payload

    def end(self) -> None:
        """The stream ended: say whether that was clean (between frames) or not.

        Raises:
            ConnectionClosed: nothing of a next frame had arrived.
            TruncatedFrame: the stream ended inside a frame.
        """
        if not self.mid_frame:
            raise ConnectionClosed("peer closed the connection")
        if self._length is None:
            raise TruncatedFrame("connection closed inside a frame header")
        raise TruncatedFrame(f"connection closed after {self._got} of {self._length} bytes")

    def discard(self) -> None:
        """Drop every byte held (the connection is being cut): the memory goes back at once,
        not when the reader's task next runs; the stream then reads as cleanly closed."""
        self._buffer, self._parts, self._got, self._length = bytearray(), [], 0, None

    def _take_payload(self, data: bytes | bytearray | memoryview) -> None:
        """Add `data` to the current payload; bytes past its end wait in the buffer."""
        assert self._length is not None
        take = self._length - self._got
        if len(data) > take:
            self._buffer += data[take:]
            data = data[:take]
        if data:
            self._parts.append(bytes(data))
            self._got += len(data)

    def _check_header(self) -> None:
        if self._length is not None or len(self._buffer) < HEADER.size:
            return
        (length,) = HEADER.unpack_from(self._buffer)
        if length > self.max_size:
            raise FrameTooLarge(f"frame of {length} bytes exceeds {self.max_size}")
        self._length = length
        rest = self._buffer[HEADER.size :]
        self._buffer = bytearray()
        self._take_payload(rest)
