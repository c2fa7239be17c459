"""The operator's prompt: the original's "Enter 'exit' ..." and `>>`, reading commands from
standard input whether it is a terminal or a pipe, so a script can drive a node.

Command parsing is kept apart from reading stdin, so it is tested without a terminal.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from typing import Awaitable, Callable, Protocol, TextIO

log = logging.getLogger(__name__)

BANNER = "Enter 'exit' to terminate the program."
PROMPT = ">> "

HELP = """commands:
  peers            this node's id and name, previous, next, and the ring as known
  files            what this node holds, per owner (files and bytes)
  who-has <file>   holders of a file: <owner>/<path>, a bare file name, or a hash prefix
  help             this list
  exit             leave the ring gracefully and stop"""


class Commands(Protocol):
    """What the prompt asks of the node."""

    def peers_report(self) -> str: ...

    def files_report(self) -> str: ...

    async def who_has(self, query: str) -> str: ...


class Console:
    """Turns command lines into node calls and text; `execute` returns False on `exit`."""

    def __init__(self, node: Commands, out: TextIO = sys.stdout) -> None:
        self.node = node
        self.out = out
        self._commands: dict[str, Callable[[str], Awaitable[str]]] = {
            "help": self._help,
            "peers": self._peers,
            "files": self._files,
            "who-has": self._who_has,
        }

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
        try:
            self.say(await command(rest.strip()))
        except Exception:  # the prompt must survive whatever a command hits
            log.exception("command %r failed", line.strip())
            self.say(f"{word}: failed (see the log with -v)")
        return True

    def say(self, text: str) -> None:
        """Print an answer at once (a script reading a pipe must see it before the next prompt)."""
        self.out.write(text.rstrip("\n") + "\n")
        self.out.flush()

    def show_prompt(self) -> None:
        self.out.write(PROMPT)
        self.out.flush()

    async def _help(self, _: str) -> str:
        return HELP

    async def _peers(self, _: str) -> str:
        return self.node.peers_report()

    async def _files(self, _: str) -> str:
        return self.node.files_report()

    async def _who_has(self, query: str) -> str:
        if not query:
            return "usage: who-has <owner>/<path> | <file name> | <hash prefix>"
        return await self.node.who_has(query)


def stdin_lines(loop: asyncio.AbstractEventLoop) -> asyncio.Queue[str | None]:
    """Lines of standard input as they come, then None at end of input.

    A daemon thread does the blocking reads: it works for terminals, pipes and files alike,
    and never holds the process open at exit (an executor thread would be joined).
    """
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def pump() -> None:
        try:
            for line in sys.stdin:
                loop.call_soon_threadsafe(queue.put_nowait, line)
        except (OSError, ValueError, RuntimeError):
            pass
        try:
            loop.call_soon_threadsafe(queue.put_nowait, None)
        except RuntimeError:  # the loop already closed
            pass

    threading.Thread(target=pump, name="stdin", daemon=True).start()
    return queue


async def run_console(console: Console, lines: asyncio.Queue[str | None], interactive: bool) -> None:
    """Serve commands until `exit`, or until end of input at a terminal (Ctrl-D).

    At end of input from a pipe the node keeps running without a prompt until a signal, so a
    script can feed a few commands and leave the node up.
    """
    console.say(BANNER)
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
