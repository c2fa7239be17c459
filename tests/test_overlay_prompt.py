"""The prompt's command handling, driven without a terminal."""

from __future__ import annotations

import asyncio
import io

from overlay.prompt import BANNER, PROMPT, Console, run_console


class FakeNode:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def peers_report(self) -> str:
        self.calls.append(("peers", ""))
        return "ring: 1 node(s)"

    def files_report(self) -> str:
        self.calls.append(("files", ""))
        return "no files yet"

    async def who_has(self, query: str) -> str:
        self.calls.append(("who-has", query))
        if query == "boom":
            raise RuntimeError("lookup bug")
        return f"holders of {query}"


async def drive(lines: list[str | None], interactive: bool = True) -> tuple[FakeNode, str]:
    node, out = FakeNode(), io.StringIO()
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    for line in lines:
        queue.put_nowait(line)
    await asyncio.wait_for(run_console(Console(node, out), queue, interactive), 5)
    return node, out.getvalue()


async def test_banner_prompt_and_commands_in_order() -> None:
    node, text = await drive(["peers\n", "files\n", "who-has my file.txt\n", "exit\n"])
    assert text.startswith(BANNER + "\n" + PROMPT)
    assert node.calls == [("peers", ""), ("files", ""), ("who-has", "my file.txt")]
    assert "holders of my file.txt" in text


async def test_unknown_and_empty_commands_keep_the_prompt() -> None:
    node, text = await drive(["\n", "frobnicate\n", "help\n", "exit\n"])
    assert "unknown command 'frobnicate'" in text and "who-has <file>" in text
    assert text.count(PROMPT) == 4


async def test_a_failing_command_does_not_end_the_prompt() -> None:
    node, text = await drive(["who-has boom\n", "peers\n", "exit\n"])
    assert "who-has: failed" in text and node.calls[-1] == ("peers", "")


async def test_who_has_without_argument_explains_usage() -> None:
    node, text = await drive(["who-has\n", "exit\n"])
    assert "usage: who-has" in text and node.calls == []


async def test_end_of_input_at_a_terminal_leaves() -> None:
    node, _ = await drive(["peers\n", None], interactive=True)
    assert node.calls == [("peers", "")]


async def test_end_of_input_from_a_pipe_keeps_running() -> None:
    node, out = FakeNode(), io.StringIO()
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    queue.put_nowait("peers\n")
    queue.put_nowait(None)
    task = asyncio.ensure_future(run_console(Console(node, out), queue, interactive=False))
    while node.calls != [("peers", "")]:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    assert not task.done()
    task.cancel()


class ForgettingNode(FakeNode):
    async def forget(self, name: str) -> str:
        self.calls.append(("forget", name))
        return f"forgot {name}"


async def test_forget_names_a_member_or_explains_usage() -> None:
    node, out = ForgettingNode(), io.StringIO()
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    for line in ("forget\n", "forget mallory\n", "help\n", "exit\n"):
        queue.put_nowait(line)
    await asyncio.wait_for(run_console(Console(node, out), queue, True), 5)
    text = out.getvalue()
    assert "usage: forget <name>" in text and "forgot mallory" in text
    assert node.calls == [("forget", "mallory")] and "forget <name>" in text


async def test_help_about_one_command() -> None:
    _node, text = await drive(["help who-has\n", "help frob\n", "exit\n"])
    assert "at least 4 hex digits" in text and "no command 'frob'" in text


def test_every_listed_command_has_details() -> None:
    from overlay.prompt import DETAILS, HELP

    listed = {line.split()[0] for line in HELP.splitlines()[1:]}
    assert listed == set(DETAILS)


class BrowsingNode(FakeNode):
    def ls(self, where: str) -> str:
        self.calls.append(("ls", where))
        return f"listing {where}"


async def test_ls_reaches_a_node_that_browses() -> None:
    node, out = BrowsingNode(), io.StringIO()
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    for line in ["ls\n", "ls alpha/docs\n", "exit\n"]:
        queue.put_nowait(line)
    await asyncio.wait_for(run_console(Console(node, out), queue, False), 5)
    assert node.calls == [("ls", ""), ("ls", "alpha/docs")]


async def test_a_notice_during_a_command_comes_after_its_answer() -> None:
    out = io.StringIO()
    console: Console

    class Noisy(FakeNode):
        async def who_has(self, query: str) -> str:
            console.notice("- bravo left the ring (ring of 2)")
            return "holders"

    console = Console(Noisy(), out)
    await console.execute("who-has x")
    console.notice("~ alpha/x updated")
    assert out.getvalue() == "holders\n- bravo left the ring (ring of 2)\n~ alpha/x updated\n"
