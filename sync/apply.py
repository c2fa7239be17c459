"""Applying records to replicas: passes that plan and meet the needs of the paths they claim.

Theory of operation. A pass takes a set of replica paths: a pull round takes every path with
a need, the apply of a push only the paths of the records it carried. It claims those nobody
else holds (`claims.py`), reads their records and the bytes held (`State.rows`), `plan`s their
needs and meets them: deletes first (bytes a rename moved are copied to the new name before
the old one goes), then fetches, each by bytes already here or a local copy if it can, else by
`Fetcher.download`. Each path is let go of as soon as its need is met or has failed, so a push
waits for no download but its own path's, and a path another pass asked for meanwhile is
applied again at once, from the records stored by then. Pushes are applied while a round runs;
a pass tells the user what it changed at a path (`replica_changes`, from the state's journal)
as it lets go of the path, so an edit applied after a download is told after it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from ring.errors import RemoteProtocolError
from ring.wire import cancel_and_wait
from sync.blocks import LARGE_FILE
from sync.claims import Claim, Claims, Key
from sync.errors import SyncError
from sync.fetcher import Fetcher
from sync.manifest import FileRecord, Peer, plan
from sync.replica import Replicas, guarded
from sync.reports import Change, replica_changes
from sync.state import State

log = logging.getLogger(__name__)

Row = tuple[FileRecord, str | None]


def _key(rec: FileRecord) -> Key:
    return (rec.owner, rec.path)


class Applier:
    """Passes over replica paths for one node: a pull round's, and one per push applied."""

    def __init__(
        self,
        name: str,
        state: State,
        replicas: Replicas,
        fetcher: Fetcher,
        tell: Callable[[Change], None],
        placed: Callable[[list[Row]], None],
    ) -> None:
        """`tell` hears what a pass changed; `placed` gets the rows a pass took and those it
        changed, after it (owners are told what is placed here: `placed.py`)."""
        self.name, self.state, self.replicas, self.fetcher = name, state, replicas, fetcher
        self.tell, self.placed = tell, placed
        self.peers: dict[str, Peer] = {}
        """Every member by name (to reach owners); the engine keeps it current."""
        self.claims = Claims()
        self._wanted: set[Key] = set()
        self._wake = asyncio.Event()
        self._passes: set[asyncio.Task[int]] = set()

    def want(self, keys: Iterable[Key]) -> None:
        """Apply the records stored for these paths soon, in a pass of their own (a push)."""
        self._wanted.update(keys)
        self._wake.set()

    async def run(self) -> None:
        """Start a pass for the paths wanted, each time some are (runs until cancelled)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            keys, self._wanted = self._wanted, set()
            task = asyncio.create_task(self._apply(keys), name=f"apply-{self.name}")
            self._passes.add(task)
            task.add_done_callback(self._passes.discard)

    async def stop(self) -> None:
        """Cut the passes running for pushes (a failed need is retried by a later pass)."""
        await cancel_and_wait(list(self._passes))

    async def round(self, prev: Peer | None) -> int:
        """A pull round's pass: every path with a need; returns files changed.

        Partial downloads of content no longer wanted are removed first.
        """
        rows = self.state.pending_rows(self.name)
        await self.fetcher.prune({rec.sha256 for rec, _have in rows if rec.size > LARGE_FILE})
        return await self._pass({_key(rec) for rec, _have in rows}, prev)

    async def _apply(self, keys: set[Key]) -> int:
        try:
            return await self._pass(keys, None)
        except Exception:  # one bad pass must not stop the next
            log.exception("applying a push failed on %s", self.name)
            return 0

    async def _pass(self, keys: set[Key], prev: Peer | None) -> int:
        """Claim the paths, meet the needs of those claimed, tell the user what changed."""
        claim = self.claims.claim()
        self.replicas.renew()
        self.state.start_journal()
        rows: list[Row] = []
        touched: list[Row] = []
        try:
            rows = self.state.rows(claim.take(keys))
            return await self._meet(rows, prev, claim, touched)
        finally:
            self._let_go(claim, claim.held, touched)
            self.state.end_journal()
            self.placed(rows + touched)  # a push of what was here already is placed too

    def _let_go(self, claim: Claim, keys: Iterable[Key], touched: list[Row]) -> None:
        """Tell the user what this pass changed at `keys` (adding their rows to `touched`),
        then let go of them, applying again those another pass asked for meanwhile.

        Told before the paths are let go of: from then on another pass may change them too.
        """
        keys = set(keys)
        self.replicas.forget(keys)
        before = self.state.take_journal(keys)
        after = self.state.rows(before)
        for change in replica_changes(before, after):
            self.tell(change)
        touched.extend(after)
        self._again(claim.release(keys))

    async def _meet(
        self, rows: list[Row], prev: Peer | None, claim: Claim, touched: list[Row]
    ) -> int:
        """Meet the needs of claimed rows: deletes, then fetches, local ones before downloads."""

        def done(recs: list[FileRecord]) -> None:
            self._let_go(claim, [_key(rec) for rec in recs], touched)

        needs = plan(rows)
        changed = 0
        for need in needs:
            if need.kind == "delete":
                await self._copy_renamed(need.record, claim, touched)
                changed += await guarded(self.replicas.delete(need.record))
                done([need.record])
        fetches = [n.record for n in needs if n.kind == "fetch"]
        here = self.state.cache_by_hashes({rec.sha256 for rec in fetches})
        remote: list[FileRecord] = []
        for rec in fetches:
            met = await guarded(self.replicas.satisfy_locally(rec, rec.sha256 in here))
            if met < 0:
                remote.append(rec)
                continue
            changed += met
            done([rec])
        return changed + await self.fetcher.download(remote, prev, self.peers, done)

    async def _copy_renamed(self, rec: FileRecord, claim: Claim, touched: list[Row]) -> None:
        """Copy the bytes at a path about to be deleted to the paths that want them; the last
        one gets the file itself, renamed (`Replicas.move`).

        A rename reaches a replica as a tombstone plus a new record with the same content, and
        deletes go first; without this, the content would be gone by the time the new name is
        fetched, and every byte would travel again. A path another pass holds is left to it.
        """
        have = self.replicas.have(rec.owner, rec.path)
        if have is None:
            return
        targets = self.state.wanting(have, self.name)
        for index, target in enumerate(targets):
            key = _key(target)
            mine = key in claim.held
            if key not in claim.take([key]):
                continue
            try:
                last = index == len(targets) - 1
                if not (last and await self.replicas.move(rec, target)):
                    await self.replicas.satisfy_locally(target, True)
            except (OSError, SyncError, RemoteProtocolError) as exc:
                log.info("cannot copy %s/%s here: %s", target.owner, target.path, exc)
            except Exception:  # one path's bug must not end the pass
                log.exception("cannot copy %s/%s here", target.owner, target.path)
            if not mine:
                self._let_go(claim, [key], touched)

    def _again(self, keys: set[Key]) -> None:
        if keys:
            self.want(keys)
