"""The wire: framing, typed decoding, and a server that survives whatever a peer sends."""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import AsyncIterator

import msgpack
import pytest

from ring.errors import (
    ConnectionClosed,
    FrameTooLarge,
    MalformedFrame,
    Refused,
    RemoteError,
    UnknownMessage,
)
from ring.wire import (
    MAX_FRAME,
    Connection,
    Error,
    FrameServer,
    Handler,
    Message,
    Ok,
    cancel_and_wait,
    decode_payload,
    encode,
    message,
    read_message,
)
from tests.credentials import member_door
from tests.wire_client import connect, request


@message("TEST_ECHO")
class Echo(Message):
    text: str
    blob: bytes = b""
    count: int | None = None


def frame(body: object) -> bytes:
    payload: bytes = msgpack.packb(body, use_bin_type=True)
    return struct.pack(">I", len(payload)) + payload


def stream_of(*chunks: bytes) -> asyncio.StreamReader:
    """A stream that delivers these chunks, then ends."""
    reader = asyncio.StreamReader()
    for chunk in chunks:
        reader.feed_data(chunk)
    reader.feed_eof()
    return reader


class TestCodec:
    async def test_round_trip_keeps_bytes_and_text(self) -> None:
        msg = Echo("JOIN.txt END FILE ünïcødé", b"\x00\xff\r\n", 3)
        assert await read_message(stream_of(encode(msg))) == msg

    async def test_frames_split_and_joined_in_arbitrary_chunks(self) -> None:
        data = encode(Echo("a")) + encode(Echo("b", b"x" * 5000))
        reader = stream_of(*(data[i : i + 7] for i in range(0, len(data), 7)))
        assert await read_message(reader) == Echo("a")
        assert await read_message(reader) == Echo("b", b"x" * 5000)
        with pytest.raises(ConnectionClosed):
            await read_message(reader)

    async def test_oversized_header_is_refused_before_buffering(self) -> None:
        reader = stream_of(struct.pack(">I", MAX_FRAME + 1))
        with pytest.raises(FrameTooLarge):
            await read_message(reader)

    @pytest.mark.parametrize(
        "body, error",
        [
            ([1, 2], MalformedFrame),
            ({"text": "no type"}, MalformedFrame),
            ({"t": "NO_SUCH_TYPE"}, UnknownMessage),
            ({"t": "TEST_ECHO"}, MalformedFrame),
            ({"t": "TEST_ECHO", "text": 5}, MalformedFrame),
            ({"t": "TEST_ECHO", "text": "x", "count": True}, MalformedFrame),
        ],
    )
    def test_bad_maps_are_typed_errors(self, body: object, error: type[Exception]) -> None:
        with pytest.raises(error):
            decode_payload(msgpack.packb(body))

    def test_garbage_payload_is_malformed(self) -> None:
        with pytest.raises(MalformedFrame):
            decode_payload(b"\xc1\xc1\xc1")


@pytest.fixture
async def echo_server() -> AsyncIterator[FrameServer]:
    async def echo(msg: Message, conn: Connection) -> Message:
        assert isinstance(msg, Echo)
        if msg.text == "refuse":
            raise Refused("not_found", "nothing here")
        if msg.text == "crash":
            raise RuntimeError("handler bug")
        return Echo(msg.text.upper(), msg.blob)

    server = FrameServer("127.0.0.1", 0, door=member_door())
    server.route(Echo, echo)
    await server.start()
    yield server
    await server.close()


async def send_raw(port: int, data: bytes, end: bool = False) -> Message | None:
    """Send raw bytes as a member; the reply, or None if none came.

    With `end`, the connection is closed after the bytes, and None is returned once the server
    has closed its side too (TLS has no half-close: the server could not reply after it).
    """
    conn = await connect("127.0.0.1", port)
    conn.writer.write(data)
    await conn.writer.drain()
    if end:
        await conn.close()
        return None
    try:
        return await asyncio.wait_for(conn.read(), 5)
    except Exception:
        return None
    finally:
        await conn.close()


