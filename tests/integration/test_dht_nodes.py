"""Whole nodes with --dht in one event loop: who-has answers, and fetching from the nearest one."""

from __future__ import annotations

import asyncio
import functools
import os
import re
import time
from pathlib import Path

import pytest

from overlay.node import Node
from ring.wire import Connection, FrameServer, Handler, Message
from sync.messages import FileData, FileRequest
from tests.nodes import digest, holds, name_of, own_folder, settings_for, start_ring, stop_all
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

HOLDER_LINE = re.compile(r"^  (\S+)  127\.0\.0\.1:(\d+)  id (\d+|\?)  (?:rtt|\(this node\))", re.M)


async def holder_names(node: Node, query: str) -> set[str]:
    """The holders `who-has <query>` prints at `node` (the operator's view of the index)."""
    return set(name for name, _, _ in HOLDER_LINE.findall(await node.commands.who_has(query)))


def server_of(node: Node) -> FrameServer:
    """A started node's server."""
    assert node.server is not None
    return node.server


def served_bytes(node: Node, total: int) -> list[int]:
    """Count the bytes of a `total`-byte file that `node` serves to completion (FILE requests).

    Bodies go out with sendfile, past any writer a test could wrap, so what is counted is
    each request's range, once its handler has finished sending it.
    """
    count = [0]
    handler = server_of(node).handler(FileRequest)
    assert handler is not None

    async def counting(msg: Message, conn: Connection) -> Message | None:
        assert isinstance(msg, FileRequest)
        reply = await handler(msg, conn)
        count[0] += msg.length if msg.length is not None else total - msg.offset
        return reply

    server_of(node).route(FileRequest, counting)
    return count


def add_delay(node: Node, seconds: float) -> None:
    """Make every answer of `node` late: a far holder, as the kernel has no netem here."""

    def slow(handler: Handler) -> Handler:
        async def late(msg: Message, conn: Connection) -> Message | None:
            await asyncio.sleep(seconds)
            return await handler(msg, conn)

        return late

    server_of(node).wrap(slow)


class TestWhoHas:
    async def test_twenty_nodes_list_exactly_the_holders_everywhere(self, tmp_path: Path) -> None:
        nodes = await start_ring(tmp_path, 20, dht=True, interval=0.3)
        try:
            files = {}
            for index in (0, 7, 13):
                rel = f"docs/file-{index}.bin"
                path = own_folder(nodes[index]) / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(os.urandom(20_000 + index))
                files[(name_of(nodes[index]), rel)] = digest(path)
            await wait_for(
                lambda: all(holds(n, o, r, h) for n in nodes for (o, r), h in files.items()), 90
            )
            everyone = {name_of(n) for n in nodes}
            for (owner, rel), sha in files.items():
                query = f"{owner}/{rel}"
                await wait_for(functools.partial(self._lists, nodes[5], query, everyone), 30)
                for _round in range(2):
                    for node in nodes:
                        holders = await holder_names(node, query)
                        on_disk = {name_of(n) for n in nodes if holds(n, owner, rel, sha)}
                        assert holders == on_disk, (name_of(node), query)
        finally:
            await stop_all(nodes)

    @staticmethod
    async def _lists(node: Node, query: str, names: set[str]) -> bool:
        return await holder_names(node, query) == names

    @staticmethod
    async def _indexed(nodes: list[Node], sha256: str, keys: set[str]) -> bool:
        """Whether the index, asked at every node, lists exactly these holder keys."""
        for node in nodes:
            assert node.index is not None
            if {h.holder_id for h in await node.index.holders(sha256)} != keys:
                return False
        return True

    async def test_leaver_and_deleted_copy_disappear(self, tmp_path: Path) -> None:
        nodes = await start_ring(tmp_path, 4, dht=True, interval=0.2)
        try:
            a = nodes[1]
            path = own_folder(a) / "gone soon.txt"
            path.write_bytes(b"short-lived\n" * 1000)
            query = f"{name_of(a)}/gone soon.txt"
            everyone = {name_of(n) for n in nodes}
            await wait_for(lambda: self._lists(nodes[0], query, everyone), 30)

            leaver = nodes.pop(3)
            await leaver.leave()
            left_in = await wait_for(
                lambda: self._lists(nodes[0], query, everyone - {name_of(leaver)}), 10
            )

            sha = digest(path)
            path.unlink()
            gone_in = await wait_for(lambda: self._indexed(nodes, sha, set()), 30)
            print(f"leaver gone from who-has in {left_in:.2f} s; deleted file in {gone_in:.2f} s")
        finally:
            await stop_all(nodes)

    async def test_killed_holder_costs_a_lookup_about_one_lan_timeout(self, tmp_path: Path) -> None:
        nodes = await start_ring(tmp_path, 6, dht=True, interval=0.2)
        try:
            path = own_folder(nodes[2]) / "shared.bin"
            path.write_bytes(os.urandom(50_000))
            query = f"{name_of(nodes[2])}/shared.bin"
            everyone = {name_of(n) for n in nodes}
            await wait_for(lambda: self._lists(nodes[0], query, everyone), 30)
            victims = [nodes.pop(4), nodes.pop(3)]
            for victim in victims:
                await victim.close()  # no LEAVE, no withdraw: what kill -9 leaves behind
            started = time.monotonic()
            holders = await holder_names(nodes[0], query)
            took = time.monotonic() - started
            print(f"who-has right after two holders died: {took:.2f} s")
            assert took < 2.0
            assert holders <= everyone
        finally:
            await stop_all(nodes)


