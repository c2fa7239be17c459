"""LAN discovery without sockets: ARP and interface parsing, the peer table.

Theory of operation. A node finds peers two ways: hosts it already talks to show up in the
kernel's ARP table (the original program's only way), and nodes announce themselves with a
UDP broadcast beacon. Every decision about what those sources say lives here, as functions of
text, bytes and `now`: which ARP rows are live neighbours on our own subnet, which interface
is the LAN one, and when a peer is worth telling the node about again (what a beacon packet
holds is `overlay/announcement.py`). `overlay/beacon.py` only moves datagrams and reads files
around these.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from overlay.announcement import Announcement

log = logging.getLogger(__name__)

ATF_COM = 0x2
"""/proc/net/arp flag of a complete entry (the neighbour answered; its MAC is known)."""

LIVE_STATES = frozenset({"REACHABLE", "STALE", "DELAY", "PROBE", "PERMANENT"})
"""`ip neigh` states whose entry has a link-layer address, i.e. flag 0x2 in /proc/net/arp;
never FAILED, INCOMPLETE, NONE or NOARP."""


@dataclass(frozen=True)
class Interface:
    """One IPv4 address of a network interface, with the subnet and broadcast it implies."""

    name: str
    address: str
    network: IPv4Network
    broadcast: str


@dataclass(frozen=True)
class ArpEntry:
    """One neighbour row; `complete` means the kernel knows its link-layer address."""

    address: str
    device: str
    complete: bool


def parse_proc_arp(text: str) -> list[ArpEntry]:
    """Rows of /proc/net/arp (header first); rows that do not parse are skipped."""
    entries = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 6:
            continue
        try:
            flags = int(fields[2], 16)
            ipaddress.IPv4Address(fields[0])
        except ValueError:
            continue
        known_mac = fields[3] != "00:00:00:00:00:00"
        entries.append(ArpEntry(fields[0], fields[5], bool(flags & ATF_COM) and known_mac))
    return entries


def parse_ip_neigh(text: str, device: str = "") -> list[ArpEntry]:
    """Lines of `ip -4 neigh show [dev IFACE]`; `device` fills in rows that omit `dev`.

    `ip neigh show dev eth0` leaves "dev eth0" out of each line, so the caller that asked for
    one device says which. IPv6 rows and lines that do not parse are skipped.
    """
    entries = []
    for line in text.splitlines():
        tokens = line.split()
        if not tokens:
            continue
        try:
            ipaddress.IPv4Address(tokens[0])
        except ValueError:
            continue
        words = dict(zip(tokens[1:], tokens[2:], strict=False))
        states = {t for t in tokens[1:] if t.isupper()}
        live = "lladdr" in words and bool(states & LIVE_STATES)
        entries.append(ArpEntry(tokens[0], words.get("dev", device), live))
    return entries


def parse_arp_text(text: str, device: str) -> list[ArpEntry]:
    """Either format: /proc/net/arp (starts with its "IP address" header) or `ip neigh`."""
    if text.lstrip().startswith("IP address"):
        return parse_proc_arp(text)
    return parse_ip_neigh(text, device)


def reachable_peers(entries: Iterable[ArpEntry], iface: Interface) -> list[str]:
    """Addresses worth contacting: complete rows on `iface`, inside its subnet, not itself.

    The subnet check keeps out stale rows from a previous network and addresses reached
    through a router; the network and broadcast addresses are never hosts.
    """
    skip = {iface.address, str(iface.network.network_address), iface.broadcast}
    peers: list[str] = []
    for entry in entries:
        if not entry.complete or entry.device != iface.name or entry.address in skip:
            continue
        if IPv4Address(entry.address) in iface.network and entry.address not in peers:
            peers.append(entry.address)
    return peers


def parse_ip_addr_json(text: str) -> list[Interface]:
    """Interfaces from `ip -j -4 addr show`, less loopback and down ones (one per address)."""
    interfaces = []
    for link in json.loads(text):
        flags = link.get("flags", [])
        if "LOOPBACK" in flags or "UP" not in flags:
            continue
        for info in link.get("addr_info", []):
            if info.get("family") != "inet":
                continue
            network = IPv4Network(f"{info['local']}/{info['prefixlen']}", strict=False)
            broadcast = info.get("broadcast") or str(network.broadcast_address)
            interfaces.append(Interface(link["ifname"], info["local"], network, broadcast))
    return interfaces


def list_interfaces() -> list[Interface]:
    """This host's usable IPv4 interfaces, from `ip -j -4 addr show` (no network traffic).

    Raises:
        OSError: `ip` is missing or failed; the caller runs without discovery.
    """
    try:
        out = subprocess.run(
            ["ip", "-j", "-4", "addr", "show"],
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
        ).stdout
        return parse_ip_addr_json(out)
    except (subprocess.SubprocessError, ValueError, KeyError) as exc:
        raise OSError(f"cannot list interfaces with ip: {exc}") from exc


def parse_default_route(text: str) -> str | None:
    """The interface of the default route with the lowest metric, from /proc/net/route."""
    best: tuple[int, str] | None = None
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8 or fields[1] != "00000000" or fields[7] != "00000000":
            continue
        try:
            up, metric = int(fields[3], 16) & 0x1, int(fields[6])
        except ValueError:
            continue
        if up and (best is None or metric < best[0]):
            best = (metric, fields[0])
    return best[1] if best else None


def _read_route_table() -> str:
    try:
        with open("/proc/net/route", encoding="ascii") as f:
            return f.read()
    except OSError as exc:
        log.debug("no routing table: %s", exc)
        return ""


def choose_interface(
    interfaces: Sequence[Interface], host: str | None = None, *, route_text: str | None = None
) -> Interface | None:
    """The LAN interface to discover on.

    The one carrying `host` if given; else the default route's (read from /proc/net/route
    unless `route_text` is given), else the first. A `host` that no interface carries (say
    127.0.0.1) gives None: peers on a LAN could not reach a node bound there.
    """
    if host and host != "0.0.0.0":
        return next((i for i in interfaces if i.address == host), None)
    default = parse_default_route(_read_route_table() if route_text is None else route_text)
    chosen = next((i for i in interfaces if i.name == default), None)
    return chosen or (interfaces[0] if interfaces else None)


def lan_interface(host: str | None) -> Interface | None:
    """`choose_interface` among this host's interfaces; None (with a warning) if they cannot
    be listed."""
    try:
        return choose_interface(list_interfaces(), host)
    except OSError as exc:
        log.warning("cannot list network interfaces: %s", exc)
        return None


@dataclass(frozen=True)
class Peer:
    """A peer seen on the LAN; `announcement` is None for one found only in the ARP table."""

    host: str
    port: int
    announcement: Announcement | None
    expires: float
    notified: float


class PeerTable:
    """Which (host, port) pairs were seen lately, and when to tell the node about them again.

    Beacons repeat every few seconds; the node hears of a peer when it is new, when it comes
    back after expiring, and then again every `renotify` seconds (in case the first contact
    failed), not at every beacon.
    """

    def __init__(self, renotify: float = 30.0) -> None:
        self.renotify = renotify
        self._peers: dict[tuple[str, int], Peer] = {}

    def observe(
        self, host: str, port: int, now: float, ttl: float, announcement: Announcement | None = None
    ) -> bool:
        """Record a sighting valid for `ttl` seconds; True if the node should be told now.

        An ARP sighting (no announcement) of a host that already beacons is ignored: the
        beacon gave its real port.
        """
        self.expire(now)
        if announcement is None and any(
            p.host == host and p.announcement is not None for p in self._peers.values()
        ):
            return False
        old = self._peers.get((host, port))
        tell = old is None or now - old.notified >= self.renotify
        notified = now if tell or old is None else old.notified
        self._peers[(host, port)] = Peer(host, port, announcement, now + ttl, notified)
        return tell

    def __contains__(self, address: object) -> bool:
        """Whether a (host, port) pair is in the table (expire it first to ask "seen lately")."""
        return address in self._peers

    def expire(self, now: float) -> list[Peer]:
        """Drop and return the peers not seen within their ttl."""
        gone = [p for p in self._peers.values() if p.expires <= now]
        for peer in gone:
            del self._peers[(peer.host, peer.port)]
        return gone

    def peers(self) -> list[Peer]:
        """The peers currently known, in the order first seen."""
        return list(self._peers.values())
