"""Pushed changes between real `python3 Main.py` processes, driven through stdin.

The pull interval is 30 s, so a change that arrives in a few seconds arrived by push.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.procs import NodeProcess, free_port

pytestmark = pytest.mark.integration

PUSHED = 5.0
"""Seconds a pushed change may take to reach every node: far under the 30 s pull interval."""


def digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def within(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


@pytest.fixture
def ring(tmp_path: Path) -> Iterator[list[NodeProcess]]:
    nodes: list[NodeProcess] = []
    try:
        for name in ("alpha", "bravo", "charlie", "delta"):
            join = ["--peer", f"127.0.0.1:{nodes[0].port}"] if nodes else []
            node = NodeProcess(
                tmp_path / name / "Shared",
                free_port(),
                "--name",
                name,
                "--interval",
                "30",
                *join,
            )
            nodes.append(node)
            node.wait_prompt()
        nodes[0].poll_command("peers", lambda t: bool(re.search(r"ring: 4 node\(s\)", t)))
        yield nodes
    finally:
        for node in nodes:
            node.stop()


class TestPushProcesses:
    def test_edit_delete_rename_and_subfolder_reach_all_by_push(
        self, ring: list[NodeProcess]
    ) -> None:
        alpha = ring[0]
        own = alpha.shared / "alpha"
        own.mkdir(parents=True, exist_ok=True)
        replicas = [node.shared / "alpha" for node in ring[1:]]

        def everywhere(rel: str, want: str | None) -> Callable[[], bool]:
            return lambda: all(digest(folder / rel) == want for folder in replicas)

        (own / "report.pdf").write_bytes(b"%PDF v1" * 1000)
        (own / "old.txt").write_bytes(b"to be deleted")
        (own / "name one.bin").write_bytes(os.urandom(100_000))
        moved = digest(own / "name one.bin")
        within(everywhere("name one.bin", moved), PUSHED + 3, "first files never arrived")

        (own / "report.pdf").write_bytes(b"%PDF v2" * 1000)
        within(
            everywhere("report.pdf", digest(own / "report.pdf")),
            PUSHED,
            "edit not pushed",
        )
        (own / "old.txt").unlink()
        within(everywhere("old.txt", None), PUSHED, "delete not pushed")
        os.rename(own / "name one.bin", own / "name two.bin")
        within(everywhere("name two.bin", moved), PUSHED, "rename not pushed")
        assert all(not (folder / "name one.bin").exists() for folder in replicas)
        (own / "new dir" / "ü").mkdir(parents=True)
        (own / "new dir" / "ü" / "inner.txt").write_bytes(b"inside")
        within(
            everywhere("new dir/ü/inner.txt", digest(own / "new dir" / "ü" / "inner.txt")),
            PUSHED,
            "new subfolder not pushed",
        )

        shown = ring[2].command("status")
        assert "own folder charlie" in shown and "last sync with" in shown
        lines = ring[2].output
        for line in (
            "~ alpha/report.pdf updated",
            "- alpha/old.txt deleted",
            "+ alpha/name two.bin added",
            "- alpha/name one.bin deleted",
            "+ alpha/new dir/ü/inner.txt added",
        ):
            assert line in lines, f"{line!r} not shown at charlie's prompt:\n{lines}"

    def test_a_mass_delete_waits_for_confirm_deletes(self, ring: list[NodeProcess]) -> None:
        alpha, bravo = ring[0], ring[1]
        own = alpha.shared / "alpha"
        own.mkdir(parents=True, exist_ok=True)
        for i in range(12):
            (own / f"f{i:02}.txt").write_bytes(b"file %d" % i)
        target = bravo.shared / "alpha"
        within(
            lambda: len(list(target.glob("f*.txt"))) == 12,
            PUSHED + 3,
            "files never arrived",
        )
        for i in range(10):
            (own / f"f{i:02}.txt").unlink()
        answer = alpha.poll_command("status", lambda t: "10 deletes held" in t, timeout=10)
        assert "confirm-deletes" in answer
        assert "type 'confirm-deletes' to push" in alpha.output
        assert len(list(target.glob("f*.txt"))) == 12
        assert "pushed 10 delete(s)" in alpha.command("confirm-deletes")
        within(
            lambda: len(list(target.glob("f*.txt"))) == 2,
            PUSHED,
            "confirmed deletes not pushed",
        )


class TestComingBack:
    def test_stale_replica_node_and_restarted_owner(self, tmp_path: Path) -> None:
        """bravo stops; alpha deletes and edits; bravo comes back with stale copies: the deletes
        and edits win everywhere. Then alpha stops, loses a file, restarts: a delete, new seq."""

        def launch(name: str, *extra: str, port: int | None = None) -> NodeProcess:
            node = NodeProcess(
                tmp_path / name / "Shared",
                port or free_port(),
                "--name",
                name,
                "--interval",
                "1",
                *extra,
            )
            node.wait_prompt()
            return node

        alpha = launch("alpha")
        join = f"127.0.0.1:{alpha.port}"
        nodes = {"alpha": alpha, "bravo": launch("bravo", "--peer", join)}
        nodes["charlie"] = launch("charlie", "--peer", join)
        try:
            own = alpha.shared / "alpha"
            own.mkdir(parents=True, exist_ok=True)
            for i in range(4):
                (own / f"f{i}.txt").write_bytes(b"first %d" % i)
            bravo_copy = nodes["bravo"].shared / "alpha"
            within(lambda: len(list(bravo_copy.glob("f*.txt"))) == 4, 20, "files never arrived")
            bravo_port = nodes["bravo"].port
            assert nodes["bravo"].exit() == 0

            (own / "f0.txt").unlink()
            (own / "f1.txt").write_bytes(b"second 1")
            charlie_copy = nodes["charlie"].shared / "alpha"
            within(lambda: not (charlie_copy / "f0.txt").exists(), PUSHED, "delete not pushed")
            assert (bravo_copy / "f0.txt").exists()  # bravo is down with its stale copies

            nodes["bravo"] = launch("bravo", "--peer", join, port=bravo_port)
            within(
                lambda: (
                    not (bravo_copy / "f0.txt").exists()
                    and digest(bravo_copy / "f1.txt") == digest(own / "f1.txt")
                ),
                20,
                "bravo kept its stale copies",
            )
            deadline = time.monotonic() + 3  # a few pull rounds: nothing may come back
            while time.monotonic() < deadline:
                for folder in (own, bravo_copy, charlie_copy):
                    assert not (folder / "f0.txt").exists(), f"f0.txt came back in {folder}"
                    assert (folder / "f1.txt").read_bytes() == b"second 1"
                time.sleep(0.1)

            before = int(re.findall(r"last change seq (\d+)", alpha.command("status"))[0])
            alpha_port = alpha.port
            assert alpha.exit() == 0
            (own / "f2.txt").unlink()
            nodes["alpha"] = alpha = launch(
                "alpha", "--peer", f"127.0.0.1:{nodes['charlie'].port}", port=alpha_port
            )
            within(lambda: not (charlie_copy / "f2.txt").exists(), 20, "restart delete lost")
            after = int(re.findall(r"last change seq (\d+)", alpha.command("status"))[0])
            assert after == before + 1
        finally:
            for node in nodes.values():
                node.stop()
