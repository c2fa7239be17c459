"""Errors of the sync layer, split by whose fault they are, with the wire codes they map to.

A peer's bad name or bad content is a `RemoteProtocolError` (from ring.errors), so the frame
server answers ERROR with the right code; local trouble (disk full, a file that changed under
us) is a plain `SyncError`, which the engine logs and retries next round.
"""

from __future__ import annotations

from ring.errors import BadRequest, RemoteProtocolError


class SyncError(Exception):
    """Root of the sync layer's own errors (local trouble, retried next round)."""


class UnsafePath(BadRequest):
    """The path names something outside the shared folder, or is not a plain relative path."""

    code = "bad_path"


class HashMismatch(RemoteProtocolError):
    """The bytes received do not have the SHA-256 the manifest promised."""

    code = "hash_mismatch"


class TransferAborted(SyncError):
    """The transfer stopped before every announced byte arrived."""


class Waiting(SyncError):
    """A need waits for records still to come (the owner's deletes in a folder it turned into a
    file, say); a later pass meets it."""
