"""The prompt's answers (`peers`, `status`, `files`, `who-has`, `invite`, `join`, `forget`,
`confirm-deletes`), kept apart from the node that builds and wires the parts.

`NodeCommands` holds the node and reads its parts at call time: `join` restarts the node, which
builds new parts, so nothing here may keep a part of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from overlay.joining import move_by_code
from overlay.progress import transfers_text
from overlay.prompt import status_text
from overlay.reports import files_text, holders_text, human_size, peers_text
from sync.reports import trouble_lines
from sync.sources import nearest

if TYPE_CHECKING:
    from overlay.node import Node

MAX_MATCHES = 20
"""Files `who-has` answers for at most; beyond, the user is asked to narrow the query."""


class NodeCommands:
    """What the prompt (`overlay.prompt.Console`) calls: one method per command."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def add_change_listener(self, cb: Callable[[str], None]) -> None:
        """Call cb(line) for each change to the shared folders and what becomes of an invite."""
        self.node.add_change_listener(cb)

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
            st.last_sync,
            held_reason=st.held_reason,
        )
        text = "\n".join([text, *trouble_lines(st)])
        if index is not None:
            text += "\n" + index.backlog().text()
        running = sync.transfers()
        if running:
            text += "\n" + "\n".join("  " + line for line in transfers_text(running).splitlines())
        return text

    def files_report(self) -> str:
        """What this node holds, per owner (the `files` command)."""
        sync, identity = self.node.sync, self.node.identity
        assert sync is not None and identity is not None
        return files_text(sync.summary(), identity.name)

    async def who_has(self, query: str) -> str:
        """Holders of every file matching `query`, nearest first (the `who-has` command)."""
        node = self.node
        if node.index is None:
            return "who-has needs the holder index: start the node with --dht"
        assert node.sync is not None and node.ring is not None
        records = [r for r in node.sync.find(query) if not r.deleted]
        if not records:
            return f"no file matches {query!r} (see 'files')"
        view, me = node.ring.view, node.ring.me
        answers = []
        for record in records[:MAX_MATCHES]:
            found = await node._holders(record.sha256)
            table = node._round_trips()
            holders = nearest(found, me.name, table)
            title = (
                f"{record.owner}/{record.path}  sha256 {record.sha256}  {human_size(record.size)}"
            )
            rows = [(m, view.position(m.key), table.rtt(m.name)) for m in holders]
            answers.append(holders_text(title, rows, me.key))
        if len(records) > MAX_MATCHES:
            answers.append(f"... and {len(records) - MAX_MATCHES} more matches; narrow the query")
        return "\n".join(answers)

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
