"""The LAN beacon packet (version 2), without sockets: a clear header, then a sealed body.

Theory of operation. A beacon tells the members of one network that a node is at (host, port);
anyone else must learn nothing from it but what a host without credentials needs: which network
is on the LAN (its public id) and, while a member has an invite open, where to take it. So a
packet is

    magic "LSHB" | version 2 | network id (8 bytes) | clear length C (2 bytes, big-endian)
    | clear part (C bytes) | sealed body

The clear part is empty or a msgpack map whose "i" lists the open invites as [number, port]
(`InviteHint`); the sealed body is a `DatagramSeal` of the msgpack map {k, r, n, p} (the sender's
key, ring, name and TCP port: `Announcement`) under the network's beacon key, with everything
before it as associated data, so members know the clear part is a member's too. A receiver
drops, without a reply, whatever is not this shape, is of another network, or does not open.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import msgpack

from overlay.sealing import DatagramSeal

MAGIC = b"LSHB"
VERSION = 2
NETWORK_ID_SIZE = 8
PREFIX = struct.Struct(">4sB8sH")
"""Magic, version, network id, length of the clear part."""

MAX_PACKET = 1024
"""Largest beacon accepted or sent: one unfragmented datagram on any Ethernet LAN."""

MAX_KEY = 64
MAX_RING_ID = 256
MAX_NAME = 255
"""Byte limits (UTF-8) of the text fields; a ring id may be as long as the ring allows."""

MAX_INVITES = 4
"""Open invites one beacon names at most (a member opens at most this many at once)."""

MAX_INVITE_NUMBER = 999


@dataclass(frozen=True)
class Announcement:
    """What a beacon says to members: who sends it, which ring it is in, and its TCP port."""

    key: str
    ring_id: str
    name: str
    port: int


@dataclass(frozen=True)
class InviteHint:
    """An open invite, in the clear: its number (the code's first part) and the TCP port of the
    inviter's pairing listener, on the beacon's source address."""

    number: int
    port: int


@dataclass(frozen=True)
class Header:
    """The clear part of a beacon: what anyone on the LAN may read."""

    network_id: bytes
    invites: tuple[InviteHint, ...] = ()


def _fits(value: Any, limit: int, empty_ok: bool) -> bool:
    return (
        isinstance(value, str)
        and (empty_ok or value != "")
        and len(value.encode("utf-8", "surrogatepass")) <= limit
    )


def _is_int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _valid(key: Any, ring_id: Any, name: Any, port: Any) -> bool:
    return (
        _is_int(port, 1, 65535)
        and _fits(key, MAX_KEY, False)
        and _fits(ring_id, MAX_RING_ID, True)
        and _fits(name, MAX_NAME, True)
    )


def _unpack(data: bytes) -> Any:
    """One msgpack value filling `data` exactly; raises ValueError for anything else."""
    try:
        return msgpack.unpackb(data, raw=False, max_map_len=32, max_array_len=32)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise ValueError(str(exc)) from None


def build_packet(header: Header, body: bytes, seal: DatagramSeal) -> bytes:
    """A beacon from a clear header and a body to seal (msgpack of the announcement).

    Raises:
        ValueError: the header is out of its limits or the packet over `MAX_PACKET`.
    """
    if len(header.network_id) != NETWORK_ID_SIZE or len(header.invites) > MAX_INVITES:
        raise ValueError(f"beacon header out of limits: {header!r}")
    if not all(
        _is_int(h.number, 1, MAX_INVITE_NUMBER) and _is_int(h.port, 1, 65535)
        for h in header.invites
    ):
        raise ValueError(f"invite hint out of limits: {header.invites!r}")
    clear = b""
    if header.invites:
        clear = msgpack.packb({"i": [[h.number, h.port] for h in header.invites]})
    aad = PREFIX.pack(MAGIC, VERSION, header.network_id, len(clear)) + clear
    packet = aad + seal.seal(body, aad)
    if len(packet) > MAX_PACKET:
        raise ValueError(f"beacon of {len(packet)} bytes, over {MAX_PACKET}")
    return packet


def build_announcement(a: Announcement, header: Header, seal: DatagramSeal) -> bytes:
    """Encode a member's beacon.

    Raises:
        ValueError: a field is out of its limits (a bug in this node, not the network's).
    """
    if not _valid(a.key, a.ring_id, a.name, a.port):
        raise ValueError(f"announcement out of limits: {a!r}")
    body: bytes = msgpack.packb({"k": a.key, "r": a.ring_id, "n": a.name, "p": a.port})
    return build_packet(header, body, seal)


def read_header(data: bytes) -> tuple[Header, int] | None:
    """The clear header of a beacon and where its sealed body starts; None if not a beacon.

    Needs no key: a host without credentials reads which network beacons, and its invites.
    """
    if len(data) > MAX_PACKET or len(data) < PREFIX.size:
        return None
    magic, version, network_id, clear_len = PREFIX.unpack_from(data)
    end = PREFIX.size + clear_len
    if magic != MAGIC or version != VERSION or end > len(data):
        return None
    if clear_len == 0:
        return Header(network_id), end
    try:
        clear = _unpack(data[PREFIX.size : end])
    except ValueError:
        return None
    hints = clear.get("i", []) if isinstance(clear, dict) else None
    if not isinstance(hints, list) or len(hints) > MAX_INVITES:
        return None
    invites = []
    for hint in hints:
        if not (isinstance(hint, list) and len(hint) == 2):
            return None
        if not (_is_int(hint[0], 1, MAX_INVITE_NUMBER) and _is_int(hint[1], 1, 65535)):
            return None
        invites.append(InviteHint(hint[0], hint[1]))
    return Header(network_id, tuple(invites)), end


def open_announcement(data: bytes, end: int, seal: DatagramSeal) -> Announcement | None:
    """The announcement sealed in a beacon whose header ends at `end`, or None when the body
    does not open (a stranger's, a replay) or breaks a limit. Unknown map keys are ignored,
    so fields can be added without a new version."""
    plain = seal.open(data[end:], data[:end])
    if plain is None:
        return None
    try:
        body = _unpack(plain)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    fields: tuple[Any, Any, Any, Any] = (
        body.get("k"),
        body.get("r", ""),
        body.get("n", ""),
        body.get("p"),
    )
    return Announcement(*fields) if _valid(*fields) else None
