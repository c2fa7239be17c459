"""Owner signatures on records (`sync/signing.py`): what is signed, and what the Verifier keeps."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from overlay.certificates import key_hex
from sync.manifest import FileRecord, fills_signature, record_to_entry
from sync.pull import merge_page
from sync.signing import Verifier, record_message, sign_records, start_signing
from sync.state import State

ALICE, MALLORY = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
KEYS: dict[str, str | None] = {"alice": key_hex(ALICE.public_key()), "bob": None}


def rec(path: str = "a.txt", seq: int = 1, owner: str = "alice") -> FileRecord:
    return FileRecord(owner, path, 3, 1_700_000_000_000_000_000, "ab" * 32, seq, False)


def entry(record: FileRecord, key: Ed25519PrivateKey = ALICE) -> dict[str, Any]:
    (signed,) = sign_records([record], key.sign)
    return record_to_entry(signed, True)


class TestMessage:
    def test_every_field_is_in_the_signed_bytes(self) -> None:
        base = rec()
        variants = [
            FileRecord("alicE", "a.txt", 3, base.mtime_ns, base.sha256, 1, False),
            FileRecord("alice", "b.txt", 3, base.mtime_ns, base.sha256, 1, False),
            FileRecord("alice", "a.txt", 4, base.mtime_ns, base.sha256, 1, False),
            FileRecord("alice", "a.txt", 3, base.mtime_ns + 1, base.sha256, 1, False),
            FileRecord("alice", "a.txt", 3, base.mtime_ns, "cd" * 32, 1, False),
            FileRecord("alice", "a.txt", 3, base.mtime_ns, base.sha256, 2, False),
            FileRecord("alice", "a.txt", 3, base.mtime_ns, base.sha256, 1, True),
        ]
        messages = {record_message(v) for v in variants}
        assert len(messages) == len(variants) and record_message(base) not in messages

    def test_fields_cannot_slide_into_each_other(self) -> None:
        one = FileRecord("ab", "c", 0, 0, "", 1, True)
        two = FileRecord("a", "bc", 0, 0, "", 1, True)
        assert record_message(one) != record_message(two)

    def test_the_signature_is_not_part_of_what_a_record_says(self) -> None:
        (signed,) = sign_records([rec()], ALICE.sign)
        assert signed == rec() and len(signed.sig) == 64


class TestVerifier:
    def test_only_records_their_owner_signed_are_kept(self) -> None:
        good = entry(rec("good.txt"))
        forged = entry(rec("forged.txt", 2**62), MALLORY)
        unsigned = record_to_entry(rec("plain.txt"), True)
        tampered = good | {"seq": 99}
        unbound = entry(rec("x", owner="bob"))
        stranger = entry(rec("x", owner="carol"))
        entries = [forged, good, unsigned, tampered, unbound, stranger, "junk", {"owner": 1}]
        assert Verifier(KEYS.get).check_now(entries, KEYS) == [good]

    def test_a_record_checked_once_is_not_checked_again(self) -> None:
        verifier = Verifier(KEYS.get)
        entries = [entry(rec(f"f{i}", i + 1)) for i in range(20)]
        assert verifier.check_now(entries, KEYS) == entries
        assert verifier.check_now(entries, KEYS) == entries
        assert verifier.checked == 20

    def test_what_was_checked_under_one_key_does_not_pass_under_another(self) -> None:
        verifier = Verifier(KEYS.get)
        good = entry(rec())
        assert verifier.check_now([good], KEYS) == [good]
        rebound = {"alice": key_hex(MALLORY.public_key())}
        assert verifier.check_now([good], rebound) == []

    def test_the_memory_is_bounded(self) -> None:
        verifier = Verifier(KEYS.get, remembered=5)
        entries = [entry(rec(f"f{i}", i + 1)) for i in range(8)]
        verifier.check_now(entries, KEYS)
        verifier.check_now(entries[:3], KEYS)
        assert verifier.checked == 11

    async def test_check_drops_in_batches_and_keeps_the_order(self) -> None:
        verifier = Verifier(KEYS.get)
        entries = [entry(rec(f"f{i}", i + 1)) for i in range(1200)]
        entries.insert(700, entry(rec("forged", 5000), MALLORY))
        kept = await verifier.check(entries, "prev")
        assert len(kept) == 1200 and kept[0]["path"] == "f0" and kept[-1]["path"] == "f1199"


class TestStateFromBeforeSignatures:
    """A state folder written before records had signatures: own records are signed at start,
    and the others' are asked for again so that their signatures come in."""

    def old_state(self, folder: Path) -> None:
        folder.mkdir()
        db = sqlite3.connect(folder / "sync.db")
        db.executescript(
            "CREATE TABLE records(owner TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL,"
            " mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL, seq INTEGER NOT NULL,"
            " deleted INTEGER NOT NULL, have TEXT, PRIMARY KEY(owner, path));"
            "CREATE TABLE counters(owner TEXT PRIMARY KEY, seq INTEGER NOT NULL);"
            "INSERT INTO records VALUES ('me', 'mine.txt', 3, 1, '" + "ab" * 32 + "', 4, 0, NULL);"
            "INSERT INTO records VALUES ('alice', 'a.txt', 3, 1, '" + "ab" * 32 + "', 1, 0, NULL);"
            "INSERT INTO counters VALUES ('me', 4), ('alice', 1);"
        )
        db.commit()
        db.close()

    def test_own_records_are_signed_and_the_others_asked_for_again(self, tmp_path: Path) -> None:
        me = Ed25519PrivateKey.generate()
        self.old_state(tmp_path / "state")
        state = State(tmp_path / "state")
        assert state.unsigned_before
        start_signing(state, "me", me.sign)
        (mine,) = state.records_of("me").values()
        assert len(mine.sig) == 64 and state.unsigned("me") == []
        assert state.counters() == {"me": 4}
        state.close()
        assert not State(tmp_path / "state").unsigned_before

    def test_a_signed_copy_of_a_record_kept_unsigned_fills_its_signature(
        self, tmp_path: Path
    ) -> None:
        self.old_state(tmp_path / "state")
        state = State(tmp_path / "state")
        start_signing(state, "me", Ed25519PrivateKey.generate().sign)
        old = FileRecord("alice", "a.txt", 3, 1, "ab" * 32, 1, False)  # as stored, unsigned
        assert merge_page(state, "me", "prev", [entry(old)]) == {("alice", "a.txt"): (1, True)}
        kept = state.record("alice", "a.txt")
        assert kept is not None and len(kept[0].sig) == 64
        other = FileRecord("alice", "a.txt", 4, old.mtime_ns, old.sha256, 1, False)
        assert not fills_signature(kept[0], sign_records([other], ALICE.sign)[0])
        state.close()
