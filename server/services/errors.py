"""Errors the services raise; each door turns them into its own language.

An ETag condition that did not hold is the store's own ``PreconditionFailed``, passed on as it
is (its message says which).
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from storage.errors import PreconditionFailed, StoreFull

__all__ = [
    "BadEncoding", "Forbidden", "Invalid", "NameTaken", "NotFound", "PreconditionFailed", "ServiceError",
    "TooLarge", "disk_space",
]  # fmt: skip


class ServiceError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(ServiceError):
    """No such thing, or not one the user may see (the two are never told apart); ``kind``
    names what was looked for (``calendar``, ``object``, ...) so a door can say it its way."""

    def __init__(self, message: str, kind: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind


class Invalid(ServiceError):
    """Parameters or a file that cannot be accepted; ``errors`` says where, ``code`` what kind
    (``invalid``, ``missing_field``, ``invalid_file``, ... as the imports resource names them)."""

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        code: str = "invalid",
    ) -> None:
        super().__init__(message)
        self.field = field
        self.errors = errors or []
        self.code = code


class BadEncoding(ServiceError):
    """The file has bytes that are not valid text."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


class TooLarge(ServiceError):
    """Over a configured size limit."""


class Forbidden(ServiceError):
    """The user may see this but not change it."""


class NameTaken(ServiceError):
    """The name (a calendar's slug, an object's UID) is taken; ``held_by`` is the href of the
    object that holds a UID, where one is known; ``replacing``: the write would put another UID
    at ``held_by`` (an object keeps its UID)."""

    def __init__(self, message: str, held_by: str | None = None, *, replacing: bool = False) -> None:
        super().__init__(message)
        self.held_by = held_by
        self.replacing = replacing


@contextmanager
def disk_space() -> Iterator[None]:
    """Turn "no space left on device" from spooling an upload into StoreFull: every door
    answers a full disk one way (CalDAV and REST 507, WCAP its write errno)."""
    try:
        yield
    except OSError as error:
        if error.errno == errno.ENOSPC:
            raise StoreFull("the server's disk is full") from None
        raise
