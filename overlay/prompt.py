"""The operator's prompt: the original's "Enter 'exit' ..." and `>>`, reading commands from
standard input whether it is a terminal or a pipe, so a script can drive a node.

Command parsing is kept apart from reading stdin, so it is tested without a terminal. A node
that syncs (`SyncCommands`) also gets `status` and `confirm-deletes`, and the prompt prints each
change to the shared folders as it arrives, one quiet line each ("~ alice/report.pdf updated").
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable

log = logging.getLogger(__name__)

BANNER = "Enter 'exit' to terminate the program."
PROMPT = ">> "

MAX_HELD = 50
"""Notices held back while a command runs that are shown after it; the rest are counted."""

HELP = """commands (help <command> for more):
  peers            this node's id and name, previous, next, and the ring as known
  files            what this node holds, per owner, and the first files by name
  ls [owner[/folder]]  browse: the owners, or the folders and files in one folder
  who-has <file>   holders of a file: <owner>/<path>, a path, a file name, or a hash prefix
  status           pending changes, transfers, the last sync with each peer, the log file
  confirm-deletes  push the deletes held back because they remove most of the own folder
  invite           a one-time code for adding a host to this network (good for 10 minutes)
  join <code> [HOST:PORT]  move this host, alone in its ring, to the network of that code
  forget <name>    shut a member out for good (its key is revoked, the network re-keyed)
  help [command]   this list, or more about one command
  exit             leave the ring gracefully and stop (Ctrl-D, Ctrl-C do the same)"""

DETAILS = {
    "peers": "peers: this node (ring id, name, address, the leader), its previous and next"
    " member, then every member in ring order with its round trip and key fingerprint.",
    "files": "files: per owner, how many files and bytes this node holds, then the first"
    " files by name ('ls' browses the rest).",
    "ls": "ls [owner[/folder]]: with no argument, every owner's folder with its file count"
    " and size; with one, the folders and files directly in it. Files whose bytes are not"
    " on this node yet are marked '(not here yet)'.",
    "who-has": "who-has <file>: the file's hash and size, then every holder, nearest first."
    " <file> is <owner>/<path>, a path without its owner (or its last folders), a bare file"
    " name, or a hash prefix of at least 4 hex digits. Holders found without the holder"
    " index (no --dht, or an entry the index lacks) are marked how they are known. A name"
    " that matches nothing gets near matches.",
    "status": "status: the own folder, pending changes, running downloads (size, rate,"
    " time left, holders), the last sync per peer, files not shared and why, local edits"
    " kept, the log file, and with --dht what the holder index has queued.",
    "confirm-deletes": "confirm-deletes: push deletes held back because they would remove"
    " most of this node's folder at once (or the folder looks unmounted).",
    "invite": "invite: a one-time code (e.g. 7-guitar-ocean) for one new host, good for 10"
    " minutes; the new host types 'join <code>'.",
    "join": "join <code> [HOST:PORT]: join the network of that code; only a host alone in"
    " its ring moves. HOST:PORT as 'invite' printed it, where discovery cannot find it.",
    "forget": "forget <name>: revoke a member's key everywhere and move the network to a"
    " new key (docs/SECURITY.md).",
    "help": "help [command]: the list of commands, or more about one.",
    "exit": "exit: leave the ring gracefully and stop (Ctrl-D at a terminal, Ctrl-C and"
    " SIGTERM do the same).",
}
"""What `help <command>` says about each command."""


class Commands(Protocol):
    """What the prompt asks of the node."""

    def peers_report(self) -> str: ...

    def files_report(self) -> str: ...

    async def who_has(self, query: str) -> str: ...


@runtime_checkable
class BrowseCommands(Protocol):
    """What the prompt asks of a node whose folders can be browsed (`ls`)."""

    def ls(self, where: str) -> str: ...


@runtime_checkable
class PairCommands(Protocol):
    """What the prompt asks of a node that can invite hosts and join by code."""

    async def invite(self) -> str: ...

    async def join(self, text: str) -> str: ...


@runtime_checkable
class SyncCommands(Protocol):
    """What the prompt asks of a node that syncs files (the real Node does)."""

    def status_report(self) -> str: ...

    async def confirm_deletes(self) -> str: ...

    def add_change_listener(self, cb: Callable[[str], None]) -> None: ...


@runtime_checkable
class RingNotices(Protocol):
    """A node that tells members joining and leaving (shown at a terminal only: a script
    reading a pipe reads answers, and these would land inside the next one)."""

    def add_ring_listener(self, cb: Callable[[str], None]) -> None: ...


@runtime_checkable
class TrustCommands(Protocol):
    """What the prompt asks of a node that can forget members (the real Node can)."""

    async def forget(self, name: str) -> str: ...


class Output(Protocol):
    """Where the prompt writes: a terminal, a pipe, or the progress bars' writer."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


