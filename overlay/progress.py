"""Progress bars for running downloads at a terminal, drawn below the prompt's output.

`Bars.update` turns the sync engine's `TransferInfo` list into rich progress rows (file, bar,
bytes, rate, time left); `Bars.run` calls it a few times a second. The bytes, rate and time
left in a row are `transfer_figures` of the same `TransferInfo` that `status` prints, in binary
units (KiB, MiB) as everywhere else: never rich's own estimates, so the two never disagree.
While bars are shown, text for the terminal (answers to commands, log lines) must not be
written straight to the stream, or the next redraw would tear it: `Bars.writer` gives a
file-like object that prints whole lines above the bars and keeps an unfinished line (the `>> `
prompt) as the last row of the display, so the operator always sees where to type. The terminal
echoes what the operator types and moves the cursor down a line on Enter, behind the display's
back: `watch_input` puts the cursor back and prints the command above the bars. Every redraw
happens on the event loop (no refresh thread), so the bars never redraw between an Enter and
that correction. With no download running, the writer passes text through untouched, and there
are no bars at all when the output is not a terminal.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable
from typing import TextIO

from rich.console import Console, RenderableType
from rich.control import Control
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.text import Text

from overlay.reports import human_size
from ring.wire import cancel_and_wait
from sync.tracker import TransferInfo

log = logging.getLogger(__name__)

REFRESH = 0.2
"""Seconds between two looks at the transfers (rich redraws on its own thread in between)."""


def transfer_figures(info: TransferInfo) -> tuple[str, str, str]:
    """(done/size, rate, time left) of one download, as both `status` and the bars show them."""
    left = "?" if info.eta is None else f"{info.eta:.0f} s"
    amount = f"{human_size(info.done)}/{human_size(info.size)}"
    return amount, f"{human_size(int(info.rate))}/s", f"{left} left"


def transfers_text(infos: list[TransferInfo]) -> str:
    """Running downloads as lines for `status`: path, done/size, rate, time left, holders."""
    if not infos:
        return "no downloads running"
    lines = []
    for info in infos:
        share = 100 * info.done / info.size if info.size else 100.0
        amount, rate, left = transfer_figures(info)
        lines.append(
            f"{info.owner}/{info.path}  {amount} ({share:.0f}%)  {rate}  {left}"
            f"  from {', '.join(info.sources) or '?'}"
            + (f"  (resumed at {human_size(info.resumed)})" if info.resumed else "")
        )
    return "\n".join(lines)


class _PromptProgress(Progress):
    """A rich Progress whose display ends with the prompt's unfinished line."""

    pending = ""

    def get_renderables(self) -> Iterable[RenderableType]:
        yield from super().get_renderables()
        if self.pending:
            yield Text(self.pending, end="")


class Bars:
    """Animated bars for the downloads `source` reports; `writer` for text meant for the user."""

    def __init__(self, source: Callable[[], list[TransferInfo]], stream: TextIO) -> None:
        self.source = source
        self.stream = stream
        self.console = Console(file=stream, force_terminal=True, highlight=False)
        self.progress = _PromptProgress(
            TextColumn("{task.description}", style="bold"),
            BarColumn(bar_width=30),
            TextColumn("{task.fields[amount]}"),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[left]}"),
            console=self.console,
            transient=True,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self.shown = False
        self._tail = ""
        self._tasks: list[asyncio.Future[None]] = []
        self._rows: dict[tuple[str, str], TaskID] = {}
        self._lock = threading.RLock()

    def writer(self) -> _Writer:
        """A file-like object for the prompt and the log: safe while bars are drawn."""
        return _Writer(self)

    def watch_input(self, lines: asyncio.Queue[str | None]) -> asyncio.Queue[str | None]:
        """The same lines, each put back in place on the screen before the prompt sees it."""
        out: asyncio.Queue[str | None] = asyncio.Queue()

        async def forward() -> None:
            while True:
                line = await lines.get()
                if line is not None:
                    self.entered(line)
                await out.put(line)

        self._tasks.append(asyncio.ensure_future(forward()))
        return out

    def entered(self, line: str) -> None:
        """The operator typed `line` and Enter: undo the echo's line feed, show the command."""
        with self._lock:
            if not self.shown:
                self._tail = ""
                return
            self.console.control(Control.move(0, -1))
            self.write(line if line.endswith("\n") else line + "\n")

    def start(self) -> None:
        """Keep the bars in step with the transfers from now on."""
        self._tasks.append(asyncio.ensure_future(self._run()))

    async def stop(self) -> None:
        """Stop following the transfers and take the bars off the screen."""
        await cancel_and_wait(self._tasks)
        self._tasks = []
        self.hide()

    async def _run(self) -> None:
        while True:
            try:
                self.update()
            except Exception:  # a display glitch must never stop the node
                log.exception("progress display failed")
            await asyncio.sleep(REFRESH)

    def update(self) -> None:
        """Show, move, add and drop rows to match the running transfers."""
        infos = self.source()
        with self._lock:
            if infos and not self.shown:
                if self._tail:  # the prompt is on screen: move it under the bars
                    self.stream.write("\r\x1b[2K")
                    self.progress.pending, self._tail = self._tail, ""
                self.progress.start()
                self.shown = True
            live = set()
            for info in infos:
                key = (info.owner, info.path)
                live.add(key)
                row = self._rows.get(key)
                amount, rate, left = transfer_figures(info)
                if row is None:
                    self._rows[key] = self.progress.add_task(
                        f"{info.owner}/{info.path}",
                        total=info.size,
                        completed=info.done,
                        amount=amount,
                        rate=rate,
                        left=left,
                    )
                else:
                    self.progress.update(
                        row, completed=info.done, amount=amount, rate=rate, left=left
                    )
            for key in set(self._rows) - live:
                self.progress.remove_task(self._rows.pop(key))
            if not infos:
                self.hide()
            else:
                self.progress.refresh()

    def hide(self) -> None:
        """Take the bars off the screen, then give back the prompt's unfinished line."""
        with self._lock:
            if not self.shown:
                return
            self.progress.stop()
            self.shown = False
            pending, self.progress.pending = self.progress.pending, ""
            self._tail = pending
            self.stream.write(pending)
            self.stream.flush()

    def write(self, text: str) -> None:
        """Text for the user: whole lines go above the bars, the rest waits on the last row."""
        with self._lock:
            if not self.shown:
                self.stream.write(text)
                self._tail = (self._tail + text).rsplit("\n", 1)[-1]
                return
            lines = (self.progress.pending + text).split("\n")
            self.progress.pending = lines.pop()
            for line in lines:
                self.console.print(Text(line), soft_wrap=True)
            self.progress.refresh()

    def flush(self) -> None:
        """Flush the terminal stream (when no bars hold the text back)."""
        with self._lock:
            if not self.shown:
                self.stream.flush()


class _Writer:
    """The TextIO face of `Bars.write` (the prompt and a logging handler both write to it)."""

    def __init__(self, bars: Bars) -> None:
        self._bars = bars

    def write(self, text: str) -> int:
        self._bars.write(text)
        return len(text)

    def flush(self) -> None:
        self._bars.flush()

    def isatty(self) -> bool:
        return True
