"""The network's certificates: one deterministic CA per network key, a node certificate per key."""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from overlay.certificates import ca_certificate, key_hex, node_certificate
from overlay.network_key import NetworkKey

K = NetworkKey(bytes(range(32)))


def signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    key = issuer.public_key()
    assert isinstance(key, Ed25519PublicKey)
    try:
        key.verify(cert.signature, cert.tbs_certificate_bytes)
    except Exception:
        return False
    return True


def common_name(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


class TestCa:
    def test_every_member_derives_the_identical_ca_from_k(self) -> None:
        first = ca_certificate(K).public_bytes(Encoding.DER)
        assert ca_certificate(NetworkKey(bytes(K.secret))).public_bytes(Encoding.DER) == first
        assert ca_certificate(NetworkKey.generate()).public_bytes(Encoding.DER) != first

    def test_it_is_a_self_signed_ca_named_by_the_network_id(self) -> None:
        ca = ca_certificate(K)
        assert signed_by(ca, ca) and ca.issuer == ca.subject
        assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert K.network_id.hex() in common_name(ca)
        assert ca.not_valid_before_utc == datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
        assert ca.not_valid_after_utc.year == 9999


class TestNodeCertificate:
    def test_the_ca_signs_it_and_it_names_the_node_key(self) -> None:
        node_key = Ed25519PrivateKey.generate()
        cert = node_certificate(K, node_key)
        assert signed_by(cert, ca_certificate(K))
        assert not signed_by(cert, ca_certificate(NetworkKey.generate()))
        assert cert.issuer == ca_certificate(K).subject
        assert common_name(cert) == key_hex(node_key.public_key())
        assert len(key_hex(node_key.public_key())) == 64

    def test_it_is_no_ca(self) -> None:
        cert = node_certificate(K, Ed25519PrivateKey.generate())
        assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
