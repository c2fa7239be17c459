"""The asyncio shell of LAN discovery: the UDP beacon socket, the ARP reader, the timers.

Every decision (what a packet says, which ARP rows count, when to tell the node) is made by
`overlay/announcement.py` and `overlay/discovery.py`; this module only sends and receives
datagrams and reads the table. Beacons are sealed with the network's beacon key: one that is
not a member's of this network (a stranger's, another network's, a replay) is counted and
dropped, and changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import subprocess
import time
from collections.abc import Callable
from ipaddress import IPv4Address

from overlay.announcement import (
    Announcement,
    Header,
    InviteHint,
    build_announcement,
    open_announcement,
    read_header,
)
from overlay.discovery import (
    Interface,
    Peer,
    PeerTable,
    parse_arp_text,
    reachable_peers,
)
from overlay.sealing import DatagramSeal
from ring.wire import cancel_and_wait

log = logging.getLogger(__name__)

DEFAULT_BEACON_PORT = 8090

INTERVAL = 2.0
"""Seconds between a node's beacons."""

RENOTIFY = 5.0
"""Seconds before a peer still beaconing is passed to `on_peer` again. A first contact lost
on a lossy LAN is retried this soon (the netns lab, 10% loss on two of six hosts, saw rings
stay split 30 and 60 s with 30 here); for a peer already in our ring the call costs nothing."""


def read_arp_table(device: str, path: str = "/proc/net/arp") -> str:
    """The kernel's neighbour table as text: `path`, else `ip -4 neigh show dev DEVICE`.

    Raises:
        OSError: neither source could be read.
    """
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError as exc:
        log.debug("cannot read %s (%s); asking ip neigh", path, exc)
    try:
        return subprocess.run(
            ["ip", "-4", "neigh", "show", "dev", device],
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
        ).stdout
    except subprocess.SubprocessError as exc:
        raise OSError(f"cannot read the neighbour table: {exc}") from exc


