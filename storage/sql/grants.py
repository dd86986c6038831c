"""Grants: who besides its owner may use a calendar, and how; and public feeds."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from storage.model import Calendar, Feed, Grant, GrantChange, User, now_iso
from storage.sql.calendars import CALENDAR_FIELDS, Calendars
from storage.sql.database import Row
from storage.sql.records import calendar, marks, present, record, user

#: a grant's columns, renamed so as not to hide its calendar's (``c.*``) in the same row
_GRANT_FIELDS = ("id", "calendar_id", "grantee_id", "level", "state", "granted_by", "created_at", "updated_at",
                 "slug", "props", "follows_group")  # fmt: skip
_GRANT = ", ".join(f"g.{name} AS g_{name}" for name in _GRANT_FIELDS)


def _grant(row: Row) -> Grant:
    return record(Grant, row, props=json.loads(row["props"]), follows_group=bool(row["follows_group"]))


def _grant_at(row: Row) -> Grant:
    """The grant in a row that holds ``_GRANT``."""
    values: dict[str, Any] = {name: row[f"g_{name}"] for name in _GRANT_FIELDS}
    return Grant(**{**values, "props": json.loads(values["props"]), "follows_group": bool(values["follows_group"])})


def _feed(row: Row) -> Feed:
    return Feed(row["calendar_id"], bool(row["busy_only"]), row["created_at"], row["token"])


class Grants(Calendars):
    """A calendar's grants and feed; they go with their calendar or grantee (ON DELETE CASCADE)."""

    async def put_grant(
        self,
        calendar_id: int,
        grantee_id: int | None,
        level: str,
        state: str,
        granted_by: int | None,
        slug: str | None = None,
    ) -> Grant:
        change = GrantChange(grantee_id, level, state, granted_by, slug=slug)
        return (await self.put_grants(calendar_id, [change]))[0]

    async def put_grants(
        self, calendar_id: int, changes: Sequence[GrantChange], calendar_changes: dict[str, Any] | None = None
    ) -> list[Grant]:
        now = now_iso()
        made = []
        async with self.db.transaction() as tx:
            # the calendar's row is held: two grants made at once to one grantee are one
            await tx.one("SELECT id FROM calendars WHERE id = ?" + self.db.for_update, (calendar_id,))
            if calendar_changes:
                await self._update_in(tx, "calendars", calendar_id, calendar_changes, CALENDAR_FIELDS, "props")
            for change in changes:
                grantee_id = change.grantee_id
                who = "grantee_id IS NULL" if grantee_id is None else "grantee_id = ?"
                found = await tx.one(
                    f"SELECT id FROM grants WHERE calendar_id = ? AND {who}",
                    (calendar_id,) if grantee_id is None else (calendar_id, grantee_id),
                )
                values = (change.level, change.state, change.granted_by, int(change.follows_group))
                if found is None:
                    slug = await self._free_slug(tx, grantee_id, change.slug or "shared") if grantee_id else None
                    grant_id = await tx.insert(
                        "INSERT INTO grants (calendar_id, grantee_id, level, state, granted_by, follows_group, "
                        "created_at, updated_at, slug, props) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (calendar_id, grantee_id, *values, now, now, slug, json.dumps(change.props or {})),
                    )
                else:
                    grant_id = found[0]
                    props = ", props = ?" if change.props is not None else ""
                    await tx.run(
                        f"UPDATE grants SET level = ?, state = ?, granted_by = ?, follows_group = ?, updated_at = ?"
                        f"{props} WHERE id = ?",
                        (*values, now, *([json.dumps(change.props)] if change.props is not None else []), grant_id),
                    )
                made.append(_grant(present(await tx.one("SELECT * FROM grants WHERE id = ?", (grant_id,)))))
        return made

    async def set_grant_state(self, grant_id: int, state: str) -> Grant | None:
        async with self.db.transaction() as tx:
            await tx.run("UPDATE grants SET state = ?, updated_at = ? WHERE id = ?", (state, now_iso(), grant_id))
            row = await tx.one("SELECT * FROM grants WHERE id = ?", (grant_id,))
        return _grant(row) if row else None

    async def set_grant_props(self, grant_id: int, props: dict[str, Any]) -> Grant | None:
        async with self.db.transaction() as tx:
            await tx.run(
                "UPDATE grants SET props = ?, updated_at = ? WHERE id = ?", (json.dumps(props), now_iso(), grant_id)
            )
            row = await tx.one("SELECT * FROM grants WHERE id = ?", (grant_id,))
        return _grant(row) if row else None

    async def get_grant(self, grant_id: int) -> Grant | None:
        row = await self.db.one("SELECT * FROM grants WHERE id = ?", (grant_id,))
        return _grant(row) if row else None

    async def grants_of(self, calendar_id: int) -> list[Grant]:
        rows = await self.db.all("SELECT * FROM grants WHERE calendar_id = ? ORDER BY id", (calendar_id,))
        return [_grant(row) for row in rows]

    async def grants_to(self, user_id: int, states: Sequence[str]) -> list[tuple[Grant, Calendar]]:
        rows = await self.db.all(
            f"SELECT {_GRANT}, c.*, (SELECT COUNT(*) FROM objects WHERE calendar_id = c.id) AS object_count "
            f"FROM grants AS g JOIN calendars AS c ON c.id = g.calendar_id "
            f"WHERE g.grantee_id = ? AND g.state IN ({marks(len(states))}) ORDER BY g.id",
            (user_id, *states),
        )
        return [(_grant_at(row), calendar(row)) for row in rows]

    async def shared_calendar(self, user_id: int, slug: str) -> tuple[Calendar, Grant] | None:
        row = await self.db.one(
            f"SELECT c.*, {_GRANT} FROM grants AS g JOIN calendars AS c ON c.id = g.calendar_id "
            "WHERE g.grantee_id = ? AND g.slug = ? AND g.state = 'active'",
            (user_id, slug),
        )
        return (calendar(row), _grant_at(row)) if row else None

    async def grants_on(self, calendar_id: int, user_id: int) -> list[Grant]:
        rows = await self.db.all(
            "SELECT * FROM grants WHERE calendar_id = ? AND (grantee_id = ? OR grantee_id IS NULL) ORDER BY id",
            (calendar_id, user_id),
        )
        return [_grant(row) for row in rows]

    async def related_users(self, user_id: int, states: Sequence[str]) -> list[User]:
        rows = await self.db.all(
            "SELECT * FROM users WHERE id IN ("
            f"SELECT c.owner_id FROM grants AS g JOIN calendars AS c ON c.id = g.calendar_id "
            f"WHERE g.grantee_id = ? AND g.state IN ({marks(len(states))}) UNION "
            f"SELECT g.grantee_id FROM grants AS g JOIN calendars AS c ON c.id = g.calendar_id "
            f"WHERE c.owner_id = ? AND g.state IN ({marks(len(states))})) ORDER BY username",
            (user_id, *states, user_id, *states),
        )
        return [user(row) for row in rows]

    # public feeds ------------------------------------------------------------------------

    async def set_feed(
        self, calendar_id: int, token_hash: str | None, busy_only: bool = False, token: str | None = None
    ) -> Feed | None:
        async with self.db.transaction() as tx:
            await tx.run("DELETE FROM feeds WHERE calendar_id = ?", (calendar_id,))
            if token_hash is None:
                return None
            await tx.run(
                "INSERT INTO feeds (calendar_id, token_hash, busy_only, created_at, token) VALUES (?, ?, ?, ?, ?)",
                (calendar_id, token_hash, int(busy_only), now_iso(), token),
            )
            return _feed(present(await tx.one("SELECT * FROM feeds WHERE calendar_id = ?", (calendar_id,))))

    async def feed_of(self, calendar_id: int) -> Feed | None:
        row = await self.db.one("SELECT * FROM feeds WHERE calendar_id = ?", (calendar_id,))
        return _feed(row) if row else None

    async def feed_calendar(self, token_hash: str) -> tuple[Feed, Calendar] | None:
        row = await self.db.one(
            "SELECT f.calendar_id AS f_calendar, f.busy_only AS f_busy, f.created_at AS f_created, c.* "
            "FROM feeds AS f JOIN calendars AS c ON c.id = f.calendar_id WHERE f.token_hash = ?",
            (token_hash,),
        )
        if row is None:
            return None
        return Feed(row["f_calendar"], bool(row["f_busy"]), row["f_created"]), calendar(row)
