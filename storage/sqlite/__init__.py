"""The embedded store: SQLite in WAL mode through aiosqlite.

One writer connection (writes are serialised by an asyncio lock and run as ``BEGIN
IMMEDIATE`` transactions) and a few reader connections, which WAL lets run beside it.
"""

from __future__ import annotations

from storage.base import Store
from storage.sqlite.imports import Imports
from storage.sqlite.users import Users


class SQLiteStore(Users, Imports, Store):
    """The store on one SQLite file, one part per thing it keeps: objects (with their spans and
    changes), calendars (which drop their objects' spans), users (who drop their calendars) and
    imports (which may make calendars), over one set of connections (``connection``)."""
