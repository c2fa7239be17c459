"""A node's credentials: its network, its own key, and the TLS door they make.

The overlay loads them once at start (`load_credentials`) and hands the parts on: the door to
the ring and sync (`door`), and, for the parts to come, the network's derived keys
(`network.dht_key`, `network.beacon_key`) and the node's signing key (`node_key`). A node's ring
key (`key`) is its node public key in hex: the identity every peer sees on a connection with it.

After a re-key (`overlay/trust.py`) the key the network had before is kept too (`previous`,
`network.previous.key` in the state folder): the node's TLS then also trusts the old CA and
sends a cross certificate, so members still on the old key can reach it and learn the new one.
A `--network-key` file that holds that previous key (the network was re-keyed since the file
was handed out) does not move the node back to it.
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

from overlay.certificates import ca_certificate, cross_certificate, key_hex, node_certificate
from overlay.keystore import (
    NETWORK_KEY_FILE,
    CredentialsError,
    load_network,
    load_node_key,
    read_network,
    save_network,
)
from overlay.network_key import NetworkKey
from ring.wire import Door, Tls

log = logging.getLogger(__name__)

PREVIOUS_KEY_FILE = "network.previous.key"
"""The network's key before its last re-key, kept so that members still on it get the new one."""


@dataclass(frozen=True, repr=False)
class Credentials:
    """What makes a node a member: the network key and the node's own key."""

    network: NetworkKey
    node_key: Ed25519PrivateKey
    previous: NetworkKey | None = None

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
        return Tls(*self.tls_pems())

    def tls_pems(self) -> tuple[bytes, bytes, bytes]:
        """(certificate and chain, private key, trusted CAs) as PEM: the node's certificate,
        and after a re-key the cross certificate and the previous CA too."""
        pem = Encoding.PEM
        chain = [node_certificate(self.network, self.node_key).public_bytes(pem)]
        cas = [ca_certificate(self.network).public_bytes(pem)]
        if self.previous is not None:
            chain.append(cross_certificate(self.network, self.previous).public_bytes(pem))
            cas.append(ca_certificate(self.previous).public_bytes(pem))
        key = self.node_key.private_bytes(pem, PrivateFormat.PKCS8, NoEncryption())
        return b"".join(chain), key, b"".join(cas)

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
    previous = load_previous(state_dir)
    stored = state_dir / NETWORK_KEY_FILE
    before = read_network(stored) if stored.exists() else None
    if key_file is not None and previous is not None and key_file.exists():
        if read_network(key_file) == previous:
            log.info("%s holds the network's key before its re-key; keeping the new one", key_file)
            key_file = None
    network, founded = load_network(state_dir, key_file)
    if previous is not None and network not in (before, previous):
        (state_dir / PREVIOUS_KEY_FILE).unlink()  # moved to another network altogether
    if network != before or previous == network:
        previous = None
    credentials = Credentials(network, load_node_key(state_dir), previous)
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
        (state_dir / PREVIOUS_KEY_FILE).unlink(missing_ok=True)  # that of the network it left
    except OSError as exc:
        raise CredentialsError(f"cannot store the network key in {state_dir}: {exc}") from None
    log.info("joined network %s; its key is in %s", network.network_id.hex(), state_dir)
    return Credentials(network, load_node_key(state_dir))


def load_previous(state_dir: Path) -> NetworkKey | None:
    """The network's key before its last re-key, if this node went through one.

    Raises:
        CredentialsError: the file is there but cannot be read or is malformed.
    """
    path = state_dir / PREVIOUS_KEY_FILE
    return read_network(path) if path.exists() else None
