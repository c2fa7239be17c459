"""Where a node's secrets live: the network key and the node key, in the state folder.

`network.key` holds K (64 hex digits, `overlay/network_key.py`), `node.key` the node's own
Ed25519 key (PEM, PKCS#8). Both are written atomically with mode 0600 and are never replaced
by accident: a file that is there is read, never overwritten with a fresh key (a malformed one
is an error for the user to resolve). A node whose state folder holds no network key founds a
network; `--network-key PATH` makes it a member of the network in PATH instead, creating that
file when it is missing such that nodes starting at once all end up with the same key.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from overlay.network_key import NetworkKey, NetworkKeyError

log = logging.getLogger(__name__)

NETWORK_KEY_FILE = "network.key"
NODE_KEY_FILE = "node.key"


class CredentialsError(Exception):
    """This node cannot use its credentials; the message names the file and what is wrong."""


def _write_temp(folder: Path, name: str, data: bytes) -> Path:
    """`data` in a new temp file beside its final place, mode 0600, flushed to disk."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return Path(tmp)


def create_once(path: Path, data: bytes) -> bool:
    """Create `path` holding `data` (mode 0600) unless something is there already.

    The bytes are written to a temp file first and then hard-linked into place, which fails
    when another process got there first: whoever reads `path` afterwards sees one whole file.

    Returns:
        True if this call created the file, False if it was there (or another process won).
    """
    tmp = _write_temp(path.parent, path.name, data)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink()
    return True


def replace(path: Path, data: bytes) -> None:
    """Write `path` atomically (mode 0600), replacing whatever is there."""
    os.replace(_write_temp(path.parent, path.name, data), path)


def read_network(path: Path) -> NetworkKey:
    """The network key in a key file.

    Raises:
        CredentialsError: the file cannot be read or holds no network key.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CredentialsError(f"cannot read the network key {path}: {exc.strerror}") from None
    try:
        return NetworkKey.from_text(data.decode("ascii"))
    except (UnicodeDecodeError, NetworkKeyError) as exc:
        reason = exc if isinstance(exc, NetworkKeyError) else "not a network key: not text"
        raise CredentialsError(f"{path}: {reason}") from None


def shared_network(path: Path) -> NetworkKey:
    """The network in the key file at `path` (--network-key), created with a fresh key if absent.

    Raises:
        CredentialsError: the file is malformed, or cannot be read or created.
    """
    if not path.exists():
        try:
            created = create_once(path, NetworkKey.generate().to_text().encode("ascii"))
        except OSError as exc:
            raise CredentialsError(f"cannot create the network key {path}: {exc}") from None
        if created:
            log.info("created a new network key in %s", path)
    return read_network(path)


def load_network(state_dir: Path, key_file: Path | None) -> tuple[NetworkKey, bool]:
    """The node's network: from `key_file` if given (then kept in the state folder too, so a
    restart needs no flag), else the one in the state folder, else a new one (founded).

    Returns:
        The network key, and whether this call founded the network.

    Raises:
        CredentialsError: a key file is malformed or cannot be read or written.
    """
    stored = state_dir / NETWORK_KEY_FILE
    try:
        if key_file is not None:
            network = shared_network(key_file)
            if not stored.exists() or read_network(stored) != network:
                if stored.exists():
                    log.warning("this node moves to network %s (given in %s)", network, key_file)
                replace(stored, network.to_text().encode("ascii"))
            return network, False
        if stored.exists():
            return read_network(stored), False
        if create_once(stored, NetworkKey.generate().to_text().encode("ascii")):
            return read_network(stored), True
        return read_network(stored), False
    except OSError as exc:
        raise CredentialsError(f"cannot write the network key {stored}: {exc}") from None


def save_network(state_dir: Path, network: NetworkKey) -> None:
    """Make `network` this node's network from now on (e.g. after joining by invitation)."""
    replace(state_dir / NETWORK_KEY_FILE, network.to_text().encode("ascii"))


def load_node_key(state_dir: Path) -> Ed25519PrivateKey:
    """The node's own key, made once and kept in the state folder.

    Raises:
        CredentialsError: node.key is there but holds no Ed25519 private key, or cannot be
            read or written.
    """
    path = state_dir / NODE_KEY_FILE
    try:
        if not path.exists():
            fresh = Ed25519PrivateKey.generate().private_bytes(
                Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
            )
            if create_once(path, fresh):
                log.info("made a new node key in %s", path)
        data = path.read_bytes()
    except OSError as exc:
        raise CredentialsError(f"cannot read or write the node key {path}: {exc}") from None
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        raise CredentialsError(
            f"{path}: not an Ed25519 private key (remove it and the node makes a new one,"
            " under a new identity)"
        )
    return key
