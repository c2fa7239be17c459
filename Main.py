"""Start a node: `python3 Main.py [--dht] [--port P] [--host ADDR] [--shared DIR] [--name NAME]
[--peer HOST:PORT]... [--no-discovery] [--interval SECONDS] [--network-key PATH] [--join CODE]
[-v]`.

Argument parsing only; the node itself is overlay.node.Node.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import sys
from collections.abc import Awaitable
from dataclasses import replace
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import TypeVar

from overlay import lineedit
from overlay.admission import admit
from overlay.config import Settings, parse_args
from overlay.discovery import lan_interface
from overlay.events import NO_LAN, banner_lines
from overlay.identity import IdentityError
from overlay.keystore import CredentialsError
from overlay.logs import PerCauseLimit
from overlay.node import Node
from overlay.pairing import PairingError
from overlay.progress import Bars
from overlay.prompt import Console, run_console, stdin_lines
from ring.wire import cancel_and_wait

log = logging.getLogger("lanshare")
T = TypeVar("T")


LOG_BYTES = 1024 * 1024
"""Size of the log file before it is rotated."""

LOG_BACKUPS = 3
"""Rotated log files kept (node.log.1 ...): the log never takes more than 4 MiB."""

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(verbose: int, log_file: Path | None) -> None:
    """Log records go to `log_file` (rotated); the prompt shows only answers and event lines.

    To standard error only with -v (-vv: debug), or warnings when standard error is not a
    terminal (a service's journal, a script's capture). Every handler gets a PerCauseLimit:
    a flood of bad packets must not flood the log.
    """
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
    handlers: list[logging.Handler] = []
    if log_file is not None:
        try:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            handlers.append(
                RotatingFileHandler(log_file, "a", LOG_BYTES, LOG_BACKUPS, encoding="utf-8")
            )
        except OSError as exc:
            print(f"cannot write the log {log_file}: {exc}", file=sys.stderr)
    if verbose or not sys.stderr.isatty():
        stderr = logging.StreamHandler(sys.stderr)
        stderr.setLevel(logging.NOTSET if verbose else logging.WARNING)
        handlers.append(stderr)
    for handler in handlers:
        handler.setFormatter(logging.Formatter(FORMAT))
        PerCauseLimit(handler)
        root.addHandler(handler)
    # rpcudp reports every unanswered datagram at ERROR; the index handles those timeouts.
    logging.getLogger("rpcudp").setLevel(logging.DEBUG if verbose > 1 else logging.CRITICAL)
    logging.getLogger("kademlia").setLevel(logging.DEBUG if verbose > 1 else logging.ERROR)


async def run(settings: Settings) -> int:
    """Become a member (`overlay/admission.py`: a key held, a code, founding, or waiting for a
    code at the prompt), run the node until `exit`, Ctrl-D at a terminal, Ctrl-C or SIGTERM;
    then leave the ring."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    lines = stdin_lines(loop)
    interactive = sys.stdin.isatty()
    node = Node(settings)
    try:
        lan = lan_interface(settings.host)
        admitted = await until(stopping, admit(settings, lan, lines, sys.stdout, interactive))
        if admitted is None:
            return 0
        node.settings = replace(settings, peers=admitted.ring or settings.peers)
        await node.start(admitted.credentials)
    except (OSError, IdentityError, CredentialsError, PairingError) as exc:
        print(f"cannot start: {start_error(exc, settings)}", file=sys.stderr)
        await node.close()
        return 1
    console, bars = with_bars(node)
    if bars is not None:
        lines = bars.watch_input(lines)
    save_history = (
        lineedit.enable(
            settings.state_dir,
            console.command_names,
            lineedit.on_loop(loop, node.commands.names),
        )
        if interactive
        else None
    )
    notes = [*start_lines(node, settings, lan is not None), *admitted.notes]
    prompt = asyncio.ensure_future(
        run_console(console, lines, interactive, banner=not admitted.greeted, notes=notes)
    )
    stop = asyncio.ensure_future(stopping.wait())
    await asyncio.wait({prompt, stop}, return_when=asyncio.FIRST_COMPLETED)
    for task in (prompt, stop):
        task.cancel()
    if bars is not None:
        await bars.stop()
    if save_history is not None:
        save_history()
    console.say("leaving the ring...")
    await node.leave()
    console.say("bye")
    return 0


def start_error(exc: Exception, settings: Settings) -> str:
    """Why the node could not start, in one line; a taken port is named, with what to do."""
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return (
            f"port {settings.port} is in use (another node or program on this machine);"
            " give another with --port P, or --port 0 for a free one"
        )
    return str(exc)


async def until(stopping: asyncio.Event, work: Awaitable[T]) -> T | None:
    """`work`'s result, or None if a signal came first (work is cancelled then)."""
    task = asyncio.ensure_future(work)
    stop = asyncio.ensure_future(stopping.wait())
    await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    stop.cancel()
    if not task.done():
        await cancel_and_wait([task])
        return None
    return task.result()


def start_lines(node: Node, settings: Settings, lan: bool) -> list[str]:
    """The banner (name, folder, network, ring size, help), and a line when there is no LAN."""
    assert node.identity is not None and node.credentials is not None and node.sync is not None
    lines = banner_lines(
        node.identity.name,
        node.sync.root / node.identity.name,
        node.credentials.network_id,
        len(node.view.members),
        settings.dht,
    )
    if not lan and settings.host is None and settings.discovery:
        log.warning("no LAN interface found; discovery is off")
        lines.append(NO_LAN)
    return lines


def with_bars(node: Node) -> tuple[Console, Bars | None]:
    """The prompt, and at a terminal the download bars drawn under it (running).

    At a terminal, the prompt's answers and the log lines (if stderr is the same terminal) go
    through the bars' writer, so a redraw never tears them; elsewhere output is left alone.
    """
    if not sys.stdout.isatty() or node.sync is None:
        return Console(node.commands), None
    bars = Bars(lambda: node.sync.transfers() if node.sync else [], sys.stdout)
    if sys.stderr.isatty():
        for handler in logging.getLogger().handlers:
            if type(handler) is logging.StreamHandler:  # not the log file's handler
                handler.setStream(bars.writer())
    bars.start()
    return Console(node.commands, out=bars.writer()), bars


def main() -> None:
    settings = parse_args()
    setup_logging(settings.verbose, settings.log_file)
    sys.exit(asyncio.run(run(settings)))


if __name__ == "__main__":
    main()
