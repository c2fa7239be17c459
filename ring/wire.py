"""The wire: length-prefixed msgpack frames, typed messages, and stream helpers.

Theory of operation. Every TCP message is a frame: a 4-byte big-endian length, then that many
bytes of a msgpack map whose "t" field names the message type. File bodies are not frames:
a message that announces a body (FILE_DATA) states its length, and exactly that many raw bytes
follow on the stream. Nothing here ever decodes file bytes.

Each message type is a frozen dataclass registered with `@message("NAME")`; `decode` checks
the type name and the top-level field types, so a handler only ever sees well-formed messages.
`ring/` and `sync/` each declare their own messages in their own module; both use this one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import struct
import types
import typing
from collections.abc import Iterable
from typing import Any, ClassVar, TypeVar, Union

import msgpack

from ring.errors import (
    ConnectionClosed,
    FrameTooLarge,
    MalformedFrame,
    PeerUnreachable,
    RemoteError,
    TruncatedFrame,
    UnknownMessage,
)

log = logging.getLogger(__name__)

HEADER = struct.Struct(">I")
MAX_FRAME = 16 * 1024 * 1024
"""Largest frame accepted: a manifest page of thousands of entries fits many times over."""

DEFAULT_TIMEOUT = 5.0


@dataclasses.dataclass(frozen=True)
class Message:
    """Base of every message; subclasses are frozen dataclasses made with `@message`."""

    TYPE: ClassVar[str] = ""


M = TypeVar("M", bound=Message)
_REGISTRY: dict[str, type[Message]] = {}
_FIELDS: dict[str, list[tuple[str, Any, bool]]] = {}


@typing.dataclass_transform(frozen_default=True)
def message(type_name: str) -> typing.Callable[[type[M]], type[M]]:
    """Make a class a frozen dataclass and register it as the message type `type_name`."""

    def register(cls: type[M]) -> type[M]:
        if type_name in _REGISTRY:
            raise ValueError(f"message type {type_name} registered twice")
        cls = dataclasses.dataclass(frozen=True)(cls)
        cls.TYPE = type_name
        hints = typing.get_type_hints(cls)
        fields = []
        for f in dataclasses.fields(cls):
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            fields.append((f.name, hints[f.name], required))
        _REGISTRY[type_name] = cls
        _FIELDS[type_name] = fields
        return cls

    return register


def _accepts(hint: Any, value: Any) -> bool:
    """Whether `value` fits the top level of type `hint` (containers are checked shallowly)."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(_accepts(arg, value) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is not None:
        hint = origin
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is tuple:
        return isinstance(value, (list, tuple))
    return isinstance(value, hint)


def to_dict(msg: Message) -> dict[str, Any]:
    """The msgpack-ready map of a message, with its type in "t"."""
    body: dict[str, Any] = {"t": msg.TYPE}
    for f in dataclasses.fields(msg):
        body[f.name] = getattr(msg, f.name)
    return body


def from_dict(body: Any) -> Message:
    """Build a message from a decoded map, checking its type name and field types.

    Raises:
        MalformedFrame: not a map, a missing field, or a field of the wrong type.
        UnknownMessage: a type name no module registered.
    """
    if not isinstance(body, dict):
        raise MalformedFrame(f"frame is a {type(body).__name__}, not a map")
    type_name = body.get("t")
    if not isinstance(type_name, str):
        raise MalformedFrame("frame has no type field 't'")
    cls = _REGISTRY.get(type_name)
    if cls is None:
        raise UnknownMessage(f"unknown message type {type_name[:40]!r}")
    kwargs = {}
    for name, hint, required in _FIELDS[type_name]:
        if name not in body:
            if required:
                raise MalformedFrame(f"{type_name} lacks field {name!r}")
            continue
        value = body[name]
        if not _accepts(hint, value):
            raise MalformedFrame(f"{type_name}.{name} has type {type(value).__name__}")
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise MalformedFrame(f"{type_name}: {exc}") from exc


