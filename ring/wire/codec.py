"""Typed messages: one frozen dataclass per message type, and the msgpack codec of frames.

Each message type is a frozen dataclass registered with `@message("NAME")`; `decode_payload`
checks the type name and the top-level field types, so a handler only ever sees well-formed
messages. `ring/` and `sync/` each declare their own messages in their own module; both use
this one. File bodies are never inside a frame: a message that announces a body (FILE_DATA)
states its length, and exactly that many raw bytes follow on the stream. Nothing here ever
decodes file bytes.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, ClassVar, TypeVar, Union

import msgpack

from ring.errors import FrameTooLarge, MalformedFrame, RemoteError, UnknownMessage
from ring.wire.framing import HEADER, MAX_FRAME


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


@message("ERROR")
class Error(Message):
    """The reply to a request that cannot be served; `code` is machine-readable."""

    code: str
    reason: str


@message("OK")
class Ok(Message):
    """A bare acknowledgement."""


def raise_for_error(reply: Message) -> Message:
    """Pass a reply through, unless it is ERROR: then raise it as RemoteError (code, reason)."""
    if isinstance(reply, Error):
        raise RemoteError(reply.code, reply.reason)
    return reply


def expect(reply: Message, cls: type[M]) -> M:
    """Narrow a reply to the type the caller asked for, or blame the peer."""
    if not isinstance(reply, cls):
        raise MalformedFrame(f"expected {cls.TYPE}, got {reply.TYPE}")
    return reply
