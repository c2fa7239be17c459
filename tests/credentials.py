"""The test network: one network key for the whole run, and credentials and doors of its members.

Every node a test starts, in-process or as a `Main.py` process, is a member of `NETWORK` unless
the test says otherwise (`key_file` is what `--network-key` gets); a test that needs a stranger
makes another network with `NetworkKey.generate()` and a member of that.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from overlay.credentials import Credentials
from overlay.keystore import create_once
from overlay.network_key import NetworkKey
from overlay.sealing import DatagramSeal
from ring.wire import Door

NETWORK = NetworkKey.generate()
"""The network every test node joins by default."""

_folder = Path(tempfile.mkdtemp(prefix="lanshare-test-network-"))
atexit.register(shutil.rmtree, _folder, True)


def member(network: NetworkKey = NETWORK) -> Credentials:
    """Credentials of a new member of `network` (a fresh node key)."""
    return Credentials(network, Ed25519PrivateKey.generate())


def member_door(network: NetworkKey = NETWORK) -> Door:
    """A door of a new member of `network`."""
    return member(network).door()


def dht_seal(network: NetworkKey = NETWORK) -> DatagramSeal:
    """A DHT sealer of a member of `network` (each node gets its own: its own replay cache)."""
    return DatagramSeal(network.dht_key, "DHT datagram")


def key_file(network: NetworkKey = NETWORK) -> Path:
    """A file holding `network`'s key (made on first use), for `--network-key`."""
    path = _folder / f"{network.network_id.hex()}.key"
    create_once(path, network.to_text().encode("ascii"))
    return path
