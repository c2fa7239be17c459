"""PackedRPC: rpcudp's datagram protocol on the C `msgpack`, with every RPC named, paced, counted.

rpcudp 5.0.1 packs and unpacks every datagram with `umsgpack`, pure Python, in three places:
`_solve_datagram` (every datagram in), `_accept_request` (every reply out) and the closure its
`__getattr__` builds (every request out). Those are overridden here and nothing else of the
library is copied. For what our RPCs carry (str, bin, int, float, bool, nil, arrays, maps with
str keys) ``msgpack.packb(use_bin_type=True)`` writes the very bytes `umsgpack.packb` writes, and
each side decodes the other's datagrams to equal values (tests/test_dht_rpc.py): inside its
seal (below), a datagram is what a node on stock rpcudp would send.

Two more changes, both of them fixes:
- rpcudp turns any unknown attribute into a remote call, so a typo is a silent timeout. Here
  remote calls are the methods below, and an unknown attribute raises AttributeError.
- A malformed datagram, or a request whose arguments do not fit the handler, is dropped with a
  debug line instead of raising inside a task nobody awaits.

Every request is sent under the `Pacer` of its kind of work (`dht/pacing.py`) and counted in
`sent`, by kind.

Every datagram in and out passes the node's `Sealer` (`dht/sealing.py`), here and nowhere
else: `datagram_received` opens it before anything else looks at it, and drops one that does not
open without a reply, a log line or any state (only `refused` counts it); `_call` and `_reply`
seal. What is sealed is the rpcudp datagram above, byte for byte.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Any

import msgpack
from kademlia.node import Node
from kademlia.protocol import KademliaProtocol
from rpcudp.exceptions import MalformedMessage

from dht.pacing import BUDGETS, WORK, Budget, Pacer
from dht.sealing import Sealer, address_aad

log = logging.getLogger(__name__)

Address = tuple[str, int]

MAX_REQUEST = 8192
"""Largest msgpack part of a request, as rpcudp enforces it (a peer on stock rpcudp too)."""

REQUEST, REPLY = b"\x00", b"\x01"
ID_SIZE = 20
EXPIRED_KEPT = 1024
"""Timed-out requests remembered, so that a late reply is still recognised as one."""


def pack(value: Any) -> bytes:
    """Encode like `umsgpack.packb`: str as msgpack str, bytes as bin, tuples as arrays."""
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    return packed


def unpack(data: bytes) -> Any:
    """Decode like `umsgpack.unpackb`; raises ValueError (or a subclass) on malformed input."""
    try:
        return msgpack.unpackb(data, raw=False)
    except (msgpack.UnpackException, TypeError) as exc:
        raise ValueError(str(exc)) from exc


class PackedRPC(KademliaProtocol):  # type: ignore[misc]
    """kademlia's protocol with the datagram layer above; see the module docstring."""

    def __init__(
        self,
        source_node: Node,
        storage: Any,
        ksize: int,
        rpc_timeout: float,
        sealer: Sealer,
        budgets: dict[str, Budget] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        KademliaProtocol.__init__(self, source_node, storage, ksize)
        self._wait_timeout = rpc_timeout
        self.sealer = sealer
        self._own_aad = b""
        self.sent: Counter[str] = Counter()
        self.timeouts = 0
        self.late_replies = 0
        self.refused = 0
        chosen = {**BUDGETS, **(budgets or {})}
        self.pacers = {kind: Pacer(b, clock) for kind, b in chosen.items()}
        self._handlers: set[asyncio.Task[None]] = set()
        self._expired: OrderedDict[bytes, Address] = OrderedDict()

    def __getattr__(self, name: str) -> Any:
        """No remote call by accident: only the methods below send requests."""
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    @property
    def rpc_count(self) -> int:
        """Requests sent so far, every kind of work together."""
        return sum(self.sent.values())

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport, and the address this node seals its datagrams as sent from."""
        super().connection_made(transport)
        self._own_aad = address_aad(transport.get_extra_info("sockname")[:2])

    # -- datagrams in ------------------------------------------------------------------------

    def datagram_received(self, sealed: bytes, addr: Address) -> None:
        """Open one datagram, then decode it: a reply resolves its request, a request is served.

        A datagram that does not open (a stranger's, damaged, stale, replayed, or sent from
        another address than the one it was sealed for) is dropped here and only counted.
        """
        data = self.sealer.open(sealed, address_aad(addr))
        if data is None:
            self.refused += 1
            return
        if len(data) < 1 + ID_SIZE + 1:
            log.debug("datagram too short from %s", addr)
            return
        try:
            payload = unpack(data[1 + ID_SIZE :])
        except ValueError as exc:
            log.debug("undecodable datagram from %s: %s", addr, exc)
            return
        msg_id = data[1 : 1 + ID_SIZE]
        if data[:1] == REQUEST:
            self._serve(msg_id, payload, addr)
        elif data[:1] == REPLY:
            self._accept_response(msg_id, payload, addr)

    def _serve(self, msg_id: bytes, data: Any, address: Address) -> None:
        if not isinstance(data, list) or len(data) != 2 or not isinstance(data[1], list):
            log.debug("malformed request from %s", address)
            return
        name, args = data
        func = getattr(self, f"rpc_{name}", None) if isinstance(name, str) else None
        if func is None or not callable(func):
            log.debug("request for unknown RPC %r from %s", name, address)
            return
        if inspect.iscoroutinefunction(func):
            task = asyncio.ensure_future(self._serve_async(func, msg_id, args, address))
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
            return
        try:
            response = func(address, *args)
        except TypeError as exc:
            log.debug("request %s from %s does not fit its handler: %s", name, address, exc)
            return
        self._reply(msg_id, response, address)

    async def _serve_async(
        self, func: Callable[..., Any], msg_id: bytes, args: list[Any], address: Address
    ) -> None:
        try:
            response = await func(address, *args)
        except TypeError as exc:
            log.debug("request from %s does not fit its handler: %s", address, exc)
            return
        self._reply(msg_id, response, address)

    def _reply(self, msg_id: bytes, response: Any, address: Address) -> None:
        if self.transport is not None:
            datagram = self.sealer.seal(REPLY + msg_id + pack(response), self._own_aad)
            self.transport.sendto(datagram, address)

    def _accept_response(self, msg_id: bytes, data: Any, address: Address) -> None:
        pending = self._outstanding.pop(msg_id, None)
        if pending is None:
            asked = self._expired.pop(msg_id, None)
            if asked is not None and asked == address:
                self.late_replies += 1
                self.answered_late(address)
            else:
                log.debug("unknown reply from %s", address)
            return
        future, timeout = pending
        timeout.cancel()
        if not future.done():
            future.set_result((True, data))

    def _timeout(self, msg_id: bytes) -> None:
        pending = self._outstanding.pop(msg_id, None)
        if pending is not None and not pending[0].done():
            self.timeouts += 1
            pending[0].set_result((False, None))

    def _expire(self, msg_id: bytes, address: Address) -> None:
        if msg_id in self._outstanding:
            self._expired[msg_id] = address
            while len(self._expired) > EXPIRED_KEPT:
                self._expired.popitem(last=False)
        self._timeout(msg_id)

    def answered_late(self, address: Address) -> None:
        """A reply came after its request timed out: the peer is busy, not gone (a hook)."""
        log.debug("late reply from %s", address)

    # -- requests out ------------------------------------------------------------------------

    async def _call(self, name: str, address: Address, *args: Any) -> tuple[bool, Any]:
        """Send one request under the pacer of the current kind of work; await its reply.

        Returns:
            ``(True, reply)``, or ``(False, None)`` after the RPC timeout (rpcudp's convention).

        Raises:
            MalformedMessage: the request would be over `MAX_REQUEST` bytes.
        """
        data = pack([name, args])
        if len(data) > MAX_REQUEST:
            raise MalformedMessage(f"request {name} is {len(data)} bytes, over {MAX_REQUEST}")
        kind = WORK.get()
        async with self.pacers[kind].slot():
            self.sent[kind] += 1
            msg_id = os.urandom(ID_SIZE)
            loop = asyncio.get_running_loop()
            future: asyncio.Future[tuple[bool, Any]] = loop.create_future()
            timeout = loop.call_later(self._wait_timeout, self._expire, msg_id, address)
            self._outstanding[msg_id] = (future, timeout)
            self.transport.sendto(self.sealer.seal(REQUEST + msg_id + data, self._own_aad), address)
            return await future

    async def ping(self, address: Address, *args: Any) -> tuple[bool, Any]:
        return await self._call("ping", address, *args)

    async def find_node(self, address: Address, *args: Any) -> tuple[bool, Any]:
        return await self._call("find_node", address, *args)

    async def find_value(self, address: Address, *args: Any) -> tuple[bool, Any]:
        return await self._call("find_value", address, *args)

    async def store(self, address: Address, *args: Any) -> tuple[bool, Any]:
        return await self._call("store", address, *args)
