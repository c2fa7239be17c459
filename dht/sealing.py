"""What the holder index needs to authenticate its datagrams: a `Sealer`, handed in by the owner.

Every datagram the DHT sends is sealed and every datagram it receives is opened before a byte
of it is parsed (`dht/rpc.py`); one that does not open is dropped without a reply, a log line or
any state. How sealing works (the AEAD, its keys and their changes, timestamps and the replay
cache) is not the index's business: the overlay builds a sealer from the network's credentials
(`overlay/sealing.py`) and hands it in, as ring/ and sync/ are handed their door. So dht/ keeps
no key and imports no package of ours.

The associated data the DHT passes is the sender's address, ``b"ip:port"``: the sender names its
own (bound) address, the receiver the datagram's source address. A datagram is thus valid only
from the address that sealed it, and a captured one replayed from a spoofed source, to any
member, does not open: nobody can aim a member's replies at an address of their choosing.
"""

from __future__ import annotations

from typing import Protocol


class Sealer(Protocol):
    """Seals datagrams for the network's members and opens theirs."""

    def seal(self, plain: bytes, aad: bytes) -> bytes:
        """`plain`, encrypted and authenticated together with `aad` (which is not sent)."""
        ...

    def open(self, sealed: bytes, aad: bytes) -> bytes | None:
        """The plaintext of a datagram a member sealed with this `aad`, fresh and not seen
        before; None for anything else (forged, damaged, stale or replayed)."""
        ...


class Clear:
    """A sealer that seals nothing: for measuring what sealing costs (bench/dht_bench.py) and
    for talking to a stock kademlia node in tests. Never used by a node."""

    def seal(self, plain: bytes, aad: bytes) -> bytes:
        """`plain` as it is."""
        return plain

    def open(self, sealed: bytes, aad: bytes) -> bytes | None:
        """`sealed` as it is."""
        return sealed


def address_aad(address: tuple[str, int]) -> bytes:
    """The associated data of a datagram sent from `address`: ``b"ip:port"``."""
    return f"{address[0]}:{address[1]}".encode("ascii", "replace")
