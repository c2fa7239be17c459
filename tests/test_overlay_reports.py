"""What the prompt prints, from plain data: peers, files and who-has answers."""

from __future__ import annotations

import pytest

from overlay.reports import files_text, holders_text, human_rtt, human_size, peers_text
from ring.membership import Member, View
from ring.roster import fingerprint

A = Member("a" * 32, "alpha", "10.0.0.1", 8091)
B = Member("b" * 32, "bravo", "10.0.0.2", 8091)
C = Member("c" * 32, "charlie", "10.0.0.3", 9000)
RING = View("ring-1", 7, (A, B, C))


@pytest.mark.parametrize(
    "size, text",
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536 * 1024, "1.5 MiB"),
        (5 << 40, "5.0 TiB"),
    ],
)
def test_human_size(size: int, text: str) -> None:
    assert human_size(size) == text


def test_human_rtt() -> None:
    assert human_rtt(None) == "rtt -" and human_rtt(0.00125) == "rtt 1.25 ms"


class TestPeers:
    def test_neighbours_and_the_whole_ring_in_order(self) -> None:
        text = peers_text(RING, B, {A.key: 0.001, C.key: 0.002})
        lines = text.splitlines()
        assert lines[0] == "this node: id 1 'bravo' 10.0.0.2:8091 (leader: 'alpha')"
        assert lines[1] == "previous:  id 0 'alpha' 10.0.0.1:8091 rtt 1.00 ms"
        assert lines[2] == "next:      id 2 'charlie' 10.0.0.3:9000 rtt 2.00 ms"
        assert lines[3] == "ring: 3 node(s), version 7"
        assert [line.split()[:2] for line in lines[4:]] == [
            ["0", "alpha"],
            ["*", "1"],
            ["2", "charlie"],
        ]

    def test_every_member_shows_its_key_fingerprint(self) -> None:
        lines = peers_text(RING, B, {}).splitlines()[4:]
        assert [line.split("key ")[1][:8] for line in lines] == [
            fingerprint(m.key) for m in (A, B, C)
        ]
        assert len({fingerprint(m.key) for m in (A, B, C)}) == 3

    def test_a_node_alone(self) -> None:
        text = peers_text(View("r", 1, (A,)), A, {})
        assert "previous:  none (alone)" in text and "ring: 1 node(s)" in text


def test_files_per_owner_sorted_with_own_marked() -> None:
    text = files_text({"bravo": (2, 2048), "alpha": (1, 10)}, "bravo")
    assert text.splitlines() == ["alpha: 1 file(s), 10 B", "bravo: 2 file(s), 2.0 KiB  (this node)"]
    assert files_text({}, "alpha") == "no files yet"


class TestHolders:
    def test_holders_in_the_given_order_with_this_node_marked(self) -> None:
        text = holders_text("alpha/x.bin", [(C, 2, 0.0004), (B, 1, None), (A, 0, None)], A.key)
        assert text.splitlines() == [
            "alpha/x.bin",
            "  charlie  10.0.0.3:9000  id 2  rtt 0.40 ms",
            "  bravo  10.0.0.2:8091  id 1  rtt -",
            "  alpha  10.0.0.1:8091  id 0  (this node)",
        ]

    def test_no_holder(self) -> None:
        assert holders_text("t", [], A.key) == "t\n  no holder known"


def test_a_holder_known_without_the_index_is_marked() -> None:
    text = holders_text("t", [(A, 0, None), (B, 1, None)], A.key, {B.key: "owner"})
    assert text.splitlines()[1:] == [
        "  alpha  10.0.0.1:8091  id 0  (this node)",
        "  bravo  10.0.0.2:8091  id 1  rtt -  [owner]",
    ]
