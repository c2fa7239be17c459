"""The gate and the key changes of `overlay/trust.py`, driven directly: whom a node admits, which
network key it takes, and what it stores."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from overlay.credentials import PREVIOUS_KEY_FILE, Credentials, load_credentials
from overlay.keystore import NETWORK_KEY_FILE, read_network, save_network
from overlay.network_key import NetworkKey
from overlay.trust import Trust, issuer_of
from ring.roster import Roster
from tests.credentials import key_file

K1, K2, K3 = NetworkKey.generate(), NetworkKey.generate(), NetworkKey.generate()
BOUND, STRANGER, REVOKED = "b" * 64, "c" * 64, "d" * 64


def trust(state: Path, network: NetworkKey = K1, previous: NetworkKey | None = None) -> Trust:
    roster = Roster()
    roster.bind("bound", BOUND, 1)
    roster.bind("gone", REVOKED, 1)
    roster.revoke(REVOKED)
    state.mkdir(parents=True, exist_ok=True)
    save_network(state, network)
    return Trust(state, Credentials(network, Ed25519PrivateKey.generate(), previous), roster, [])


class TestGate:
    def test_before_any_rekey_the_network_key_is_enough_and_a_revoked_key_never(
        self, tmp_path: Path
    ) -> None:
        gate = trust(tmp_path)
        assert gate.admits(STRANGER, issuer_of(K1)) and gate.admits(BOUND, issuer_of(K1))
        assert not gate.admits(REVOKED, issuer_of(K1))

    def test_on_another_key_only_bound_members_are_admitted(self, tmp_path: Path) -> None:
        gate = trust(tmp_path, K2, previous=K1)
        assert gate.admits(BOUND, issuer_of(K1)) and gate.admits(BOUND, issuer_of(K3))
        assert not gate.admits(STRANGER, issuer_of(K1))  # minted with the old key
        assert not gate.admits(REVOKED, issuer_of(K1)) and not gate.admits(REVOKED, issuer_of(K2))


class TestAdopt:
    def test_a_successor_of_our_key_is_taken_stored_and_told(self, tmp_path: Path) -> None:
        told: list[Credentials] = []
        gate = trust(tmp_path)
        gate._listeners.append(told.append)
        assert gate.adopt(K2, K1.network_id.hex(), "bound")
        assert gate.credentials.network == K2 and gate.credentials.previous == K1
        assert read_network(tmp_path / NETWORK_KEY_FILE) == K2
        assert read_network(tmp_path / PREVIOUS_KEY_FILE) == K1
        assert told == [gate.credentials]
        assert gate.admits(STRANGER, issuer_of(K2)) and not gate.admits(STRANGER, issuer_of(K1))

    def test_a_key_that_does_not_follow_ours_is_ignored(self, tmp_path: Path) -> None:
        gate = trust(tmp_path, K2, previous=K1)
        assert not gate.adopt(K3, K3.network_id.hex(), "bound")
        assert not gate.adopt(K1, "", "bound") and not gate.adopt(K2, K1.network_id.hex(), "b")
        assert gate.credentials.network == K2

    def test_of_two_keys_made_at_once_everyone_ends_on_the_lower_id(self, tmp_path: Path) -> None:
        low, high = sorted((K2, K3), key=lambda k: k.network_id)
        on_high = trust(tmp_path / "high", high, previous=K1)
        on_low = trust(tmp_path / "low", low, previous=K1)
        assert on_high.adopt(low, K1.network_id.hex(), "bound")
        assert not on_low.adopt(high, K1.network_id.hex(), "bound")
        assert on_high.credentials.network == on_low.credentials.network == low


class TestRestart:
    def test_a_key_file_holding_the_previous_key_does_not_move_the_node_back(
        self, tmp_path: Path
    ) -> None:
        first = load_credentials(tmp_path, key_file(K1))
        gate = Trust(tmp_path, first, Roster(), [])
        gate.adopt(K2, K1.network_id.hex(), "bound")
        again = load_credentials(tmp_path, key_file(K1))
        assert again.network == K2 and again.previous == K1 and again.key == first.key
        moved = load_credentials(tmp_path, key_file(K3))
        assert moved.network == K3 and moved.previous is None
        assert not (tmp_path / PREVIOUS_KEY_FILE).exists()
