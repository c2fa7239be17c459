"""File-system events for the own folder (watchdog), turned into "scan soon" on the event loop.

The watcher only says *that* something changed; the scan decides *what* (events can be lost,
merged or reordered, and the periodic rescan is the safety net). It also remembers when a file
arrived complete: closed after writing (inotify's IN_CLOSE_WRITE), or renamed or moved into
place (IN_MOVED_TO, from inside the folder or from anywhere else; a folder moved in counts for
everything in it), or reported as created with a status change after its last write (what a
folder made a moment before and filled by moves holds when its watch is armed), so the scan
sends such a file at once and holds back only one still open for writing. On Linux the
observer reports a move from outside as a move (watchdog's "full events"), not as a creation
that may still be written to. If the folder is replaced or vanishes (an unmount, a rename),
`check` re-arms the watch on whatever is at the path now.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

log = logging.getLogger(__name__)

IGNORED = frozenset({"opened", "closed_no_write"})
"""Event kinds that change nothing (our own hashing opens files for reading)."""


class FolderWatcher(FileSystemEventHandler):
    """Calls `on_change()` on the loop after any change under `folder` (recursively)."""

    def __init__(
        self,
        folder: Path,
        on_change: Callable[[], None],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.folder = folder
        self.on_change = on_change
        self.loop = loop
        self.closed: dict[str, int] = {}
        """rel -> when it was last seen arrive complete (wall-clock ns); a folder's entry ends
        in "/" and holds for everything below it."""
        self._observer: BaseObserver | None = None
        self._watch: ObservedWatch | None = None
        self._identity: tuple[int, int] | None = None

    def start(self) -> None:
        """Start the observer thread and watch the folder if it is there."""
        self._observer = _observer()
        self._observer.daemon = True
        self._observer.start()
        self.check()

    def stop(self) -> None:
        """Stop the observer thread."""
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(5)
            self._observer = None

    def check(self) -> bool:
        """Re-arm the watch if the folder appeared, vanished or was replaced; True if watched."""
        if self._observer is None:
            return False
        try:
            st = os.stat(self.folder)
            identity: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except OSError:
            identity = None
        if identity == self._identity and (identity is None or self._watch is not None):
            return self._watch is not None
        if self._watch is not None:
            try:
                self._observer.unschedule(self._watch)
            except (KeyError, OSError):
                pass
            self._watch = None
        self._identity = identity
        if identity is not None:
            try:
                self._watch = self._observer.schedule(self, str(self.folder), recursive=True)
                log.info("watching %s", self.folder)
            except OSError as exc:
                log.warning(
                    "cannot watch %s (the periodic rescan still runs): %s",
                    self.folder,
                    exc,
                )
        return self._watch is not None

    def forget_closes(self, before_ns: int) -> None:
        """Drop close notes older than `before_ns`: a file closed that long ago has settled."""
        for rel, when in list(self.closed.items()):
            if when < before_ns:
                self.closed.pop(rel, None)

    def on_any_event(self, event: FileSystemEvent) -> None:
        """Runs on the observer thread: note closes, then wake the loop."""
        if event.event_type in IGNORED:
            return
        if event.event_type in ("closed", "moved"):
            # a file renamed into place (the "save to temp, then rename" habit) is done too
            rel = self._rel(event.dest_path if event.event_type == "moved" else event.src_path)
            if rel is not None:
                self.closed[rel + "/" if event.is_directory else rel] = time.time_ns()
        elif event.event_type == "created" and not event.is_directory:
            self._note_if_written_before(event.src_path)
        try:
            self.loop.call_soon_threadsafe(self.on_change)
        except RuntimeError:  # the loop is closing
            pass

    def _note_if_written_before(self, path: str | bytes) -> None:
        """Note as arrived complete a file whose last status change came after its last write
        (ctime later than mtime): it was renamed, linked or had its times set since it was
        written, as a file moved in or copied with its times is.

        This is how a file moved into a folder made a moment before shows up: the moves beat
        the new folder's watch, so they make no event, and watchdog reports what it finds
        there when the watch is armed as created. A file still being written has its ctime
        and mtime moved together by every write, so it still settles; one written again after
        this note is newer than it, and settles too.
        """
        rel = self._rel(path)
        if rel is None:
            return
        try:
            st = os.lstat(path)
        except OSError:
            return  # gone already: the scan will say so
        if stat.S_ISREG(st.st_mode) and st.st_ctime_ns > st.st_mtime_ns:
            # 1 ns before the status change: a write in the same clock tick (timestamps may be
            # coarse) gets an mtime equal to this ctime, and must read as later than the note
            self.closed[rel] = st.st_ctime_ns - 1

    def _rel(self, path: str | bytes) -> str | None:
        text = os.fsdecode(path)
        if not text:
            return None  # a move out of the folder: nothing arrived
        try:
            rel = Path(text).relative_to(self.folder).as_posix()
        except ValueError:
            return None
        return None if rel == "." else rel


def _observer() -> BaseObserver:
    """An observer that reports a move from outside the folder as a move (inotify's full
    events), so what it brings needs no settle wait; elsewhere such a move reads as a creation,
    and what it brings settles."""
    try:
        from watchdog.observers.inotify import InotifyObserver
    except ImportError:  # not Linux
        return Observer()
    return InotifyObserver(generate_full_events=True)
