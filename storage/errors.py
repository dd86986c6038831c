"""What the store says instead of doing an operation: its own errors, one per meaning.

None of them is a built-in ``LookupError`` or ``KeyError``: a mistyped column (``IndexError``
from ``sqlite3.Row``, ``KeyError`` from asyncpg) is a bug that must surface, never pass for a
missing row.
"""

from __future__ import annotations


class StoreError(Exception):
    """The store refused or could not do an operation; ``message`` says why."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


class Gone(StoreError):
    """A row the operation needs is not there (deleted, or never was)."""


class Conflict(StoreError):
    """A write that would break a uniqueness rule (username, e-mail, slug, UID); the message
    names the column, or is ``REPLACES_UID``: it would put an object with another UID where one
    is (RFC 4791 5.3.2.1)."""


REPLACES_UID = "replaces another UID"


class PreconditionFailed(StoreError):
    """An ETag condition (If-Match / If-None-Match, or a destination that must not exist) did
    not hold; nothing was written. ``step``: which write of several (``write_scheduled``)."""

    step: int | None = None


class StoreFull(StoreError):
    """A write failed because the disk is full; nothing of it was kept (reads go on)."""


class StoreUnavailable(StoreError):
    """The store could not do it now (connection lost, serialization failure, timeout, a
    node shutting down): nothing was written, and the same request may succeed if sent again."""

    #: seconds a client is told to wait before it tries again
    retry_after = 2


class CannotOpen(StoreError):
    """The store cannot be opened as it is set up (no such database, no answer, refused
    credentials, a folder that cannot be written, a schema newer than this server): the message
    says why and what to do."""
