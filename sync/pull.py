"""Pull rounds: the previous node's manifest delta, paged in, then a pass over every need.

One round: page through the previous node's MANIFEST delta since what this node has seen of
each owner (`merge_page` keeps what supersedes), then run `Applier.round`, which meets
every need known, the new ones and those a failed step left for later. Rounds run one at a
time; pushes are applied beside them (`apply.py`). A previous node that cannot be reached
costs only this round's delta: the pass still runs on what is known. Only records their owner
signed are merged (`signing.py`): the previous node relays records, it cannot make them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from ring.errors import PeerUnreachable, RemoteError, RemoteProtocolError
from ring.wire import Door, expect
from sync.apply import Applier
from sync.claims import Key
from sync.fetcher import Fetcher
from sync.manifest import Peer, entry_to_record, fills_signature, supersedes
from sync.messages import PAGE_LIMIT, ManifestData, ManifestRequest
from sync.signing import Verifier
from sync.state import State

log = logging.getLogger(__name__)

ROUND_PAGES = 100
"""Manifest pages read from the previous node in one round (PAGE_LIMIT records each, 200,000
at most). A node serving pages without end holds a round no longer than this; a longer
catch-up goes on in the next round from where this one stopped (the counters advance with
every page merged)."""

ROUND_SECONDS = 60.0
"""Seconds after the start of a round's manifest read after which no further page is asked for
(however slowly the previous node answers, each answer waits at most the node's timeout)."""


def least_vouched(
    before: dict[str, int] | None, complete: Mapping[str, Any] | None
) -> dict[str, int] | None:
    """Per owner, the least seq a round's pages so far were vouched complete up to.

    A round pages on from a cursor: a later page's `complete` says nothing of the records the
    earlier pages left out (the sender may have caught up on them in between), so the round
    counts no further than its least-vouched page. None: no page said (an older sender).
    """
    if complete is None:
        return before
    said = {o: s for o, s in complete.items() if isinstance(o, str) and type(s) is int}
    if before is None:
        return said
    return {o: min(s, said.get(o, 0)) for o, s in before.items()}


def merge_page(
    state: State,
    me: str,
    sender: str,
    entries: list[Any],
    complete: Mapping[str, int] | None = None,
) -> dict[Key, tuple[int, bool]]:
    """Keep every record of a manifest page from `sender` that supersedes the known one, and
    advance each owner's counter to the highest seq seen, but never past `complete` (the seq
    up to which `sender` holds every record of the owner, as `least_vouched` reads it; None
    from a sender that does not say). A sender that missed some of an owner's records (a push
    lost while the ring changed) still has the later ones: counting them would skip the missed
    ones for good.

    One bad entry (a bad name, a value sqlite cannot hold, anything) is skipped alone, never
    the page it came in; a page longer than PAGE_LIMIT is cut there. One line is logged per
    page with bad entries.

    Returns:
        (owner, path) -> (seq, whether `sender` holds those bytes), for every good entry of
        another owner: where to look first when fetching.
    """
    seen: dict[str, int] = {}
    holds: dict[Key, tuple[int, bool]] = {}
    bad: list[str] = []
    with state.transaction():
        for entry in entries[:PAGE_LIMIT]:
            try:
                rec, held = entry_to_record(entry)
                if rec.owner != me:
                    old = state.record(rec.owner, rec.path)
                    if supersedes(rec, None if old is None else old[0]):
                        state.put_record(rec, None if old is None else old[1])
                    elif old is not None and fills_signature(old[0], rec):
                        state.set_sig(rec)
                    holds[(rec.owner, rec.path)] = (rec.seq, held)
            except Exception as exc:  # one entry's trouble is that entry's alone
                bad.append(str(exc) or type(exc).__name__)
                continue
            seen[rec.owner] = max(seen.get(rec.owner, 0), rec.seq)
        for owner, seq in seen.items():
            if complete is not None:
                seq = min(seq, complete.get(owner, 0))
            if seq > state.counter(owner):
                state.set_counter(owner, seq)
    if bad or len(entries) > PAGE_LIMIT:
        log.warning(
            "skipped %d bad manifest entries from %s (first: %s), and %d past the page limit",
            len(bad),
            sender,
            bad[0] if bad else "none",
            max(0, len(entries) - PAGE_LIMIT),
        )
    return holds


class Puller:
    """Runs the pull rounds of one node, one at a time."""

    def __init__(
        self,
        door: Door,
        name: str,
        state: State,
        fetcher: Fetcher,
        applier: Applier,
        timeout: float,
        verifier: Verifier,
    ) -> None:
        self.door, self.name, self.state, self.timeout = door, name, state, timeout
        self.fetcher, self.applier, self.verifier = fetcher, applier, verifier
        self.running = False
        """Whether a round runs now (for `status`)."""
        self.pulled: dict[str, float] = {}
        """Peer name -> wall-clock time of the last manifest delta read from it."""
        self.lock = asyncio.Lock()
        """Held for a whole round, downloads included (pushes never wait on it)."""

    async def round(self, prev: Peer | None) -> int:
        """One round: prev's manifest delta (None: none), then every need; files changed.

        Whatever reading the delta runs into, the needs known are met all the same.
        """
        async with self.lock:
            self.running = True
            try:
                if prev is not None and prev.name != self.name:
                    try:
                        await self.pull_manifest(prev)
                    except (PeerUnreachable, RemoteError, RemoteProtocolError) as exc:
                        log.info("no manifest from %s this round: %s", prev.name, exc)
                    except Exception:
                        log.exception("reading the manifest of %s failed", prev.name)
                return await self.applier.round(prev)
            finally:
                self.running = False

    async def pull_manifest(self, prev: Peer) -> None:
        """Page through prev's delta since our counters and keep every superseding record:
        at most ROUND_PAGES pages, and none asked for after ROUND_SECONDS."""
        since = self.state.counters()
        deadline = time.monotonic() + ROUND_SECONDS
        conn = await self.door.open(prev.host, prev.port, self.timeout)
        try:
            cursor: list[Any] | None = None
            vouched: dict[str, int] | None = None
            for _ in range(ROUND_PAGES):
                if time.monotonic() > deadline:
                    log.info(
                        "%s: manifest read for %.0f s; the rest next round",
                        prev.name,
                        ROUND_SECONDS,
                    )
                    break
                reply = expect(
                    await conn.exchange(ManifestRequest(since, PAGE_LIMIT, cursor), self.timeout),
                    ManifestData,
                )
                page = reply.entries
                if len(page) > PAGE_LIMIT:
                    log.warning("%s sent %d entries past the page limit", prev.name, len(page))
                signed = await self.verifier.check(page[:PAGE_LIMIT], prev.name)
                vouched = least_vouched(vouched, reply.complete)
                holds = merge_page(self.state, self.name, prev.name, signed, vouched)
                self.fetcher.prev_holds.update(holds)
                if not reply.more or not reply.entries:
                    break
                cursor = reply.cursor
            else:
                log.info("%s: %d manifest pages read; the rest next round", prev.name, ROUND_PAGES)
        finally:
            await conn.close()
        self.pulled[prev.name] = time.time()
