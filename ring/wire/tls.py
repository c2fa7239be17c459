"""Mutual TLS 1.3: the handshake policy of the door, and who the peer on a connection is.

Every connection of a node is TLS 1.3 with a certificate on both sides, checked against one
trust root: the network's CA, which every member derives from the network key (the overlay
makes the certificates; `overlay/certificates.py`). No host name is checked: a peer is who its
certificate's key says, and that key, as hex, is its `identity` (what `Member.key` holds). A
peer in the clear, or with a certificate the CA did not sign, fails the handshake and never
reaches a handler, so it gets no frame at all.

The standard `ssl` module loads a certificate and key only from files, so `Tls` writes them to
a private temporary folder for the moment it loads them. Sessions are resumed
(`ring/wire/sessions.py`): the server hands out one ticket per connection.

The credentials can change while the node runs (a re-key of the network: `renew`): connections
made from then on present the new certificate (with the chain given) and trust the new CAs;
the server context is changed in place (the listening server keeps it), the client context
replaced, and the sessions of the old one forgotten. Who signed a peer's certificate
(`peer_issuer`) tells a node on which network key that peer is.
"""

from __future__ import annotations

import ssl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ring.wire.sessions import ResumingContext, Sessions

HANDSHAKE_TIMEOUT = 5.0
"""Seconds a connection may take to finish its handshake (both directions); then it is cut."""


class Tls:
    """The two TLS contexts of one node: to dial (client) and to accept (server), and the
    sessions it resumes when it dials again.

    Both present the node's certificate, require the peer's, and trust only `ca_pem`.
    """

    def __init__(
        self,
        cert_pem: bytes,
        key_pem: bytes,
        ca_pem: bytes,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
    ) -> None:
        """Build both contexts.

        Args:
            cert_pem: this node's certificate (PEM), signed by the CA.
            key_pem: its private key (PEM, PKCS#8, unencrypted).
            ca_pem: the one CA certificate (PEM) a peer's certificate must chain to.
            handshake_timeout: seconds a handshake may take.

        Raises:
            ssl.SSLError: the certificate and key do not fit together, or a PEM is malformed.
        """
        self.handshake_timeout = handshake_timeout
        self.sessions = Sessions()
        with _pem_files(cert_pem, key_pem) as (cert_file, key_file):
            self.client = _context(False, cert_file, key_file, ca_pem)
            self.server = _context(True, cert_file, key_file, ca_pem)

    def renew(self, cert_pem: bytes, key_pem: bytes, ca_pem: bytes) -> None:
        """Present `cert_pem` (a certificate, then the chain to send with it) and trust the CAs
        in `ca_pem` on every connection made from now on.

        The server context keeps trusting the CAs it trusted before (a context cannot forget
        one): whoever holds the door checks each peer's issuer (`peer_issuer`) itself.

        Raises:
            ssl.SSLError: the certificate and key do not fit together, or a PEM is malformed.
        """
        with _pem_files(cert_pem, key_pem) as (cert_file, key_file):
            client = _context(False, cert_file, key_file, ca_pem)
            self.server.load_cert_chain(cert_file, key_file)
            self.server.load_verify_locations(cadata=ca_pem.decode("ascii"))
        self.client = client
        self.sessions.clear()


@contextmanager
def _pem_files(cert_pem: bytes, key_pem: bytes) -> Iterator[tuple[Path, Path]]:
    """The certificate and key in a private temporary folder, for as long as `ssl` reads them."""
    with tempfile.TemporaryDirectory(prefix="lanshare-tls-") as folder:
        cert_file, key_file = Path(folder) / "cert.pem", Path(folder) / "key.pem"
        cert_file.write_bytes(cert_pem)
        key_file.touch(mode=0o600)
        key_file.write_bytes(key_pem)
        yield cert_file, key_file


def _context(server: bool, cert_file: Path, key_file: Path, ca_pem: bytes) -> ssl.SSLContext:
    """TLS 1.3 only, our certificate presented, the peer's required and checked against the CA."""
    ctx = (
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if server
        else ResumingContext(ssl.PROTOCOL_TLS_CLIENT)
    )
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=ca_pem.decode("ascii"))
    ctx.load_cert_chain(cert_file, key_file)
    if server:
        ctx.num_tickets = 1  # one ticket per connection: the next one from that client resumes
    return ctx


def peer_identity(der: bytes | None) -> str:
    """The peer's identity: the hex of its certificate's Ed25519 public key.

    Args:
        der: the peer's certificate as `getpeercert(binary_form=True)` gives it.

    Returns:
        64 hex digits, or "" when there is no certificate or its key is not Ed25519 (a
        handshake that the door completes always has one: the CA signs only Ed25519 keys).
    """
    if not der:
        return ""
    key = x509.load_der_x509_certificate(der).public_key()
    if not isinstance(key, Ed25519PublicKey):
        return ""
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def peer_issuer(der: bytes | None) -> str:
    """Who signed the peer's certificate: its issuer name (RFC 4514), or "" with none."""
    if not der:
        return ""
    return x509.load_der_x509_certificate(der).issuer.rfc4514_string()
