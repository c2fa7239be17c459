"""Whole `python3 Main.py` processes, driven through standard input as an operator would."""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.credentials import key_file
from tests.nodes import digest
from tests.procs import ROOT, NodeProcess, free_port

Launch = Callable[..., NodeProcess]
"""Start a named node (extra command-line options after the name) and wait for its prompt."""

pytestmark = pytest.mark.integration


def ring_size(answer: str) -> int:
    match = re.search(r"ring: (\d+) node\(s\)", answer)
    return int(match.group(1)) if match else 0


def my_id(answer: str) -> int:
    match = re.search(r"this node: id (\d+)", answer)
    assert match, answer
    return int(match.group(1))


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launch]:
    started: list[NodeProcess] = []

    def start(name: str, *extra: str) -> NodeProcess:
        node = NodeProcess(tmp_path / name / "Shared", free_port(), "--name", name, *extra)
        started.append(node)
        banner = node.wait_prompt()
        assert "Enter 'exit' to terminate the program." in banner
        return node

    yield start
    for node in started:
        node.stop()


class TestProcesses:
    def test_nodes_join_talk_and_leave_through_stdin(self, launch: Launch) -> None:
        a = launch("alpha", "--interval", "0.5")
        peer = f"127.0.0.1:{a.port}"
        b = launch("bravo", "--peer", peer, "--interval", "0.5")
        c = launch("charlie", "--peer", peer, "--interval", "0.5")
        answer = a.poll_command("peers", lambda text: ring_size(text) == 3)
        assert my_id(answer) == 0 and "'alpha'" in answer
        assert {my_id(b.command("peers")), my_id(c.command("peers"))} == {1, 2}

        payload = os.urandom(300_000) + b"\x00\r\n\xff"
        (a.shared / "alpha" / "sub dir").mkdir(parents=True)
        (a.shared / "alpha" / "sub dir" / "blob ü.bin").write_bytes(payload)
        target = c.shared / "alpha" / "sub dir" / "blob ü.bin"
        deadline = time.monotonic() + 30
        while not (target.exists() and target.read_bytes() == payload):
            assert time.monotonic() < deadline, "the file never reached charlie"
            time.sleep(0.1)
        assert "alpha: 1 file(s)" in c.command("files")

        assert b.exit() == 0
        answer = a.poll_command("peers", lambda text: ring_size(text) == 2)
        assert my_id(c.command("peers")) == 1

        assert a.exit() == 0
        answer = c.poll_command("peers", lambda text: ring_size(text) == 1)
        assert my_id(answer) == 0

    def test_kill_9_of_node_0_heals_and_a_newcomer_joins(self, launch: Launch) -> None:
        a = launch("alpha")
        b = launch("bravo", "--peer", f"127.0.0.1:{a.port}")
        c = launch("charlie", "--peer", f"127.0.0.1:{a.port}")
        b.poll_command("peers", lambda text: ring_size(text) == 3)
        a.kill()
        start = time.monotonic()
        answer = b.poll_command("peers", lambda text: ring_size(text) == 2, timeout=20)
        healed = time.monotonic() - start
        assert my_id(answer) == 0, answer
        assert healed < 15
        d = launch("delta", "--peer", f"127.0.0.1:{c.port}")
        answer = d.poll_command("peers", lambda text: ring_size(text) == 3)
        assert my_id(answer) == 2

    @pytest.mark.parametrize("mode", [(), ("--dht",)], ids=["ring", "dht"])
    def test_a_node_too_busy_to_answer_is_kept(self, launch: Launch, mode: tuple[str]) -> None:
        """SIGSTOP holds a node as a loaded host holds its event loop: it answers nothing, but
        its kernel still takes connections. Before, 3 s of that cut it out of the ring."""
        a = launch("alpha", *mode)
        b = launch("bravo", "--peer", f"127.0.0.1:{a.port}", *mode)
        c = launch("charlie", "--peer", f"127.0.0.1:{a.port}", *mode)
        a.poll_command("peers", lambda text: ring_size(text) == 3)
        b.proc.send_signal(signal.SIGSTOP)
        try:
            sizes = []
            held_until = time.monotonic() + 8  # the scenario's length, not a wait for readiness
            while time.monotonic() < held_until:
                sizes.append(ring_size(a.command("peers")))
                time.sleep(0.5)
        finally:
            b.proc.send_signal(signal.SIGCONT)
        assert set(sizes) == {3}, sizes
        answer = b.poll_command("peers", lambda text: ring_size(text) == 3)
        assert my_id(answer) == 1
        logs = [
            (node.shared.parent / ".Shared-state" / "node.log").read_text() for node in (a, b, c)
        ]
        assert not any(" cuts out dead " in log or ": re-joining" in log for log in logs)
        assert "answers late but still listens: busy, kept" in logs[0]

    def test_who_has_typed_at_a_dht_node(self, launch: Launch) -> None:
        a = launch("alpha", "--dht", "--interval", "0.5")
        b = launch("bravo", "--dht", "--peer", f"127.0.0.1:{a.port}", "--interval", "0.5")
        (a.shared / "alpha").mkdir(parents=True, exist_ok=True)
        (a.shared / "alpha" / "report.pdf").write_bytes(b"%PDF-1.4 not really\n" * 100)
        sha = digest(a.shared / "alpha" / "report.pdf")
        answer = b.poll_command(
            "who-has report.pdf",
            lambda text: "alpha " in text and "bravo " in text,
            timeout=40,
        )
        assert sha in answer
        assert "alpha/report.pdf" in answer
        assert f"127.0.0.1:{a.port}" in answer and f"127.0.0.1:{b.port}" in answer
        assert "no file matches" in b.command("who-has nothing-like-this")

    def test_who_has_without_dht_says_so(self, launch: Launch) -> None:
        a = launch("alpha")
        assert "start the node with --dht" in a.command("who-has anything")

    def test_a_second_node_on_a_taken_port_fails_clearly(
        self, launch: Launch, tmp_path: Path
    ) -> None:
        a = launch("alpha")
        clash = NodeProcess(tmp_path / "clash", a.port, "--name", "clash")
        try:
            assert clash.proc.wait(20) == 1
            assert "cannot start" in clash.errors and "Traceback" not in clash.errors
        finally:
            clash.stop()


