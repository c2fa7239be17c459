"""How a host becomes a member at start (overlay/admission.py), on loopback: founding alone,
waiting when a network beacons, joining by a code typed while waiting or given with --join."""

from __future__ import annotations

import asyncio
import io
import socket
from collections.abc import AsyncIterator
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from overlay import admission
from overlay.admission import Admitted, admit
from overlay.announcement import Announcement, Header, InviteHint, build_announcement
from overlay.config import Settings
from overlay.discovery import Interface
from overlay.invites import Invites, OpenInvite
from overlay.network_key import NetworkKey
from overlay.pairing import PairingError
from overlay.sealing import DatagramSeal
from ring.membership import Member, View
from tests.credentials import NETWORK, key_file
from tests.procs import free_port

pytestmark = pytest.mark.integration

LOOPBACK = Interface("lo", "127.0.0.1", IPv4Network("127.0.0.0/8"), "127.0.0.1")
VIEW = View("ring", 1, (Member("a" * 64, "alpha", "127.0.0.1", 9001),))


@pytest.fixture(autouse=True)
def short_listening(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admission, "LISTEN_FOR", 0.5)


@pytest.fixture
async def invites() -> AsyncIterator[Invites]:
    invites = Invites("127.0.0.1", lambda: NETWORK.secret, lambda: VIEW, lambda line: None)
    yield invites
    await invites.close()


def settings(tmp_path: Path, **options: object) -> Settings:
    options.setdefault("beacon_port", free_port())
    return Settings(port=0, host="127.0.0.1", shared=tmp_path / "Shared", **options)  # type: ignore[arg-type]


def stored(s: Settings) -> NetworkKey:
    return NetworkKey.from_text((s.state_dir / "network.key").read_text())


async def beacon_until(port: int, done: asyncio.Future[object], *hints: InviteHint) -> None:
    """A member's beacons, as a member sends them, to 127.0.0.1:port until `done`."""
    seal = DatagramSeal(NETWORK.beacon_key, "beacon")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        while not done.done():
            packet = build_announcement(
                Announcement("m" * 64, "ring", "alpha", 9001),
                Header(NETWORK.network_id, hints),
                seal,
            )
            sock.sendto(packet, ("127.0.0.1", port))
            await asyncio.sleep(0.05)


class Typist:
    """Lines typed at the waiting prompt, one each time it shows `>> `."""

    def __init__(self, *lines: str) -> None:
        self.lines = asyncio.Queue[str | None]()
        for line in lines:
            self.lines.put_nowait(line + "\n")


class TestFounding:
    async def test_no_discovery_founds_at_once_and_says_so(self, tmp_path: Path) -> None:
        s = settings(tmp_path, discovery=False)
        got = await admit(s, LOOPBACK, asyncio.Queue(), io.StringIO(), False)
        assert got is not None
        network_id = stored(s).network_id.hex()
        assert got.notes == (
            f"founded network {network_id}; type 'invite' on this host to add another",
        )
        assert got.credentials.network_id == network_id and not got.greeted

    async def test_a_host_alone_on_the_lan_founds_after_listening(self, tmp_path: Path) -> None:
        s = settings(tmp_path, discovery=True)
        started = asyncio.get_running_loop().time()
        got = await admit(s, LOOPBACK, asyncio.Queue(), io.StringIO(), False)
        assert got is not None and got.notes[0].startswith("founded network ")
        assert asyncio.get_running_loop().time() - started >= 0.5

    async def test_a_host_with_a_key_is_a_member_at_once(self, tmp_path: Path) -> None:
        s = settings(tmp_path, discovery=True, network_key=key_file())
        got = await admit(s, LOOPBACK, asyncio.Queue(), io.StringIO(), False)
        assert got is not None and got == Admitted(got.credentials), "no note, no waiting"
        assert got.credentials.network == NETWORK


class TestWaiting:
    async def test_a_network_on_the_lan_is_named_and_the_host_joins_by_a_typed_code(
        self, tmp_path: Path, invites: Invites
    ) -> None:
        s = settings(tmp_path, discovery=True)
        invite: OpenInvite = await invites.open()
        code = invite.invitation.code
        out = io.StringIO()
        typed = Typist("frobnicate", "join 7-guitar", f"join {code}")
        done: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        sender = asyncio.ensure_future(
            beacon_until(s.beacon_port, done, InviteHint(code.number, invite.port))
        )
        try:
            got = await asyncio.wait_for(admit(s, LOOPBACK, typed.lines, out, False), 20)
        finally:
            done.set_result(None)
            await sender
        text = out.getvalue()
        assert text.startswith("Enter 'exit' to terminate the program.\n")
        assert (
            f"network {NETWORK.network_id.hex()} found on the LAN: on one of its hosts type"
            " 'invite', then type 'join <code>' here\n>> "
        ) in text
        assert "not a member of a network yet" in text
        assert "join: '7-guitar' is not an invite code" in text
        assert got is not None and got.greeted
        assert got.notes == (f"joined network {NETWORK.network_id.hex()}",)
        assert got.ring == (("127.0.0.1", 9001),)
        assert stored(s) == NETWORK

    async def test_exit_while_waiting_founds_nothing(self, tmp_path: Path) -> None:
        s = settings(tmp_path, discovery=True)
        done: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        sender = asyncio.ensure_future(beacon_until(s.beacon_port, done))
        try:
            got = await asyncio.wait_for(
                admit(s, LOOPBACK, Typist("exit").lines, io.StringIO(), True), 10
            )
        finally:
            done.set_result(None)
            await sender
        assert got is None
        assert not (s.state_dir / "network.key").exists()


class TestJoinAtStart:
    async def test_join_code_with_the_address_stores_the_key(
        self, tmp_path: Path, invites: Invites
    ) -> None:
        invite = await invites.open()
        where = ("127.0.0.1", invite.port)
        s = settings(tmp_path, discovery=False, join=str(invite.invitation.code), peers=(where,))
        got = await admit(s, None, asyncio.Queue(), io.StringIO(), False)
        assert got is not None and got.ring == (("127.0.0.1", 9001),)
        assert stored(s) == NETWORK

    async def test_a_wrong_code_at_start_fails(self, tmp_path: Path, invites: Invites) -> None:
        invite = await invites.open()
        number = invite.invitation.code.number
        s = settings(
            tmp_path, discovery=False, join=f"{number}-zoo-zoo", peers=(("127.0.0.1", invite.port),)
        )
        with pytest.raises(PairingError, match="wrong code"):
            await admit(s, None, asyncio.Queue(), io.StringIO(), False)
        assert not (s.state_dir / "network.key").exists()