class TestNearestHolder:
    async def _three(self, tmp_path: Path, size: int) -> tuple[Node, Node, Node, str, bytes]:
        """near (node 0) and far (node 1, the owner) hold a file; a newcomer joins after far."""
        near = Node(settings_for(tmp_path, "near", dht=True, interval=0.2))
        await near.start()
        peers = (("127.0.0.1", near.port),)
        far = Node(settings_for(tmp_path, "far", peers, dht=True, interval=0.2))
        await far.start()
        payload = os.urandom(size)
        (own_folder(far) / "big.bin").write_bytes(payload)
        sha = digest(own_folder(far) / "big.bin")
        await wait_for(lambda: holds(near, "far", "big.bin", sha), 30)
        return (
            near,
            far,
            Node(settings_for(tmp_path, "newcomer", peers, dht=True, interval=0.2)),
            sha,
            payload,
        )

    async def test_the_file_comes_from_the_holder_that_answers_sooner(self, tmp_path: Path) -> None:
        near, far, newcomer, sha, _ = await self._three(tmp_path, 3_000_000)
        try:
            from_near, from_far = served_bytes(near, 3_000_000), served_bytes(far, 3_000_000)
            add_delay(far, 0.15)
            await newcomer.start()
            assert newcomer.ring is not None
            assert newcomer.ring.prev is not None and newcomer.ring.prev.name == "far"
            await wait_for(lambda: holds(newcomer, "far", "big.bin", sha), 30)
            assert from_near[0] >= 3_000_000 and from_far[0] == 0
        finally:
            await stop_all([newcomer, far, near])

    async def test_near_holder_dying_mid_transfer_leaves_it_to_the_far_one(
        self, tmp_path: Path
    ) -> None:
        near, far, newcomer, sha, payload = await self._three(tmp_path, 4_000_000)
        try:
            from_far = served_bytes(far, len(payload))
            add_delay(far, 0.15)

            async def die_half_way(msg: Message, conn: Connection) -> None:
                assert isinstance(msg, FileRequest)
                await conn.send(FileData(msg.sha256, len(payload), 0, len(payload)))
                conn.writer.write(payload[: len(payload) // 2])
                await conn.writer.drain()
                asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(near.close()))

            server_of(near).route(FileRequest, die_half_way)
            await newcomer.start()
            await wait_for(lambda: holds(newcomer, "far", "big.bin", sha), 30)
            assert from_far[0] >= len(payload) // 2, from_far
            leftovers = [
                p
                for p in newcomer.settings.shared.rglob("*")
                if p.is_file() and p.name != "big.bin"
            ]
            assert leftovers == []
        finally:
            await stop_all([newcomer, far, near])
