"""Users, their tokens and sessions."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from storage.errors import Conflict
from storage.model import User, now_iso
from storage.sql.calendars import Calendars
from storage.sql.database import Duplicate
from storage.sql.records import USER_FIELDS, duplicated, marks, user


class Users(Calendars):
    """Users with their tokens and sessions; deleting one deletes their calendars."""

    async def create_user(
        self, username: str, email: str | None, password_hash: str, is_admin: bool = False, **more: str | None
    ) -> User:
        now = now_iso()
        extra = {k: v for k, v in more.items() if k in ("source", "display_name")}
        columns = ", ".join(["username", "email", "password_hash", "is_admin", "created_at", "updated_at", *extra])
        try:
            async with self.db.transaction() as tx:
                user_id = await tx.insert(
                    f"INSERT INTO users ({columns}) VALUES ({marks(6 + len(extra))})",
                    (username, email, password_hash, int(is_admin), now, now, *extra.values()),
                )
        except Duplicate as error:
            raise Conflict(duplicated(error, "email", "username")) from None
        made = await self.get_user(user_id)
        assert made is not None
        return made

    async def get_user(self, user_id: int) -> User | None:
        row = await self.db.one("SELECT * FROM users WHERE id = ?", (user_id,))
        return user(row) if row else None

    async def find_user(self, login: str) -> User | None:
        row = await self.db.one(
            "SELECT * FROM users WHERE username = ? OR email = ? ORDER BY username = ? DESC LIMIT 1",
            (login, login, login),
        )
        return user(row) if row else None

    async def list_users(self) -> list[User]:
        return [user(row) for row in await self.db.all("SELECT * FROM users ORDER BY username")]

    async def update_user(self, user_id: int, **changes: Any) -> User | None:
        await self._update("users", user_id, changes, USER_FIELDS, "prefs")
        return await self.get_user(user_id)

    async def delete_user(self, user_id: int) -> bool:
        async with self.db.transaction() as tx:
            calendars = await tx.all("SELECT id FROM calendars WHERE owner_id = ?", (user_id,))
            await self.db.forget_spans(tx, [row[0] for row in calendars])
            return await tx.run("DELETE FROM users WHERE id = ?", (user_id,)) > 0

    # failed sign-ins ------------------------------------------------------------------------

    async def add_login_failure(self, keys: Sequence[str], at: float, forget_before: float) -> None:
        async with self.db.transaction() as tx:
            await tx.run("DELETE FROM login_failures WHERE at < ?", (forget_before,))
            await tx.many("INSERT INTO login_failures (key, at) VALUES (?, ?)", [(key, at) for key in keys])

    async def login_failures(self, keys: Sequence[str], since: float) -> dict[str, int]:
        rows = await self.db.all(
            f"SELECT key, COUNT(*) FROM login_failures WHERE key IN ({marks(len(keys))}) AND at >= ? GROUP BY key",
            (*keys, since),
        )
        return {key: 0 for key in keys} | {row[0]: int(row[1]) for row in rows}

    async def take_turn(self, key: str, now: float, spacing: float, latest: float) -> float | None:
        async with self.db.transaction() as tx:
            row = await tx.one("SELECT turn FROM login_turns WHERE key = ?" + self.db.for_update, (key,))
            turn = max(now, row[0] if row else now) + spacing
            if turn > latest:
                return None
            await tx.run(
                "INSERT INTO login_turns (key, turn) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET turn = excluded.turn",
                (key, turn),
            )
            await tx.run("DELETE FROM login_turns WHERE turn < ?", (now - 3600,))
            return turn

    async def clear_login_failures(self, key: str) -> None:
        async with self.db.transaction() as tx:
            await tx.run("DELETE FROM login_failures WHERE key = ?", (key,))
            await tx.run("DELETE FROM login_turns WHERE key = ?", (key,))

    # tokens ------------------------------------------------------------------------------

    async def add_token(self, user_id: int, token_hash: str) -> None:
        async with self.db.transaction() as tx:
            await tx.run(
                "INSERT INTO tokens (user_id, token_hash, created_at) VALUES (?, ?, ?)",
                (user_id, token_hash, now_iso()),
            )

    async def user_for_token(self, token_hash: str) -> User | None:
        row = await self.db.one(
            "SELECT users.* FROM tokens JOIN users ON users.id = tokens.user_id WHERE token_hash = ?",
            (token_hash,),
        )
        return user(row) if row else None

    async def delete_tokens(self, user_id: int, token_id: int | None = None) -> int:
        async with self.db.transaction() as tx:
            if token_id is None:
                return await tx.run("DELETE FROM tokens WHERE user_id = ?", (user_id,))
            return await tx.run("DELETE FROM tokens WHERE user_id = ? AND id = ?", (user_id, token_id))

    async def add_signup_invitation(self, code_hash: str, email: str | None, expires_at: int) -> None:
        async with self.db.transaction() as tx:
            await tx.run(
                "INSERT INTO signup_invitations (code_hash, email, created_at, expires_at) VALUES (?, ?, ?, ?)",
                (code_hash, email, now_iso(), expires_at),
            )

    async def claim_signup_invitation(self, code_hash: str, now: int) -> tuple[bool, str | None]:
        async with self.db.transaction() as tx:
            claimed = await tx.run(
                "UPDATE signup_invitations SET used_by = 0 WHERE code_hash = ? AND used_by IS NULL AND expires_at > ?",
                (code_hash, now),
            )
            row = await tx.one("SELECT email FROM signup_invitations WHERE code_hash = ?", (code_hash,))
        return claimed == 1, row[0] if row and claimed == 1 else None

    async def settle_signup_invitation(self, code_hash: str, user_id: int | None) -> None:
        async with self.db.transaction() as tx:
            await tx.run("UPDATE signup_invitations SET used_by = ? WHERE code_hash = ?", (user_id, code_hash))

    async def list_tokens(self, user_id: int) -> list[tuple[int, str]]:
        rows = await self.db.all("SELECT id, created_at FROM tokens WHERE user_id = ? ORDER BY id", (user_id,))
        return [(row[0], row[1]) for row in rows]

    # sessions ----------------------------------------------------------------------------

    async def add_session(self, user_id: int, kind: str, session_hash: str, expires_at: int) -> None:
        async with self.db.transaction() as tx:
            await tx.run("DELETE FROM sessions WHERE expires_at < ?", (int(time.time()),))
            await tx.run(
                "INSERT INTO sessions (user_id, kind, session_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                (user_id, kind, session_hash, now_iso(), expires_at),
            )

    async def use_session(self, session_hash: str, kind: str, now: int, timeout: int) -> User | None:
        row = await self.db.one(
            "SELECT users.*, sessions.expires_at AS session_expires FROM sessions JOIN users "
            "ON users.id = sessions.user_id WHERE session_hash = ? AND kind = ? AND expires_at > ?",
            (session_hash, kind, now),
        )
        if row is None:
            return None
        if row["session_expires"] - now > timeout - min(60, timeout // 10):
            return user(row)  # used a moment ago: no need to write the new expiry yet
        async with self.db.transaction() as tx:
            used = await tx.one(
                "UPDATE sessions SET expires_at = ? WHERE session_hash = ? AND kind = ? AND expires_at > ? "
                "RETURNING user_id",
                (now + timeout, session_hash, kind, now),
            )
            if used is None:
                return None
            found = await tx.one("SELECT * FROM users WHERE id = ?", (used[0],))
        return user(found) if found else None

    async def delete_session(self, session_hash: str, kind: str) -> bool:
        async with self.db.transaction() as tx:
            return await tx.run("DELETE FROM sessions WHERE session_hash = ? AND kind = ?", (session_hash, kind)) > 0
