"""At most a few log lines per cause per minute, and the count of the rest in one line."""

from __future__ import annotations

import logging

from overlay.logs import MAX_CAUSES, PerCauseLimit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def setup(
    burst: int = 3, window: float = 60.0
) -> tuple[logging.Logger, Collect, Clock, PerCauseLimit]:
    clock = Clock()
    handler = Collect()
    limit = PerCauseLimit(handler, burst, window, clock)
    log = logging.getLogger(f"test.logs.{id(handler)}")
    log.propagate = False
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    return log, handler, clock, limit


def test_a_flood_of_one_cause_writes_a_burst_then_one_count() -> None:
    log, out, clock, _limit = setup(burst=3)
    for i in range(100_000):
        log.warning("bad datagram from %s:%d", "10.0.0.9", i)
    assert len(out.lines) == 3
    clock.now = 61.0
    log.warning("something else")
    assert out.lines[3] == "99997 more like this in 60 s: bad datagram from %s:%d"
    assert out.lines[4] == "something else"


def test_causes_are_counted_apart() -> None:
    log, out, _clock, _limit = setup(burst=2)
    for _ in range(5):
        log.warning("cause A %d", 1)
        log.warning("cause B %d", 2)
    assert out.lines == ["cause A 1", "cause B 2", "cause A 1", "cause B 2"]


def test_a_new_window_writes_again_and_flush_reports_the_rest() -> None:
    log, out, clock, limit = setup(burst=1)
    log.error("disk full: %s", "a")
    log.error("disk full: %s", "b")
    clock.now = 60.0
    log.error("disk full: %s", "c")
    assert out.lines == [
        "disk full: a",
        "1 more like this in 60 s: disk full: %s",
        "disk full: c",
    ]
    log.error("disk full: %s", "d")
    assert [r.getMessage() for r in limit.flush()] == ["1 more like this in 60 s: disk full: %s"]
    assert out.lines[-1] == "1 more like this in 60 s: disk full: %s"


def test_memory_is_bounded_by_the_number_of_causes_kept() -> None:
    log, out, _clock, limit = setup(burst=1)
    for i in range(MAX_CAUSES * 3):
        log.info(f"pre-formatted line {i}")  # noqa: G004 - an f-string makes every line a cause
    assert len(limit._causes) <= MAX_CAUSES
    assert len(out.lines) == MAX_CAUSES * 3
