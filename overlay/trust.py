"""Whom a node talks with, forgetting a member, and moving the network to a new key.

Theory of operation. The TLS handshake proves that a peer holds a certificate of the network;
this module decides which of those peers the node still talks with (it is the door's `Gate`):
never a revoked key (a forgotten member), on every request, resumed sessions and kept
connections included; anyone with a certificate of the current network key; and, with a
certificate of another key (the network's previous one), only a member whose key the roster
binds to a name.

`forget <name>` revokes the member's key in the roster (which every member takes from any
other, and which cuts the member's connections here and its place in the ring), tells every
member (FORGET), and re-keys: the network gets a fresh key, which this node hands every member
it reaches (REKEY) and then takes itself. The forgotten host still holds the old key and could
make certificates for new keys with it; after the re-key a certificate of the old key counts
only for keys the roster binds, and the forgotten key is revoked, so it is shut out for good.

A member that missed the re-key (it was off) still holds the old key. Members keep the
previous key, trust its CA, and send a cross certificate, so the two still complete a
handshake; whichever side sees the other's certificate on another key settles it: a member on
the old key asks for the new one (KEY), a member on the new key that dialed one on the old
hands it over (REKEY). A node takes a key only as the successor of its own (or, of two re-keys
made at once from one key, the one with the lower network id, so all end on the same one).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from overlay.certificates import ca_name
from overlay.credentials import PREVIOUS_KEY_FILE, Credentials
from overlay.keystore import replace, save_network
from overlay.network_key import NetworkKey, NetworkKeyError
from ring.errors import BadRequest, Forbidden, RingError
from ring.messages import Forget, KeyData, KeyRequest, Rekey
from ring.roster import Roster, fingerprint
from ring.service import RingService
from ring.wire import Connection, FrameServer, Message, Ok, Tasks, expect

log = logging.getLogger(__name__)

ASKED_MAX = 4096
"""(peer, issuer) pairs remembered as already given or asked a key; then forgotten at once."""

KEY_TIMEOUT = 5.0
"""Seconds to hand over or ask for a network key."""


def issuer_of(network: NetworkKey) -> str:
    """The issuer name on certificates of `network` (as `ring.wire.peer_issuer` reads it)."""
    return ca_name(network).rfc4514_string()


class Trust:
    """One node's gate, its forget command and its network key changes.

    Args:
        state_dir: where the network keys live.
        credentials: the node's credentials as loaded.
        roster: the names bound to keys and the revoked keys (shared with the ring).
        listeners: called with the new credentials after each change of the network key.
    """

    def __init__(
        self,
        state_dir: Path,
        credentials: Credentials,
        roster: Roster,
        listeners: list[Callable[[Credentials], None]],
    ) -> None:
        self.state_dir = state_dir
        self.credentials = credentials
        self.roster = roster
        self.door = credentials.door()
        self.door.gate = self
        self.server: FrameServer | None = None
        self.ring: RingService | None = None
        self._listeners = listeners
        self._asked: set[tuple[str, str]] = set()
        self._cut: set[str] = set(roster.revoked)
        self._tasks = Tasks("trust")
        self._issuers()
        roster.listen(self._on_roster)

    def _issuers(self) -> None:
        previous = self.credentials.previous
        self.current = issuer_of(self.credentials.network)
        self.previous = issuer_of(previous) if previous is not None else None

    def attach(self, server: FrameServer, ring: RingService) -> None:
        """Serve FORGET, REKEY and KEY on `server`; `ring` says who the members are."""
        self.server, self.ring = server, ring
        server.route(Forget, self._on_forget)
        server.route(Rekey, self._on_rekey)
        server.route(KeyRequest, self._on_key)

    async def stop(self) -> None:
        """Stop handing over and asking for keys."""
        await self._tasks.stop()

    # -- the gate ------------------------------------------------------------------------------

    def admits(self, identity: str, issuer: str) -> bool:
        """Never a revoked key; anyone on the current key; a bound member on another key."""
        if self.roster.is_revoked(identity):
            return False
        return issuer == self.current or bool(self.roster.names_of(identity))

    def dialed(self, address: tuple[str, int], identity: str, issuer: str) -> None:
        """A peer this node dialed is on another key: hand it ours, or ask for its own."""
        if issuer == self.current or (identity, issuer) in self._asked:
            return
        if len(self._asked) >= ASKED_MAX:
            self._asked.clear()
        self._asked.add((identity, issuer))
        if issuer == self.previous:
            self._tasks.spawn(self._hand_over(address))
        else:
            self._tasks.spawn(self._ask(address, issuer))

    def _on_roster(self) -> None:
        """Cut every connection of a key the roster newly revokes."""
        for key in self.roster.revoked - self._cut:
            self._cut.add(key)
            self.door.drop(key)
            if self.server is not None:
                self._tasks.spawn(self.server.cut(key))

    # -- forget --------------------------------------------------------------------------------

    async def forget(self, name: str) -> str:
        """Revoke the member `name`, tell every member, and move the network to a new key.

        Returns:
            What happened, for the prompt.
        """
        key = self.roster.key_of(name)
        if key is None:
            return f"no member is named {name!r} (see 'peers')"
        if key == self.credentials.key:
            return "this node cannot forget itself"
        assert self.ring is not None
        members = [m for m in self.ring.view.members if m.key not in (key, self.credentials.key)]
        self.roster.revoke(key)
        log.warning("forgot %s (key %s)", name, fingerprint(key))
        old, new = self.credentials.network, NetworkKey.generate()
        rekey = Rekey(new.secret, old.network_id.hex())
        told = await asyncio.gather(
            *(self._tell(m.host, m.port, Forget(key), rekey) for m in members)
        )
        self._switch(new, old)
        return (
            f"forgot {name} (key {fingerprint(key)}); new network key {new.network_id.hex()}:"
            f" {sum(told)} of {len(members)} member(s) took it now, the others get it when"
            " they next connect"
        )

    async def _tell(self, host: str, port: int, *msgs: Message) -> bool:
        """Send each message to host:port in turn; whether all were taken."""
        try:
            for msg in msgs:
                expect(await self.door.request(host, port, msg, KEY_TIMEOUT), Ok)
        except RingError as exc:
            log.info("%s:%d did not take %s: %s", host, port, msgs[-1].TYPE, exc)
            return False
        return True

    # -- handlers ------------------------------------------------------------------------------

    def _member(self, conn: Connection) -> str:
        """The sender's name; only a member the roster binds may forget or re-key.

        Raises:
            Forbidden: the sender is no bound member.
        """
        names = self.roster.names_of(conn.identity)
        if not names:
            raise Forbidden("only a member of the ring may do this")
        return names[0]

    async def _on_forget(self, msg: Message, conn: Connection) -> Message:
        assert isinstance(msg, Forget)
        sender = self._member(conn)
        if msg.key == conn.identity:
            raise BadRequest("a member cannot forget itself")
        if msg.key == self.credentials.key:
            log.error("this node was forgotten by %s: members will refuse it", sender)
        names = ", ".join(self.roster.names_of(msg.key)) or fingerprint(msg.key)
        if self.roster.revoke(msg.key):
            log.warning("%s forgot %s", sender, names)
        return Ok()

    async def _on_rekey(self, msg: Message, conn: Connection) -> Message:
        assert isinstance(msg, Rekey)
        sender = self._member(conn)
        self.adopt(_network(msg.network), msg.previous, sender)
        return Ok()

    async def _on_key(self, msg: Message, conn: Connection) -> Message:
        assert isinstance(msg, KeyRequest)
        self._member(conn)
        previous = self.credentials.previous
        return KeyData(
            self.credentials.network.secret, previous.network_id.hex() if previous else ""
        )

    # -- re-keying -----------------------------------------------------------------------------

    async def _hand_over(self, address: tuple[str, int]) -> None:
        """Give the member at `address`, still on our previous key, the current one."""
        previous = self.credentials.previous
        assert previous is not None
        await self._tell(
            *address, Rekey(self.credentials.network.secret, previous.network_id.hex())
        )

    async def _ask(self, address: tuple[str, int], issuer: str) -> None:
        """Ask the member at `address`, whose certificate `issuer` signed, for its key."""
        try:
            reply, sender = await self.door.ask(*address, KeyRequest(), KEY_TIMEOUT)
            data = expect(reply, KeyData)
            network = _network(data.network)
        except RingError as exc:
            log.info("no network key from %s:%d: %s", *address, exc)
            return
        if issuer_of(network) != issuer:
            log.warning("%s:%d sent a key its certificate is not of", *address)
            return
        names = self.roster.names_of(sender)
        self.adopt(network, data.previous, names[0] if names else fingerprint(sender))

    def adopt(self, network: NetworkKey, previous: str, via: str) -> bool:
        """Take `network` if it replaced this node's key (or is the lower of two keys that
        replaced one key at once); returns whether it was taken."""
        current, before = self.credentials.network, self.credentials.previous
        if network == current:
            return False
        successor = previous == current.network_id.hex()
        sibling = (
            before is not None
            and previous == before.network_id.hex()
            and network.network_id < current.network_id
        )
        if not (successor or sibling):
            log.info("ignored network key %s from %s", network.network_id.hex(), via)
            return False
        log.warning("the network was re-keyed (%s): now network %s", via, network.network_id.hex())
        self._switch(network, current)
        return True

    def _switch(self, network: NetworkKey, previous: NetworkKey) -> None:
        """Make `network` this node's key, keeping `previous`: stored, in the TLS of every
        connection made from now on, and told to the listeners."""
        replace(self.state_dir / PREVIOUS_KEY_FILE, previous.to_text().encode("ascii"))
        save_network(self.state_dir, network)
        self.credentials = Credentials(network, self.credentials.node_key, previous)
        assert self.door.tls is not None
        self.door.tls.renew(*self.credentials.tls_pems())
        self._issuers()
        for cb in self._listeners:
            try:
                cb(self.credentials)
            except Exception:
                log.exception("network change listener failed")


def _network(secret: bytes) -> NetworkKey:
    """A network key from a peer.

    Raises:
        BadRequest: not 32 bytes.
    """
    try:
        return NetworkKey(secret)
    except (NetworkKeyError, TypeError):
        raise BadRequest("a network key is 32 bytes") from None
