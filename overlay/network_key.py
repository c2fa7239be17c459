"""The network key: the one secret every member holds, and every key derived from it.

A network is defined by 32 random bytes, K. Whoever holds K is a member; every other key the
network uses is derived from K with HKDF-SHA256 under a label of its own, so each member derives
the same keys and no key reveals another (or K):

| label                    | what it becomes                                         |
|--------------------------|---------------------------------------------------------|
| `lanshare ca v1`         | the network CA's Ed25519 private key (TLS trust root)   |
| `lanshare dht v1`        | the key that authenticates DHT datagrams                |
| `lanshare beacon v1`     | the key that authenticates LAN beacons                  |
| `lanshare network id v1` | 8 bytes naming the network in public (shown as hex)     |

A new use gets a new label here; a label never changes meaning (the "v1" is for that). On disk
K is 64 hex digits and a newline (`to_text`, `from_text`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_SIZE = 32
"""Bytes of the network key."""

DERIVED_SIZE = 32
"""Bytes of a derived key unless a use asks for another length."""

NETWORK_ID_SIZE = 8
"""Bytes of the public network id: enough to tell a LAN's networks apart, nothing secret."""

CA_LABEL = b"lanshare ca v1"
DHT_LABEL = b"lanshare dht v1"
BEACON_LABEL = b"lanshare beacon v1"
NETWORK_ID_LABEL = b"lanshare network id v1"


class NetworkKeyError(ValueError):
    """This is not a network key (expected 64 hex digits)."""


@dataclass(frozen=True, repr=False)
class NetworkKey:
    """K, and the keys derived from it; `repr` never shows the secret."""

    secret: bytes

    def __post_init__(self) -> None:
        if len(self.secret) != KEY_SIZE:
            raise NetworkKeyError(f"a network key has {KEY_SIZE} bytes, not {len(self.secret)}")

    def __repr__(self) -> str:
        return f"NetworkKey(id={self.network_id.hex()})"

    @classmethod
    def generate(cls) -> NetworkKey:
        """A fresh random network key: a new network."""
        return cls(secrets.token_bytes(KEY_SIZE))

    @classmethod
    def from_text(cls, text: str) -> NetworkKey:
        """Parse a key file's contents (64 hex digits; whitespace around them is ignored).

        Raises:
            NetworkKeyError: anything else.
        """
        digits = text.strip()
        if len(digits) != 2 * KEY_SIZE:
            raise NetworkKeyError(
                f"not a network key: expected {2 * KEY_SIZE} hex digits, found {len(digits)}"
                " characters"
            )
        try:
            return cls(bytes.fromhex(digits))
        except ValueError:
            raise NetworkKeyError(
                f"not a network key: expected {2 * KEY_SIZE} hex digits, found other characters"
            ) from None

    def to_text(self) -> str:
        """A key file's contents."""
        return self.secret.hex() + "\n"

    def derive(self, label: bytes, length: int = DERIVED_SIZE) -> bytes:
        """The key for one use, named by `label` (one of the *_LABEL constants)."""
        return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=label).derive(
            self.secret
        )

    @property
    def network_id(self) -> bytes:
        """The network's public name (8 bytes); shown to users as hex."""
        return self.derive(NETWORK_ID_LABEL, NETWORK_ID_SIZE)

    @property
    def dht_key(self) -> bytes:
        """The key that authenticates DHT datagrams (32 bytes)."""
        return self.derive(DHT_LABEL)

    @property
    def beacon_key(self) -> bytes:
        """The key that authenticates LAN beacons (32 bytes)."""
        return self.derive(BEACON_LABEL)

    def ca_key(self) -> Ed25519PrivateKey:
        """The network CA's signing key: every member derives the same one."""
        return Ed25519PrivateKey.from_private_bytes(self.derive(CA_LABEL))
