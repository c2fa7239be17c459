"""Invite and join by code, through real `python3 Main.py` prompts on 127.0.0.1 (no discovery:
the joiner is told where the invite is, as `invite` prints it)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from overlay.network_key import NetworkKey
from tests.credentials import NETWORK
from tests.procs import NodeProcess, free_port

pytestmark = pytest.mark.integration

Launch = Callable[..., NodeProcess]


def ring_size(answer: str) -> int:
    match = re.search(r"ring: (\d+) node\(s\)", answer)
    return int(match.group(1)) if match else 0


def invite(node: NodeProcess) -> tuple[str, str]:
    """Type `invite`; the code and the HOST:PORT it says to use without discovery."""
    answer = node.command("invite")
    match = re.search(r"join (\S+) (127\.0\.0\.1:\d+)\)", answer)
    assert match, answer
    return match.group(1), match.group(2)


def wait_file(path: Path, data: bytes, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_bytes() == data):
        assert time.monotonic() < deadline, f"{path} never arrived"
        time.sleep(0.05)


def said(node: NodeProcess, line: str, timeout: float = 10.0) -> None:
    """Wait until the node's prompt has shown `line` (a notice comes when it happens)."""
    deadline = time.monotonic() + timeout
    while line not in node.output:
        assert time.monotonic() < deadline, f"never said {line!r}:\n{node.output}"
        time.sleep(0.05)


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launch]:
    started: list[NodeProcess] = []

    def start(name: str, *extra: str, member: bool = True, wait: bool = True) -> NodeProcess:
        node = NodeProcess(
            tmp_path / name / "Shared", free_port(), "--name", name, "--interval", "0.5",
            *extra, member=member,
        )  # fmt: skip
        started.append(node)
        if wait:
            assert "Enter 'exit' to terminate the program." in node.wait_prompt()
        return node

    yield start
    for node in started:
        node.stop()


def stored_network(node: NodeProcess) -> NetworkKey:
    return NetworkKey.from_text((node.shared.parent / ".Shared-state" / "network.key").read_text())


class TestJoinByCode:
    def test_a_host_with_no_key_joins_with_the_right_code_and_syncs(
        self, launch: Launch, record_property: Callable[[str, object], None]
    ) -> None:
        alpha = launch("alpha")
        own = alpha.shared / "alpha" / "hello.txt"
        own.parent.mkdir(parents=True, exist_ok=True)
        own.write_bytes(b"from alpha\n")
        bravo = launch("bravo", member=False)
        (bravo.shared / "bravo").mkdir(parents=True, exist_ok=True)
        (bravo.shared / "bravo" / "mine.txt").write_bytes(b"from bravo\n")
        assert stored_network(bravo) != NETWORK, "it founded a network of its own first"
        code, where = invite(alpha)
        start = time.monotonic()
        answer = bravo.command(f"join {code} {where}")
        assert f"joined network {NETWORK.network_id.hex()}" in answer
        alpha.poll_command("peers", lambda text: ring_size(text) == 2)
        in_ring = time.monotonic() - start
        wait_file(bravo.shared / "alpha" / "hello.txt", b"from alpha\n")
        wait_file(alpha.shared / "bravo" / "mine.txt", b"from bravo\n")
        synced = time.monotonic() - start
        record_property("join_to_ring_s", round(in_ring, 2))
        record_property("join_to_first_files_s", round(synced, 2))
        print(f"\njoin by code: in the ring {in_ring:.2f} s, first files both ways {synced:.2f} s")
        assert stored_network(bravo) == NETWORK
        said(alpha, f"invite {code.split('-')[0]}: a host at 127.0.0.1 took the code")
        assert ring_size(bravo.command("peers")) == 2

    def test_join_code_at_start_with_peer(self, launch: Launch) -> None:
        alpha = launch("alpha")
        code, where = invite(alpha)
        bravo = launch("bravo", "--join", code, "--peer", where, member=False, wait=False)
        greeting = bravo.wait_prompt()
        assert "Enter 'exit' to terminate the program." in greeting
        assert f"joined network {NETWORK.network_id.hex()}" in greeting
        bravo.poll_command("peers", lambda text: ring_size(text) == 2)
        assert stored_network(bravo) == NETWORK

    def test_a_wrong_code_three_times_and_then_even_the_right_code_fails(
        self, launch: Launch
    ) -> None:
        alpha = launch("alpha")
        bravo = launch("bravo", member=False)
        code, where = invite(alpha)
        number, first, second = code.split("-")
        wrong = f"{number}-{second}-{first}" if first != second else f"{number}-zoo-zoo"
        answers = [bravo.command(f"join {wrong} {where}") for _ in range(3)]
        assert answers == [
            "join: wrong code (2 attempt(s) left)\n",
            "join: wrong code (1 attempt(s) left)\n",
            "join: wrong code (no attempts left)\n",
        ]
        said(alpha, f"invite {number}: 3 wrong codes; it refuses further attempts")
        answer = bravo.command(f"join {code} {where}")
        assert answer.startswith("join: ") and "joined" not in answer
        assert stored_network(bravo) != NETWORK
        assert ring_size(alpha.command("peers")) == 1

    def test_a_member_of_a_ring_does_not_move(self, launch: Launch) -> None:
        alpha = launch("alpha")
        bravo = launch("bravo", "--peer", f"127.0.0.1:{alpha.port}")
        alpha.poll_command("peers", lambda text: ring_size(text) == 2)
        outsider = launch("outsider", "--network-key", str(alpha.shared.parent / "other.key"))
        code, where = invite(outsider)
        answer = bravo.command(f"join {code} {where}")
        assert answer == "join: only a host alone in its ring moves to another network\n"

    def test_a_bad_code_at_start_is_one_clear_line_and_exit_1(self, launch: Launch) -> None:
        node = launch("bravo", "--join", "not-a-code", member=False, wait=False)
        assert node.proc.wait(20) == 1
        lines = [line for line in node.errors.splitlines() if line.strip()]
        assert lines == ["cannot start: 'not-a-code' is not an invite code (e.g. 7-guitar-ocean)"]
