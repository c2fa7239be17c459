"""The prompt's side of pushed changes: `status`, `confirm-deletes`, and one line per change."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable

from overlay.config import parse_args
from overlay.prompt import PROMPT, Console, run_console, status_text


class FakeSyncNode:
    def __init__(self) -> None:
        self.listeners: list[Callable[[str], None]] = []
        self.confirmed = 0

    def peers_report(self) -> str:
        return "ring: 1 node(s)"

    def files_report(self) -> str:
        return "no files yet"

    async def who_has(self, query: str) -> str:
        return ""

    def status_report(self) -> str:
        return "pending: nothing"

    async def confirm_deletes(self) -> str:
        self.confirmed += 1
        return "pushed 3 delete(s)"

    def add_change_listener(self, cb: Callable[[str], None]) -> None:
        self.listeners.append(cb)


async def test_status_and_confirm_deletes_reach_the_node() -> None:
    node, out = FakeSyncNode(), io.StringIO()
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    for line in ("status\n", "confirm-deletes\n", "help\n", "exit\n"):
        queue.put_nowait(line)
    await asyncio.wait_for(run_console(Console(node, out), queue, interactive=False), 5)
    text = out.getvalue()
    assert "pending: nothing" in text and "pushed 3 delete(s)" in text
    assert node.confirmed == 1 and "confirm-deletes" in text.split("pushed 3")[1]


async def test_changes_show_as_one_line_each_without_an_extra_prompt_in_a_pipe() -> None:
    node, out = FakeSyncNode(), io.StringIO()
    console = Console(node, out)
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    task = asyncio.ensure_future(run_console(console, queue, interactive=False))
    await asyncio.sleep(0)
    assert len(node.listeners) == 1
    node.listeners[0]("~ alice/report.pdf updated")
    node.listeners[0]("- alice/old.txt deleted")
    queue.put_nowait("exit\n")
    await asyncio.wait_for(task, 5)
    text = out.getvalue()
    assert "~ alice/report.pdf updated\n- alice/old.txt deleted\n" in text
    assert text.count(PROMPT) == 1  # a script reading up to each prompt stays in step


def test_at_a_terminal_a_change_redraws_the_prompt() -> None:
    node, out = FakeSyncNode(), io.StringIO()
    console = Console(node, out)
    console.interactive = True
    node.listeners[0]("+ bob/new.txt added")
    assert out.getvalue() == "\r+ bob/new.txt added\n" + PROMPT


def test_status_text() -> None:
    text = status_text(
        "alice",
        12,
        40,
        "Shared/alice is missing",
        {"deletes held": 8, "file(s) to fetch": 2, "file(s) to delete": 0},
        True,
        1,
        {"bob": 95.0, "carol": 40.0},
        now=100.0,
    )
    assert text.splitlines()[0] == "own folder alice: 12 file(s), last change seq 40"
    assert "! Shared/alice is missing: no deletes are pushed" in text
    assert "pending: 8 deletes held, 2 file(s) to fetch" in text
    assert "confirm-deletes" in text and "transfers in flight: 1" in text
    assert "last sync with bob: 5.0s ago" in text and "last sync with carol: 60.0s ago" in text
    assert "last sync: none yet" in status_text("a", 0, 0, None, {}, False, 0, {})


def test_command_line_options_for_pushes() -> None:
    plain = parse_args([])
    assert plain.watch and plain.settle == 1.0 and not plain.allow_mass_delete
    tuned = parse_args(["--no-watch", "--settle", "0.2", "--allow-mass-delete"])
    assert not tuned.watch and tuned.settle == 0.2 and tuned.allow_mass_delete
