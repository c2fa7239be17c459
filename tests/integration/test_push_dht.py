"""With --dht, a pushed edit moves the holder index: the new hash announced by every node that
now holds it, the old one withdrawn by every node that dropped it. The pull interval is 60 s,
so all of it happens by push."""

from __future__ import annotations

from pathlib import Path

import pytest

from overlay.node import Node
from tests.nodes import digest, holds, own_folder, start_ring, stop_all
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


async def indexed(nodes: list[Node], sha256: str, keys: set[str]) -> bool:
    """Whether the index, asked at every node, lists exactly these holder keys."""
    for node in nodes:
        assert node.index is not None
        if {h.holder_id for h in await node.index.holders(sha256)} != keys:
            return False
    return True


class TestPushAndIndex:
    async def test_an_edit_moves_the_index_to_the_new_hash(self, tmp_path: Path) -> None:
        nodes = await start_ring(tmp_path, 3, dht=True, interval=60.0)
        try:
            owner = nodes[0]
            name = owner.settings.name
            assert name is not None
            path = own_folder(owner) / "report.pdf"
            path.write_bytes(b"%PDF first\n" * 2000)
            old = digest(path)
            everyone = {n.ring.me.key for n in nodes if n.ring is not None}
            await wait_for(lambda: all(holds(n, name, "report.pdf", old) for n in nodes), 15)
            await wait_for(lambda: indexed(nodes, old, everyone), 15)

            path.write_bytes(b"%PDF second\n" * 2000)
            new = digest(path)
            await wait_for(lambda: all(holds(n, name, "report.pdf", new) for n in nodes), 10)
            await wait_for(lambda: indexed(nodes, new, everyone), 10)
            await wait_for(lambda: indexed(nodes, old, set()), 10)
        finally:
            await stop_all(nodes)
