"""The key files: created once, atomically, 0600; read back; malformed ones are clear errors."""

from __future__ import annotations

import logging
import stat
import threading
from pathlib import Path

import pytest

from overlay.credentials import load_credentials
from overlay.keystore import (
    NETWORK_KEY_FILE,
    NODE_KEY_FILE,
    CredentialsError,
    create_once,
    load_network,
    load_node_key,
    save_network,
    shared_network,
)
from overlay.network_key import NetworkKey


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class TestCreateOnce:
    def test_the_first_writer_wins_and_no_temp_file_stays(self, tmp_path: Path) -> None:
        path = tmp_path / "f"
        assert create_once(path, b"first")
        assert not create_once(path, b"second")
        assert path.read_bytes() == b"first" and mode(path) == 0o600
        assert [p.name for p in tmp_path.iterdir()] == ["f"]


class TestSharedNetwork:
    def test_a_missing_file_is_created_with_a_fresh_key(self, tmp_path: Path) -> None:
        path = tmp_path / "net.key"
        network = shared_network(path)
        assert mode(path) == 0o600
        assert NetworkKey.from_text(path.read_text()) == network
        assert shared_network(path) == network

    def test_many_starting_at_once_end_with_one_key(self, tmp_path: Path) -> None:
        path = tmp_path / "net.key"
        got: list[NetworkKey] = []
        start = threading.Barrier(8)

        def one() -> None:
            start.wait()
            got.append(shared_network(path))

        threads = [threading.Thread(target=one) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(got) == 8 and len(set(got)) == 1
        assert [p.name for p in tmp_path.iterdir()] == ["net.key"]

    @pytest.mark.parametrize("data", [b"", b"hello\n", b"\xff\xfe" * 32, b"0" * 63])
    def test_a_malformed_file_is_one_clear_line(self, tmp_path: Path, data: bytes) -> None:
        path = tmp_path / "net.key"
        path.write_bytes(data)
        with pytest.raises(CredentialsError) as info:
            shared_network(path)
        message = str(info.value)
        assert str(path) in message and "not a network key" in message and "\n" not in message
        assert path.read_bytes() == data, "a malformed key file must never be replaced"

    def test_a_folder_that_does_not_exist_is_a_clear_error(self, tmp_path: Path) -> None:
        with pytest.raises(CredentialsError, match="cannot create the network key"):
            shared_network(tmp_path / "nowhere" / "net.key")


class TestStateFolder:
    def test_a_node_with_nothing_founds_a_network_once(self, tmp_path: Path) -> None:
        network, founded = load_network(tmp_path, None)
        assert founded and mode(tmp_path / NETWORK_KEY_FILE) == 0o600
        assert load_network(tmp_path, None) == (network, False)

    def test_a_key_file_is_kept_in_the_state_folder(self, tmp_path: Path) -> None:
        given = tmp_path / "given.key"
        network = shared_network(given)
        state = tmp_path / "state"
        state.mkdir()
        assert load_network(state, given) == (network, False)
        given.unlink()
        assert load_network(state, None) == (network, False)

    def test_another_key_file_moves_the_node_and_says_so(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        load_network(tmp_path, None)
        other = tmp_path / "other.key"
        network = shared_network(other)
        with caplog.at_level(logging.WARNING, logger="overlay.keystore"):
            assert load_network(tmp_path, other) == (network, False)
        assert any("moves to network" in r.getMessage() for r in caplog.records)
        assert load_network(tmp_path, None) == (network, False)

    def test_save_network_replaces_the_stored_one(self, tmp_path: Path) -> None:
        load_network(tmp_path, None)
        network = NetworkKey.generate()
        save_network(tmp_path, network)
        assert load_network(tmp_path, None) == (network, False)
        assert mode(tmp_path / NETWORK_KEY_FILE) == 0o600


class TestNodeKey:
    def test_made_once_kept_and_private(self, tmp_path: Path) -> None:
        key = load_node_key(tmp_path)
        assert mode(tmp_path / NODE_KEY_FILE) == 0o600
        assert load_node_key(tmp_path).private_bytes_raw() == key.private_bytes_raw()

    def test_a_malformed_node_key_is_a_clear_error(self, tmp_path: Path) -> None:
        (tmp_path / NODE_KEY_FILE).write_text("not a key")
        with pytest.raises(CredentialsError, match="not an Ed25519 private key"):
            load_node_key(tmp_path)


class TestCredentials:
    def test_the_ring_key_is_the_node_public_key_and_survives_a_restart(
        self, tmp_path: Path
    ) -> None:
        first = load_credentials(tmp_path / "state")
        again = load_credentials(tmp_path / "state")
        assert again.key == first.key and again.network == first.network
        raw = first.node_key.public_key().public_bytes_raw()
        assert first.key == raw.hex() and len(first.key) == 64
        assert first.network_id == first.network.network_id.hex()
