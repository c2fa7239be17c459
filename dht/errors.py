"""Errors of the holder index, split by whose fault they are (after h11's split).

`LookupFailed` is what callers of the index meet: the network could not be asked. A peer's
malformed record is `BadRecord`; it is logged and dropped inside the index, never raised to the
caller, because one broken peer must not hide the answers of the others.
"""

from __future__ import annotations


class DhtError(Exception):
    """Root of every error raised by the holder index."""


class LookupFailed(DhtError):
    """No DHT peer answered: the holder index could not be asked."""


class InvalidKey(DhtError, ValueError):
    """A content hash must be 64 hexadecimal digits (a SHA-256)."""


class BadRecord(DhtError):
    """A peer sent a holder record that does not have the documented shape."""
