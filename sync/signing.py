"""Owner signatures on change records: what is signed, signing, and checking them cheaply.

Theory of operation. Only an owner makes its records, so each record carries the owner's
Ed25519 signature of its fields (`record_message`), made with the owner's node key when its scan
makes the record. Every replica checks that signature against the key the network binds to the
owner's name (the roster, which the overlay keeps; sync sees it only as `OwnerKeys`) before it
keeps the record, whoever relayed it: a push, a manifest page. A record that does not check
out (an owner no key is bound to, a signature that does not match) is dropped alone, never the
page or push it came in; so a member cannot make a change in another owner's name, and a
sequence number nobody signed cannot shadow the owner's real changes.

Checking costs about 60-150 us of CPU per signature, so `Verifier` does it in a worker thread,
in batches, and remembers the (record, signature) pairs it has checked: a record that comes
again (a push, then the same record in the next manifest page) is not checked again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ring.errors import Refused
from sync.manifest import FileRecord, entry_to_record
from sync.state import State

log = logging.getLogger(__name__)

RECORD_LABEL = b"lanshare record v1\x00"
"""The first bytes of every signed record message: a signature made for anything else (a TLS
handshake, a later version of the record) never passes for a record."""

Signer = Callable[[bytes], bytes]
"""Signs a message with this node's own key (64-byte Ed25519 signature)."""

OwnerKeys = Callable[[str], str | None]
"""The public key (64 hex digits) bound to an owner name, or None when none is."""

VERIFIED_MAX = 100_000
"""(record, signature) pairs remembered as checked; the oldest are forgotten first (16 bytes
each, a few MB in all)."""

REASON_SHOWN = 200
"""Characters of the first reason a drop's log line names (a path may be 4 KB long)."""

BATCH = 500
"""Signatures checked in one go in a worker thread (about 30-75 ms of CPU)."""

THREADS = max(1, min(4, os.cpu_count() or 1))
"""Batches checked at once, one per core (at most 4): a 2,000-entry page is one round."""


def record_message(rec: FileRecord) -> bytes:
    """The bytes an owner signs for `rec`: the label, then owner, path and sha256 (each a
    4-byte big-endian length and UTF-8), then seq, size and mtime_ns (8-byte big-endian signed)
    and deleted (one byte, 0 or 1)."""
    parts = [RECORD_LABEL]
    for text in (rec.owner, rec.path, rec.sha256):
        data = text.encode("utf-8")
        parts.append(struct.pack(">I", len(data)) + data)
    parts.append(struct.pack(">qqqB", rec.seq, rec.size, rec.mtime_ns, int(rec.deleted)))
    return b"".join(parts)


def sign_records(records: Iterable[FileRecord], sign: Signer) -> list[FileRecord]:
    """The records with the owner's signature (this node is their owner)."""
    return [replace(rec, sig=sign(record_message(rec))) for rec in records]


def sign_stored(state: State, records: list[FileRecord], sign: Signer) -> list[FileRecord]:
    """Sign own records already stored without a signature (the scan just made them, or a
    state folder from before signatures holds them), store the signatures, return them."""
    signed = sign_records(records, sign)
    if signed:
        with state.transaction():
            for rec in signed:
                state.set_sig(rec)
    return signed


def start_signing(state: State, me: str, sign: Signer) -> None:
    """At start: sign own records stored without a signature. A state folder from before
    signatures also asks its peers for every record again (its counters of other owners go
    to 0), so that the records it keeps unsigned get their owner's signature (`merge_page`
    takes the signature of a record it already has) and it can pass them on."""
    sign_stored(state, state.unsigned(me), sign)
    if state.unsigned_before:
        state.reset_counters(keep=me)


