"""The wire: what two nodes say to each other over TCP, and the one door every byte passes.

Theory of operation. Every TCP message is a frame: a 4-byte big-endian length, then that many
bytes of a msgpack map whose "t" field names the message type (`framing`, `codec`). File bodies
are not frames: a message that announces a body (FILE_DATA) states its length, and exactly that
many raw bytes follow on the stream. A node opens and accepts every connection through its one
`Door` (`door`), reads and writes frames on it as a `Connection` (event loop) or a `Channel`
(worker thread) (`streams`), and serves requests with a `FrameServer` that routes each message
type to a `Handler` (`server`). The door speaks mutual TLS 1.3 with the node's credentials
(`Tls`, `tls`), and every connection knows its peer's proven `identity` (and certificate
`issuer`); a `Gate` decides which of them the node still talks with. `sync/` uses this
package and `ring.errors`, nothing else of `ring/`.
"""

from ring.wire.codec import (
    Error,
    Message,
    Ok,
    decode_payload,
    encode,
    expect,
    from_dict,
    message,
    raise_for_error,
    to_dict,
)
from ring.wire.door import Door, Gate
from ring.wire.framing import HEADER, MAX_FRAME, FrameParser
from ring.wire.server import FrameServer, Handler
from ring.wire.streams import (
    DEFAULT_TIMEOUT,
    Channel,
    Connection,
    read_for_sending,
    read_message,
)
from ring.wire.tasks import Tasks, cancel_and_wait
from ring.wire.tls import HANDSHAKE_TIMEOUT, Tls, peer_identity, peer_issuer

__all__ = [
    "DEFAULT_TIMEOUT",
    "HANDSHAKE_TIMEOUT",
    "HEADER",
    "MAX_FRAME",
    "Channel",
    "Connection",
    "Door",
    "Error",
    "FrameParser",
    "FrameServer",
    "Gate",
    "Handler",
    "Message",
    "Ok",
    "Tasks",
    "Tls",
    "cancel_and_wait",
    "decode_payload",
    "encode",
    "expect",
    "from_dict",
    "message",
    "peer_identity",
    "peer_issuer",
    "read_for_sending",
    "raise_for_error",
    "read_message",
    "to_dict",
]
