"""Errors of the wire and the ring, split by whose fault they are (after h11's split).

A `LocalProtocolError` means this node tried to break the protocol (a bug here); a
`RemoteProtocolError` means the peer did (bad bytes, bad fields). Each remote error carries
the wire code that goes into the ERROR reply, so the mapping lives in one place.
"""

from __future__ import annotations

REASON_MAX = 500
"""Longest `reason` an ERROR reply carries."""


class RingError(Exception):
    """Root of every error raised by the wire and the ring."""


class LocalProtocolError(RingError):
    """This node tried to send something the protocol does not allow."""


class RemoteProtocolError(RingError):
    """The peer sent something the protocol does not allow."""

    code = "malformed"


class FrameTooLarge(RemoteProtocolError):
    """The peer announced a frame longer than the size cap."""

    code = "too_large"


class FrameMemoryFull(RemoteProtocolError):
    """The node holds as many bytes of partial frames as it may, and this peer's frame is the
    biggest of them: it is dropped (`ring/wire/budget.py`)."""

    code = "busy"


class MalformedFrame(RemoteProtocolError):
    """The peer sent bytes that are not a msgpack map with a known shape."""

    code = "malformed"


class UnknownMessage(RemoteProtocolError):
    """The peer sent a message type this node does not know."""

    code = "unknown_type"


class BadRequest(RemoteProtocolError):
    """The peer's request is well formed but cannot be honoured (bad name, bad range)."""

    code = "bad_request"


class Forbidden(RemoteProtocolError):
    """The peer, a member, asked for what only another member may ask: a LEAVE for someone else,
    a view from a member that does not lead the ring, a JOIN under another key."""

    code = "forbidden"


class TruncatedFrame(RemoteProtocolError):
    """The connection closed in the middle of a frame."""

    code = "truncated"


class ConnectionClosed(RingError):
    """The peer closed the connection cleanly between two frames."""


class PeerUnreachable(RingError):
    """The peer did not answer in time, refused the connection, or vanished mid-request."""


class RemoteError(RingError):
    """The peer answered with an ERROR message."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class Refused(RingError):
    """A handler declines a well-formed request; the peer gets ERROR(code) and may go on."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


def reply_for(exc: BaseException, request_type: str) -> tuple[str, str, bool]:
    """The ERROR reply to a request that raised `exc`: (code, reason, keep the connection open).

    The one mapping from exceptions to wire codes (the client side raises `RemoteError` with
    the code): the peer's protocol errors carry their own code and close the connection; a
    handler's refusal keeps it open; anything else is this node's bug ("internal") and closes.
    """
    if isinstance(exc, RemoteProtocolError):
        return exc.code, str(exc)[:REASON_MAX], False
    if isinstance(exc, Refused):
        return exc.code, exc.reason[:REASON_MAX], True
    return "internal", f"{request_type[:40]} failed on this node", False
