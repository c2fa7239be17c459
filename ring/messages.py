"""The ring's messages: one frozen dataclass per type, carried by `ring/wire/`.

Views, members and rosters travel as plain maps (`View.to_wire`, `Member.to_wire`,
`Roster.to_wire`) and are checked with `View.from_wire` / `Member.from_wire` /
`Roster.from_wire` by whoever receives them, since the wire checks field types only shallowly.
A roster rides beside a view (JOIN_OK, UPDATE, PONG) and in a JOIN; an empty one is left out.
docs/PROTOCOL.md ("Ring membership") describes each message and its replies.
"""

from __future__ import annotations

from typing import Any

from ring.wire import Message, message


@message("JOIN")
class Join(Message):
    """Ask to be admitted; the leader answers JOIN_OK, any other member REDIRECT. The joiner's
    roster brings the leader the revocations it knows."""

    member: dict[str, Any]
    roster: dict[str, Any] | None = None


@message("JOIN_OK")
class JoinOk(Message):
    """The joiner is in: the view that now holds it, and the leader's roster."""

    view: dict[str, Any]
    roster: dict[str, Any] | None = None


@message("REDIRECT")
class Redirect(Message):
    """Not the leader: ask this member instead."""

    key: str
    host: str
    port: int


@message("UPDATE")
class Update(Message):
    """The leader pushes a changed view (and its roster) to every member; answered with OK."""

    view: dict[str, Any]
    roster: dict[str, Any] | None = None


@message("LEAVE")
class Leave(Message):
    """A member leaves gracefully; the leader answers VIEW (the ring without it)."""

    key: str


@message("PING")
class Ping(Message):
    """Heartbeat and probe; carries the sender's ring and view version."""

    key: str
    ring_id: str
    version: int


@message("PONG")
class Pong(Message):
    """Answer to PING; carries the view when the pinger's is stale, lacks it, or is another ring."""

    key: str
    ring_id: str
    version: int
    view: dict[str, Any] | None = None
    roster: dict[str, Any] | None = None


@message("FAIL")
class Fail(Message):
    """Report of members that stopped answering, sent to the acting leader."""

    key: str
    dead: list[str]


@message("VIEW")
class ViewReply(Message):
    """A view sent as a reply (to LEAVE, FAIL)."""

    view: dict[str, Any]


@message("MERGE")
class Merge(Message):
    """Your ring lost a merge: re-join the ring (ring_id, leader) through host:port."""

    ring_id: str
    leader: str
    host: str
    port: int


@message("HELLO")
class Hello(Message):
    """Merge probe: the sender's ring, its leader's key and address, and its size."""

    key: str
    ring_id: str
    leader: str
    host: str
    port: int
    size: int


@message("HELLO_OK")
class HelloOk(Message):
    """Answer to HELLO: the responder's ring, its leader's key and address, and its size."""

    ring_id: str
    leader: str
    host: str
    port: int
    size: int


@message("FORGET")
class Forget(Message):
    """The sender forgot the member `key` (`forget` at its prompt): revoke it; answered OK."""

    key: str


@message("REKEY")
class Rekey(Message):
    """The network's new key (32 bytes), replacing the key whose network id is `previous`
    (16 hex digits); answered OK. Sent after a FORGET, and to a member still on the old key."""

    network: bytes
    previous: str


@message("KEY")
class KeyRequest(Message):
    """A member on an older key asks for the network's current one; answered KEY_DATA."""


@message("KEY_DATA")
class KeyData(Message):
    """The network's current key (32 bytes), and the id of the key it replaced ("" if none)."""

    network: bytes
    previous: str
