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
    """Split a byte stream into frame payloads, refusing a frame over `max_size` at its header."""

    def __init__(self, max_size: int = MAX_FRAME) -> None:
        self.max_size = max_size
        self._buffer = bytearray()
        self._length: int | None = None

    @property
    def need(self) -> int:
        """Bytes still missing from the frame being read (its header, then its payload)."""
        if self._length is None:
            return HEADER.size - len(self._buffer)
        return HEADER.size + self._length - len(self._buffer)

    @property
    def buffered(self) -> int:
        """Bytes fed and not yet returned as a payload (memory this parser holds)."""
        return len(self._buffer)

    @property
    def mid_frame(self) -> bool:
        """Whether part of a frame has arrived and the rest has not."""
        return bool(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Take the next bytes of the stream, however they were chunked.

        Raises:
            FrameTooLarge: a header declares more than `max_size`; the stream is unusable.
        """
        self._buffer += data
        self._check_header()

    def next_payload(self) -> bytes | None:
        """The next whole payload, or None until enough bytes have been fed."""
        if self._length is None or len(self._buffer) < HEADER.size + self._length:
            return None
        end = HEADER.size + self._length
        payload = bytes(self._buffer[HEADER.size : end])
        del self._buffer[:end]
        self._length = None
        self._check_header()
        return payload

    def end(self) -> None:
        """The stream ended: say whether that was clean (between frames) or not.

        Raises:
            ConnectionClosed: nothing of a next frame had arrived.
            TruncatedFrame: the stream ended inside a frame.
        """
        if not self._buffer:
            raise ConnectionClosed("peer closed the connection")
        if self._length is None:
            raise TruncatedFrame("connection closed inside a frame header")
        got = len(self._buffer) - HEADER.size
        raise TruncatedFrame(f"connection closed after {got} of {self._length} bytes")

    def _check_header(self) -> None:
        if self._length is not None or len(self._buffer) < HEADER.size:
            return
        (length,) = HEADER.unpack_from(self._buffer)
        if length > self.max_size:
            raise FrameTooLarge(f"frame of {length} bytes exceeds {self.max_size}")
        self._length = length
