"""The command line and the node's stored identity."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from overlay.config import parse_args, parse_peer
from overlay.identity import Identity, IdentityError, default_name, load_or_create
from tests.credentials import member


class TestCommandLine:
    def test_defaults_are_the_originals(self) -> None:
        settings = parse_args([])
        assert settings.port == 8091
        assert settings.shared == Path("Shared")
        assert settings.discovery and not settings.dht
        assert settings.interval == 5.0

    def test_every_documented_option(self) -> None:
        settings = parse_args(
            "--dht --port 9001 --host 127.0.0.1 --shared /tmp/x --name alice "
            "--peer 127.0.0.1:9002 --peer 127.0.0.1:9003 --no-discovery --interval 0.5 -v".split()
        )
        assert settings.dht and not settings.discovery
        assert (settings.port, settings.host, settings.name) == (9001, "127.0.0.1", "alice")
        assert settings.peers == (("127.0.0.1", 9002), ("127.0.0.1", 9003))
        assert settings.shared == Path("/tmp/x") and settings.interval == 0.5
        assert settings.verbose == 1

    @pytest.mark.parametrize("text", ["host:notaport", ":9000", "h:70000"])
    def test_bad_peer_is_refused(self, text: str) -> None:
        with pytest.raises(argparse.ArgumentTypeError):
            parse_peer(text)

    def test_peer_port_defaults_to_8091(self) -> None:
        assert parse_peer("10.0.0.5") == ("10.0.0.5", 8091)

    def test_state_dir_sits_beside_the_shared_folder(self, tmp_path: Path) -> None:
        settings = parse_args(["--shared", str(tmp_path / "Shared")])
        assert settings.state_dir == tmp_path / ".Shared-state"


KEY = member().key


class TestIdentity:
    def test_name_and_key_are_kept_across_runs(self, tmp_path: Path) -> None:
        first = load_or_create(tmp_path, None, "10.0.0.5", KEY)
        again = load_or_create(tmp_path, None, "10.0.0.99", KEY)
        assert again == first and first.name == "10.0.0.5" and len(first.key) == 64

    def test_name_option_replaces_the_stored_name(self, tmp_path: Path) -> None:
        first = load_or_create(tmp_path, None, "10.0.0.5", KEY)
        renamed = load_or_create(tmp_path, "alice", "10.0.0.5", KEY)
        assert renamed.key == first.key and renamed.name == "alice"
        assert load_or_create(tmp_path, None, "x", KEY).name == "alice"

    def test_a_corrupt_identity_is_a_clear_error(self, tmp_path: Path) -> None:
        (tmp_path / "identity.json").write_text("{not json")
        with pytest.raises(IdentityError, match="identity.json"):
            load_or_create(tmp_path, None, "x", KEY)

    def test_an_old_random_key_gives_way_to_the_node_key_and_the_name_stays(
        self, tmp_path: Path
    ) -> None:
        (tmp_path / "identity.json").write_text('{"key": "%s", "name": "alice"}' % ("ab" * 16))
        migrated = load_or_create(tmp_path, None, "x", KEY)
        assert migrated == Identity(KEY, "alice")
        assert load_or_create(tmp_path, None, "y", KEY) == migrated

    def test_default_name_includes_a_non_default_port(self) -> None:
        assert default_name("10.0.0.5", 8091, 8091) == "10.0.0.5"
        assert default_name("127.0.0.1", 9001, 8091) == "127.0.0.1-9001"


class TestBadValues:
    """Issue 15, item 5: every bad value is one line naming the flag, the value and what is
    allowed, exit code 2 (the subprocess side is in tests/integration/test_newcomer.py)."""

    @pytest.mark.parametrize(
        "argv, flag",
        [
            (["--port", "99999"], "--port"),
            (["--port", "-1"], "--port"),
            (["--name", "../evil"], "--name"),
            (["--name", ".hidden"], "--name"),
            (["--concurrency", "0"], "--concurrency"),
            (["--interval", "abc"], "--interval"),
            (["--interval", "0"], "--interval"),
            (["--interval", "nan"], "--interval"),
            (["--settle", "-1"], "--settle"),
            (["--beacon-port", "0"], "--beacon-port"),
        ],
    )
    def test_one_line_and_exit_2(
        self, argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with pytest.raises(SystemExit) as exit_:
            parse_args(argv)
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and flag in err and repr(argv[1]) in err
        assert "is not allowed: " in err

    def test_edge_values_are_taken(self) -> None:
        settings = parse_args("--port 0 --concurrency 1 --settle 0 --interval 0.01".split())
        assert (settings.port, settings.concurrency, settings.settle) == (0, 1, 0.0)
        assert parse_args(["--port", "65535"]).port == 65535