class TestGracefulStops:
    @pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
    def test_a_signal_leaves_the_ring_gracefully(self, launch: Launch, signum: int) -> None:
        a = launch("alpha")
        b = launch("bravo", "--peer", f"127.0.0.1:{a.port}")
        a.poll_command("peers", lambda text: ring_size(text) == 2)
        b.proc.send_signal(signum)
        assert b.proc.wait(20) == 0
        assert "bye" in b.output and "Traceback" not in b.errors
        answer = a.command("peers")
        assert ring_size(answer) == 1, "the leave was not announced: the ring still lists bravo"

    def test_ctrl_d_at_a_terminal_leaves(self, launch: Launch, tmp_path: Path) -> None:
        a = launch("alpha")
        controller, terminal = pty.openpty()
        proc = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "Main.py"),
                "--no-discovery",
                "--host",
                "127.0.0.1",
                "--port",
                str(free_port()),
                "--shared",
                str(tmp_path / "tty" / "Shared"),
                "--name",
                "tty",
                "--peer",
                f"127.0.0.1:{a.port}",
                "--network-key",
                str(key_file()),
            ],
            stdin=terminal,
            stdout=terminal,
            stderr=subprocess.PIPE,
            cwd=ROOT,
        )
        os.close(terminal)
        try:
            seen = b""
            deadline = time.monotonic() + 30
            while b">> " not in seen:
                assert time.monotonic() < deadline, seen
                seen += os.read(controller, 4096)
            a.poll_command("peers", lambda text: ring_size(text) == 2)
            os.write(controller, b"\x04")
            assert proc.wait(20) == 0
            assert ring_size(a.command("peers")) == 1
        finally:
            if proc.poll() is None:
                proc.kill()
            os.close(controller)
