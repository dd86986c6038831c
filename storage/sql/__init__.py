"""The store in SQL, written once for every database (``database.Database`` says what differs)."""

from __future__ import annotations

from collections.abc import Callable

from storage.base import Store
from storage.sql.database import Database
from storage.sql.grants import Grants
from storage.sql.imports import Imports
from storage.sql.scheduling import Scheduling
from storage.sql.users import Users


class SQLStore(Users, Imports, Grants, Scheduling, Store):
    """The store on one SQL database, one part per thing it keeps: objects (with their spans and
    changes), calendars (which drop their objects' spans), users (who drop their calendars),
    imports (which may make calendars) and meetings (inboxes, changes delivered together)."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)

    async def open(self) -> None:
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()

    async def free_bytes(self) -> int | None:
        return await self.db.free_bytes()

    async def readiness(self) -> str | None:
        return await self.db.readiness()

    def observe(self, timings: Callable[[str, float], None]) -> None:
        self.db.observe = timings
