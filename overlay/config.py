"""Settings of one node, and the command line that fills them.

The option names are an interface: tests, benchmarks and the lab start nodes with them.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from sync.errors import UnsafePath
from sync.paths import check_owner

DEFAULT_PORT = 8091
"""The original's port: TCP for the ring and files, UDP for the DHT."""

DEFAULT_BEACON_PORT = 8090
"""UDP port of the LAN beacon; apart from DEFAULT_PORT, where the DHT listens on UDP."""

LOG_FILE = "node.log"
"""The node's log in its state folder (rotated: `Main.py`'s LOG_BYTES, LOG_BACKUPS)."""


@dataclass(frozen=True)
class Settings:
    """Everything a node needs to start; built from the command line or by tests."""

    port: int = DEFAULT_PORT
    host: str | None = None
    shared: Path = Path("Shared")
    name: str | None = None
    peers: tuple[tuple[str, int], ...] = ()
    discovery: bool = True
    dht: bool = False
    interval: float = 5.0
    verbose: int = 0
    beacon_port: int = DEFAULT_BEACON_PORT
    concurrency: int = 4
    watch: bool = True
    settle: float = 1.0
    allow_mass_delete: bool = False
    network_key: Path | None = None
    join: str | None = None

    @property
    def state_dir(self) -> Path:
        """Node state lives beside the shared folder, never inside it."""
        shared = self.shared.resolve()
        return shared.parent / f".{shared.name}-state"

    @property
    def log_file(self) -> Path:
        """Where `python3 Main.py` writes its log records."""
        return self.state_dir / LOG_FILE


def parse_peer(text: str) -> tuple[str, int]:
    """HOST:PORT (the port defaults to 8091), as given to --peer."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, str(DEFAULT_PORT)
    if not host:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: expected HOST:PORT")
    try:
        number = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: port {port!r} is not a number (allowed: 1 to 65535)"
        ) from None
    if not 0 < number < 65536:
        raise argparse.ArgumentTypeError(f"{text!r}: port out of range (allowed: 1 to 65535)")
    return host, number


def whole(low: int, high: int, allowed: str) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` to `high`; `allowed` says so to the user."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is not allowed: {allowed}")
        return value

    return parse


def seconds(low: float, allowed: str, *, above: bool) -> Callable[[str], float]:
    """An argparse type: a finite number of seconds over `low` (`above`) or from `low`."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < low or (above and value == low):
            raise argparse.ArgumentTypeError(f"{text!r} is not allowed: {allowed}")
        return value

    return parse


def folder_name(text: str) -> str:
    """An argparse type: a name usable as this host's folder in every peer's Shared/."""
    try:
        return check_owner(text)
    except UnsafePath:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not allowed: one folder name, no '/', '\\' or NUL,"
            " not '.' or '..', not starting with '.', at most 255 bytes"
        ) from None


class OneLineParser(argparse.ArgumentParser):
    """argparse with errors on one line (the flag, the value, what is allowed), exit code 2."""

    def error(self, message: str) -> NoReturn:
        """Say what is wrong in one line and exit 2, without the usage block."""
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python3 Main.py`. Long on purpose: one `add_argument` per option,
    in the order `--help` lists them, each with the type that checks its value."""
    parser = OneLineParser(
        prog="python3 Main.py",
        description="Share Shared/<name>/ with every host on the LAN.",
    )
    parser.add_argument("--dht", action="store_true", help="index file holders in a Kademlia DHT")
    parser.add_argument(
        "--port",
        type=whole(0, 65535, "a port from 1 to 65535, or 0 for a free one"),
        default=DEFAULT_PORT,
        help="TCP (ring, files) and UDP (DHT) port; 0 picks a free one",
    )
    parser.add_argument(
        "--host", help="address to bind and advertise (default: the LAN interface's)"
    )
    parser.add_argument(
        "--shared", type=Path, default=Path("Shared"), help="the shared folder (default ./Shared)"
    )
    parser.add_argument(
        "--name",
        type=folder_name,
        help="this host's folder name (default: its host name, kept across runs)",
    )
    parser.add_argument(
        "--peer",
        type=parse_peer,
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="join through a known node (repeatable)",
    )
    parser.add_argument(
        "--no-discovery", action="store_true", help="no ARP scan and no broadcast beacon"
    )
    parser.add_argument(
        "--interval",
        type=seconds(0.0, "a number of seconds over 0", above=True),
        default=5.0,
        metavar="SECONDS",
        help="manifest pull interval (default 5)",
    )
    parser.add_argument(
        "--beacon-port",
        type=whole(1, 65535, "a port from 1 to 65535"),
        default=DEFAULT_BEACON_PORT,
        help="UDP port of the LAN beacon (default 8090)",
    )
    parser.add_argument(
        "--concurrency",
        type=whole(1, 256, "a whole number of downloads from 1 to 256"),
        default=4,
        help="downloads at once (default 4)",
    )
    parser.add_argument(
        "--no-watch",
        action="store_true",
        help="no file-system events: find changes by the periodic rescan only",
    )
    parser.add_argument(
        "--settle",
        type=seconds(0.0, "a number of seconds from 0", above=False),
        default=1.0,
        metavar="SECONDS",
        help="a changed file is sent once left alone this long, or closed (default 1)",
    )
    parser.add_argument(
        "--allow-mass-delete",
        action="store_true",
        help="push deletes of over half the own folder without asking 'confirm-deletes'",
    )
    parser.add_argument(
        "--network-key",
        type=Path,
        metavar="PATH",
        help="join the network whose key is in PATH (created, with a new key, if missing);"
        " every node given the same file is a member. Kept in the state folder afterwards",
    )
    parser.add_argument(
        "--join",
        metavar="CODE",
        help="join a network with a code from 'invite' on one of its hosts (found on the LAN,"
        " or at the --peer HOST:PORT that 'invite' printed) and store its key",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log to stderr (-vv: debug)"
    )
    return parser


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    """Settings from a command line (sys.argv when None)."""
    args = build_parser().parse_args(argv)
    return Settings(
        port=args.port,
        host=args.host,
        shared=args.shared,
        name=args.name,
        peers=tuple(args.peer),
        discovery=not args.no_discovery,
        dht=args.dht,
        interval=args.interval,
        verbose=args.verbose,
        beacon_port=args.beacon_port,
        concurrency=args.concurrency,
        watch=not args.no_watch,
        settle=args.settle,
        allow_mass_delete=args.allow_mass_delete,
        network_key=args.network_key,
        join=args.join,
    )
