"""The frame parser alone (bytes in, payloads out), and both readers built on it agreeing."""

from __future__ import annotations

import asyncio
import random
import socket
import struct

import pytest

from ring.errors import ConnectionClosed, FrameTooLarge, PeerUnreachable, TruncatedFrame
from ring.wire import MAX_FRAME, Channel, FrameParser, Ok, encode, read_message

PAYLOADS = [b"", b"x", b"\x00" * 3, b"hello frame", bytes(range(256)) * 40]


def framed(*payloads: bytes) -> bytes:
    return b"".join(struct.pack(">I", len(p)) + p for p in payloads)


def parse_in_chunks(data: bytes, sizes: list[int]) -> list[bytes]:
    """Feed `data` in chunks of the given sizes (cycled), collecting every payload."""
    parser = FrameParser()
    out: list[bytes] = []
    at, turn = 0, 0
    while at < len(data):
        size = sizes[turn % len(sizes)]
        parser.feed(data[at : at + size])
        at, turn = at + size, turn + 1
        while (payload := parser.next_payload()) is not None:
            out.append(payload)
    assert not parser.mid_frame and parser.buffered == 0
    return out


class TestFrameParser:
    @pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 64, 4096, 1 << 20])
    def test_any_fixed_chunking_gives_the_same_payloads(self, size: int) -> None:
        assert parse_in_chunks(framed(*PAYLOADS), [size]) == PAYLOADS

    @pytest.mark.parametrize("seed", range(20))
    def test_random_chunking_gives_the_same_payloads(self, seed: int) -> None:
        rng = random.Random(seed)
        payloads = [rng.randbytes(rng.randrange(0, 3000)) for _ in range(30)]
        sizes = [rng.randrange(1, 500) for _ in range(50)]
        assert parse_in_chunks(framed(*payloads), sizes) == payloads

    def test_need_never_asks_past_the_current_frame(self) -> None:
        parser = FrameParser()
        assert parser.need == 4
        parser.feed(struct.pack(">I", 10)[:3])
        assert parser.need == 1
        parser.feed(struct.pack(">I", 10)[3:])
        assert parser.need == 10
        parser.feed(b"abcd")
        assert parser.need == 6 and parser.next_payload() is None
        parser.feed(b"efghij")
        assert parser.next_payload() == b"abcdefghij" and parser.need == 4

    def test_oversized_header_is_refused_before_any_payload(self) -> None:
        parser = FrameParser(max_size=100)
        with pytest.raises(FrameTooLarge):
            parser.feed(struct.pack(">I", 101))
        assert parser.buffered == 4

    def test_declared_length_is_never_allocated_up_front(self) -> None:
        parser = FrameParser()
        parser.feed(struct.pack(">I", MAX_FRAME) + b"abc")
        assert parser.buffered == 7

    def test_end_between_frames_is_clean(self) -> None:
        parser = FrameParser()
        parser.feed(framed(b"one"))
        assert parser.next_payload() == b"one"
        with pytest.raises(ConnectionClosed):
            parser.end()

    @pytest.mark.parametrize("data", [b"\x00", b"\x00\x00\x00", framed(b"abcdef")[:-1]])
    def test_end_inside_a_frame_is_truncation(self, data: bytes) -> None:
        parser = FrameParser()
        parser.feed(data)
        assert parser.next_payload() is None
        with pytest.raises(TruncatedFrame):
            parser.end()


class TestBothReadersAgree:
    """The asyncio reader and the blocking reader run the same parser: same results, same errors."""

    @staticmethod
    async def read_both(data: bytes) -> tuple[object, object]:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        try:
            on_loop: object = await read_message(reader)
        except Exception as exc:
            on_loop = type(exc)
        left, right = socket.socketpair()
        try:
            left.sendall(data)
            left.shutdown(socket.SHUT_WR)
            right.settimeout(5)
            try:
                blocking: object = Channel(right, ("pair", 0)).read()
            except Exception as exc:
                blocking = type(exc)
        finally:
            left.close()
            right.close()
        return on_loop, blocking

    async def test_a_good_frame(self) -> None:
        assert await self.read_both(encode(Ok())) == (Ok(), Ok())

    async def test_an_oversized_reply_is_too_large_for_both(self) -> None:
        assert await self.read_both(struct.pack(">I", MAX_FRAME + 1)) == (
            FrameTooLarge,
            FrameTooLarge,
        )

    async def test_a_cut_frame_is_truncated_for_both(self) -> None:
        assert await self.read_both(encode(Ok())[:-1]) == (TruncatedFrame, TruncatedFrame)

    async def test_a_closed_stream_before_a_reply(self) -> None:
        """Between frames: the loop's reader says the stream ended, a request's reader that the
        peer is gone (a worker thread then tries another source)."""
        assert await self.read_both(b"") == (ConnectionClosed, PeerUnreachable)

    async def test_raw_bytes_after_a_frame_stay_on_the_stream(self) -> None:
        left, right = socket.socketpair()
        try:
            left.sendall(encode(Ok()) + b"RAW BODY")
            right.settimeout(5)
            channel = Channel(right, ("pair", 0))
            assert channel.read() == Ok()
            body = memoryview(bytearray(8))
            assert channel.recv_into(body) == 8 and bytes(body) == b"RAW BODY"
        finally:
            left.close()
            right.close()
