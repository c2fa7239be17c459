"""The pairing exchange on a TCP connection: its four messages, and each side's half of it.

A host without credentials cannot pass a node's TLS door, so the exchange runs on a listener of
its own, opened by `invite` and closed with the invite (`overlay/invites.py`), through a plain
`ring.wire.Door`: the door's frames and limits, no TLS. Nothing secret needs TLS here: the PAKE
(`overlay/pairing.py`) is the encryption, and what a stranger can make the listener do is
bounded (`MAX_FRAME`, `EXCHANGE_TIMEOUT`, and the invitation's own attempt count).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from overlay.pairing import (
    BadExchange,
    Invitation,
    InviteClosed,
    InviteCode,
    JoinerExchange,
    PairingError,
    Welcome,
    WrongCode,
)
from ring.errors import RemoteError, RingError
from ring.wire import (
    Connection,
    Door,
    Error,
    FrameParser,
    Message,
    expect,
    message,
    raise_for_error,
    read_message,
)

MAX_FRAME = 1024
"""Largest pairing frame: SPAKE2 messages are 33 bytes, a welcome about 600."""

EXCHANGE_TIMEOUT = 10.0
"""Seconds one whole attempt may take, on either side."""

WRONG_CODE, INVITE_CLOSED, NO_INVITE = "wrong_code", "invite_closed", "no_invite"
"""ERROR codes of the exchange."""


@message("PAIR")
class Pair(Message):
    """joiner -> inviter: which invite, and SPAKE2 message A."""

    number: int
    pake: bytes


@message("PAIR_PAKE")
class PairPake(Message):
    """inviter -> joiner: SPAKE2 message B."""

    pake: bytes


@message("PAIR_CONFIRM")
class PairConfirm(Message):
    """joiner -> inviter: proof that the joiner derived the same key."""

    mac: bytes


@message("PAIR_WELCOME")
class PairWelcome(Message):
    """inviter -> joiner: the sealed `Welcome`."""

    box: bytes


async def _read(conn: Connection) -> Message:
    return await read_message(conn.reader, FrameParser(MAX_FRAME))


async def serve_attempt(
    conn: Connection, invitation: Invitation, clock: Callable[[], float]
) -> None:
    """The inviter's half of one attempt on an accepted connection.

    Raises:
        WrongCode: the joiner's code was wrong (it was told so; the invitation counted it).
        InviteClosed: the invitation took no more attempts (the joiner was told so).
        PairingError, RingError, TimeoutError, OSError: the attempt broke off.
    """
    async with asyncio.timeout(EXCHANGE_TIMEOUT):
        hello = expect(await _read(conn), Pair)
        if hello.number != invitation.code.number:
            await conn.send(Error(NO_INVITE, f"no invite {hello.number} here"))
            raise BadExchange(f"asked for invite {hello.number}")
        try:
            exchange = invitation.answer(hello.pake, clock())
        except InviteClosed as exc:
            await conn.send(Error(INVITE_CLOSED, str(exc)))
            raise
        await conn.send(PairPake(exchange.outbound))
        confirm = expect(await _read(conn), PairConfirm)
        try:
            box = exchange.confirm(confirm.mac, clock())
        except WrongCode as exc:
            await conn.send(Error(WRONG_CODE, str(exc)))
            raise
        except InviteClosed as exc:
            await conn.send(Error(INVITE_CLOSED, str(exc)))
            raise
        await conn.send(PairWelcome(box))


async def attempt(door: Door, host: str, port: int, code: InviteCode) -> Welcome:
    """The joiner's half: one attempt with `code` at the listener on host:port.

    Raises:
        WrongCode: the inviter says the code is wrong.
        InviteClosed: the invitation there takes no more attempts (used, expired, refused).
        PairingError: anything else went wrong (no such invite there, no answer, a bad message).
    """
    exchange = JoinerExchange(code)
    try:
        conn = await door.open(host, port, EXCHANGE_TIMEOUT)
    except RingError as exc:
        raise PairingError(f"no inviter at {host}:{port}: {exc}") from None
    try:
        async with asyncio.timeout(EXCHANGE_TIMEOUT):
            await conn.send(Pair(code.number, exchange.outbound))
            pake = expect(raise_for_error(await _read(conn)), PairPake)
            await conn.send(PairConfirm(exchange.confirm(pake.pake)))
            welcome = expect(raise_for_error(await _read(conn)), PairWelcome)
            return exchange.welcome(welcome.box)
    except RemoteError as exc:
        if exc.code == WRONG_CODE:
            raise WrongCode(exc.reason) from None
        if exc.code == INVITE_CLOSED:
            raise InviteClosed(exc.reason) from None
        raise PairingError(f"{host}:{port}: {exc.reason}") from None
    except (RingError, TimeoutError, OSError) as exc:
        raise PairingError(f"the exchange with {host}:{port} broke off: {exc}") from None
    finally:
        await conn.close()
