"""`--network-key PATH` on real `python3 Main.py` processes: a missing file is created once, even
by two nodes starting at the same moment; a malformed one stops the node with one clear line."""

from __future__ import annotations

import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from overlay.network_key import NetworkKey
from tests.procs import NodeProcess, free_port

pytestmark = pytest.mark.integration


def ring_size(answer: str) -> int:
    match = re.search(r"ring: (\d+) node\(s\)", answer)
    return int(match.group(1)) if match else 0


@pytest.fixture
def procs() -> Iterator[list[NodeProcess]]:
    started: list[NodeProcess] = []
    yield started
    for node in started:
        node.stop()


class TestKeyFile:
    def test_two_nodes_started_at_once_on_a_missing_file_share_one_key_and_one_ring(
        self, tmp_path: Path, procs: list[NodeProcess]
    ) -> None:
        key = tmp_path / "lan.key"
        ports = [free_port(), free_port()]
        for name, port, other in (("alpha", ports[0], ports[1]), ("bravo", ports[1], ports[0])):
            procs.append(
                NodeProcess(
                    tmp_path / name / "Shared",
                    port,
                    "--name",
                    name,
                    "--peer",
                    f"127.0.0.1:{other}",
                    "--network-key",
                    str(key),
                )  # fmt: skip
            )
        for node in procs:
            node.wait_prompt()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["alpha", "bravo", "lan.key"]
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        network = NetworkKey.from_text(key.read_text())
        for name in ("alpha", "bravo"):
            stored = tmp_path / name / ".Shared-state" / "network.key"
            assert NetworkKey.from_text(stored.read_text()) == network
        for node in procs:
            node.poll_command("peers", lambda text: ring_size(text) == 2, timeout=40)

    @pytest.mark.parametrize("content", ["not a key\n", "00" * 31, ""])
    def test_a_malformed_key_file_is_one_clear_line_and_exit_1(
        self, tmp_path: Path, procs: list[NodeProcess], content: str
    ) -> None:
        key = tmp_path / "bad.key"
        key.write_text(content)
        node = NodeProcess(tmp_path / "n" / "Shared", free_port(), "--network-key", str(key))
        procs.append(node)
        assert node.proc.wait(20) == 1
        lines = [line for line in node.errors.splitlines() if line.strip()]
        assert len(lines) == 1, node.errors
        assert lines[0].startswith("cannot start: ") and str(key) in lines[0]
        assert "not a network key" in lines[0]
        assert key.read_text() == content
