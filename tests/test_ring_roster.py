"""The roster (`ring/roster.py`): names bound to keys, revocations, merging, the wire."""

from __future__ import annotations

import pytest

from ring.errors import BadRequest
from ring.roster import Binding, Roster, fingerprint


def roster(*bindings: tuple[str, str, int], revoked: tuple[str, ...] = ()) -> Roster:
    return Roster([Binding(*b) for b in bindings], revoked)


class TestBinding:
    def test_a_name_belongs_to_the_first_key(self) -> None:
        r = Roster()
        assert r.bind("alice", "k1", 10)
        assert not r.bind("alice", "k2", 5)
        assert r.key_of("alice") == "k1"
        assert r.conflict("alice", "k2") == Binding("alice", "k1", 10)
        assert r.conflict("alice", "k1") is None and r.conflict("bob", "k2") is None

    def test_one_key_may_hold_several_names(self) -> None:
        r = roster(("alice", "k1", 1))
        assert r.bind("alice-laptop", "k1", 2)
        assert r.names_of("k1") == ["alice", "alice-laptop"]

    def test_revoking_frees_the_names_and_is_for_good(self) -> None:
        heard: list[str] = []
        r = roster(("alice", "k1", 1), ("bob", "k2", 1))
        r.listen(lambda: heard.append("changed"))
        assert r.revoke("k1") and not r.revoke("k1")
        assert r.key_of("alice") is None and r.is_revoked("k1")
        assert not r.bind("alice", "k1", 3)
        assert r.bind("alice", "k3", 3)
        assert heard == ["changed", "changed"]


class TestMerging:
    def test_a_known_name_is_never_rebound_and_the_conflict_is_reported(self) -> None:
        mine = roster(("alice", "k1", 50))
        theirs = roster(("alice", "k2", 1), ("bob", "k3", 2))
        conflicts = mine.merge(theirs)
        assert mine.key_of("alice") == "k1" and mine.key_of("bob") == "k3"
        assert conflicts == [(Binding("alice", "k1", 50), Binding("alice", "k2", 1))]

    def test_revocations_are_taken_and_drop_the_names_they_hold(self) -> None:
        mine = roster(("alice", "k1", 1), ("bob", "k2", 1))
        mine.merge(roster(("eve", "k1", 1), revoked=("k1",)))
        assert mine.key_of("alice") is None and mine.key_of("eve") is None
        assert mine.is_revoked("k1") and mine.key_of("bob") == "k2"

    def test_nothing_new_tells_no_listener(self) -> None:
        heard: list[str] = []
        mine = roster(("alice", "k1", 1))
        mine.listen(lambda: heard.append("changed"))
        mine.merge(roster(("alice", "k1", 1)))
        assert heard == []


class TestWire:
    def test_round_trip(self) -> None:
        r = roster(("bob", "k2", 7), ("alice", "k1", 3), revoked=("k9",))
        again = Roster.from_wire(r.to_wire())
        assert again.bindings == r.bindings and again.revoked == {"k9"}
        assert Roster().wire() is None and r.wire() == r.to_wire()

    @pytest.mark.parametrize(
        "body",
        [
            [],
            {"names": "all"},
            {"names": [["alice", "k1"]]},
            {"names": [["alice", "k1", -1]]},
            {"names": [["alice", "k1", 1], ["alice", "k2", 1]]},
            {"names": [["", "k1", 1]]},
            {"revoked": [1]},
            {"names": [[f"n{i}", "k", 1] for i in range(4097)]},
        ],
    )
    def test_a_bad_roster_is_the_peers_fault(self, body: object) -> None:
        with pytest.raises(BadRequest):
            Roster.from_wire(body)


def test_a_fingerprint_is_eight_hex_digits_of_the_keys_sha256() -> None:
    key = "00" * 32
    assert fingerprint(key) == "66687aad"  # sha256 of 32 zero bytes
    assert len(fingerprint("not hex")) == 8
