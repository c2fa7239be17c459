"""The beacon packet without sockets: a clear header anyone reads, a body only members open."""

from __future__ import annotations

import msgpack
import pytest

from overlay.announcement import (
    MAGIC,
    MAX_PACKET,
    PREFIX,
    VERSION,
    Announcement,
    Header,
    InviteHint,
    build_announcement,
    build_packet,
    open_announcement,
    read_header,
)
from overlay.network_key import NetworkKey
from overlay.sealing import DatagramSeal

NETWORK = NetworkKey.generate()
HEADER = Header(NETWORK.network_id)
SENDER = DatagramSeal(NETWORK.beacon_key, "beacon")
ANN = Announcement("a" * 32, "ring-7", "192.0.2.2:8091", 8091)


def member_seal(network: NetworkKey = NETWORK) -> DatagramSeal:
    return DatagramSeal(network.beacon_key, "beacon")


def build(a: Announcement, header: Header = HEADER) -> bytes:
    return build_announcement(a, header, SENDER)


def parse(data: bytes, receiver: DatagramSeal | None = None) -> Announcement | None:
    """What a member of NETWORK makes of a datagram (a fresh receiver unless one is given)."""
    read = read_header(data)
    if read is None or read[0].network_id != NETWORK.network_id:
        return None
    return open_announcement(data, read[1], receiver or member_seal())


class TestAnnouncement:
    def test_round_trip(self) -> None:
        packet = build(ANN)
        assert packet.startswith(MAGIC + bytes([VERSION]))
        assert len(packet) <= MAX_PACKET
        assert parse(packet) == ANN

    def test_largest_announcement_fits_one_packet(self) -> None:
        big = Announcement("k" * 64, "r" * 256, "é" * 127, 65535)
        assert len(build(big)) <= MAX_PACKET
        assert parse(build(big)) == big

    @pytest.mark.parametrize(
        "bad",
        [
            Announcement("", "r", "n", 8091),
            Announcement("k" * 65, "r", "n", 8091),
            Announcement("k", "r" * 257, "n", 8091),
            Announcement("k", "r", "n" * 256, 8091),
            Announcement("k", "r", "n", 0),
            Announcement("k", "r", "n", 65536),
            Announcement("k", "r", "n", True),
        ],
    )
    def test_out_of_limits_is_refused_at_build(self, bad: Announcement) -> None:
        with pytest.raises(ValueError):
            build(bad)

    @pytest.mark.parametrize(
        "data",
        [
            b"",
            b"LSHB",
            b"XXXX\x01" + msgpack.packb({"k": "a", "p": 1}),
            b"LSHB\x02" + msgpack.packb({"k": "a", "p": 1}),
            b"LSHB\x01\xc1",
            b"LSHB\x01" + msgpack.packb([1, 2]),
            b"LSHB\x01" + msgpack.packb({"k": "a"}),
            b"LSHB\x01" + msgpack.packb({"k": "a", "p": "8091"}),
            b"LSHB\x01" + msgpack.packb({"k": b"a", "p": 8091}),
            b"LSHB\x01" + msgpack.packb({"k": "a", "p": 8091}) + b"trailing",
            b"LSHB\x01" + msgpack.packb({"k": "a", "p": 8091, "x": "y" * MAX_PACKET}),
            b"LSHB\x01" + msgpack.packb({1: "a"}),
            b"LSHB\x01\xdf\xff\xff\xff\xff",
        ],
    )
    def test_anything_else_parses_to_none(self, data: bytes) -> None:
        assert parse(data) is None

    def test_unknown_keys_are_ignored_and_ring_and_name_default_empty(self) -> None:
        packet = build_packet(HEADER, msgpack.packb({"k": "a", "p": 9, "future": [1]}), SENDER)
        assert parse(packet) == Announcement("a", "", "", 9)


class TestClearHeader:
    def test_anyone_reads_the_network_and_the_open_invites_and_nothing_else(self) -> None:
        header = Header(NETWORK.network_id, (InviteHint(7, 40123), InviteHint(42, 40124)))
        packet = build(ANN, header)
        clear = msgpack.packb({"i": [[7, 40123], [42, 40124]]})
        assert read_header(packet) == (header, PREFIX.size + len(clear))
        for secret in (ANN.key.encode(), b"ring-7", b"192.0.2.2:8091"):
            assert secret not in packet
        assert parse(packet) == ANN

    def test_a_member_knows_the_clear_part_is_a_members(self) -> None:
        packet = bytearray(build(ANN, Header(NETWORK.network_id, (InviteHint(7, 40123),))))
        at = bytes(packet).index(msgpack.packb(40123))
        packet[at + 2] ^= 1  # another port for invite 7
        assert read_header(bytes(packet)) is not None, "a stranger could not tell"
        assert parse(bytes(packet)) is None, "a member can"

    @pytest.mark.parametrize(
        "clear",
        [
            msgpack.packb({"i": [[0, 1]]}),
            msgpack.packb({"i": [[1000, 1]]}),
            msgpack.packb({"i": [[1, 65536]]}),
            msgpack.packb({"i": [[1, 2, 3]]}),
            msgpack.packb({"i": [[1, 2]] * 5}),
            msgpack.packb({"i": "x"}),
            msgpack.packb([1]),
            b"\xc1",
        ],
    )
    def test_a_bad_clear_part_is_not_a_beacon(self, clear: bytes) -> None:
        packet = PREFIX.pack(MAGIC, VERSION, NETWORK.network_id, len(clear)) + clear + bytes(40)
        assert read_header(packet) is None

    @pytest.mark.parametrize(
        "hints", [(InviteHint(0, 1),), (InviteHint(1, 0),), (InviteHint(1, 1),) * 5]
    )
    def test_hints_out_of_limits_are_refused_at_build(self, hints: tuple[InviteHint, ...]) -> None:
        with pytest.raises(ValueError):
            build(ANN, Header(NETWORK.network_id, hints))


class TestStrangers:
    def test_another_networks_beacon_is_read_as_another_network(self) -> None:
        other = NetworkKey.generate()
        packet = build_announcement(ANN, Header(other.network_id), member_seal(other))
        assert read_header(packet) is not None
        assert parse(packet) is None

    def test_a_forged_body_with_our_network_id_does_not_open(self) -> None:
        forged = build_announcement(ANN, HEADER, member_seal(NetworkKey.generate()))
        assert read_header(forged) is not None
        assert parse(forged) is None

    def test_a_replayed_beacon_is_taken_once(self) -> None:
        receiver = member_seal()
        packet = build(ANN)
        assert parse(packet, receiver) == ANN
        assert parse(packet, receiver) is None

    def test_a_version_1_beacon_is_not_a_beacon(self) -> None:
        assert read_header(b"LSHB\x01" + msgpack.packb({"k": "a", "p": 8091})) is None
