"""How a host becomes a member at start, before its node runs: a key it holds, a code it is
given, a network it founds, or (a network on the LAN, no credentials) a code typed while it waits.

Theory of operation. A host that holds a network key (its state folder's, or `--network-key`)
is a member: nothing to decide. One started with `--join CODE` takes that invite first and fails
if it cannot (a script wants an exit status, not a prompt). A host with neither listens for
beacons for `LISTEN_FOR` seconds (two beacon intervals) before it founds anything: founding a
second network beside the one on the LAN would split the LAN in two, so when it hears one it
says at its prompt what to type and waits for `join <code>`. With discovery off it founds at
once, as before; `join <code> HOST:PORT` typed at its prompt later moves it (`Node.join`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TextIO

from overlay.beacon import INTERVAL
from overlay.config import Settings
from overlay.credentials import Credentials, adopt_network, holds_network, load_credentials
from overlay.discovery import Interface
from overlay.joining import Address, NetworkWatch, parse_join, take_invite, watching
from overlay.network_key import NetworkKey
from overlay.pairing import InviteCode, PairingError, Welcome
from overlay.prompt import BANNER, PROMPT

LISTEN_FOR = 2 * INTERVAL
"""Seconds a host without credentials listens for a network on the LAN before founding one."""

WAITING_HELP = """commands while this host is not a member of a network:
  join <code> [HOST:PORT]  join with a code from 'invite' on a member (HOST:PORT: where
                           'invite' said, when discovery cannot find it)
  help                     this list
  exit                     stop"""


@dataclass(frozen=True)
class Admitted:
    """What the node starts with: its credentials, ring addresses to join (from a welcome),
    lines for its prompt, and whether the prompt's banner was shown already (it waited)."""

    credentials: Credentials
    ring: tuple[Address, ...] = ()
    notes: tuple[str, ...] = ()
    greeted: bool = False


def founded_note(credentials: Credentials) -> str:
    return f"founded network {credentials.network_id}; type 'invite' on this host to add another"


def joined_note(credentials: Credentials) -> str:
    return f"joined network {credentials.network_id}"


def welcomed(settings: Settings, welcome: Welcome) -> Credentials:
    """Store the network a welcome gave; this host's credentials in it."""
    return adopt_network(settings.state_dir, NetworkKey(welcome.network_key))


async def admit(
    settings: Settings,
    iface: Interface | None,
    lines: asyncio.Queue[str | None],
    out: TextIO,
    interactive: bool,
) -> Admitted | None:
    """The credentials the node starts with; None if the user typed `exit` while waiting.

    Raises:
        CredentialsError: a key file is malformed, or the state folder cannot be written.
        PairingError: `--join CODE` failed.
        OSError: the beacon port cannot be bound.
    """
    state_dir = settings.state_dir
    discovered = iface if settings.discovery else None
    if settings.join is not None:
        code = InviteCode.parse(settings.join)
        async with watching(discovered, settings.beacon_port) as watch:
            welcome = await take_invite(code, settings.peers, watch)
        credentials = welcomed(settings, welcome)
        return Admitted(credentials, welcome.ring, (joined_note(credentials),))
    if holds_network(state_dir, settings.network_key):
        return Admitted(load_credentials(state_dir, settings.network_key))
    async with watching(discovered, settings.beacon_port) as watch:
        if watch is not None:
            await watch.wait(watch.network, LISTEN_FOR)
        network = watch.network() if watch is not None else None
        if watch is None or network is None:
            credentials = load_credentials(state_dir, settings.network_key)
            return Admitted(credentials, notes=(founded_note(credentials),))
        _say(out, BANNER)
        _say(
            out,
            f"network {network.hex()} found on the LAN: on one of its hosts type 'invite',"
            " then type 'join <code>' here",
        )
        welcome_ = await wait_for_code(watch, lines, out, interactive)
    if welcome_ is None:
        return None
    credentials = welcomed(settings, welcome_)
    return Admitted(credentials, welcome_.ring, (joined_note(credentials),), greeted=True)


async def wait_for_code(
    watch: NetworkWatch,
    lines: asyncio.Queue[str | None],
    out: TextIO,
    interactive: bool,
) -> Welcome | None:
    """The prompt of a host that waits for a code: `join`, `help`, `exit`; None on `exit`.

    At the end of piped input it keeps waiting (a signal stops it), as the node's prompt does.
    """
    while True:
        out.write(PROMPT)
        out.flush()
        line = await lines.get()
        if line is None:
            if interactive:
                return None
            await asyncio.Event().wait()
            continue
        word, _, rest = line.strip().partition(" ")
        if word in ("exit", "quit"):
            return None
        if word == "help":
            _say(out, WAITING_HELP)
        elif word == "join":
            try:
                code, given = parse_join(rest)
                return await take_invite(code, given, watch)
            except PairingError as exc:
                _say(out, f"join: {exc}")
        elif word:
            _say(
                out,
                "not a member of a network yet: type 'join <code>' with a code from 'invite'"
                " on a member (or 'help')",
            )


def _say(out: TextIO, text: str) -> None:
    out.write(text + "\n")
    out.flush()
