"""The bars' bookkeeping without a terminal: rows follow the transfers, text meant for the user
goes above the bars (an unfinished prompt line stays below them), and `status` text."""

from __future__ import annotations

import io

from overlay.progress import Bars, transfers_text
from sync.tracker import TransferInfo


def info(path: str, done: int, size: int = 100_000_000) -> TransferInfo:
    return TransferInfo("owner", path, size, done, 5e6, (size - done) / 5e6, ("owner", "b"), 0)


class TestBars:
    def test_no_transfers_no_bars_and_text_passes_through(self) -> None:
        stream = io.StringIO()
        bars = Bars(list, stream)
        bars.update()
        bars.writer().write("hello\n>> ")
        assert stream.getvalue() == "hello\n>> " and not bars.shown

    def test_rows_follow_transfers_and_the_prompt_moves_under_them(self) -> None:
        stream = io.StringIO()
        running = [info("a.bin", 10_000_000), info("b.bin", 0)]
        bars = Bars(lambda: running, stream)
        out = bars.writer()
        out.write(">> ")
        bars.update()
        assert bars.shown and len(bars.progress.tasks) == 2
        assert bars.progress.pending == ">> "  # the prompt now sits under the bars
        out.write("answer line\n>> ")
        assert "answer line" in stream.getvalue() and bars.progress.pending == ">> "
        running[:] = [info("b.bin", 50_000_000)]
        bars.update()
        assert [t.completed for t in bars.progress.tasks] == [50_000_000]
        running.clear()
        bars.update()
        assert not bars.shown and stream.getvalue().endswith(">> ")

    def test_a_typed_command_is_shown_above_the_bars(self) -> None:
        stream = io.StringIO()
        bars = Bars(lambda: [info("a.bin", 1)], stream)
        bars.writer().write(">> ")
        bars.update()
        bars.entered("peers\n")
        assert ">> peers" in stream.getvalue() and bars.progress.pending == ""


def test_status_text_lists_each_download() -> None:
    assert transfers_text([]) == "no downloads running"
    text = transfers_text([info("a.bin", 25_000_000)])
    assert "owner/a.bin  23.8 MiB/95.4 MiB (25%)  4.8 MiB/s  15 s left  from owner, b" in text


def test_the_bars_show_the_figures_status_shows() -> None:
    """Issue 15, item 10: one source of truth, binary units in both."""
    from overlay.progress import transfer_figures

    running = [info("a.bin", 25_000_000)]
    bars = Bars(lambda: running, io.StringIO())
    bars.update()
    fields = bars.progress.tasks[0].fields
    assert (fields["amount"], fields["rate"], fields["left"]) == transfer_figures(running[0])
    amount, rate, left = transfer_figures(running[0])
    assert f"{amount} (25%)  {rate}  {left}" in transfers_text(running)
    assert (amount, rate) == ("23.8 MiB/95.4 MiB", "4.8 MiB/s")
