"""The node as a whole: builds the ring, the sync engine, the holder index and discovery, and
wires them (the one place where the packages meet, like wormhole's Boss).

Ring changes flow to sync (who is my previous node, how to reach each owner) and to the DHT
(whom to bootstrap from); sync's holdings flow to the DHT (announce, withdraw); the DHT answers
sync's "who holds H?", and the ring's heartbeats and this node's probes feed sync's round-trip
table, by which sync ranks those holders nearest first (`sync/sources.py`); the ring tells
sync which member a connection proved to be (whose PLACED counts, `sync/placed.py`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable

from dht.errors import DhtError
from dht.index import Holder, HolderIndex
from dht.regions import node_id_of
from overlay.beacon import Discovery
from overlay.commands import NodeCommands
from overlay.config import DEFAULT_PORT, Settings
from overlay.credentials import Credentials, load_credentials
from overlay.discovery import Interface, lan_interface
from overlay.events import ring_changes
from overlay.folderlock import FolderLock
from overlay.identity import Identity, base_name, default_name, load_or_create
from overlay.invites import Invites
from overlay.limits import raise_descriptor_limit
from overlay.loopwatch import LoopWatch
from overlay.refusals import watch_refusals
from overlay.rosterfile import load_roster
from overlay.sealing import NetworkSeals
from overlay.trust import Trust
from ring.membership import Member, View
from ring.service import RingService
from ring.wire import FrameServer, Tasks
from sync.engine import Peer, SyncEngine
from sync.sources import RoundTrips, to_probe

log = logging.getLogger(__name__)

PEER_RETRY = 3.0
"""How often configured peers outside the ring are contacted again (rings merge this way)."""

WITHDRAW_TIME = 2.0
"""Longest a graceful leave spends withdrawing this node's entries from the holder index."""

LOOKUP_TIME = 5.0
"""Longest a holder lookup may take (a few LAN timeouts): the prompt must never hang on one."""

PROBE_TIMEOUT = 0.5
"""A holder that does not answer a PING this fast on a LAN is ranked after every one that does."""


