"""Start a node: `python3 Main.py [--dht] [--port P] [--host ADDR] [--shared DIR] [--name NAME]
[--peer HOST:PORT]... [--no-discovery] [--interval SECONDS] [--network-key PATH] [-v]`.

Argument parsing only; the node itself is overlay.node.Node.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from overlay.config import Settings, parse_args
from overlay.identity import IdentityError
from overlay.keystore import CredentialsError
from overlay.logs import PerCauseLimit
from overlay.node import Node
from overlay.progress import Bars
from overlay.prompt import Console, run_console, stdin_lines

log = logging.getLogger("lanshare")


def setup_logging(verbose: int) -> None:
    """Quiet by default (warnings only); -v for progress, -vv for every frame."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for handler in logging.getLogger().handlers:
        PerCauseLimit(handler)  # a flood of bad packets must not flood the log
    # rpcudp reports every unanswered datagram at ERROR; the index handles those timeouts.
    logging.getLogger("rpcudp").setLevel(logging.DEBUG if verbose > 1 else logging.CRITICAL)
    logging.getLogger("kademlia").setLevel(logging.DEBUG if verbose > 1 else logging.ERROR)


async def run(settings: Settings) -> int:
    """Run a node until `exit`, Ctrl-D at a terminal, Ctrl-C or SIGTERM; then leave the ring."""
    node = Node(settings)
    try:
        await node.start()
    except (OSError, IdentityError, CredentialsError) as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        await node.close()
        return 1
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    console, bars = with_bars(node)
    lines = stdin_lines(loop)
    if bars is not None:
        lines = bars.watch_input(lines)
    prompt = asyncio.ensure_future(run_console(console, lines, sys.stdin.isatty()))
    stop = asyncio.ensure_future(stopping.wait())
    await asyncio.wait({prompt, stop}, return_when=asyncio.FIRST_COMPLETED)
    for task in (prompt, stop):
        task.cancel()
    if bars is not None:
        await bars.stop()
    console.say("leaving the ring...")
    await node.leave()
    console.say("bye")
    return 0


def with_bars(node: Node) -> tuple[Console, Bars | None]:
    """The prompt, and at a terminal the download bars drawn under it (running).

    At a terminal, the prompt's answers and the log lines (if stderr is the same terminal) go
    through the bars' writer, so a redraw never tears them; elsewhere output is left alone.
    """
    if not sys.stdout.isatty() or node.sync is None:
        return Console(node), None
    bars = Bars(node.sync.transfers, sys.stdout)
    if sys.stderr.isatty():
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(bars.writer())
    bars.start()
    return Console(node, out=bars.writer()), bars


def main() -> None:
    settings = parse_args()
    setup_logging(settings.verbose)
    sys.exit(asyncio.run(run(settings)))


if __name__ == "__main__":
    main()
