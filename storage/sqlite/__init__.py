"""The embedded store: SQLite in WAL mode through aiosqlite (see ``database``)."""

from __future__ import annotations

from pathlib import Path

from storage.sql import SQLStore
from storage.sqlite.database import SQLiteDatabase


class SQLiteStore(SQLStore):
    """The store on one SQLite file."""

    db: SQLiteDatabase

    def __init__(self, path: str | Path, readers: int = 2, statement_timeout: float = 30.0) -> None:
        super().__init__(SQLiteDatabase(path, readers, statement_timeout))