class Node:
    """One running host: `start`, then `leave` (graceful) or `close` (abrupt)."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self.server: FrameServer | None = None
        self.ring: RingService | None = None
        self.sync: SyncEngine | None = None
        self.index: HolderIndex | None = None
        self.discovery: Discovery | None = None
        self.identity: Identity | None = None
        self.trust: Trust | None = None
        self.seals: NetworkSeals | None = None
        self._network_listeners: list[Callable[[Credentials], None]] = [self._on_network_change]
        self._tasks = Tasks("node")
        self.invites: Invites | None = None
        self._bootstrapped: set[tuple[str, int]] = set()
        self._listeners: list[Callable[[str], None]] = []
        self._ring_listeners: list[Callable[[str], None]] = []
        self._seen: tuple[Member, ...] | None = None
        self.loopwatch = LoopWatch()
        self.lock = FolderLock(settings.state_dir)
        self.commands = NodeCommands(self)
        """The prompt's commands (`overlay/commands.py`)."""

    @property
    def port(self) -> int:
        """The bound port (TCP, and UDP for the DHT); known once started."""
        assert self.server is not None
        return self.server.port

    @property
    def view(self) -> View:
        """The ring as this node knows it."""
        assert self.ring is not None
        return self.ring.view

    # ----------------------------------------------------------------- lifecycle

    async def start(self, credentials: Credentials | None = None) -> None:
        """Load the credentials (founding a network if there are none) unless given, bind, scan
        the shared folder, join a ring (or found one), and start every service. Long on
        purpose: it is the order the parts are built and wired in, read top to bottom.

        Raises:
            CredentialsError, IdentityError: the state folder's keys or identity are unusable.
            FolderInUse: another node runs on this shared folder.
            OSError: the port is taken, or the state folder cannot be written.
        """
        self.lock.acquire()
        self._tasks.spawn(self.loopwatch.run())
        self._bootstrapped = set()
        self._seen = None
        settings = self.settings
        iface = self._interface()
        host = settings.host or (iface.address if iface else "127.0.0.1")
        # Listen only on the LAN that discovery serves: a host on two LANs must not be pulled
        # into a ring, met on the other one, that its own LAN's peers cannot reach.
        bind = settings.host or (iface.address if iface else "0.0.0.0")
        state_dir = settings.state_dir
        credentials = credentials or load_credentials(state_dir, settings.network_key)
        roster = load_roster(state_dir)
        self.trust = Trust(state_dir, credentials, roster, self._network_listeners)
        self.seals = NetworkSeals(credentials.network)
        door = self.trust.door
        raise_descriptor_limit()  # before the server sizes its connection table from it
        self.server = FrameServer(bind, settings.port, door=door)
        port = await self.server.start()
        self.lock.note_port(port)
        self.identity = load_or_create(
            state_dir,
            settings.name,
            default_name(
                base_name(socket.gethostname(), host, credentials.key), port, DEFAULT_PORT
            ),
            credentials.key,
        )
        me = Member(self.identity.key, self.identity.name, host, port)
        if settings.dht:
            node_id = node_id_of(me.key)
            self.index = HolderIndex(node_id, Holder(me.key, host, port), sealer=self.seals.dht)
            await self.index.listen(port, host)  # one address: datagrams are sealed for it
        self.sync = SyncEngine(
            settings.shared.resolve(),
            state_dir,
            me.name,
            door=door,
            sign=credentials.node_key.sign,
            owner_key=roster.key_of,
            interval=settings.interval,
            concurrency=settings.concurrency,
            locate=self._locate if self.index else None,
            locate_many=self._locate_many if self.index else None,
            watch=settings.watch,
            settle=settings.settle,
            allow_mass_delete=settings.allow_mass_delete,
            member_of=lambda conn: None if self.ring is None else self.ring.name_of(conn.identity),
            clock=self.clock,
        )
        for msg_type, handler in self.sync.routes():
            self.server.route(msg_type, handler)
        self.sync.add_change_listener(lambda change: self._tell(change.text()))
        await self.sync.start()
        if self.index is not None:
            self.sync.add_holding_listener(self._on_holding)
            self.sync.add_fetching_listener(self.index.fetching)
            self.index.hold(self.sync.held_hashes())
        self.ring = RingService(self.server, me, roster=roster)
        self.trust.attach(self.server, self.ring)
        self.ring.add_listener(self._on_view)  # install() calls it for the first view too
        self.invites = Invites(host, self._network_key, lambda: self.view, self._tell)
        await self.ring.start(settings.peers)
        if self.index is not None and len(self.ring.view.members) == 1:
            self._tasks.spawn(self.index.reannounce_all())
        self._tasks.spawn(watch_refusals(self.ring, self._tell))
        if settings.peers:
            self._tasks.spawn(self._contact_peers())
        if settings.discovery and iface is not None:
            await self._start_discovery(iface)
        log.info("node %r up on %s:%d, ring id %d", me.name, host, port, self.ring.my_id)

    async def leave(self) -> None:
        """Leave the ring gracefully (neighbours relink at once), then stop.

        The holder index is told first that this node no longer serves anything (in sweeps,
        many keys a request), for at most WITHDRAW_TIME: entries it cannot withdraw in time
        expire by themselves.
        """
        if self.index is not None and self.sync is not None:
            try:
                await asyncio.wait_for(
                    self.index.withdraw_all(self.sync.held_hashes()), WITHDRAW_TIME
                )
            except TimeoutError:
                log.info("left some holder entries to expire")
        if self.ring is not None:
            try:
                await self.ring.leave()
            except Exception:
                log.exception("leaving the ring failed; stopping anyway")
        await self.close()

    async def close(self) -> None:
        """Stop every service without telling anyone (what a crash looks like to peers).

        The server closes before the sync engine, whose database a late request would hit.
        """
        await self._tasks.stop()
        if self.invites is not None:
            await self.invites.close()
        if self.trust is not None:
            await self.trust.stop()
        if self.discovery is not None:
            await self.discovery.stop()
        if self.ring is not None:
            await self.ring.crash()
        if self.server is not None:
            await self.server.close()
            await self.server.door.close()
        if self.sync is not None:
            await self.sync.stop()
        if self.index is not None:
            self.index.stop()
        await asyncio.sleep(0)  # kademlia frees its UDP port one loop step after stop()
        self.lock.release()

    # ----------------------------------------------------------------- wiring

    @property
    def credentials(self) -> Credentials | None:
        """The node's current credentials (they change when the network is re-keyed)."""
        return None if self.trust is None else self.trust.credentials

    def on_network_change(self, cb: Callable[[Credentials], None]) -> None:
        """Call `cb(credentials)` after the network key changed (a re-key): the new key is
        `credentials.network`, the one it replaced `credentials.previous`."""
        self._network_listeners.append(cb)

    def _on_network_change(self, credentials: Credentials) -> None:
        """The network was re-keyed: seal datagrams and beacons with the new key from now on
        (the previous one still opens them for a grace period) and say the new id in beacons."""
        assert self.seals is not None
        self.seals.rekey(credentials.network)
        if self.discovery is not None:
            self.discovery.network_id = credentials.network.network_id

    def _on_view(self, view: View) -> None:
        """A ring change: tell sync its new neighbour and owners, and the DHT who its nodes are
        (the census) and whom to ask."""
        assert self.ring is not None and self.sync is not None
        me = self.ring.me
        for line in ring_changes(self._seen, view.members, me.key):
            for cb in self._ring_listeners:
                cb(line)
        self._seen = view.members
        prev = view.prev_of(me.key)
        peers = {m.name: Peer(m.name, m.host, m.port) for m in view.members if m.key != me.key}
        after = view.next_of(me.key)
        self.sync.set_topology(
            Peer(prev.name, prev.host, prev.port) if prev else None,
            peers,
            next=Peer(after.name, after.host, after.port) if after else None,
        )
        if self.index is not None:
            self.index.census((node_id_of(m.key), m.host, m.port) for m in view.members)
            fresh = [(m.host, m.port) for m in view.members if m.key != me.key]
            fresh = [addr for addr in fresh if addr not in self._bootstrapped]
            if fresh:
                first = not self._bootstrapped
                self._bootstrapped.update(fresh)
                self._tasks.spawn(self._bootstrap(fresh, first))

    async def _bootstrap(self, addrs: list[tuple[str, int]], first: bool) -> None:
        """Meet new members in the DHT; the first time, publish what this node holds (sweeps).

        Members met later are handed what they should store by the node nearest each key
        (the DHT's hand-over), so this node's entries are not sent again to everyone.
        """
        assert self.index is not None
        await self.index.bootstrap(addrs)
        if first:
            await self.index.reannounce_all()

    def _on_holding(self, sha256: str, held: bool) -> None:
        """Queue the change for the DHT's next sweep (no task, no lookup per file)."""
        assert self.index is not None
        self.index.queue(sha256, held)

    def _round_trips(self) -> RoundTrips:
        """Sync's round-trip table, given the ring's heartbeat estimates as they stand now."""
        assert self.ring is not None and self.sync is not None
        heard = self.ring.rtt
        self.sync.round_trips.heard(
            {m.name: heard[m.key] for m in self.ring.view.members if m.key in heard}
        )
        return self.sync.round_trips

    async def _probe(self, member: Member) -> None:
        """Measure one round trip with a ring PING; no answer leaves the holder unranked."""
        assert self.ring is not None and self.sync is not None
        started = self.clock()
        if await self.ring.ping(member, PROBE_TIMEOUT) is not None:
            now = self.clock()
            self.sync.round_trips.sample(member.name, now - started, now)

    async def _holders(self, sha256: str) -> list[Member]:
        """Members of the ring the index says hold the whole of `sha256` (who-has)."""
        return [m for m, fetching in (await self._holding([sha256]))[sha256] if not fetching]

    async def _holding(self, hashes: list[str]) -> dict[str, list[tuple[Member, bool]]]:
        """Members of the ring the index lists for each hash, with whether each is only
        fetching it, in the index's order (one hash: an exact lookup). Full holders with no
        recent round-trip sample are probed first (concurrently), so ranking them rests on a
        measurement, not on who happens to be our ring neighbour; partial ones, ranked after
        them all, are not (a running download looks for them every 0.5 s)."""
        assert self.index is not None and self.ring is not None
        by_key = {m.key: m for m in self.ring.view.members}
        try:
            listed = await asyncio.wait_for(self.index.holders_many(hashes), LOOKUP_TIME)
        except (DhtError, TimeoutError) as exc:
            log.warning("holder lookup of %d hashes failed: %s", len(hashes), exc or "timed out")
            listed = {}
        found: dict[str, list[tuple[Member, bool]]] = {sha: [] for sha in hashes}
        for sha, got in listed.items():
            found[sha] = [(by_key[h.holder_id], h.partial) for h in got if h.holder_id in by_key]
        full = {m.key: m for pairs in found.values() for m, fetching in pairs if not fetching}
        stale = to_probe(full.values(), self.ring.me.name, self._round_trips(), self.clock())
        if stale:
            await asyncio.gather(*(self._probe(m) for m in stale))
            self._round_trips()  # heartbeats that came in meanwhile count for the ranking too
        return found

    async def _locate(self, sha256_hex: str) -> list[Peer]:
        """Sync's "who holds H?": Peers, partial holders marked `fetching`, this node left out."""
        return (await self._locate_many([sha256_hex]))[sha256_hex]

    async def _locate_many(self, hashes: list[str]) -> dict[str, list[Peer]]:
        """`_locate` for many hashes at once (one batched lookup); sync ranks them."""
        assert self.ring is not None
        me, found = self.ring.me.key, await self._holding(hashes)
        return {
            sha: [Peer(m.name, m.host, m.port, f) for m, f in pairs if m.key != me]
            for sha, pairs in found.items()
        }

    async def _contact_peers(self) -> None:
        """Keep knocking on configured peers that are not in our ring, so split rings merge."""
        assert self.ring is not None
        while True:
            members = {(m.host, m.port) for m in self.ring.view.members}
            for host, port in self.settings.peers:
                if (host, port) not in members:
                    self.ring.contact(host, port)
            await asyncio.sleep(PEER_RETRY)

    def _interface(self) -> Interface | None:
        return lan_interface(self.settings.host)

    async def _start_discovery(self, iface: Interface) -> None:
        assert self.ring and self.seals and self.credentials and self.invites
        ring = self.ring
        self.discovery = Discovery(
            iface,
            seal=self.seals.beacon,
            network_id=self.credentials.network.network_id,
            key=ring.me.key,
            name=ring.me.name,
            port=ring.me.port,
            on_peer=ring.contact,
            ring_id=lambda: ring.view.ring_id,
            invites=self.invites.hints,
            beacon_port=self.settings.beacon_port,
        )
        self.invites.changed = self.discovery.beacon_now
        await self.discovery.start()

    # ----------------------------------------------------------------- the prompt

    def add_change_listener(self, cb: Callable[[str], None]) -> None:
        """Call cb(line) for each change to the shared folders and what becomes of an invite."""
        self._listeners.append(cb)

    def add_ring_listener(self, cb: Callable[[str], None]) -> None:
        """Call cb(line) when a member joins or leaves the ring (`overlay/events.py`)."""
        self._ring_listeners.append(cb)

    def _network_key(self) -> bytes:
        assert self.credentials is not None
        return self.credentials.network.secret

    def _tell(self, line: str) -> None:
        for cb in self._listeners:
            cb(line)
