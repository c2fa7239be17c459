"""The door: mutual TLS 1.3 against the network's CA on every connection, and nothing at all for
anyone else (a client in the clear, a stranger's network, a certificate of its own making)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import NameOID

from overlay.certificates import NOT_AFTER, NOT_BEFORE
from overlay.credentials import Credentials
from overlay.network_key import NetworkKey
from ring.errors import PeerUnreachable
from ring.wire import Connection, Door, FrameServer, Message, Tls, encode, message, peer_identity
from tests.credentials import member, member_door

BODY = os.urandom(3 * 1024 * 1024 + 17)


@message("TEST_WHO")
class Who(Message):
    """Ask who the server saw; with `body`, that many bytes of BODY follow the reply."""

    body: int = 0


@message("TEST_YOU")
class You(Message):
    identity: str


class Served:
    """A member's server that answers Who with the identity it saw, and records every request."""

    def __init__(self, creds: Credentials, tmp_path: Path, handshake_timeout: float) -> None:
        self.creds = creds
        self.seen: list[str] = []
        self.nodelay: list[bool] = []
        self.file = tmp_path / "body.bin"
        self.file.write_bytes(BODY)
        door = Door(self.tls(handshake_timeout))
        self.server = FrameServer("127.0.0.1", 0, door=door)
        self.server.route(Who, self.on_who)

    def tls(self, handshake_timeout: float) -> Tls:
        made = self.creds.tls()
        made.handshake_timeout = handshake_timeout
        return made

    async def on_who(self, msg: Message, conn: Connection) -> None:
        assert isinstance(msg, Who)
        self.seen.append(conn.identity)
        self.nodelay.append(nagle_off(conn.writer.get_extra_info("socket")))
        await conn.send(You(conn.identity))
        if msg.body:
            with open(self.file, "rb") as f:
                assert await conn.sendfile(f, 0, msg.body) == msg.body


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    it = Served(member(), tmp_path, handshake_timeout=0.5)
    await it.server.start()
    yield it
    await it.server.close()


def raw_exchange(port: int, data: bytes, wrap: ssl.SSLContext | None = None) -> bytes:
    """Connect (through `wrap` if given), send `data`, and return every byte that comes back."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        conn: socket.socket = wrap.wrap_socket(sock) if wrap is not None else sock
        got = b""
        try:
            conn.sendall(data)
            while chunk := conn.recv(65536):
                got += chunk
        except (ssl.SSLError, ConnectionError):
            pass  # the server cut us off: what matters is that no frame came first
        return got


def any_server(folder: Path | None = None) -> ssl.SSLContext:
    """A client as a stranger would make one: it accepts any server; with `folder`, it shows a
    self-signed certificate of its own making (written there to be loaded)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if folder is not None:
        cert_pem, key_pem = self_made()
        (folder / "own.crt").write_bytes(cert_pem)
        (folder / "own.key").write_bytes(key_pem)
        ctx.load_cert_chain(folder / "own.crt", folder / "own.key")
    return ctx


def self_made() -> tuple[bytes, bytes]:
    """A self-signed Ed25519 certificate and its key (PEM), as a stranger could make them."""
    key = Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "me")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .sign(key, None)
    )
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    return cert.public_bytes(Encoding.PEM), pem


def nagle_off(sock: socket.socket) -> bool:
    """Whether `sock` sends small segments at once (TCP_NODELAY)."""
    return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


class TestMembers:
    async def test_both_ends_of_every_connection_send_at_once(self, served: Served) -> None:
        """With Nagle's algorithm on, the second of TLS 1.3's two session tickets waited for the
        client's delayed ACK: 40 ms before the first reply on every new connection."""
        client = member().door()
        conn = await client.open("127.0.0.1", served.server.port)
        try:
            assert nagle_off(conn.writer.get_extra_info("socket"))
            await conn.exchange(Who())
        finally:
            await conn.close()

        def blocking() -> bool:
            channel = client.open_blocking("127.0.0.1", served.server.port, 5)
            try:
                channel.exchange(Who())
                return nagle_off(channel.sock)
            finally:
                channel.close()

        assert await asyncio.to_thread(blocking)
        assert served.nodelay == [True, True]  # the accepted side of both

    async def test_two_members_talk_and_each_knows_the_others_key(self, served: Served) -> None:
        client = member()
        conn = await client.door().open("127.0.0.1", served.server.port)
        try:
            assert conn.identity == served.creds.key
            assert await conn.exchange(Who()) == You(client.key)
        finally:
            await conn.close()
        assert served.seen == [client.key]

    async def test_a_worker_thread_channel_knows_the_peer_and_reads_a_whole_body(
        self, served: Served
    ) -> None:
        client = member()

        def fetch() -> tuple[str, Message, bytes, list[int]]:
            channel = client.door().open_blocking("127.0.0.1", served.server.port, 5)
            try:
                reply = channel.exchange(Who(len(BODY)))
                body = bytearray(len(BODY))
                view = memoryview(body)
                sizes = [
                    channel.recv_into(view[i : i + (1 << 20)]) for i in range(0, len(BODY), 1 << 20)
                ]
                return channel.identity, reply, bytes(body), sizes
            finally:
                channel.close()

        identity, reply, body, sizes = await asyncio.to_thread(fetch)
        assert identity == served.creds.key and reply == You(client.key)
        assert body == BODY
        assert sizes == [1 << 20] * 3 + [17], "recv_into must fill its view across TLS records"

    async def test_a_cut_channel_hands_out_no_ciphertext(self, served: Served) -> None:
        """A download cut from another thread (the engine stopping, or the endgame) may still
        read what had arrived: plaintext of the body, then the end; never raw TLS records."""
        client = member()

        def cut_then_read() -> bytes:
            channel = client.door().open_blocking("127.0.0.1", served.server.port, 5)
            try:
                channel.exchange(Who(len(BODY)))
                time.sleep(0.3)  # records pile up in the socket buffer
                channel.shutdown()
                got = bytearray()
                view = memoryview(bytearray(1 << 20))
                while n := channel.recv_into(view):
                    got += view[:n]
                return bytes(got)
            finally:
                channel.close()

        got = await asyncio.to_thread(cut_then_read)
        assert got == BODY[: len(got)]

    def test_no_certificate_no_identity(self) -> None:
        assert peer_identity(None) == "" and peer_identity(b"") == ""


