"""The shared store: PostgreSQL through asyncpg (see ``database``)."""

from __future__ import annotations

from storage.postgres.database import PostgresDatabase
from storage.sql import SQLStore


class PostgresStore(SQLStore):
    """The store on one PostgreSQL database, shared by every process and node."""

    db: PostgresDatabase

    def __init__(self, url: str, pool_size: int = 10, statement_timeout: float = 30.0) -> None:
        super().__init__(PostgresDatabase(url, pool_size, statement_timeout))