def encode(msg: Message) -> bytes:
    """One whole frame (length prefix included) for `msg`."""
    payload: bytes = msgpack.packb(to_dict(msg), use_bin_type=True)
    if len(payload) > MAX_FRAME:
        raise FrameTooLarge(f"{msg.TYPE} frame of {len(payload)} bytes exceeds {MAX_FRAME}")
    return HEADER.pack(len(payload)) + payload


def decode_payload(payload: bytes) -> Message:
    """The message in one frame's payload (without its length prefix)."""
    try:
        body = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise MalformedFrame(f"payload is not msgpack: {exc}") from exc
    return from_dict(body)


async def read_message(reader: asyncio.StreamReader, max_size: int = MAX_FRAME) -> Message:
    """Read one frame from a stream and decode it.

    Raises:
        ConnectionClosed: clean end of stream before a new frame began.
        TruncatedFrame: the stream ended inside a frame.
        FrameTooLarge, MalformedFrame, UnknownMessage: the peer broke the protocol.
    """
    try:
        header = await reader.readexactly(HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            raise ConnectionClosed("peer closed the connection") from None
        raise TruncatedFrame("connection closed inside a frame header") from None
    (length,) = HEADER.unpack(header)
    if length > max_size:
        raise FrameTooLarge(f"frame of {length} bytes exceeds {max_size}")
    try:
        payload = await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        got = len(exc.partial)
        raise TruncatedFrame(f"connection closed after {got} of {length} bytes") from None
    return decode_payload(payload)


async def write_message(writer: asyncio.StreamWriter, msg: Message) -> None:
    """Send one message and wait until the transport's buffer drains."""
    writer.write(encode(msg))
    await writer.drain()


@message("ERROR")
class Error(Message):
    """The reply to a request that cannot be served; `code` is machine-readable."""

    code: str
    reason: str


@message("OK")
class Ok(Message):
    """A bare acknowledgement."""


async def open_stream(
    host: str, port: int, timeout: float = DEFAULT_TIMEOUT
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to a peer, turning every way of failing into PeerUnreachable."""
    try:
        return await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (TimeoutError, OSError) as exc:
        raise PeerUnreachable(f"{host}:{port}: {exc or 'timed out'}") from None


async def close_stream(writer: asyncio.StreamWriter) -> None:
    """Close a stream without raising if the peer already went away."""
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel tasks and wait until every one has ended, cancelling again any that goes on.

    On Python 3.11 `asyncio.wait_for` can swallow a cancellation that arrives just as the
    awaited operation finishes (gh-86296, fixed in 3.12); a task caught that way would run
    on, and a plain cancel-then-gather would wait for it forever.
    """
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.1)


async def exchange(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    msg: Message,
    timeout: float = DEFAULT_TIMEOUT,
) -> Message:
    """Send a request on an open stream and read its reply; an ERROR reply raises RemoteError.

    Raises:
        PeerUnreachable: the peer timed out or the connection broke.
        RemoteError: the peer answered ERROR.
        RemoteProtocolError: the peer answered with a malformed frame.
    """
    try:
        await asyncio.wait_for(write_message(writer, msg), timeout)
        reply = await asyncio.wait_for(read_message(reader), timeout)
    except (TimeoutError, OSError, ConnectionClosed, TruncatedFrame) as exc:
        raise PeerUnreachable(f"no reply to {msg.TYPE}: {exc or 'timed out'}") from None
    if isinstance(reply, Error):
        raise RemoteError(reply.code, reply.reason)
    return reply


async def request(host: str, port: int, msg: Message, timeout: float = DEFAULT_TIMEOUT) -> Message:
    """One request on a fresh connection, one reply, then close (for small control messages)."""
    reader, writer = await open_stream(host, port, timeout)
    try:
        return await exchange(reader, writer, msg, timeout)
    finally:
        await close_stream(writer)


def expect(reply: Message, cls: type[M]) -> M:
    """Narrow a reply to the type the caller asked for, or blame the peer."""
    if not isinstance(reply, cls):
        raise MalformedFrame(f"expected {cls.TYPE}, got {reply.TYPE}")
    return reply
