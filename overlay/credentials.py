"""A node's credentials: its network, its own key, and the TLS door they make.

The overlay loads them once at start (`load_credentials`) and hands the parts on: the door to
the ring and sync (`door`), and, for the parts to come, the network's derived keys
(`network.dht_key`, `network.beacon_key`) and the node's signing key (`node_key`). A node's ring
key (`key`) is its node public key in hex: the identity every peer sees on a connection with it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from overlay.certificates import ca_certificate, key_hex, node_certificate
from overlay.keystore import (
    NETWORK_KEY_FILE,
    CredentialsError,
    load_network,
    load_node_key,
    save_network,
)
from overlay.network_key import NetworkKey
from ring.wire import Door, Tls

log = logging.getLogger(__name__)


@dataclass(frozen=True, repr=False)
class Credentials:
    """What makes a node a member: the network key and the node's own key."""

    network: NetworkKey
    node_key: Ed25519PrivateKey

    def __repr__(self) -> str:
        return f"Credentials(network={self.network!r}, key={self.key[:16]}...)"

    @property
    def key(self) -> str:
        """The node's public key in hex (64 digits): its ring key and its identity to peers."""
        return key_hex(self.node_key.public_key())

    @property
    def network_id(self) -> str:
        """The network's public id in hex, to show to users."""
        return self.network.network_id.hex()

    def tls(self) -> Tls:
        """The TLS contexts of this node: its certificate (made now), and the network's CA."""
        pem = Encoding.PEM
        return Tls(
            cert_pem=node_certificate(self.network, self.node_key).public_bytes(pem),
            key_pem=self.node_key.private_bytes(pem, PrivateFormat.PKCS8, NoEncryption()),
            ca_pem=ca_certificate(self.network).public_bytes(pem),
        )

    def door(self) -> Door:
        """A door that opens and accepts connections with these credentials."""
        return Door(self.tls())


def load_credentials(state_dir: Path, key_file: Path | None = None) -> Credentials:
    """The node's credentials from its state folder; founds a network if it holds none.

    Args:
        state_dir: the node's state folder (created if missing).
        key_file: --network-key: join the network in this file (created if missing) instead.

    Raises:
        CredentialsError: a key file is malformed, or cannot be read or written.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    network, founded = load_network(state_dir, key_file)
    credentials = Credentials(network, load_node_key(state_dir))
    if founded:
        log.info(
            "founded a new network %s; its key is in %s",
            credentials.network_id,
            state_dir / NETWORK_KEY_FILE,
        )
    return credentials


def holds_network(state_dir: Path, key_file: Path | None = None) -> bool:
    """Whether `load_credentials` would find a network rather than found one."""
    return key_file is not None or (state_dir / NETWORK_KEY_FILE).exists()


def adopt_network(state_dir: Path, network: NetworkKey) -> Credentials:
    """Make `network` this node's from now on (joined by code): store its key, keep the node's.

    Raises:
        CredentialsError: the state folder cannot be written, or its node key is unusable.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    try:
        save_network(state_dir, network)
    except OSError as exc:
        raise CredentialsError(f"cannot store the network key in {state_dir}: {exc}") from None
    log.info("joined network %s; its key is in %s", network.network_id.hex(), state_dir)
    return Credentials(network, load_node_key(state_dir))
