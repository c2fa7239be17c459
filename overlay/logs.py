"""Log lines with a bound: at most a few per cause per minute, then one "N more like this".

A peer can make a node log: a garbage datagram, a bad frame, a refused connection each leave a
line. Without a bound a flood of them fills the disk and buries everything else (100,000
garbage datagrams once wrote 26 MB). A cause is a logger plus the message's template (the
`%`-string before its arguments), so "bad frame from %s:%d" from every address is one cause.
Past `burst` lines of a cause within `window` seconds the rest are counted, not written; when
that window has passed, the count goes out as one line of its own, on the next record of any
cause (or at `flush`).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

BURST = 10
"""Lines of one cause written per window before the rest are only counted."""

WINDOW = 60.0
"""Seconds of one counting window."""

MAX_CAUSES = 1024
"""Causes remembered at once (the oldest are forgotten first); a bound on this filter's memory."""


@dataclass
class _Cause:
    start: float
    written: int = 0
    dropped: int = 0


class PerCauseLimit(logging.Filter):
    """A filter on `handler` that lets it write at most `burst` lines per cause per `window`
    seconds; the counts of what it held back go out through the same handler."""

    def __init__(
        self,
        handler: logging.Handler,
        burst: int = BURST,
        window: float = WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.handler = handler
        self.burst = burst
        self.window = window
        self.clock = clock
        self._causes: OrderedDict[tuple[str, str, int], _Cause] = OrderedDict()
        handler.addFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether `record` is written; summaries of closed windows go out before it."""
        if getattr(record, "summary", False):
            return True
        now = self.clock()
        self._close_windows(now)
        key = (record.name, str(record.msg), record.levelno)
        cause = self._causes.get(key)
        if cause is None:
            cause = self._causes[key] = _Cause(now)
            while len(self._causes) > MAX_CAUSES:
                self._causes.popitem(last=False)
        if cause.written < self.burst:
            cause.written += 1
            return True
        cause.dropped += 1
        return False

    def flush(self) -> list[logging.LogRecord]:
        """Close every window now; returns the summary records (also written by the handler)."""
        return self._close_windows(None)

    def _close_windows(self, now: float | None) -> list[logging.LogRecord]:
        closed = [
            key
            for key, cause in self._causes.items()
            if now is None or now - cause.start >= self.window
        ]
        summaries = []
        for key in closed:
            cause = self._causes.pop(key)
            if cause.dropped:
                summaries.append(self._summary(key, cause.dropped))
        for record in summaries:
            self.handler.handle(record)
        return summaries

    def _summary(self, key: tuple[str, str, int], dropped: int) -> logging.LogRecord:
        name, template, level = key
        record = logging.LogRecord(
            name,
            level,
            __file__,
            0,
            "%d more like this in %.0f s: %s",
            (dropped, self.window, template),
            None,
        )
        record.summary = True
        return record
