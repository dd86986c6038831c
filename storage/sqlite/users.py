"""Users, their tokens and sessions."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from storage.model import (
    Conflict,
    User,
    now_iso,
)
from storage.sqlite.calendars import Calendars
from storage.sqlite.connection import (
    _USER_FIELDS,
    _inserted,
    _user,
)


class Users(Calendars):
    """Users with their tokens and sessions; deleting one deletes their calendars."""

    async def create_user(self, username: str, email: str | None, password_hash: str, is_admin: bool = False) -> User:
        now = now_iso()
        try:
            async with self._transaction() as db:
                cursor = await db.execute(
                    "INSERT INTO users (username, email, password_hash, is_admin, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (username, email, password_hash, int(is_admin), now, now),
                )
                user_id = _inserted(cursor)
        except sqlite3.IntegrityError as error:
            field = "email" if "email" in str(error) else "username"
            raise Conflict(field) from None
        user = await self.get_user(user_id)
        assert user is not None
        return user

    async def get_user(self, user_id: int) -> User | None:
        row = await self._one("SELECT * FROM users WHERE id = ?", (user_id,))
        return _user(row) if row else None

    async def find_user(self, login: str) -> User | None:
        row = await self._one(
            "SELECT * FROM users WHERE username = ? OR email = ? ORDER BY username = ? DESC LIMIT 1",
            (login, login, login),
        )
        return _user(row) if row else None

    async def list_users(self) -> list[User]:
        return [_user(row) for row in await self._all("SELECT * FROM users ORDER BY username")]

    async def update_user(self, user_id: int, **changes: Any) -> User | None:
        await self._update("users", user_id, changes, _USER_FIELDS, "prefs")
        return await self.get_user(user_id)

    async def delete_user(self, user_id: int) -> bool:
        async with self._transaction() as db:
            async with db.execute("SELECT id FROM calendars WHERE owner_id = ?", (user_id,)) as cursor:
                await self._forget_spans(db, [row[0] for row in await cursor.fetchall()])
            cursor = await db.execute("DELETE FROM users WHERE id = ?", (user_id,))
            return cursor.rowcount > 0

    # tokens ------------------------------------------------------------------------------

    async def add_token(self, user_id: int, token_hash: str) -> None:
        async with self._transaction() as db:
            await db.execute(
                "INSERT INTO tokens (user_id, token_hash, created_at) VALUES (?, ?, ?)",
                (user_id, token_hash, now_iso()),
            )

    async def user_for_token(self, token_hash: str) -> User | None:
        row = await self._one(
            "SELECT users.* FROM tokens JOIN users ON users.id = tokens.user_id WHERE token_hash = ?",
            (token_hash,),
        )
        return _user(row) if row else None

    async def delete_tokens(self, user_id: int) -> int:
        async with self._transaction() as db:
            cursor = await db.execute("DELETE FROM tokens WHERE user_id = ?", (user_id,))
            return cursor.rowcount

    # sessions ----------------------------------------------------------------------------

    async def add_session(self, user_id: int, kind: str, session_hash: str, expires_at: int) -> None:
        async with self._transaction() as db:
            await db.execute("DELETE FROM sessions WHERE expires_at < ?", (int(time.time()),))
            await db.execute(
                "INSERT INTO sessions (user_id, kind, session_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                (user_id, kind, session_hash, now_iso(), expires_at),
            )

    async def use_session(self, session_hash: str, kind: str, now: int, timeout: int) -> User | None:
        row = await self._one(
            "SELECT users.*, sessions.expires_at AS session_expires FROM sessions JOIN users "
            "ON users.id = sessions.user_id WHERE session_hash = ? AND kind = ? AND expires_at > ?",
            (session_hash, kind, now),
        )
        if row is None:
            return None
        if row is not None and row["session_expires"] - now > timeout - min(60, timeout // 10):
            return _user(row)  # used a moment ago: no need to write the new expiry yet
        async with self._transaction() as db:
            async with db.execute(
                "UPDATE sessions SET expires_at = ? WHERE session_hash = ? AND kind = ? AND expires_at > ? "
                "RETURNING user_id",
                (now + timeout, session_hash, kind, now),
            ) as cursor:
                row = await cursor.fetchone()
            if row is None:
                return None
            async with db.execute("SELECT * FROM users WHERE id = ?", (row[0],)) as cursor:
                user = await cursor.fetchone()
        return _user(user) if user else None

    async def delete_session(self, session_hash: str, kind: str) -> bool:
        async with self._transaction() as db:
            cursor = await db.execute("DELETE FROM sessions WHERE session_hash = ? AND kind = ?", (session_hash, kind))
            return cursor.rowcount > 0
