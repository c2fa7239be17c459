"""The network key: its file text, and the keys every member derives from it."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from overlay.network_key import (
    BEACON_LABEL,
    CA_LABEL,
    DHT_LABEL,
    NETWORK_ID_LABEL,
    NetworkKey,
    NetworkKeyError,
)

K = NetworkKey(bytes(range(32)))


def rfc5869(secret: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA256 with no salt, written out from RFC 5869 (not through `cryptography`)."""
    prk = hmac.new(b"\x00" * 32, secret, hashlib.sha256).digest()
    out, block = b"", b""
    for i in range(1, -(-length // 32) + 1):
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        out += block
    return out[:length]


class TestDerivation:
    def test_each_use_is_hkdf_sha256_of_k_under_its_label(self) -> None:
        assert K.ca_key().private_bytes_raw() == rfc5869(K.secret, b"lanshare ca v1", 32)
        assert K.dht_key == rfc5869(K.secret, b"lanshare dht v1", 32)
        assert K.beacon_key == rfc5869(K.secret, b"lanshare beacon v1", 32)
        assert K.network_id == rfc5869(K.secret, b"lanshare network id v1", 8)

    def test_labels_are_distinct_so_no_key_is_another(self) -> None:
        labels = [CA_LABEL, DHT_LABEL, BEACON_LABEL, NETWORK_ID_LABEL]
        assert len({K.derive(label) for label in labels}) == 4

    def test_every_member_derives_the_same_and_another_network_differs(self) -> None:
        again = NetworkKey(bytes(K.secret))
        assert again.dht_key == K.dht_key and again.network_id == K.network_id
        other = NetworkKey.generate()
        assert other.dht_key != K.dht_key and other.network_id != K.network_id

    def test_the_secret_never_shows_in_repr(self) -> None:
        assert K.secret.hex() not in repr(K)
        assert K.network_id.hex() in repr(K)


class TestText:
    def test_round_trip(self) -> None:
        assert NetworkKey.from_text(K.to_text()) == K
        assert NetworkKey.from_text("  " + K.secret.hex().upper() + "\r\n") == K

    @pytest.mark.parametrize(
        "text",
        ["", "abc", "00" * 31, "00" * 33, "zz" * 32, "\x00" * 64, "00" * 16 + " " + "00" * 16],
    )
    def test_anything_else_is_refused(self, text: str) -> None:
        with pytest.raises(NetworkKeyError, match="64 hex digits"):
            NetworkKey.from_text(text)

    def test_a_key_has_32_bytes(self) -> None:
        with pytest.raises(NetworkKeyError):
            NetworkKey(b"short")
