"""Joining by code without sockets: codes, the SPAKE2 exchange, attempts, expiry, single use."""

from __future__ import annotations

import pytest

from overlay.pairing import (
    CODE_TTL,
    MAX_WRONG,
    WORDS,
    BadExchange,
    CodeFormatError,
    Invitation,
    InviteClosed,
    InviteCode,
    JoinerExchange,
    State,
    Welcome,
    WrongCode,
)

K = bytes(range(32))
WELCOME = Welcome(K, (("10.0.0.1", 8091), ("10.0.0.2", 8091)))
CODE = InviteCode(7, ("guitar", "ocean"))
WRONG = InviteCode(7, ("guitar", "oak"))


def run(invitation: Invitation, code: InviteCode, now: float = 0.0) -> Welcome:
    """One whole attempt with `code`, the two sides linked directly."""
    joiner = JoinerExchange(code)
    inviter = invitation.answer(joiner.outbound, now)
    box = inviter.confirm(joiner.confirm(inviter.outbound), now)
    return joiner.welcome(box)


class TestCodes:
    def test_a_code_is_a_number_and_two_listed_words(self) -> None:
        code = InviteCode.generate(42)
        assert code.number == 42 and all(w in WORDS for w in code.words)
        assert InviteCode.parse(str(code)) == code
        assert len(WORDS) == 2048

    @pytest.mark.parametrize("text", ["7-guitar-ocean", " 7-Guitar-OCEAN\n"])
    def test_case_and_blanks_do_not_matter(self, text: str) -> None:
        assert InviteCode.parse(text) == CODE

    @pytest.mark.parametrize(
        "text",
        ["", "7", "guitar-ocean", "0-guitar-ocean", "1000-guitar-ocean", "07-guitar-ocean",
         "7-guitar", "7-guitar-ocean-oak", "7-guitar-xyzzy", "7 guitar ocean", "7-guitár-ocean"],
    )  # fmt: skip
    def test_anything_else_is_refused_with_an_example(self, text: str) -> None:
        with pytest.raises(CodeFormatError, match="7-guitar-ocean"):
            InviteCode.parse(text)

    def test_words_are_drawn_by_the_given_chooser(self) -> None:
        assert InviteCode.generate(3, lambda words: words[0]) == InviteCode(3, ("abandon",) * 2)


class TestExchange:
    def test_the_right_code_gets_the_welcome_once(self) -> None:
        invitation = Invitation(CODE, WELCOME, now=0.0)
        assert run(invitation, CODE) == WELCOME
        assert invitation.state(1.0) is State.USED
        with pytest.raises(InviteClosed, match="used"):
            run(invitation, CODE)

    def test_a_wrong_code_is_told_and_counted(self) -> None:
        invitation = Invitation(CODE, WELCOME, now=0.0)
        with pytest.raises(WrongCode, match="2 attempt"):
            run(invitation, WRONG)
        assert invitation.wrong == 1 and invitation.state(0.0) is State.OPEN
        assert run(invitation, CODE) == WELCOME

    def test_three_wrong_codes_and_even_the_right_one_is_refused(self) -> None:
        invitation = Invitation(CODE, WELCOME, now=0.0)
        for left in range(MAX_WRONG - 1, -1, -1):
            with pytest.raises(WrongCode, match=f"{left or 'no'} attempt"):
                run(invitation, WRONG)
        assert invitation.state(0.0) is State.REFUSED
        with pytest.raises(InviteClosed, match="refuses further attempts after 3 wrong codes"):
            run(invitation, CODE)

    def test_an_abandoned_attempt_counts_for_nothing_and_teaches_nothing(self) -> None:
        """The inviter's first message does not depend on the key: a joiner that stops there
        cannot tell a right guess from a wrong one, so the attempt need not be counted."""
        invitation = Invitation(CODE, WELCOME, now=0.0)
        right = invitation.answer(JoinerExchange(CODE).outbound, 0.0).outbound
        wrong = invitation.answer(JoinerExchange(WRONG).outbound, 0.0).outbound
        assert len(right) == len(wrong) == 33
        assert invitation.wrong == 0 and invitation.state(0.0) is State.OPEN

    def test_a_code_expires(self) -> None:
        invitation = Invitation(CODE, WELCOME, now=100.0)
        joiner = JoinerExchange(CODE)
        inviter = invitation.answer(joiner.outbound, 100.0 + CODE_TTL - 1)
        with pytest.raises(InviteClosed, match="expired"):
            inviter.confirm(joiner.confirm(inviter.outbound), 100.0 + CODE_TTL)
        assert invitation.state(100.0 + CODE_TTL) is State.EXPIRED
        with pytest.raises(InviteClosed, match="expired"):
            run(invitation, CODE, now=100.0 + CODE_TTL)

    def test_a_joiner_confirming_to_an_impostor_cannot_open_its_welcome(self) -> None:
        """An impostor inviter that guessed wrong gets a wrong confirmation, and any box it
        sends does not open at the joiner."""
        impostor = Invitation(WRONG, Welcome(bytes(32), ()), now=0.0)
        joiner = JoinerExchange(CODE)
        inviter = impostor.answer(joiner.outbound, 0.0)
        with pytest.raises(WrongCode):
            inviter.confirm(joiner.confirm(inviter.outbound), 0.0)
        with pytest.raises(BadExchange, match="does not open"):
            joiner.welcome(b"\x00" * 64)

    @pytest.mark.parametrize("message", [b"", b"A" + bytes(32), b"B" + bytes(32), b"\x00" * 10])
    def test_a_malformed_spake2_message_is_a_bad_exchange(self, message: bytes) -> None:
        invitation = Invitation(CODE, WELCOME, now=0.0)
        with pytest.raises(BadExchange):
            invitation.answer(message, 0.0)
        assert invitation.wrong == 0


class TestWelcome:
    def test_round_trip(self) -> None:
        assert Welcome.unpack(WELCOME.pack()) == WELCOME

    @pytest.mark.parametrize(
        "body",
        [b"\xc1", b"\x90", Welcome(bytes(31), ()).pack(), Welcome(K, (("", 1),)).pack(),
         Welcome(K, (("h", 0),)).pack(), Welcome(K, (("h", 70000),)).pack()],
    )  # fmt: skip
    def test_a_bad_welcome_is_a_bad_exchange(self, body: bytes) -> None:
        with pytest.raises(BadExchange):
            Welcome.unpack(body)
