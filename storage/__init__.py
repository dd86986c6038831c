"""Where Almanac keeps everything: a ``Store`` (``base``) on SQLite or PostgreSQL, chosen by URL."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from storage.base import Store

SCHEMES = ("sqlite", "postgresql", "postgres")


def sqlite_url(path: str | Path) -> str:
    """The store URL of a SQLite file (``sqlite:///relative`` or ``sqlite:////absolute``)."""
    return f"sqlite:///{path}"


def store_for(url: str, *, readers: int = 2, pool_size: int = 10, statement_timeout: float = 30.0) -> Store:
    """The store a URL names: ``sqlite:///path/to/file.sqlite3`` or ``postgresql://user@host/db``
    (any libpq URL; query parameters other than libpq's are server settings)."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from storage.sqlite import SQLiteStore

        path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else ""
        if not path:
            raise ValueError(f"a SQLite store URL is sqlite:///path/to/file, not {url!r}")
        return SQLiteStore(Path(path).expanduser(), readers, statement_timeout)
    if scheme in ("postgresql", "postgres"):
        from storage.postgres import PostgresStore

        return PostgresStore(url, pool_size, statement_timeout)
    raise ValueError(f"a store URL starts with sqlite:/// or postgresql://, not {url!r}")


def safe_url(url: str) -> str:
    """A store URL without its password, for logs and messages."""
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)