class Console:
    """Turns command lines into node calls and text; `execute` returns False on `exit`."""

    def __init__(self, node: Commands, out: Output = sys.stdout) -> None:
        self.node = node
        self.out = out
        self._commands: dict[str, Callable[[str], Awaitable[str]]] = {
            "help": self._help,
            "peers": self._peers,
            "files": self._files,
            "who-has": self._who_has,
        }
        self.interactive = False
        self._held: list[str] | None = None
        """Notices that came while a command ran (None when none runs)."""
        if isinstance(node, SyncCommands):
            self._commands["status"] = self._status
            self._commands["confirm-deletes"] = self._confirm
            node.add_change_listener(self.notice)
        if isinstance(node, BrowseCommands):
            self._commands["ls"] = self._ls
        if isinstance(node, PairCommands):
            self._commands["invite"] = lambda _: node.invite()
            self._commands["join"] = node.join
        if isinstance(node, TrustCommands):
            self._commands["forget"] = self._forget
        if isinstance(node, RingNotices):
            node.add_ring_listener(self._ring_notice)

    async def execute(self, line: str) -> bool:
        """Run one command line and print its answer."""
        word, _, rest = line.strip().partition(" ")
        if not word:
            return True
        if word in ("exit", "quit"):
            return False
        command = self._commands.get(word)
        if command is None:
            self.say(f"unknown command {word!r}; type 'help'")
            return True
        self._held = []
        try:
            self.say(await command(rest.strip()))
        except Exception:  # the prompt must survive whatever a command hits
            log.exception("command %r failed", line.strip())
            self.say(f"{word}: failed (the log file has why; 'status' shows where it is)")
        finally:
            held, self._held = self._held, None
            for notice in held[:MAX_HELD]:
                self.notice(notice)
            if len(held) > MAX_HELD:
                self.notice(f"... and {len(held) - MAX_HELD} more changes meanwhile")
        return True

    def say(self, text: str) -> None:
        """Print an answer at once (a script reading a pipe must see it before the next prompt)."""
        self.out.write(text.rstrip("\n") + "\n")
        self.out.flush()

    def notice(self, line: str) -> None:
        """Show a change as it happens: on a terminal above a fresh prompt, in a pipe as a line;
        while a command runs, after its answer (never inside it)."""
        if self._held is not None:
            self._held.append(line)
            return
        if self.interactive:
            self.out.write("\r" + line + "\n" + PROMPT)
        else:
            self.out.write(line + "\n")
        self.out.flush()

    def _ring_notice(self, line: str) -> None:
        if self.interactive:
            self.notice(line)

    def command_names(self) -> list[str]:
        """Every command this prompt takes (for completion at a terminal)."""
        return [*self._commands, "exit"]

    def show_prompt(self) -> None:
        self.out.write(PROMPT)
        self.out.flush()

    async def _help(self, about: str) -> str:
        if not about:
            return HELP
        detail = DETAILS.get(about.split()[0])
        return detail if detail is not None else f"no command {about!r}; type 'help'"

    async def _ls(self, where: str) -> str:
        assert isinstance(self.node, BrowseCommands)
        return self.node.ls(where)

    async def _peers(self, _: str) -> str:
        return self.node.peers_report()

    async def _files(self, _: str) -> str:
        return self.node.files_report()

    async def _status(self, _: str) -> str:
        assert isinstance(self.node, SyncCommands)
        return self.node.status_report()

    async def _confirm(self, _: str) -> str:
        assert isinstance(self.node, SyncCommands)
        return await self.node.confirm_deletes()

    async def _forget(self, name: str) -> str:
        assert isinstance(self.node, TrustCommands)
        if not name:
            return "usage: forget <name> (a member's name, as 'peers' shows it)"
        return await self.node.forget(name)

    async def _who_has(self, query: str) -> str:
        if not query:
            return "usage: who-has <owner>/<path> | <path> | <file name> | <hash prefix, 4+ digits>"
        return await self.node.who_has(query)