def open_beacon_socket(host: str, port: int) -> socket.socket:
    """A UDP socket bound to (host, port) that hears broadcasts, sharing the port with every
    other node on this host (SO_REUSEADDR: each socket gets every broadcast).

    Raises:
        OSError: the port cannot be bound.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class BeaconProtocol(asyncio.DatagramProtocol):
    """Hands each datagram to Discovery; bytes only."""

    def __init__(self, on_datagram: Callable[[bytes, tuple[str, int]], None]) -> None:
        self.on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("beacon socket error: %s", exc)


class Discovery:
    """Finds peers on one LAN interface by ARP scans and a UDP broadcast beacon.

    Each peer found is passed to `on_peer(host, port)`: beacon senders with the TCP port they
    announce, ARP neighbours with `arp_port` (default: our own `port`). A peer is passed again
    only when it is new, returns after going quiet, or `renotify` seconds have passed. A beacon
    from a new peer is answered with ours at once, or if we answered less than `interval`/4
    ago, then (one answer for all the newcomers meanwhile): a node that starts learns of the
    others within a round trip, and a whole LAN booting at once is not flooded.

    Args:
        iface: the LAN interface (`choose_interface`); its subnet bounds whom we believe.
        seal: seals our beacons and opens the members' (the network's beacon key).
        network_id: the network's public id, in the clear part of every beacon.
        key, name, port: this node's ring key, folder name and TCP port, as beaconed.
        on_peer: told each (host, TCP port) found; called on the event loop, must not block.
        ring_id: this node's current ring id ("" before it has one), read at each beacon.
        invites: this node's open invites, read at each beacon (see `beacon_now`).
        beacon_port: UDP port to listen on (0: any; see `address` after start).
        interval: seconds between beacons; a peer silent for 3 intervals + 1 s is forgotten.
        broadcast: where beacons go (default `iface.broadcast`); tests give 127.0.0.1.
        read_arp: returns the neighbour table's text (default: /proc/net/arp, or ip neigh).
        send_port: UDP port beacons go to (default: the bound beacon port).
        listen_host: address to bind; 0.0.0.0 is needed to hear broadcasts.
        arp_port: TCP port assumed for ARP neighbours (default: `port`).
        arp_interval: seconds between ARP scans.
        renotify: seconds before a peer still visible is passed to `on_peer` again.
        clock: monotonic seconds, for the peer table.
    """

    def __init__(
        self,
        iface: Interface,
        *,
        seal: DatagramSeal,
        network_id: bytes,
        key: str,
        name: str,
        port: int,
        on_peer: Callable[[str, int], None],
        ring_id: Callable[[], str],
        invites: Callable[[], tuple[InviteHint, ...]] = tuple,
        beacon_port: int = DEFAULT_BEACON_PORT,
        interval: float = INTERVAL,
        broadcast: str | None = None,
        read_arp: Callable[[], str] | None = None,
        send_port: int | None = None,
        listen_host: str = "0.0.0.0",
        arp_port: int | None = None,
        arp_interval: float = 30.0,
        renotify: float = RENOTIFY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.iface = iface
        self.seal = seal
        self.network_id = network_id
        self.invites = invites
        self.key = key
        self.name = name
        self.port = port
        self.on_peer = on_peer
        self.ring_id = ring_id
        self.beacon_port = beacon_port
        self.interval = interval
        self.broadcast = broadcast or iface.broadcast
        self.read_arp = read_arp or (lambda: read_arp_table(iface.name))
        self.send_port = send_port
        self.listen_host = listen_host
        self.arp_port = arp_port or port
        self.arp_interval = arp_interval
        self.clock = clock
        self.table = PeerTable(renotify)
        self.stats = {
            "received": 0,
            "own": 0,
            "malformed": 0,
            "other network": 0,
            "forged": 0,
            "foreign": 0,
            "sent": 0,
        }
        self.address: tuple[str, int] | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._last_answer = -math.inf
        self._answer_later: asyncio.TimerHandle | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._arp_failed = False

    async def start(self) -> None:
        """Bind the beacon port, then beacon every `interval` and scan ARP every `arp_interval`.

        The socket sets SO_REUSEADDR, so several nodes on one host share the beacon port and
        each gets every broadcast.

        Raises:
            OSError: the beacon port cannot be bound.
        """
        sock = open_beacon_socket(self.listen_host, self.beacon_port)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: BeaconProtocol(self._on_datagram), sock=sock
        )
        self._transport = transport
        self.address = sock.getsockname()
        self._tasks = [
            asyncio.create_task(self._every(self.interval, self._send_beacon)),
            asyncio.create_task(self._every(self.arp_interval, self.scan_arp_once)),
        ]
        log.info(
            "discovery on %s (%s, %s): beacon on %s:%d to %s:%d",
            self.iface.name,
            self.iface.address,
            self.iface.network,
            self.address[0],
            self.address[1],
            self.broadcast,
            self._target_port(),
        )

    async def stop(self) -> None:
        """Stop the timers and close the socket; safe to call twice or before start."""
        await cancel_and_wait(self._tasks)
        self._tasks = []
        if self._answer_later is not None:
            self._answer_later.cancel()
            self._answer_later = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def peers(self) -> list[Peer]:
        """Peers seen lately (beacon senders carry their announcement, so their ring id)."""
        self.table.expire(self.clock())
        return self.table.peers()

    async def scan_arp_once(self) -> list[str]:
        """Read the ARP table once; return its live neighbours on our subnet.

        Those not heard of lately go to `on_peer` with `arp_port`. An unreadable table is
        logged and gives [].
        """
        try:
            text = await asyncio.to_thread(self.read_arp)
        except OSError as exc:
            log.log(logging.DEBUG if self._arp_failed else logging.WARNING, "no ARP scan: %s", exc)
            self._arp_failed = True
            return []
        self._arp_failed = False
        hosts = reachable_peers(parse_arp_text(text, self.iface.name), self.iface)
        ttl = 2 * self.arp_interval
        for host in hosts:
            if self.table.observe(host, self.arp_port, self.clock(), ttl):
                log.info("ARP: neighbour %s, trying port %d", host, self.arp_port)
                self._tell(host, self.arp_port)
        log.debug("ARP scan: %d live neighbours on %s", len(hosts), self.iface.name)
        return hosts

    def _target_port(self) -> int:
        if self.send_port is not None:
            return self.send_port
        return self.address[1] if self.address else self.beacon_port

    async def _every(self, period: float, action: Callable[[], object]) -> None:
        """Run `action` now and every `period` seconds; one failure never stops the timer."""
        while True:
            try:
                result = action()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("discovery step failed; retrying in %.1fs", period)
            await asyncio.sleep(period)

    def beacon_now(self) -> None:
        """Send a beacon at once, out of turn (an invite just opened: say so now)."""
        self._send_beacon()

    def _send_beacon(self) -> None:
        if self._transport is None:
            return
        packet = build_announcement(
            Announcement(self.key, self.ring_id(), self.name, self.port),
            Header(self.network_id, self.invites()),
            self.seal,
        )
        try:
            self._transport.sendto(packet, (self.broadcast, self._target_port()))
            self.stats["sent"] += 1
        except OSError as exc:
            log.debug("beacon not sent: %s", exc)

    def _on_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        self.stats["received"] += 1
        read = read_header(data)
        if read is None:
            self.stats["malformed"] += 1
            return
        header, end = read
        if header.network_id != self.network_id:
            self.stats["other network"] += 1
            return
        ann = open_announcement(data, end, self.seal)
        if ann is None:
            self.stats["forged"] += 1
            return
        if ann.key == self.key:
            self.stats["own"] += 1
            return
        host = addr[0]
        if IPv4Address(host) not in self.iface.network:
            self.stats["foreign"] += 1
            log.debug("ignored a beacon from %s, outside %s", host, self.iface.network)
            return
        now = self.clock()
        self.table.expire(now)
        new = (host, ann.port) not in self.table
        if self.table.observe(host, ann.port, now, 3 * self.interval + 1.0, ann):
            log.info("beacon: %r (ring %s) at %s:%d", ann.name, ann.ring_id or "-", host, ann.port)
            self._tell(host, ann.port)
        if new:
            self._answer(now)

    def _answer(self, now: float) -> None:
        """Beacon now, or once `interval`/4 after the last answer: answers to many are one."""
        if self._answer_later is not None:
            return
        delay = self._last_answer + self.interval / 4 - now
        if delay <= 0:
            self._answer_now()
        else:
            self._answer_later = asyncio.get_running_loop().call_later(delay, self._answer_now)

    def _answer_now(self) -> None:
        self._answer_later = None
        self._last_answer = self.clock()
        self._send_beacon()

    def _tell(self, host: str, port: int) -> None:
        try:
            self.on_peer(host, port)
        except Exception:
            log.exception("on_peer(%s, %d) failed", host, port)
