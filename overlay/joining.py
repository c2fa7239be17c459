"""The joiner's side of joining by code: what a host without credentials hears on the LAN, and
taking an invite there.

A host without credentials cannot open a beacon's sealed body, but it can read the clear header
(`overlay/announcement.py`): which networks beacon on its LAN, and where their open invites are
taken. `NetworkWatch` listens on the beacon port for those headers (it never sends anything);
`join` finds the listener of the invite the code names (or is told its address) and runs the
exchange there (`overlay/pairing_wire.py`). Headers are not authenticated (a stranger can make
them up), so every place named for the code's number is tried in turn, at most `MAX_PLACES`:
a fake one costs a failed attempt, never a guess at the real code.
"""

from __future__ import annotations

import asyncio
import logging
import time
from argparse import ArgumentTypeError
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from ipaddress import IPv4Address
from typing import Protocol, TypeVar

from overlay.announcement import read_header
from overlay.beacon import INTERVAL, BeaconProtocol, open_beacon_socket
from overlay.config import Settings, parse_peer
from overlay.credentials import Credentials, adopt_network
from overlay.discovery import Interface
from overlay.network_key import NetworkKey
from overlay.pairing import InviteClosed, InviteCode, PairingError, Welcome, WrongCode
from overlay.pairing_wire import attempt
from ring.membership import View
from ring.wire import Door

log = logging.getLogger(__name__)

Address = tuple[str, int]
K = TypeVar("K")

MAX_HEARD = 64
"""Networks and invite places remembered at most (the oldest are forgotten first)."""

MAX_PLACES = 4
"""Places tried for one code."""

HEARD_FOR = 10.0
"""Seconds a network or an invite place counts as present after its last beacon."""

LOCATE_FOR = 3 * INTERVAL
"""Seconds a joiner listens for the beacon naming its invite (members beacon every INTERVAL,
and an inviter at once when the invite opens)."""


class NoInviter(PairingError):
    """No member on the LAN has this invite open (check the number; is discovery on there?)."""


def parse_join(text: str) -> tuple[InviteCode, list[Address]]:
    """The arguments of `join`: a code, and optionally the HOST:PORT `invite` printed.

    Raises:
        CodeFormatError: no code, or not a code.
        PairingError: more than two arguments, or a bad HOST:PORT.
    """
    words = text.split()
    if not words or len(words) > 2:
        raise PairingError("usage: join <code> [HOST:PORT]")
    code = InviteCode.parse(words[0])
    if len(words) == 1:
        return code, []
    try:
        return code, [parse_peer(words[1])]
    except ArgumentTypeError as exc:
        raise PairingError(str(exc)) from None


class NetworkWatch:
    """Beacon headers heard on one interface: networks present, and places of open invites.

    Args:
        iface: the LAN interface; beacons from outside its subnet are ignored.
        beacon_port: the UDP port beacons go to.
        listen_host: address to bind (0.0.0.0 hears broadcasts).
        clock: monotonic seconds.
    """

    def __init__(
        self,
        iface: Interface,
        beacon_port: int,
        listen_host: str = "0.0.0.0",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.iface = iface
        self.beacon_port = beacon_port
        self.listen_host = listen_host
        self.clock = clock
        self.networks: OrderedDict[bytes, float] = OrderedDict()
        self.places: OrderedDict[tuple[int, str, int], float] = OrderedDict()
        self._heard = asyncio.Event()
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self) -> None:
        """Bind the beacon port (shared with any node on this host) and listen.

        Raises:
            OSError: the port cannot be bound.
        """
        sock = open_beacon_socket(self.listen_host, self.beacon_port)
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: BeaconProtocol(self.hear), sock=sock
        )
        self._transport = transport

    def stop(self) -> None:
        """Close the socket; safe to call twice."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def hear(self, data: bytes, addr: Address) -> None:
        """Take one datagram's clear header, if it has one (a beacon of any network)."""
        read = read_header(data)
        if read is None or IPv4Address(addr[0]) not in self.iface.network:
            return
        header, now = read[0], self.clock()
        _remember(self.networks, header.network_id, now)
        for hint in header.invites:
            _remember(self.places, (hint.number, addr[0], hint.port), now)
        self._heard.set()

    def network(self) -> bytes | None:
        """The network heard most lately, if any was heard within `HEARD_FOR` seconds."""
        fresh = [n for n, seen in self.networks.items() if self.clock() - seen < HEARD_FOR]
        return fresh[-1] if fresh else None

    def invite_places(self, number: int) -> list[Address]:
        """Where invite `number` is open, as heard lately, the latest first."""
        now = self.clock()
        found = [
            (host, port)
            for (n, host, port), seen in self.places.items()
            if n == number and now - seen < HEARD_FOR
        ]
        return found[::-1][:MAX_PLACES]

    async def wait(self, found: Callable[[], object], timeout: float) -> None:
        """Return once `found()` is truthy, or after `timeout` seconds."""
        deadline = self.clock() + timeout
        while not found() and (left := deadline - self.clock()) > 0:
            self._heard.clear()
            try:
                await asyncio.wait_for(self._heard.wait(), left)
            except TimeoutError:
                return


