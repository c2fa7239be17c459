"""The pairing exchange on real sockets (127.0.0.1): a sniffer learns nothing, codes expire, and a
stranger at an invite's listener is bounded."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import struct
from collections.abc import AsyncIterator

import msgpack
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from spake2 import SPAKE2_A

from overlay.invites import MAX_ATTEMPTS, Invites, OpenInvite
from overlay.joining import join
from overlay.network_key import NetworkKey
from overlay.pairing import (
    ID_INVITER,
    ID_JOINER,
    WELCOME_LABEL,
    WELCOME_NONCE,
    InviteCode,
    PairingError,
    WrongCode,
    derive,
)
from ring.membership import Member, View

pytestmark = pytest.mark.integration

NETWORK = NetworkKey.generate()
VIEW = View("ring", 1, (Member("a" * 64, "alpha", "127.0.0.1", 9001),))


@pytest.fixture
async def invites() -> AsyncIterator[tuple[Invites, list[str]]]:
    told: list[str] = []
    invites = Invites("127.0.0.1", lambda: NETWORK.secret, lambda: VIEW, told.append)
    yield invites, told
    await invites.close()


class Relay:
    """A TCP relay on 127.0.0.1 that records every byte each way (the sniffer's view)."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.recorded: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            while data := await src.read(65536):
                self.recorded.append(data)
                dst.write(data)
                await dst.drain()
            dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


def frames(stream: bytes) -> list[bytes]:
    """The payloads of length-prefixed frames in `stream`."""
    out, at = [], 0
    while at + 4 <= len(stream):
        (length,) = struct.unpack_from(">I", stream, at)
        out.append(stream[at + 4 : at + 4 + length])
        at += 4 + length
    return out


class TestSniffer:
    async def test_the_recorded_exchange_holds_no_key_and_nothing_that_opens_without_the_code(
        self, invites: tuple[Invites, list[str]]
    ) -> None:
        """How the test shows it: the sniffer records every byte of a successful exchange. (1)
        K appears nowhere in it, raw or in hex; (2) no 32-byte window of the recording, used
        as a key (or through the welcome's key derivation), opens the sealed welcome; (3) even
        a sniffer that knows the code, and runs SPAKE2 on the recorded inviter message, derives
        another key: without the joiner's secret the code is not enough, and without the code
        nothing is."""
        inv, _ = invites
        invite = await inv.open()
        relay = Relay(invite.port)
        port = await relay.start()
        try:
            welcome = await join(invite.invitation.code, [("127.0.0.1", port)])
        finally:
            relay.close()
        assert welcome.network_key == NETWORK.secret
        recording = b"".join(relay.recorded)
        assert NETWORK.secret not in recording
        assert NETWORK.secret.hex().encode() not in recording
        payloads = [msgpack.unpackb(p) for p in frames(recording)]
        box = next(p["box"] for p in payloads if p.get("t") == "PAIR_WELCOME")
        inviter_msg = next(p["pake"] for p in payloads if p.get("t") == "PAIR_PAKE")
        candidates = {recording[i : i + 32] for i in range(len(recording) - 31)}
        for candidate in itertools.chain(
            candidates, (derive(c, WELCOME_LABEL) for c in candidates)
        ):
            with pytest.raises(InvalidTag):
                ChaCha20Poly1305(candidate).decrypt(WELCOME_NONCE, box, None)
        sniffer = SPAKE2_A(str(invite.invitation.code).encode(), idA=ID_JOINER, idB=ID_INVITER)
        sniffer.start()
        guess = derive(sniffer.finish(inviter_msg), WELCOME_LABEL)
        with pytest.raises(InvalidTag):
            ChaCha20Poly1305(guess).decrypt(WELCOME_NONCE, box, None)


class TestInvites:
    async def test_the_right_code_gets_the_key_and_the_ring_and_closes_the_invite(
        self, invites: tuple[Invites, list[str]]
    ) -> None:
        inv, told = invites
        invite = await inv.open()
        assert [h.number for h in inv.hints()] == [invite.invitation.code.number]
        welcome = await join(invite.invitation.code, [("127.0.0.1", invite.port)])
        assert welcome.network_key == NETWORK.secret
        assert welcome.ring == (("127.0.0.1", 9001),)
        assert inv.hints() == ()
        assert told == [
            f"invite {invite.invitation.code.number}: a host at 127.0.0.1 took the code"
        ]

    async def test_an_expired_code_fails(self) -> None:
        told: list[str] = []
        inv = Invites("127.0.0.1", lambda: NETWORK.secret, lambda: VIEW, told.append, ttl=0.3)
        try:
            invite = await inv.open()
            await asyncio.sleep(0.5)
            assert inv.hints() == ()
            with pytest.raises(PairingError):
                await join(invite.invitation.code, [("127.0.0.1", invite.port)])
            assert told == [
                f"invite {invite.invitation.code.number} expired unused;"
                " type 'invite' for a new code"
            ]
        finally:
            await inv.close()

    async def test_three_wrong_codes_close_the_invite_and_say_so(
        self, invites: tuple[Invites, list[str]]
    ) -> None:
        inv, told = invites
        invite = await inv.open()
        code = invite.invitation.code
        wrong = InviteCode(
            code.number,
            (code.words[1], code.words[0]) if code.words[0] != code.words[1] else ("zoo", "zoo"),
        )
        for _ in range(3):
            with pytest.raises(WrongCode):
                await join(wrong, [("127.0.0.1", invite.port)])
        assert told == [
            f"invite {code.number}: 3 wrong codes; it refuses further attempts"
            " (type 'invite' for a new code)"
        ]
        with pytest.raises(PairingError):
            await join(code, [("127.0.0.1", invite.port)])

    async def test_a_stranger_holding_connections_is_bounded_and_the_joiner_still_gets_in(
        self, invites: tuple[Invites, list[str]]
    ) -> None:
        inv, _ = invites
        invite: OpenInvite = await inv.open()
        held = [await asyncio.open_connection("127.0.0.1", invite.port) for _ in range(10)]
        await asyncio.sleep(0.1)
        assert invite.attempts == MAX_ATTEMPTS, "the rest were closed unanswered"
        huge_reader, huge_writer = await asyncio.open_connection("127.0.0.1", invite.port)
        huge_writer.write(struct.pack(">I", 16 * 1024 * 1024))
        await huge_writer.drain()
        for _, writer in held:
            writer.close()
        await asyncio.sleep(0.1)
        welcome = await join(invite.invitation.code, [("127.0.0.1", invite.port)])
        assert welcome.network_key == NETWORK.secret
        with contextlib.suppress(ConnectionResetError):
            assert await huge_reader.read() == b"", "a frame over the cap ends the attempt"
        huge_writer.close()
