"""An owner hears "✓ <file> reached every member" once every other member has the file on disk,
and not before: every holder keeps one member's downloads waiting at first, so the line waits
for that member; many changes at once are told in one line. Four whole
nodes, with and without --dht; pushes and explicit rounds only (no watcher, pull every 60 s)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from overlay.node import Node
from ring.wire import Connection, Handler, Message
from sync.messages import BatchRequest, BlocksRequest, FileRequest
from tests.nodes import digest, holds, name_of, own_folder, start_ring, stop_all
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


def hold_downloads(nodes: list[Node], member: Node, gate: asyncio.Event) -> None:
    """Make every node keep `member`'s requests for file bytes waiting until `gate` is set."""
    assert member.ring is not None
    key = member.ring.me.key

    def wrap(handler: Handler) -> Handler:
        async def gated(msg: Message, conn: Connection) -> Message | None:
            if conn.identity == key and isinstance(msg, (FileRequest, BatchRequest, BlocksRequest)):
                await gate.wait()
            return await handler(msg, conn)

        return gated

    for node in nodes:
        assert node.server is not None
        node.server.wrap(wrap)


def listen(node: Node) -> list[str]:
    """Every line `node` shows at its prompt, from now on."""
    lines: list[str] = []
    node.add_change_listener(lines.append)
    return lines


class TestReachedEveryMember:
    @pytest.mark.parametrize("dht", [False, True], ids=["ring", "dht"])
    async def test_the_owner_hears_once_every_member_has_the_file(
        self, tmp_path: Path, dht: bool
    ) -> None:
        nodes = await start_ring(tmp_path, 4, dht=dht, interval=60.0, watch=False, settle=0.0)
        try:
            owner, others = nodes[0], nodes[1:]
            name, slow = name_of(owner), others[1]
            lines = listen(owner)
            placed_when_told: list[bool] = []
            owner.add_change_listener(
                lambda line: (
                    placed_when_told.append(
                        all(holds(n, name, "docs/report.pdf", sha) for n in others)
                    )
                    if line.startswith("✓")
                    else None
                )
            )
            gate = asyncio.Event()
            hold_downloads(nodes, slow, gate)

            path = own_folder(owner) / "docs" / "report.pdf"
            path.parent.mkdir()
            path.write_bytes(b"%PDF-1.7 report\n" * 5000)
            sha = digest(path)
            await owner.sync.rescan()  # type: ignore[union-attr]
            ready = others[0], others[2]
            await wait_for(lambda: all(holds(n, name, "docs/report.pdf", sha) for n in ready), 20)
            await asyncio.sleep(1.5)  # the two have told the owner (PLACED within 0.5 s)
            assert not holds(slow, name, "docs/report.pdf", sha)
            assert not any(line.startswith("✓") for line in lines), lines

            gate.set()
            await slow.sync.pull_once()  # type: ignore[union-attr]  # if its fetch timed out
            await wait_for(lambda: holds(slow, name, "docs/report.pdf", sha), 20)
            await wait_for(lambda: any(line.startswith("✓") for line in lines), 10)
            reached = [line for line in lines if line.startswith("✓")]
            assert reached == ["✓ docs/report.pdf reached every member (3)"]
            assert placed_when_told == [True]

            for i in range(30):
                (own_folder(owner) / f"batch-{i:02d}.txt").write_text(f"file {i}\n")
            (own_folder(owner) / "docs" / "report.pdf").unlink()
            await owner.sync.rescan()  # type: ignore[union-attr]
            await wait_for(lambda: len([ln for ln in lines if ln.startswith("✓")]) >= 2, 20)
            await asyncio.sleep(1.5)  # time for a second line, if the batch were told in two
            later = [line for line in lines if line.startswith("✓")][1:]
            assert later == ["✓ 30 of your files and 1 delete reached every member (3)"], lines
        finally:
            await stop_all(nodes)
