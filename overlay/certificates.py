"""The network's certificates: its CA, derived from the network key, and each node's own.

The CA certificate is deterministic: its key comes from the network key (`NetworkKey.ca_key`),
its subject from the network id, its serial from its public key, its validity is fixed
(2000-01-01 to 9999-12-31) and Ed25519 signatures are deterministic. So every member derives the
byte-identical trust root from K alone, and nothing about the CA is ever stored or sent.

A node's certificate binds its own Ed25519 key (the node key) to the network: the CA signs it,
it is no CA itself, and it lasts as long as the CA.

After a re-key (a new network key replaces the old one, `overlay/trust.py`) a node also sends a
cross certificate: the new CA's key, signed by the old CA (`cross_certificate`). A member still
on the old key trusts only the old CA, and through this certificate it can check the new one
and learn that the network moved on; so every CA may have one CA below it (pathlen 1), and the
cross certificate none (pathlen 0). It is cheap to make, so a node makes it at
every start instead of storing it. Its subject names the node's key in hex, which is also the
node's identity on every connection (`ring.wire.peer_identity`) and its ring key.
"""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from overlay.network_key import NetworkKey

NOT_BEFORE = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
NOT_AFTER = datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.UTC)
"""Validity of every certificate: fixed, so the CA is the same for all, and no clock matters."""

ORGANIZATION = "lanshare"


def key_hex(key: Ed25519PublicKey) -> str:
    """An Ed25519 public key as 64 hex digits: a node's identity and ring key."""
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def _serial(key: Ed25519PublicKey) -> int:
    """A positive serial of at most 127 bits, from the key it certifies."""
    return (int.from_bytes(bytes.fromhex(key_hex(key))[:16], "big") >> 1) | 1


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def ca_name(network: NetworkKey) -> x509.Name:
    """The CA's subject, the issuer of every node certificate of the network."""
    return _name(f"network {network.network_id.hex()}")


CA_USAGE = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


def ca_certificate(network: NetworkKey) -> x509.Certificate:
    """The network's self-signed CA certificate, identical for every member."""
    key = network.ca_key()
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(ca_name(network))
        .issuer_name(ca_name(network))
        .public_key(public)
        .serial_number(_serial(public))
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(CA_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, None)
    )


def cross_certificate(network: NetworkKey, previous: NetworkKey) -> x509.Certificate:
    """`network`'s CA key, certified by the CA of `previous` (the key it replaced)."""
    public = network.ca_key().public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(ca_name(network))
        .issuer_name(ca_name(previous))
        .public_key(public)
        .serial_number(_serial(public))
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(CA_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(previous.ca_key().public_key()),
            critical=False,
        )
        .sign(previous.ca_key(), None)
    )


def node_certificate(network: NetworkKey, node_key: Ed25519PrivateKey) -> x509.Certificate:
    """The certificate of `node_key` in `network`, signed by the network's CA."""
    ca_key = network.ca_key()
    public = node_key.public_key()
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    purposes = x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(_name(key_hex(public)))
        .issuer_name(ca_name(network))
        .public_key(public)
        .serial_number(_serial(public))
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(purposes, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, None)
    )
