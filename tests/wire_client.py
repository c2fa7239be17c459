"""A client that talks to a node as any member can: through a door of its own (a member of the
test network, `tests/credentials.py`).

Tests use it to send requests a node's own parts would never send (bad fields, other owners'
records) and to read the replies as bytes arrive.
"""

from __future__ import annotations

from ring.wire import DEFAULT_TIMEOUT, Connection, Message
from tests.credentials import member

CREDENTIALS = member()
KEY = CREDENTIALS.key
"""This client's identity: the key a node sees on its connections."""

DOOR = CREDENTIALS.door()


async def request(host: str, port: int, msg: Message, timeout: float = DEFAULT_TIMEOUT) -> Message:
    """One request on a fresh connection, one reply (ERROR raises RemoteError)."""
    return await DOOR.request(host, port, msg, timeout)


async def connect(
    host: str, port: int, timeout: float = DEFAULT_TIMEOUT, *, source: str | None = None
) -> Connection:
    """An open connection, for several requests or raw bytes; close it when done (`source`:
    the loopback address to dial from, to play another host)."""
    return await DOOR.open(host, port, timeout, source=source)
