"""A client that talks to a node as any peer on the LAN can: through a door of its own.

Tests use it to send requests a node's own parts would never send (bad fields, other owners'
records) and to read the replies as bytes arrive.
"""

from __future__ import annotations

from ring.wire import DEFAULT_TIMEOUT, Connection, Door, Message

DOOR = Door()


async def request(host: str, port: int, msg: Message, timeout: float = DEFAULT_TIMEOUT) -> Message:
    """One request on a fresh connection, one reply (ERROR raises RemoteError)."""
    return await DOOR.request(host, port, msg, timeout)


async def connect(host: str, port: int, timeout: float = DEFAULT_TIMEOUT) -> Connection:
    """An open connection, for several requests or raw bytes; close it when done."""
    return await DOOR.open(host, port, timeout)
