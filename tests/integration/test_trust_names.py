"""Two hosts with one name: the name belongs to the key that first joined with it, and the
second host is refused, with a message that says so at both ends. Before, the second host's
files never reached its peers, and when one of them left, the other's records replaced its
copies."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from overlay.node import Node
from tests.nodes import own_folder, settings_for, stop_all
from tests.procs import NodeProcess, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


class TestOneNameTwoHosts:
    async def test_the_second_host_is_refused_and_told_why_at_both_ends(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.WARNING)
        first = Node(settings_for(tmp_path / "one", "alice", interval=0.3))
        await first.start()
        peers = (("127.0.0.1", first.port),)
        second = Node(settings_for(tmp_path / "two", "alice", peers, interval=0.3))
        nodes = [first, second]
        try:
            own_folder(second).mkdir(parents=True)
            (own_folder(second) / "mine.txt").write_bytes(b"the second alice's file")
            await second.start()
            await asyncio.sleep(4)  # the configured peer is contacted again every 3 s
            assert [m.key for m in first.view.members] == [first.ring.me.key]  # type: ignore[union-attr]
            assert len(second.view.members) == 1
            assert not (own_folder(first) / "mine.txt").exists()
            lines = [r.getMessage() for r in caplog.records]
            assert any("refused alice" in line and "belongs to key" in line for line in lines)
            told = [line for line in lines if "cannot join the ring" in line]
            assert told and "belongs to another host" in told[0] and "--name" in told[0]
            assert len(told) == 1, "the refusal is told once, not at every merge probe"
        finally:
            await stop_all(nodes)

    def test_main_processes_say_it_on_both_ends(self, tmp_path: Path) -> None:
        first = NodeProcess(tmp_path / "one" / "Shared", free_port(), "--name", "alice")
        started = [first]
        try:
            first.wait_prompt()
            second = NodeProcess(
                tmp_path / "two" / "Shared",
                free_port(),
                "--name",
                "alice",
                "--peer",
                f"127.0.0.1:{first.port}",
            )
            started.append(second)
            second.wait_prompt()
            deadline = time.monotonic() + 20
            while "cannot join the ring" not in second.errors and time.monotonic() < deadline:
                time.sleep(0.2)
            assert "belongs to another host" in second.errors, second.errors
            assert "refused alice" in first.errors, first.errors
            assert "ring: 1 node(s)" in second.command("peers")
            assert "ring: 1 node(s)" in first.command("peers")
        finally:
            for node in started:
                node.stop()
