"""Joining by code, without sockets: invite codes, and the PAKE exchange that turns one into the
network key (after magic-wormhole's `_code.py` and `_key.py`).

Theory of operation. `invite` on a member makes an `Invitation`: a short code such as
`7-guitar-ocean` (a number, which names the invite on the LAN, and two words of the BIP-39
English list: 2048² ≈ 4.2 million codes), good for one host within `CODE_TTL` seconds. The new
host types the code; both sides run SPAKE2 with the whole code as the password:

    joiner  -> inviter   PAIR          number, SPAKE2 message A
    inviter -> joiner    PAIR_PAKE     SPAKE2 message B
    joiner  -> inviter   PAIR_CONFIRM  HMAC of both messages under a key from the SPAKE2 key
    inviter -> joiner    PAIR_WELCOME  the network key and where the ring is, sealed under
                                       another key from the SPAKE2 key

Rule 1: the inviter says nothing that depends on the SPAKE2 key before the joiner has proved it
holds the same one. Message B alone is uniformly random to anyone without the code, so a
stranger who runs the exchange with a guess learns whether the guess was right only by sending
PAIR_CONFIRM, which the inviter counts. A sniffer learns nothing at all: SPAKE2 leaves nothing to
test guesses against offline, and the welcome is sealed. Rule 2: an invitation takes at most
`MAX_WRONG` wrong confirmations, then refuses every attempt, the right code included; it takes
one right one (single use), and none after `CODE_TTL`. Every transition of an invitation is in
`TRANSITIONS`; anything else raises `InviteClosed`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import msgpack
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from mnemonic import Mnemonic
from spake2 import SPAKE2_A, SPAKE2_B
from spake2.spake2 import SPAKEError

CODE_TTL = 600.0
"""Seconds an invitation is good for."""

MAX_WRONG = 3
"""Wrong codes an invitation takes before it refuses every further attempt."""

MAX_NUMBER = 999
"""Invite numbers are 1..MAX_NUMBER (the code's first part)."""

MAX_RING = 16
"""Ring addresses a welcome carries at most (the inviter first)."""

WORDS: tuple[str, ...] = tuple(Mnemonic("english").wordlist)
"""The BIP-39 English list: 2048 words, no two alike in their first four letters."""

ID_JOINER, ID_INVITER = b"lanshare joiner", b"lanshare inviter"
CONFIRM_LABEL = b"lanshare pairing confirm v1"
WELCOME_LABEL = b"lanshare pairing welcome v1"
WELCOME_NONCE = bytes(12)
"""The welcome key seals one message ever, so a fixed nonce is safe."""

_CODE = re.compile(r"^([1-9][0-9]{0,2})-([a-z]+)-([a-z]+)$")
_INDEX = {word: i for i, word in enumerate(WORDS)}


class PairingError(Exception):
    """Root of the errors of joining by code."""


class CodeFormatError(PairingError):
    """Not an invite code: expected a number and two words, such as 7-guitar-ocean."""


class WrongCode(PairingError):
    """The code is wrong (the inviter counted the attempt)."""


class InviteClosed(PairingError):
    """The invitation takes no more attempts (used, expired, or refused after wrong codes)."""


class BadExchange(PairingError):
    """The other side broke the exchange (a malformed message, or a welcome that does not open)."""


@dataclass(frozen=True)
class InviteCode:
    """A code as `invite` prints it and `join` takes it: `<number>-<word>-<word>`."""

    number: int
    words: tuple[str, str]

    def __str__(self) -> str:
        return f"{self.number}-{self.words[0]}-{self.words[1]}"

    @classmethod
    def generate(
        cls, number: int, choose: Callable[[tuple[str, ...]], str] = secrets.choice
    ) -> InviteCode:
        """A fresh code for invite `number`, its words drawn with `choose` (secrets by default)."""
        return cls(number, (choose(WORDS), choose(WORDS)))

    @classmethod
    def parse(cls, text: str) -> InviteCode:
        """A code typed by a person: case and surrounding blanks do not matter.

        Raises:
            CodeFormatError: anything else, or a word not on the list.
        """
        match = _CODE.match(text.strip().lower())
        if match is None or match.group(2) not in _INDEX or match.group(3) not in _INDEX:
            raise CodeFormatError(f"{text.strip()!r} is not an invite code (e.g. 7-guitar-ocean)")
        return cls(int(match.group(1)), (match.group(2), match.group(3)))

    @property
    def password(self) -> bytes:
        return str(self).encode("ascii")


@dataclass(frozen=True)
class Welcome:
    """What a joiner is given: the network key, and ring members' (host, TCP port)."""

    network_key: bytes
    ring: tuple[tuple[str, int], ...]

    def pack(self) -> bytes:
        return bytes(msgpack.packb({"k": self.network_key, "r": [list(a) for a in self.ring]}))

    @classmethod
    def unpack(cls, data: bytes) -> Welcome:
        """Raises: BadExchange: not a welcome."""
        try:
            body: Any = msgpack.unpackb(data, raw=False, max_array_len=MAX_RING)
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise BadExchange(f"the welcome is not msgpack: {exc}") from None
        key, ring = (body.get("k"), body.get("r")) if isinstance(body, dict) else (None, None)
        if not isinstance(key, bytes) or len(key) != 32 or not isinstance(ring, list):
            raise BadExchange("the welcome holds no network key")
        addresses = []
        for item in ring:
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
                raise BadExchange("the welcome holds a bad ring address")
            port = item[1]
            if not (isinstance(port, int) and 0 < port < 65536 and 0 < len(item[0]) <= 255):
                raise BadExchange("the welcome holds a bad ring address")
            addresses.append((item[0], port))
        return cls(key, tuple(addresses))


def derive(key: bytes, label: bytes) -> bytes:
    """The key for one use (`CONFIRM_LABEL`, `WELCOME_LABEL`) from the SPAKE2 key."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(key)


def _confirmation(key: bytes, joiner_msg: bytes, inviter_msg: bytes) -> bytes:
    transcript = b"joiner" + joiner_msg + inviter_msg
    return hmac.new(derive(key, CONFIRM_LABEL), transcript, hashlib.sha256).digest()


class State(Enum):
    OPEN = "open"
    USED = "used"
    REFUSED = "refused"
    EXPIRED = "expired"


TRANSITIONS: dict[State, dict[str, State]] = {
    State.OPEN: {"right code": State.USED, "last wrong code": State.REFUSED, "ttl": State.EXPIRED},
}
"""Every change of an invitation's state; USED, REFUSED and EXPIRED are final."""


class Invitation:
    """The inviter's side of one code: `answer` each attempt, then `confirm` it."""

    def __init__(
        self,
        code: InviteCode,
        welcome: Welcome,
        now: float,
        ttl: float = CODE_TTL,
        max_wrong: int = MAX_WRONG,
    ) -> None:
        self.code = code
        self.welcome = welcome
        self.expires = now + ttl
        self.max_wrong = max_wrong
        self.wrong = 0
        self._state = State.OPEN

    def state(self, now: float) -> State:
        """The state at `now` (an open invitation past its time has expired)."""
        if self._state is State.OPEN and now >= self.expires:
            self._fire("ttl")
        return self._state

    def _fire(self, event: str) -> None:
        self._state = TRANSITIONS[self._state][event]

    def _check_open(self, now: float) -> None:
        state = self.state(now)
        if state is State.USED:
            raise InviteClosed(f"invite {self.code.number} was used already")
        if state is State.EXPIRED:
            raise InviteClosed(f"invite {self.code.number} expired")
        if state is State.REFUSED:
            raise InviteClosed(
                f"invite {self.code.number} refuses further attempts after {self.wrong} wrong codes"
            )

    def answer(self, joiner_msg: bytes, now: float) -> InviterExchange:
        """Start the inviter's side of one attempt.

        Raises:
            InviteClosed: the invitation takes no more attempts.
            BadExchange: `joiner_msg` is not a SPAKE2 message of a joiner.
        """
        self._check_open(now)
        return InviterExchange(self, joiner_msg)

    def confirmed(self, right: bool, now: float) -> None:
        """Count one attempt's confirmation (`InviterExchange.confirm` calls it).

        Raises:
            InviteClosed: the invitation closed while the attempt ran.
            WrongCode: the confirmation was wrong (the invitation may now refuse all others).
        """
        self._check_open(now)
        if right:
            self._fire("right code")
            return
        self.wrong += 1
        if self.wrong >= self.max_wrong:
            self._fire("last wrong code")
        left = self.max_wrong - self.wrong
        raise WrongCode(
            f"wrong code ({left} attempt(s) left)" if left else "wrong code (no attempts left)"
        )


class InviterExchange:
    """One attempt at an invitation: SPAKE2 side B, then the joiner's confirmation."""

    def __init__(self, invitation: Invitation, joiner_msg: bytes) -> None:
        self.invitation = invitation
        spake = SPAKE2_B(invitation.code.password, idA=ID_JOINER, idB=ID_INVITER)
        self.outbound: bytes = spake.start()
        self._joiner_msg = joiner_msg
        try:
            self._key: bytes = spake.finish(joiner_msg)
        except (SPAKEError, ValueError, AssertionError) as exc:
            raise BadExchange(f"not a SPAKE2 message: {exc}") from None

    def confirm(self, mac: bytes, now: float) -> bytes:
        """Check the joiner's confirmation; the sealed welcome if it is right.

        Raises:
            WrongCode, InviteClosed: as `Invitation.confirmed`.
        """
        expected = _confirmation(self._key, self._joiner_msg, self.outbound)
        self.invitation.confirmed(hmac.compare_digest(expected, mac), now)
        aead = ChaCha20Poly1305(derive(self._key, WELCOME_LABEL))
        return aead.encrypt(WELCOME_NONCE, self.invitation.welcome.pack(), None)


class JoinerExchange:
    """The joiner's side: send `outbound`, `confirm` the inviter's message, open the welcome."""

    def __init__(self, code: InviteCode) -> None:
        self.code = code
        self._spake = SPAKE2_A(code.password, idA=ID_JOINER, idB=ID_INVITER)
        self.outbound: bytes = self._spake.start()
        self._key: bytes | None = None

    def confirm(self, inviter_msg: bytes) -> bytes:
        """The confirmation to send, proving this side holds the key the code gives.

        Raises:
            BadExchange: `inviter_msg` is not an inviter's SPAKE2 message.
        """
        try:
            self._key = self._spake.finish(inviter_msg)
        except (SPAKEError, ValueError, AssertionError) as exc:
            raise BadExchange(f"not a SPAKE2 message: {exc}") from None
        return _confirmation(self._key, self.outbound, inviter_msg)

    def welcome(self, box: bytes) -> Welcome:
        """The network key and ring addresses the inviter sealed.

        Raises:
            BadExchange: it does not open (not the inviter we confirmed to), or is malformed.
        """
        if self._key is None:
            raise BadExchange("a welcome before the confirmation")
        aead = ChaCha20Poly1305(derive(self._key, WELCOME_LABEL))
        try:
            return Welcome.unpack(aead.decrypt(WELCOME_NONCE, box, None))
        except InvalidTag:
            raise BadExchange("the welcome does not open") from None
