"""The prompt's answers (`peers`, `status`, `files`, `who-has`, `invite`, `join`, `forget`,
`confirm-deletes`), kept apart from the node that builds and wires the parts.

`NodeCommands` holds the node and reads its parts at call time: `join` restarts the node, which
builds new parts, so nothing here may keep a part of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from overlay.divergence import diverged, diverged_lines
from overlay.joining import move_by_code
from overlay.listing import Entry, files_list, ls_text
from overlay.lookup import by_path, known_holders, miss_text
from overlay.progress import transfers_text
from overlay.prompt import status_text
from overlay.reports import files_text, holders_text, human_size, peers_text
from sync.manifest import FileRecord
from sync.reports import trouble_lines
from sync.sources import nearest

if TYPE_CHECKING:
    from overlay.node import Node

NO_INDEX = (
    "(no holder index on this node: holders known from sync state;"
    " start the node with --dht to ask the index)"
)

MAX_MATCHES = 20
"""Files `who-has` answers for at most; beyond, the user is asked to narrow the query."""


class NodeCommands:
    """What the prompt (`overlay.prompt.Console`) calls: one method per command."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def add_change_listener(self, cb: Callable[[str], None]) -> None:
        """Call cb(line) for each change to the shared folders and what becomes of an invite."""
        self.node.add_change_listener(cb)

    def add_ring_listener(self, cb: Callable[[str], None]) -> None:
        """Call cb(line) when a member joins or leaves the ring."""
        self.node.add_ring_listener(cb)

    def peers_report(self) -> str:
        """This node, its neighbours and the ring with round trips (the `peers` command)."""
        ring = self.node.ring
        assert ring is not None
        view, table = ring.view, self.node._round_trips()
        rtts = {m.key: r for m in view.members if (r := table.rtt(m.name)) is not None}
        return peers_text(view, ring.me, rtts)

    def status_report(self) -> str:
        """Pending changes, work in flight and the last sync per peer (the `status` command)."""
        sync, identity, index = self.node.sync, self.node.identity, self.node.index
        assert sync is not None and identity is not None
        st = sync.status()
        pending = {
            "file(s) settling": st.unsettled,
            "deletes held": st.held_deletes,
            "file(s) to fetch": st.to_fetch,
            "file(s) to delete": st.to_delete,
        }
        text = status_text(
            identity.name,
            st.own_files,
            st.own_seq,
            st.problem,
            pending,
            st.round_running,
            st.transfers,
            self._members_only(st.last_sync),
            held_reason=st.held_reason,
        )
        log_file = self.node.settings.log_file
        log_line = f"log: {log_file}" if log_file.exists() else "log: none (not run by Main.py)"
        text = "\n".join([text, *trouble_lines(st), *diverged_lines(self._diverged()), log_line])
        if index is not None:
            text += "\n" + index.backlog().text()
        running = sync.transfers()
        if running:
            text += "\n" + "\n".join("  " + line for line in transfers_text(running).splitlines())
        if st.to_fetch > len(running):
            text += f"\n  queued: {st.to_fetch - len(running)} file(s) to fetch, not started yet"
        return text

    def _members_only(self, last_sync: dict[str, float]) -> dict[str, float]:
        """The last sync with each peer still in the ring (peers that left are not listed)."""
        ring = self.node.ring
        names = {m.name for m in ring.view.members} if ring is not None else set()
        return {peer: when for peer, when in last_sync.items() if peer in names}

    def _diverged(self) -> list[str]:
        """Replicas (not this node's own files) edited here since they were placed."""
        sync, identity = self.node.sync, self.node.identity
        assert sync is not None and identity is not None
        held = {(owner, path) for owner, path, _sha, _size in sync.state.held()}
        replicas = (
            r
            for r in sync.state.live_records()
            if r.owner != identity.name and (r.owner, r.path) in held
        )
        return diverged(sync.root, replicas)

    def files_report(self) -> str:
        """What this node holds, per owner, and the first files by name (the `files` command)."""
        sync, identity = self.node.sync, self.node.identity
        assert sync is not None and identity is not None
        summary = files_text(sync.summary(), identity.name)
        held = [entry for entry in self._entries() if entry.held]
        return "\n".join([summary, files_list(held)]) if held else summary

    def ls(self, where: str) -> str:
        """The owners, or the folders and files in one folder (the `ls` command)."""
        return ls_text(self._entries(), where)

    def names(self) -> list[str]:
        """Every live file as `<owner>/<path>` (for completion at a terminal)."""
        return [entry.name for entry in self._entries()]

    def _entries(self) -> list[Entry]:
        """Every live file known here, marked held when its bytes are on this node."""
        sync = self.node.sync
        assert sync is not None
        held = {(owner, path) for owner, path, _sha, _size in sync.state.held()}
        return [
            Entry(r.owner, r.path, r.size, (r.owner, r.path) in held)
            for r in sync.state.live_records()
        ]

    async def who_has(self, query: str) -> str:
        """Holders of every file matching `query`, nearest first (the `who-has` command).

        With no holder index here, or where the index lacks a holder, the holders this node
        knows from sync state are shown, marked as such (`overlay/lookup.py`).
        """
        sync = self.node.sync
        assert sync is not None
        live = sync.state.live_records()
        records = [r for r in sync.find(query) if not r.deleted] or by_path(query, live)
        answers = [] if self.node.index is not None else [NO_INDEX]
        if not records:
            return "\n".join([miss_text(query, live), *answers])
        held = sync.held_hashes()
        for record in records[:MAX_MATCHES]:
            answers.append(await self._holders_of(record, record.sha256 in held))
        if len(records) > MAX_MATCHES:
            answers.append(f"... and {len(records) - MAX_MATCHES} more matches; narrow the query")
        return "\n".join(answers)

    async def _holders_of(self, record: FileRecord, held_here: bool) -> str:
        """One file's who-has lines: the index's holders, then those known from sync state."""
        node = self.node
        assert node.ring is not None and node.sync is not None
        view, me = node.ring.view, node.ring.me
        found = await node._holders(record.sha256) if node.index is not None else []
        prev = view.prev_of(me.key)
        says = node.sync.fetcher.prev_holds.get((record.owner, record.path))
        known = known_holders(record, view.members, me, held_here, prev, says)
        listed = {m.key for m in found}
        by_key = {m.key: m for m in view.members}
        extra = [by_key[key] for key in known if key not in listed]
        suffix = "; not in the index" if node.index is not None else ""
        notes = {m.key: known[m.key] + suffix for m in extra}
        table = node._round_trips()
        holders = nearest([*found, *extra], me.name, table)
        title = f"{record.owner}/{record.path}  sha256 {record.sha256}  {human_size(record.size)}"
        rows = [(m, view.position(m.key), table.rtt(m.name)) for m in holders]
        return holders_text(title, rows, me.key, notes)

    async def confirm_deletes(self) -> str:
        """Push the deletes held back as too many at once (the `confirm-deletes` command)."""
        assert self.node.sync is not None
        pushed = await self.node.sync.confirm_deletes()
        return f"pushed {pushed} delete(s)" if pushed else "no deletes are waiting"

    async def forget(self, name: str) -> str:
        """Shut the member `name` out for good and re-key the network (the `forget` command)."""
        assert self.node.trust is not None
        return await self.node.trust.forget(name)

    async def invite(self) -> str:
        """The `invite` command: a one-time code for one new host."""
        invites = self.node.invites
        return await invites.command() if invites else "invite: not started"

    async def join(self, text: str) -> str:
        """The `join` command: move this host, alone in its ring, to the network of a code."""
        return await move_by_code(self.node, text, self.node._interface)