class TestStrangers:
    async def test_a_member_of_another_network_gets_no_reply(self, served: Served) -> None:
        stranger = member(NetworkKey.generate()).door()
        with pytest.raises(PeerUnreachable):
            await stranger.request("127.0.0.1", served.server.port, Who())
        with pytest.raises(PeerUnreachable):
            await asyncio.to_thread(stranger.open_blocking, "127.0.0.1", served.server.port, 5)
        assert served.seen == []

    async def test_a_plain_door_gets_no_reply(self, served: Served) -> None:
        with pytest.raises(PeerUnreachable):
            await Door.plain().request("127.0.0.1", served.server.port, Who(), timeout=3)
        assert served.seen == []

    async def test_a_frame_in_the_clear_gets_nothing_back(self, served: Served) -> None:
        got = await asyncio.to_thread(raw_exchange, served.server.port, encode(Who()))
        assert b"TEST_YOU" not in got and served.seen == []

    @pytest.mark.parametrize("shows_a_certificate", [True, False])
    async def test_tls_without_the_networks_certificate_gets_nothing_back(
        self, served: Served, shows_a_certificate: bool, tmp_path: Path
    ) -> None:
        ctx = any_server(tmp_path if shows_a_certificate else None)
        got = await asyncio.to_thread(raw_exchange, served.server.port, encode(Who()), ctx)
        assert b"TEST_YOU" not in got and served.seen == []

    async def test_a_silent_client_is_cut_after_the_handshake_timeout(self, served: Served) -> None:
        def silent() -> float:
            started = time.monotonic()
            with socket.create_connection(("127.0.0.1", served.server.port), timeout=10) as sock:
                assert sock.recv(1) == b""
            return time.monotonic() - started

        assert await asyncio.to_thread(silent) < 5

    async def test_refused_handshakes_log_nothing_above_debug(
        self, served: Served, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        stranger = member(NetworkKey.generate()).door()
        for _ in range(3):
            with pytest.raises(PeerUnreachable):
                await stranger.request("127.0.0.1", served.server.port, Who())
            await asyncio.to_thread(raw_exchange, served.server.port, encode(Who()))
        await asyncio.sleep(0.2)
        assert [r.getMessage() for r in caplog.records if r.levelno > logging.DEBUG] == []


class TestSilentPeers:
    async def test_a_request_to_a_member_gone_silent_fails_within_its_timeout(self) -> None:
        """A member whose handshake completed and who then answers nothing (a stopped process,
        a host gone quiet) costs a request its timeout: closing that connection gracefully
        waited for the silent peer's TLS close for up to the write timeout, 30 s, and held a
        heartbeat that long."""
        server_tls = member().tls()
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        done = threading.Event()

        def silent_member() -> None:
            sock, _addr = listener.accept()
            with server_tls.server.wrap_socket(sock, server_side=True):
                done.wait(10)  # the handshake is done: now it reads nothing, says nothing

        thread = threading.Thread(target=silent_member)
        thread.start()
        try:
            with pytest.raises(PeerUnreachable):
                await asyncio.wait_for(
                    member_door().request("127.0.0.1", port, Who(), timeout=0.3), 5
                )
        finally:
            done.set()
            thread.join()
            listener.close()

    async def test_a_knock_tells_a_listening_port_from_a_closed_one(self) -> None:
        door = member_door()
        with socket.create_server(("127.0.0.1", 0)) as listening:  # never accepts: busy
            port = listening.getsockname()[1]
            assert await door.knock("127.0.0.1", port, 1.0)
        assert not await door.knock("127.0.0.1", port, 1.0)