def stdin_lines(loop: asyncio.AbstractEventLoop) -> asyncio.Queue[str | None]:
    """Lines of standard input as they come, then None at end of input.

    A daemon thread does the blocking reads: it works for terminals, pipes and files alike,
    and never holds the process open at exit (an executor thread would be joined). At a
    terminal it reads with `input()`, so readline's history and completion work once loaded
    (`overlay/lineedit.py`); the prompt itself is printed by the Console, not by `input`.
    """
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    terminal = sys.stdin.isatty() and sys.stdout.isatty()

    def pump() -> None:
        try:
            if terminal:
                while True:
                    loop.call_soon_threadsafe(queue.put_nowait, input() + "\n")
            for line in sys.stdin:
                loop.call_soon_threadsafe(queue.put_nowait, line)
        except (EOFError, OSError, ValueError, RuntimeError):
            pass
        try:
            loop.call_soon_threadsafe(queue.put_nowait, None)
        except RuntimeError:  # the loop already closed
            pass

    threading.Thread(target=pump, name="stdin", daemon=True).start()
    return queue


async def run_console(
    console: Console,
    lines: asyncio.Queue[str | None],
    interactive: bool,
    *,
    banner: bool = True,
    notes: Sequence[str] = (),
) -> None:
    """Serve commands until `exit`, or until end of input at a terminal (Ctrl-D).

    At end of input from a pipe the node keeps running without a prompt until a signal, so a
    script can feed a few commands and leave the node up.

    Args:
        banner: show the banner first (not when the host's waiting prompt showed it already).
        notes: lines shown before the first prompt (e.g. "founded network ...").
    """
    console.interactive = interactive
    if banner:
        console.say(BANNER)
    for note in notes:
        console.say(note)
    while True:
        console.show_prompt()
        line = await lines.get()
        if line is None:
            if interactive:
                console.say("")
                return
            await asyncio.Event().wait()
        elif not await console.execute(line):
            return


def status_text(
    own: str,
    own_files: int,
    own_seq: int,
    problem: str | None,
    pending: dict[str, int],
    running: bool,
    transfers: int,
    last_sync: dict[str, float],
    now: float | None = None,
    held_reason: str = "",
) -> str:
    """The answer to `status`: the own folder, pending work, and the last sync per peer."""
    now = time.time() if now is None else now
    lines = [f"own folder {own}: {own_files} file(s), last change seq {own_seq}"]
    if problem:
        lines.append(f"  ! {problem}: no deletes are pushed until it is back")
    shown = [f"{count} {what}" for what, count in pending.items() if count]
    lines.append("pending: " + (", ".join(shown) if shown else "nothing"))
    if pending.get("deletes held", 0):
        why = f" ({held_reason})" if held_reason else ""
        lines.append(f"  type 'confirm-deletes' to push the held deletes{why}")
    round_state = "a sync round is running" if running else "no sync round running"
    lines.append(f"transfers in flight: {transfers} ({round_state})")
    if not last_sync:
        lines.append("last sync: none yet")
    for peer in sorted(last_sync):
        lines.append(f"last sync with {peer}: {max(0.0, now - last_sync[peer]):.1f}s ago")
    return "\n".join(lines)
