"""Line editing at a terminal: history (kept in the state folder) and Tab completion of
commands and file names, through the standard library's readline.

The prompt reads standard input on a thread (`overlay/prompt.py`, `stdin_lines`); at a
terminal that thread calls `input()`, which uses readline if it was loaded before the first
call: so this module loads it when imported (Main.py imports it before reading any input).
What to complete is decided by `complete`, a plain function of the line so far.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

try:
    import readline
except ImportError:  # some builds lack it: no history and no completion then
    readline = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

HISTORY_FILE = "history"
"""Command history in the state folder."""

HISTORY_LINES = 1000
"""Commands kept in the history file."""

COMPLETE_WAIT = 1.0
"""Seconds Tab waits for the file names from the event loop."""

FILE_COMMANDS = frozenset({"who-has", "ls"})
"""Commands whose argument is a file or folder name."""


def complete(
    before: str, text: str, commands: Iterable[str], names: Callable[[], Iterable[str]]
) -> list[str]:
    """Candidates for the word `text` being typed, `before` being the line up to it: a command
    name for the first word, a file or folder name (owner/path) after who-has or ls (`names`
    is asked only then)."""
    words = before.split()
    if not words:
        return sorted(c for c in commands if c.startswith(text))
    if words[0] not in FILE_COMMANDS or len(words) > 1:
        return []
    found: set[str] = set()
    for name in names():
        if not name.startswith(text):
            continue
        slash = name.find("/", len(text))
        found.add(name if slash < 0 or words[0] == "who-has" else name[: slash + 1])
    return sorted(found)


def on_loop(
    loop: asyncio.AbstractEventLoop, names: Callable[[], list[str]]
) -> Callable[[], list[str]]:
    """`names` run on the event loop (the node's database belongs to its thread), for the
    completer's thread; nothing if the loop does not answer within COMPLETE_WAIT."""

    async def ask() -> list[str]:
        return names()

    def call() -> list[str]:
        future = asyncio.run_coroutine_threadsafe(ask(), loop)
        try:
            return future.result(COMPLETE_WAIT)
        except Exception:  # a completion must never break the prompt
            future.cancel()
            return []

    return call


def enable(
    state_dir: Path, commands: Callable[[], Iterable[str]], names: Callable[[], Iterable[str]]
) -> Callable[[], None]:
    """Load readline with history from `state_dir` and Tab completion; returns what saves the
    history (call it at exit). Without readline (some builds lack it) nothing changes."""
    if readline is None:
        return lambda: None
    path = state_dir / HISTORY_FILE
    try:
        readline.read_history_file(path)
    except OSError:
        pass
    readline.set_history_length(HISTORY_LINES)
    readline.set_completer_delims(" \t")
    readline.parse_and_bind("tab: complete")
    matches: list[str] = []

    def completer(text: str, state: int) -> str | None:
        if state == 0:
            before = readline.get_line_buffer()[: readline.get_begidx()]
            matches[:] = complete(before, text, commands(), names)
        return matches[state] if state < len(matches) else None

    readline.set_completer(completer)

    def save() -> None:
        try:
            readline.write_history_file(path)
        except OSError as exc:
            log.info("cannot save the command history %s: %s", path, exc)

    return save