class Verifier:
    """Checks the owner signatures of manifest entries, remembering those already checked.

    Args:
        owner_key: the key bound to an owner name (read on the event loop only).
        remembered: most (record, signature) pairs remembered as good.
    """

    def __init__(self, owner_key: OwnerKeys, remembered: int = VERIFIED_MAX) -> None:
        self.owner_key = owner_key
        self.remembered = remembered
        self.checked = 0
        """Signatures actually checked (not found among the remembered): tests and benches."""
        self._good: OrderedDict[bytes, None] = OrderedDict()
        self._keys: dict[str, Ed25519PublicKey | None] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(THREADS, thread_name_prefix="sync-verify")
        """Threads of its own: a push's check is on the path from the owner to every replica,
        and must not queue behind the blocking downloads in the loop's default executor."""

    def close(self) -> None:
        """Stop the checking threads (the engine is stopping; a check under way ends first)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def check(self, entries: list[Any], sender: str) -> list[Any]:
        """The entries whose record the owner signed, in their order; the rest are dropped and
        counted in one log line (the first reason named).

        The keys are looked up here, on the event loop (the roster changes there); parsing and
        checking run in worker threads, THREADS batches at once (an Ed25519 check releases the
        GIL, so a page is checked on every core while the event loop goes on).
        """
        owners = {e.get("owner") for e in entries if isinstance(e, dict)}
        keys = {o: self.owner_key(o) for o in owners if isinstance(o, str)}
        good: list[Any] = []
        dropped: list[str] = []
        batches = [entries[at : at + BATCH] for at in range(0, len(entries), BATCH)]
        loop = asyncio.get_running_loop()
        for at in range(0, len(batches), THREADS):
            try:
                checks = [
                    loop.run_in_executor(self._pool, self._check_batch, b, keys)
                    for b in batches[at : at + THREADS]
                ]
            except RuntimeError:  # closed: the engine is stopping
                raise Refused("stopping", "this node is stopping") from None
            done = await asyncio.gather(*checks)
            for kept, why in done:
                good.extend(kept)
                dropped.extend(why)
        if dropped:
            log.warning(
                "dropped %d record(s) from %s whose owner did not sign them (first: %s)",
                len(dropped),
                sender,
                dropped[0][:REASON_SHOWN],
            )
        return good

    def check_now(self, entries: list[Any], keys: Mapping[str, str | None]) -> list[Any]:
        """`check` without the thread and the log line (for the benchmark and unit tests)."""
        return self._check_batch(entries, keys)[0]

    def _check_batch(
        self, entries: list[Any], keys: Mapping[str, str | None]
    ) -> tuple[list[Any], list[str]]:
        good: list[Any] = []
        why: list[str] = []
        for entry in entries:
            reason = self._check_one(entry, keys)
            if reason is None:
                good.append(entry)
            else:
                why.append(reason)
        return good, why

    def _check_one(self, entry: Any, keys: Mapping[str, str | None]) -> str | None:
        """None when `entry` is signed by its owner, else why not."""
        try:
            rec, _held = entry_to_record(entry)
        except Exception as exc:  # any malformed entry is refused, whatever it trips on
            return f"malformed: {exc}"
        hex_key = keys.get(rec.owner)
        key = self._key(hex_key)
        if key is None or hex_key is None:
            return f"{rec.owner}/{rec.path} seq {rec.seq}: no key is bound to {rec.owner!r}"
        if not rec.sig:
            return f"{rec.owner}/{rec.path} seq {rec.seq}: not signed"
        message = record_message(rec)
        mark = hashlib.blake2b(hex_key.encode() + message + rec.sig, digest_size=16).digest()
        with self._lock:
            if mark in self._good:
                return None
            self.checked += 1
        try:
            key.verify(rec.sig, message)  # outside the lock: checks on other threads go on
        except InvalidSignature:
            return f"{rec.owner}/{rec.path} seq {rec.seq}: a bad signature"
        with self._lock:
            self._good[mark] = None
            while len(self._good) > self.remembered:
                self._good.popitem(last=False)
        return None

    def _key(self, hex_key: str | None) -> Ed25519PublicKey | None:
        """The public key object of 64 hex digits (made once per key); None if not a key."""
        if hex_key is None:
            return None
        with self._lock:
            if hex_key not in self._keys:
                try:
                    self._keys[hex_key] = Ed25519PublicKey.from_public_bytes(bytes.fromhex(hex_key))
                except ValueError:
                    self._keys[hex_key] = None
            return self._keys[hex_key]
