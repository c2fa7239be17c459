"""A member forging another owner's records: pushed (NOTIFY) or served in its manifest pages,
with a huge seq, signed by the forger's own key. Real nodes keep the owner's files, and the
owner's next real edit still reaches everyone. Before owner signatures, one forged NOTIFY
deleted the owner's files on every replica and shadowed its real edits for good."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from overlay.node import Node
from ring.wire import Connection, Message, Ok
from sync.manifest import FileRecord, record_to_entry
from sync.messages import ManifestData, ManifestRequest, Notify
from sync.signing import sign_records
from tests.nodes import holds, own_folder, start_ring, stop_all
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

HUGE = 2**62


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def forged_entries(forger: Node, owner: str, content: bytes) -> list[dict[str, object]]:
    """Records "of" `owner`, signed with `forger`'s own key: a delete of f.txt and a planted
    file with content the forger holds, both far beyond any real seq."""
    assert forger.credentials is not None
    records = [
        FileRecord(owner, "f.txt", 0, 1, "", HUGE, True),
        FileRecord(owner, "planted.txt", len(content), 1, sha(content), HUGE + 1, False),
    ]
    return [
        record_to_entry(r, True) for r in sign_records(records, forger.credentials.node_key.sign)
    ]


async def shared_file(nodes: list[Node]) -> str:
    """The owner (nodes[0]) shares f.txt; returns its name once every node holds it."""
    owner = nodes[0].settings.name
    assert owner is not None
    (own_folder(nodes[0]) / "f.txt").write_bytes(b"v1")
    await wait_for(lambda: all(holds(n, owner, "f.txt", sha(b"v1")) for n in nodes), 30)
    return owner


async def nothing_changed_then_real_edits_arrive(victim: Node, nodes: list[Node]) -> None:
    owner = nodes[0].settings.name
    assert owner is not None and victim.sync is not None
    await asyncio.sleep(2.0)  # several pull rounds (interval 0.3 s)
    assert holds(victim, owner, "f.txt", sha(b"v1"))
    assert not (victim.settings.shared / owner / "planted.txt").exists()
    kept = victim.sync.state.record(owner, "f.txt")
    assert kept is not None and kept[0].seq < HUGE and not kept[0].deleted
    assert victim.sync.state.counter(owner) < HUGE
    (own_folder(nodes[0]) / "f.txt").write_bytes(b"v2, the owner's real edit")
    edited = sha(b"v2, the owner's real edit")
    await wait_for(lambda: all(holds(n, owner, "f.txt", edited) for n in nodes), 30)


class TestForgedRecords:
    async def test_a_forged_push_with_a_huge_seq_changes_nothing(self, tmp_path: Path) -> None:
        nodes = await start_ring(tmp_path, 3, interval=0.3)
        try:
            owner = await shared_file(nodes)
            forger, victim = nodes[1], nodes[2]
            assert forger.server is not None
            push = Notify(owner, forged_entries(forger, owner, b"v1"), 0)
            reply = await forger.server.door.request("127.0.0.1", victim.port, push, 5)
            assert isinstance(reply, Ok)
            await nothing_changed_then_real_edits_arrive(victim, nodes)
        finally:
            await stop_all(nodes)

    async def test_forged_records_in_a_members_manifest_pages_are_dropped(
        self, tmp_path: Path
    ) -> None:
        nodes = await start_ring(tmp_path, 4, interval=0.3)
        try:
            owner = await shared_file(nodes)
            forger, victim = nodes[2], nodes[3]  # the victim pulls from the node before it
            assert forger.server is not None
            entries = forged_entries(forger, owner, b"v1")

            async def forged_page(msg: Message, conn: Connection) -> Message:
                return ManifestData(entries)

            forger.server.route(ManifestRequest, forged_page)
            await nothing_changed_then_real_edits_arrive(victim, nodes)
        finally:
            await stop_all(nodes)
