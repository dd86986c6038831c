"""What meetings keep (RFC 6638): users by their addresses, a meeting's copies in its
attendees' calendars, a change written with everything it delivers in one transaction, and
each user's scheduling inbox."""

from __future__ import annotations

from collections.abc import Sequence

from storage.errors import PreconditionFailed
from storage.model import CalendarObject, InboxItem, ObjectDelete, ObjectPut, User, now_iso
from storage.sql.calendars import Calendars
from storage.sql.objects import OBJECT_COLUMNS_OF_O
from storage.sql.records import calendar_object, chunks, marks, record, user


class Scheduling(Calendars):
    """Meetings' rows: see the module's docstring."""

    async def users_by_email(self, emails: Sequence[str]) -> dict[str, User]:
        found: dict[str, User] = {}
        for part in chunks(sorted({e.lower() for e in emails})):
            rows = await self.db.all(f"SELECT * FROM users WHERE lower(email) IN ({marks(len(part))})", part)
            found.update({(row["email"] or "").lower(): user(row) for row in rows})
        return found

    async def scheduled_copies(self, owner_ids: Sequence[int], uid: str) -> list[tuple[int, CalendarObject]]:
        found: list[tuple[int, CalendarObject]] = []
        for part in chunks(sorted(set(owner_ids))):
            rows = await self.db.all(
                f"SELECT {OBJECT_COLUMNS_OF_O}, c.owner_id FROM objects AS o JOIN calendars AS c "
                f"ON c.id = o.calendar_id WHERE o.uid = ? AND c.owner_id IN ({marks(len(part))}) ORDER BY o.id",
                (uid, *part),
            )
            found += [(row["owner_id"], calendar_object(row)) for row in rows]
        return found

    async def write_scheduled(
        self, steps: Sequence[ObjectPut | ObjectDelete], inbox: Sequence[InboxItem] = (), expire_before: str = ""
    ) -> list[tuple[CalendarObject | None, bool]]:
        # calendars are locked in the order of their ids (every writer of several takes them so),
        # so that two meetings written at once between the same users wait instead of deadlocking
        order = sorted(range(len(steps)), key=lambda i: steps[i].calendar_id)
        results: list[tuple[CalendarObject | None, bool]] = [(None, False)] * len(steps)
        async with self.db.transaction() as tx:
            for index in order:
                step = steps[index]
                try:
                    if isinstance(step, ObjectPut):
                        results[index] = await self._put(
                            tx, step.calendar_id, step.write, if_etag=step.if_etag, create_only=step.create_only
                        )
                    else:
                        deleted = await self._delete(tx, step.calendar_id, step.href, step.if_etag, step.by)
                        results[index] = (None, deleted)
                except PreconditionFailed as failed:
                    failed.step = index
                    raise
            now = now_iso()
            for user_id in sorted({item.user_id for item in inbox}):
                await tx.run(
                    "DELETE FROM schedule_inbox WHERE user_id = ? AND created_at < ?", (user_id, expire_before)
                )
            if inbox:
                await tx.many(
                    "INSERT INTO schedule_inbox (user_id, name, uid, method, ical, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [(item.user_id, item.name, item.uid, item.method, item.ical, now) for item in inbox],
                )
        return results

    async def inbox(self, user_id: int, since: str = "") -> list[InboxItem]:
        rows = await self.db.all(
            "SELECT * FROM schedule_inbox WHERE user_id = ? AND created_at >= ? ORDER BY id", (user_id, since)
        )
        return [record(InboxItem, row) for row in rows]

    async def inbox_item(self, user_id: int, name: str, since: str = "") -> InboxItem | None:
        row = await self.db.one(
            "SELECT * FROM schedule_inbox WHERE user_id = ? AND name = ? AND created_at >= ?", (user_id, name, since)
        )
        return record(InboxItem, row) if row else None

    async def delete_inbox_item(self, user_id: int, name: str) -> bool:
        async with self.db.transaction() as tx:
            return await tx.run("DELETE FROM schedule_inbox WHERE user_id = ? AND name = ?", (user_id, name)) > 0
