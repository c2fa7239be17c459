"""`forget <name>`: from then on no member accepts the forgotten host, whatever connection it
uses, and the network moves to a new key, which a member that was off at the time gets when it
comes back. Before, nothing could shut out a member: any holder of the network key was one."""

from __future__ import annotations

import asyncio
import hashlib
import re
from pathlib import Path

import pytest

from overlay.keystore import NETWORK_KEY_FILE, read_network
from overlay.node import Node
from overlay.sealing import DatagramSeal
from ring.errors import PeerUnreachable
from ring.messages import Ping
from tests.credentials import NETWORK, member
from tests.nodes import holds, own_folder, settings_for, start_ring, stop_all
from tests.procs import NodeProcess, free_port
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def names(node: Node) -> list[str]:
    return [m.name for m in node.view.members]


async def forgotten_ring(tmp_path: Path) -> tuple[list[Node], Node, Node]:
    """n00, n01 and n02 in one ring, n03 started with them and then stopped (it is off during
    the forget); n00 forgets n02. Returns (the members left, the forgotten, the one off)."""
    nodes = await start_ring(tmp_path, 4, interval=0.3)
    first, second, forgotten, off = nodes
    try:
        await off.close()
        await wait_for(lambda: names(first) == ["n00", "n01", "n02"], 20)
        door = forgotten.server.door  # type: ignore[union-attr]
        await door.request("127.0.0.1", second.port, Ping("k", "r", 0), 2, reuse=True)  # kept
        answer = await first.commands.forget("n02")
        assert answer.startswith("forgot n02") and "1 of 1 member(s) took it" in answer
    except BaseException:
        await stop_all(nodes)
        raise
    return [first, second], forgotten, off


class TestForget:
    async def test_the_forgotten_member_gets_nothing_and_stays_out(self, tmp_path: Path) -> None:
        members, forgotten, _off = await forgotten_ring(tmp_path)
        try:
            await wait_for(lambda: all(names(n) == ["n00", "n01"] for n in members), 15)
            door = forgotten.server.door  # type: ignore[union-attr]
            for node in members:
                for reuse in (True, False):  # its kept connection, then a resumed session
                    with pytest.raises(PeerUnreachable):
                        await door.request(
                            "127.0.0.1", node.port, Ping("k", "r", 0), 2, reuse=reuse
                        )
            (own_folder(forgotten) / "late.txt").write_bytes(b"written after the forget")
            await asyncio.sleep(3)  # its heartbeat finds itself cut out and tries to re-join
            assert all(names(n) == ["n00", "n01"] for n in members)
            assert not any((n.settings.shared / "n02" / "late.txt").exists() for n in members)
            assert forgotten.credentials is not None and forgotten.credentials.network == NETWORK
        finally:
            await stop_all([*members, forgotten])

    async def test_the_network_is_rekeyed_and_the_old_key_mints_nothing(
        self, tmp_path: Path
    ) -> None:
        members, forgotten, _off = await forgotten_ring(tmp_path)
        minted_node = None
        try:
            keys = {n.credentials.network for n in members if n.credentials is not None}
            (new,) = keys
            assert new != NETWORK
            for node in members:
                assert read_network(node.settings.state_dir / NETWORK_KEY_FILE) == new
            minted = member(NETWORK).door()  # a new certificate, made with the old key
            with pytest.raises(PeerUnreachable):
                await minted.request("127.0.0.1", members[0].port, Ping("k", "r", 0), 2)
            peers = (("127.0.0.1", members[0].port),)
            minted_node = Node(settings_for(tmp_path / "again", "n02-again", peers))
            await minted_node.start()
            await asyncio.sleep(4)  # more than one retry of the configured peer
            assert names(minted_node) == ["n02-again"]
            assert all(names(n) == ["n00", "n01"] for n in members)
        finally:
            await stop_all([*members, forgotten, *([minted_node] if minted_node else [])])

    async def test_a_member_off_during_the_forget_gets_the_new_key_when_back(
        self, tmp_path: Path
    ) -> None:
        members, forgotten, off = await forgotten_ring(tmp_path)
        back = Node(settings_for(tmp_path, "n03", (("127.0.0.1", members[0].port),), interval=0.3))
        try:
            new = members[0].credentials.network  # type: ignore[union-attr]
            await back.start()
            await wait_for(lambda: back.credentials.network == new, 15)  # type: ignore[union-attr]
            await wait_for(
                lambda: all(names(n) == ["n00", "n01", "n03"] for n in (*members, back)), 15
            )
            assert read_network(back.settings.state_dir / NETWORK_KEY_FILE) == new
            (own_folder(members[1]) / "after.txt").write_bytes(b"after the re-key")
            sha = hashlib.sha256(b"after the re-key").hexdigest()
            await wait_for(lambda: holds(back, "n01", "after.txt", sha), 20)
        finally:
            await stop_all([*members, forgotten, back])


class TestRekeyedIndex:
    async def test_the_holder_index_moves_to_the_new_key(self, tmp_path: Path) -> None:
        """Datagrams are sealed with keys derived from the network's: after a re-key the
        members seal and open with the new one, and the index still answers."""
        nodes = await start_ring(tmp_path, 3, interval=0.3, dht=True)
        first, second, forgotten = nodes
        try:
            (own_folder(second) / "kept.txt").write_bytes(b"held through the re-key")
            sha = hashlib.sha256(b"held through the re-key").hexdigest()
            await wait_for(lambda: holds(first, "n01", "kept.txt", sha), 20)
            await first.commands.forget("n02")
            await wait_for(lambda: all(names(n) == ["n00", "n01"] for n in (first, second)), 15)
            new = first.credentials.network  # type: ignore[union-attr]
            assert new != NETWORK
            sealed = DatagramSeal(new.dht_key, "test").seal(b"ping")
            for node in (first, second):
                assert node.seals is not None and node.seals.dht.open(sealed) == b"ping"
            answer = await first.commands.who_has("kept.txt")
            assert "n01" in answer, answer
        finally:
            await stop_all(nodes)


def ring_size(answer: str) -> int:
    match = re.search(r"ring: (\d+) node\(s\)", answer)
    return int(match.group(1)) if match else 0


class TestForgetAtThePrompt:
    def test_forget_typed_at_a_members_prompt(self, tmp_path: Path) -> None:
        started: list[NodeProcess] = []

        def launch(name: str, *extra: str) -> NodeProcess:
            node = NodeProcess(tmp_path / name / "Shared", free_port(), "--name", name, *extra)
            started.append(node)
            node.wait_prompt()
            return node

        try:
            alpha = launch("alpha", "--interval", "0.5")
            peer = ("--peer", f"127.0.0.1:{alpha.port}", "--interval", "0.5")
            bravo, mallory = launch("bravo", *peer), launch("mallory", *peer)
            alpha.poll_command("peers", lambda text: ring_size(text) == 3, timeout=40)
            answer = alpha.command("forget mallory")
            assert answer.startswith("forgot mallory (key ") and "new network key" in answer
            for node in (alpha, bravo):
                text = node.poll_command("peers", lambda t: ring_size(t) == 2, timeout=20)
                assert "mallory" not in text
            assert "no member is named 'nobody'" in alpha.command("forget nobody")
            assert "cannot forget itself" in alpha.command("forget alpha")
            stored = tmp_path / "alpha" / ".Shared-state" / NETWORK_KEY_FILE
            assert read_network(stored) != NETWORK
            assert ring_size(mallory.command("peers")) in (1, 3)  # alone, or not told yet
        finally:
            for node in started:
                node.stop()
