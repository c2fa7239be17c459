"""PLACED's shell: what a replica tells owners, and what an owner counts and says.

Driven directly with a recording door and made-up connections (no sockets): who sent a PLACED
is whatever `member_of` says the connection proved, never a field of the message.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import pytest

import sync.placed
from ring.errors import BadRequest, PeerUnreachable
from ring.wire import Connection, Door, Message, Ok
from sync.manifest import FileRecord, Peer
from sync.messages import PLACED_MAX_ENTRIES, Placed
from sync.placed import Placements, is_placed

SHA = "a" * 64


def rec(owner: str, path: str, seq: int, deleted: bool = False) -> FileRecord:
    return FileRecord(owner, path, 0 if deleted else 3, 1, "" if deleted else SHA, seq, deleted)


class RecordingDoor:
    """Records every request; answers OK, or PeerUnreachable for the ports in `down`."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, Message]] = []
        self.down: set[int] = set()

    async def request(
        self, host: str, port: int, msg: Message, timeout: float, *, reuse: bool = False
    ) -> Message:
        assert reuse, "PLACED's reply is one frame: it goes on a kept connection"
        if port in self.down:
            raise PeerUnreachable("down")
        self.sent.append((port, msg))
        return Ok()


def conn(identity: str) -> Connection:
    return cast(Connection, SimpleNamespace(identity=identity, peer=("127.0.0.1", 1)))


def placements(
    door: RecordingDoor, lines: list[str], members: dict[str, str] | None = None
) -> Placements:
    """A node "me" whose connections prove `members` (identity -> member name)."""
    known = members or {}
    return Placements(cast(Door, door), "me", 1.0, lambda c: known.get(c.identity), lines.append)


PEERS = {name: Peer(name, "127.0.0.1", port) for name, port in (("b", 2), ("c", 3))}


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sync.placed, "ACK_DELAY", 0.01)
    monkeypatch.setattr(sync.placed, "TELL_DELAY", 0.01)


class TestIsPlaced:
    def test_the_file_byte_for_byte_or_nothing_for_a_delete(self) -> None:
        assert is_placed(rec("o", "x", 1), SHA)
        assert not is_placed(rec("o", "x", 1), None)
        assert not is_placed(rec("o", "x", 1), "b" * 64)
        assert is_placed(rec("o", "x", 1, deleted=True), None)
        assert not is_placed(rec("o", "x", 1, deleted=True), SHA)


class TestTellingOwners:
    async def test_placed_records_go_to_their_owners_in_one_message_each(self) -> None:
        door, lines = RecordingDoor(), list[str]()
        p = placements(door, lines)
        p.set_peers(PEERS)
        p.placed([(rec("b", "x", 1), SHA), (rec("b", "y", 2, True), None)])
        p.placed([(rec("c", "z", 9), SHA)])
        p.placed([(rec("b", "not-yet", 3), None), (rec("me", "mine", 4), SHA)])
        await asyncio.sleep(0.1)
        got = {port: msg for port, msg in door.sent}
        assert len(door.sent) == 2
        assert got[2] == Placed("b", [["x", 1], ["y", 2]])
        assert got[3] == Placed("c", [["z", 9]])
        await p.stop()

    async def test_the_newest_seq_of_a_path_is_told(self) -> None:
        door, lines = RecordingDoor(), list[str]()
        p = placements(door, lines)
        p.set_peers(PEERS)
        p.placed([(rec("b", "x", 1), SHA), (rec("b", "x", 2), SHA)])
        await asyncio.sleep(0.1)
        assert door.sent == [(2, Placed("b", [["x", 2]]))]
        await p.stop()

    async def test_many_pairs_go_in_messages_of_the_bounded_size(self) -> None:
        door, lines = RecordingDoor(), list[str]()
        p = placements(door, lines)
        p.set_peers(PEERS)
        p.placed([(rec("b", f"f{i}", i + 1), SHA) for i in range(PLACED_MAX_ENTRIES + 5)])
        await asyncio.sleep(0.2)
        sizes = [len(cast(Placed, msg).entries) for _port, msg in door.sent]
        assert sizes == [PLACED_MAX_ENTRIES, 5]
        await p.stop()

    async def test_an_owner_down_or_gone_costs_nothing_else(self) -> None:
        door, lines = RecordingDoor(), list[str]()
        door.down.add(2)
        p = placements(door, lines)
        p.set_peers(PEERS)
        p.placed([(rec("b", "x", 1), SHA), (rec("c", "z", 1), SHA), (rec("gone", "q", 1), SHA)])
        await asyncio.sleep(0.1)
        assert door.sent == [(3, Placed("c", [["z", 1]]))]
        p.placed([(rec("c", "again", 2), SHA)])  # the sender goes on
        await asyncio.sleep(0.1)
        assert door.sent[-1] == (3, Placed("c", [["again", 2]]))
        await p.stop()


class TestHearingMembers:
    async def test_the_line_comes_once_every_proven_member_placed_it(self) -> None:
        door, lines = RecordingDoor(), list[str]()
        p = placements(door, lines, {"kb": "b", "kc": "c"})
        p.set_peers(PEERS)
        p.published([rec("me", "docs/report.pdf", 5)])
        assert await p.on_placed(Placed("me", [["docs/report.pdf", 5]]), conn("kb")) == Ok()
        await asyncio.sleep(0.05)
        assert lines == []
        await p.on_placed(Placed("me", [["docs/report.pdf", 5]]), conn("kc"))
        await asyncio.sleep(0.05)
        assert lines == ["✓ docs/report.pdf reached every member (2)"]
        await p.stop()

    async def test_a_connection_that_proves_no_member_counts_for_nothing(self) -> None:
        door, lines = RecordingDoor(), list[str]()
        p = placements(door, lines, {"kb": "b"})
        p.set_peers({"b": PEERS["b"]})
        p.published([rec("me", "x", 1)])
        for who in (conn(""), conn("stranger")):
            assert await p.on_placed(Placed("me", [["x", 1]]), who) == Ok()
        assert len(p.tracker) == 1
        await p.on_placed(Placed("someone-else", [["x", 1]]), conn("kb"))  # not to us
        assert len(p.tracker) == 1

    async def test_without_member_of_nothing_counts(self) -> None:
        p = Placements(cast(Door, RecordingDoor()), "me", 1.0, None, print)
        p.set_peers({"b": PEERS["b"]})
        p.published([rec("me", "x", 1)])
        await p.on_placed(Placed("me", [["x", 1]]), conn("kb"))
        assert len(p.tracker) == 1

    async def test_a_member_leaving_finishes_what_it_alone_lacked(self) -> None:
        door, lines = RecordingDoor(), list[str]()
        p = placements(door, lines, {"kb": "b", "kc": "c"})
        p.set_peers(PEERS)
        p.published([rec("me", "x", 1, deleted=True)])
        await p.on_placed(Placed("me", [["x", 1]]), conn("kb"))
        p.set_peers({"b": PEERS["b"]})
        await asyncio.sleep(0.05)
        assert lines == ["✓ delete of x reached every member (1)"]

    @pytest.mark.parametrize(
        "entries",
        [
            [["x"]],
            [["x", "1"]],
            [[1, 1]],
            ["x"],
            [["x", True]],
            [["x", 1]] * (PLACED_MAX_ENTRIES + 1),
        ],
    )
    async def test_a_malformed_placed_is_refused(self, entries: list[Any]) -> None:
        p = placements(RecordingDoor(), [], {"kb": "b"})
        with pytest.raises(BadRequest):
            await p.on_placed(Placed("me", entries), conn("kb"))
