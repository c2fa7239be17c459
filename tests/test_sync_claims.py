"""Per-path claims: one pass per replica path, and a path asked for meanwhile comes back."""

from __future__ import annotations

from sync.claims import Claims

A, B, C = ("o", "a"), ("o", "b"), ("o", "c")


class TestClaims:
    def test_a_path_is_held_by_one_pass_and_comes_back_to_it_when_asked_for(self) -> None:
        claims = Claims()
        rnd, push = claims.claim(), claims.claim()
        assert rnd.take([A, B]) == {A, B}
        assert push.take([B, C]) == {C}  # B is the round's: noted, not waited for
        assert rnd.take([B]) == {B}  # what a pass holds it may take again
        assert claims.held() == {A, B, C}
        assert rnd.release([A, C]) == set()  # C is not the round's to release
        assert claims.held() == {B, C}
        assert rnd.release([B]) == {B}  # the push asked for B meanwhile: apply it again
        assert rnd.release([B]) == set()
        assert push.take([B]) == {B}
        assert push.close() == set() and claims.held() == set()

    def test_a_path_asked_for_twice_comes_back_once(self) -> None:
        claims = Claims()
        first, second, third = claims.claim(), claims.claim(), claims.claim()
        first.take([A])
        assert second.take([A]) == set() and third.take([A]) == set()
        assert first.close() == {A}
        assert second.take([A]) == {A}
        assert second.close() == set()