class TestServer:
    async def test_request_reply(self, echo_server: FrameServer) -> None:
        reply = await request("127.0.0.1", echo_server.port, Echo("hi", b"\x00"))
        assert reply == Echo("HI", b"\x00")

    async def test_refusal_is_an_error_reply(self, echo_server: FrameServer) -> None:
        with pytest.raises(RemoteError) as info:
            await request("127.0.0.1", echo_server.port, Echo("refuse"))
        assert info.value.code == "not_found"

    async def test_handler_crash_is_contained(self, echo_server: FrameServer) -> None:
        with pytest.raises(RemoteError) as info:
            await request("127.0.0.1", echo_server.port, Echo("crash"))
        assert info.value.code == "internal"
        assert await request("127.0.0.1", echo_server.port, Echo("ok")) == Echo("OK")

    @pytest.mark.parametrize(
        "data, code",
        [
            (frame({"t": "NO_SUCH_TYPE"}), "unknown_type"),
            (frame({"t": "OK"}), "unknown_type"),
            (frame([1, 2, 3]), "malformed"),
            (frame({"t": "TEST_ECHO", "text": b"bytes not str"}), "malformed"),
            (struct.pack(">I", 5) + b"\xc1\xc1\xc1\xc1\xc1", "malformed"),
            (struct.pack(">I", MAX_FRAME + 1), "too_large"),
            (struct.pack(">I", 0xFFFFFFFF) + b"x" * 100, "too_large"),
        ],
    )
    async def test_bad_frames_get_an_error_and_the_node_keeps_serving(
        self, echo_server: FrameServer, data: bytes, code: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.WARNING, logger="ring.wire.server")
        reply = await send_raw(echo_server.port, data)
        assert isinstance(reply, Error) and reply.code == code
        assert caplog.records, "the bad frame was not logged"
        assert await request("127.0.0.1", echo_server.port, Echo("still")) == Echo("STILL")

    @pytest.mark.parametrize("data", [struct.pack(">I", 100) + b"short", b"\x00\x00"])
    async def test_truncated_connection_is_dropped(
        self, echo_server: FrameServer, data: bytes, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.WARNING, logger="ring.wire.server")
        assert await send_raw(echo_server.port, data, end=True) is None
        assert any("cut a frame short" in r.message for r in caplog.records)
        assert await request("127.0.0.1", echo_server.port, Echo("after")) == Echo("AFTER")

    async def test_several_requests_on_one_connection(self, echo_server: FrameServer) -> None:
        data = encode(Echo("a")) + encode(Echo("b"))
        conn = await connect("127.0.0.1", echo_server.port)
        conn.writer.write(data)
        assert await conn.read() == Echo("A")
        assert await conn.read() == Echo("B")
        await conn.close()

    async def test_restart_on_same_port_works_at_once(self, echo_server: FrameServer) -> None:
        port = echo_server.port
        assert await request("127.0.0.1", port, Echo("x")) == Echo("X")
        await echo_server.close()
        again = FrameServer("127.0.0.1", port, door=member_door())
        handler = echo_server.handler(Echo)
        assert handler is not None
        again.route(Echo, handler)
        assert await again.start() == port
        assert await request("127.0.0.1", port, Echo("y")) == Echo("Y")
        await again.close()


async def test_wrap_puts_a_middleman_around_every_route(echo_server: FrameServer) -> None:
    seen: list[str] = []

    def spy(handler: Handler) -> Handler:
        async def wrapped(msg: Message, conn: Connection) -> Message | None:
            seen.append(msg.TYPE)
            return await handler(msg, conn)

        return wrapped

    echo_server.wrap(spy)
    assert await request("127.0.0.1", echo_server.port, Echo("w")) == Echo("W")
    assert seen == ["TEST_ECHO"]


async def test_ok_has_no_fields() -> None:
    assert await read_message(stream_of(encode(Ok()))) == Ok()


async def test_cancel_and_wait_ends_a_task_that_swallows_one_cancel() -> None:
    """Python 3.11's wait_for can eat a cancel; one cancel plus gather would then never return."""
    cancels = []

    async def stubborn() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancels.append(1)  # swallowed, as wait_for may do
        await asyncio.sleep(3600)

    task = asyncio.ensure_future(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait([task]), 5)
    assert task.cancelled() and cancels == [1]
