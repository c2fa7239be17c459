"""The joiner's side without a LAN: what beacon headers tell a host without credentials, and
the arguments of `join`."""

from __future__ import annotations

from ipaddress import IPv4Network

import pytest

from overlay.announcement import Announcement, Header, InviteHint, build_announcement
from overlay.discovery import Interface
from overlay.joining import HEARD_FOR, MAX_HEARD, MAX_PLACES, NetworkWatch, parse_join
from overlay.network_key import NetworkKey
from overlay.pairing import CodeFormatError, InviteCode, PairingError
from overlay.sealing import DatagramSeal

ETH0 = Interface("eth0", "192.0.2.2", IPv4Network("192.0.2.0/24"), "192.0.2.255")
NETWORK = NetworkKey.generate()
ANN = Announcement("k", "", "n", 8091)


def beacon(*hints: InviteHint, network: NetworkKey = NETWORK) -> bytes:
    seal = DatagramSeal(network.beacon_key, "beacon")
    return build_announcement(ANN, Header(network.network_id, hints), seal)


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


class TestNetworkWatch:
    def test_it_reads_the_network_and_invite_places_without_a_key(self) -> None:
        watch = NetworkWatch(ETH0, 8090, clock=Clock())
        assert watch.network() is None
        watch.hear(beacon(InviteHint(7, 40000)), ("192.0.2.10", 8090))
        watch.hear(beacon(InviteHint(7, 40001), InviteHint(9, 40002)), ("192.0.2.11", 8090))
        assert watch.network() == NETWORK.network_id
        assert watch.invite_places(7) == [("192.0.2.11", 40001), ("192.0.2.10", 40000)]
        assert watch.invite_places(9) == [("192.0.2.11", 40002)]
        assert watch.invite_places(8) == []

    def test_what_is_not_heard_lately_does_not_count(self) -> None:
        clock = Clock()
        watch = NetworkWatch(ETH0, 8090, clock=clock)
        watch.hear(beacon(InviteHint(7, 40000)), ("192.0.2.10", 8090))
        clock.now += HEARD_FOR
        assert watch.network() is None and watch.invite_places(7) == []

    @pytest.mark.parametrize(
        ("data", "source"),
        [
            (b"garbage", ("192.0.2.10", 8090)),
            (b"LSHB\x01\x80", ("192.0.2.10", 8090)),
            (beacon(InviteHint(7, 40000)), ("198.51.100.7", 8090)),
        ],
        ids=["garbage", "version 1", "outside the subnet"],
    )
    def test_anything_else_is_not_heard(self, data: bytes, source: tuple[str, int]) -> None:
        watch = NetworkWatch(ETH0, 8090, clock=Clock())
        watch.hear(data, source)
        assert watch.network() is None and watch.invite_places(7) == []

    def test_memory_is_bounded_and_places_tried_are_few(self) -> None:
        watch = NetworkWatch(ETH0, 8090, clock=Clock())
        for i in range(3 * MAX_HEARD):
            watch.hear(beacon(InviteHint(7, 40000 + i)), (f"192.0.2.{10 + i % 200}", 8090))
        assert len(watch.places) == MAX_HEARD
        assert len(watch.invite_places(7)) == MAX_PLACES


class TestJoinArguments:
    def test_a_code_alone_or_with_where_to_take_it(self) -> None:
        code = InviteCode(7, ("guitar", "ocean"))
        assert parse_join("7-guitar-ocean") == (code, [])
        assert parse_join(" 7-guitar-ocean  10.0.0.5:4123 ") == (code, [("10.0.0.5", 4123)])

    @pytest.mark.parametrize("text", ["", "7-guitar-ocean a b", "7-guitar-ocean host:99999"])
    def test_bad_arguments_say_how(self, text: str) -> None:
        with pytest.raises(PairingError):
            parse_join(text)

    def test_a_bad_code_says_what_a_code_looks_like(self) -> None:
        with pytest.raises(CodeFormatError, match="7-guitar-ocean"):
            parse_join("guitar-ocean")