def _remember(table: OrderedDict[K, float], key: K, now: float) -> None:
    table[key] = now
    table.move_to_end(key)
    while len(table) > MAX_HEARD:
        table.popitem(last=False)


@asynccontextmanager
async def watching(iface: Interface | None, beacon_port: int) -> AsyncIterator[NetworkWatch | None]:
    """A `NetworkWatch` on `iface` while the block runs (None without an interface).

    Raises:
        OSError: the beacon port cannot be bound.
    """
    if iface is None:
        yield None
        return
    watch = NetworkWatch(iface, beacon_port)
    await watch.start()
    try:
        yield watch
    finally:
        watch.stop()


async def take_invite(
    code: InviteCode, given: Sequence[Address], watch: NetworkWatch | None
) -> Welcome:
    """Take invite `code`: at the addresses `given`, else where the LAN's beacons say it is.

    Raises:
        NoInviter: nowhere to take it (no address given and none heard, or no discovery).
        WrongCode, InviteClosed, PairingError: as `join`.
    """
    places = list(given)
    if not places and watch is None:
        raise NoInviter(
            "no discovery here: give the address 'invite' printed"
            " (join <code> HOST:PORT, or --join CODE --peer HOST:PORT)"
        )
    if not places and watch is not None:
        await watch.wait(lambda: watch.invite_places(code.number), LOCATE_FOR)
        places = watch.invite_places(code.number)
    return await join(code, places)


async def welcome_for(text: str, iface: Interface | None, beacon_port: int) -> Welcome:
    """The `join` command's arguments turned into a welcome: parse them, find the invite (on
    `iface`'s LAN, unless an address is given) and take it.

    Raises:
        PairingError: a bad code, nowhere to take it, a wrong code, a closed invite.
        OSError: the beacon port cannot be bound.
    """
    code, given = parse_join(text)
    async with watching(iface, beacon_port) as watch:
        return await take_invite(code, given, watch)


class Movable(Protocol):
    """What moving to another network by code needs of a running node (`overlay.node.Node`)."""

    settings: Settings

    @property
    def view(self) -> View: ...

    async def close(self) -> None: ...

    async def start(self, credentials: Credentials | None = None) -> None: ...


async def move_by_code(node: Movable, text: str, interface: Callable[[], Interface | None]) -> str:
    """The `join` command at a running node: take the invite, then stop the node and start it
    again as a member of the new network, joining its ring. Only a node alone in its ring
    moves: its ring's members would otherwise lose it, and it would carry their files along.

    Args:
        interface: the LAN interface, looked for only with discovery on.

    Returns:
        What the prompt says.
    """
    if len(node.view.members) > 1:
        return "join: only a host alone in its ring moves to another network"
    iface = interface() if node.settings.discovery else None
    try:
        welcome = await welcome_for(text, iface, node.settings.beacon_port)
    except (PairingError, OSError) as exc:
        return f"join: {exc}"
    network = NetworkKey(welcome.network_key)
    await node.close()
    node.settings = replace(node.settings, peers=welcome.ring)
    await node.start(adopt_network(node.settings.state_dir, network))
    return f"joined network {network.network_id.hex()}"


async def join(code: InviteCode, places: Sequence[Address]) -> Welcome:
    """Take invite `code` at the first of `places` that has it.

    Raises:
        NoInviter: `places` is empty.
        WrongCode, InviteClosed: the (last) inviter said so.
        PairingError: no place could be reached, or the exchange broke off.
    """
    if not places:
        raise NoInviter(f"no member on the LAN has invite {code.number} open")
    door = Door.plain()
    failure: PairingError = NoInviter(f"no member on the LAN has invite {code.number} open")
    for host, port in places[:MAX_PLACES]:
        try:
            return await attempt(door, host, port, code)
        except (WrongCode, InviteClosed) as exc:
            failure = exc
        except PairingError as exc:
            log.info("invite %d at %s:%d: %s", code.number, host, port, exc)
            if not isinstance(failure, (WrongCode, InviteClosed)):
                failure = exc
    raise failure
