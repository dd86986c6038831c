"""What meetings keep (RFC 6638): users by their addresses, a meeting's copies in its
attendees' calendars, a change written with everything it delivers in one transaction, and
each user's scheduling inbox."""

from __future__ import annotations

from collections.abc import Sequence

from storage.errors import REPLACES_UID, Conflict, Gone, PreconditionFailed
from storage.model import Calendar, CalendarObject, InboxItem, Mail, ObjectDelete, ObjectPut, User, now_iso
from storage.sql.calendars import Calendars
from storage.sql.database import HEAVY_SPANS, Row, Tx
from storage.sql.objects import CHANGED, OBJECT_COLUMNS_OF_O, Placed
from storage.sql.records import OBJECT_COLUMNS, calendar, calendar_object, chunks, marks, present, record, user

#: a meeting's writes past this many objects, inbox items and messages are heavy work
HEAVY_STEPS = 10


class Scheduling(Calendars):
    """Meetings' rows: see the module's docstring."""

    async def users_by_email(self, emails: Sequence[str]) -> dict[str, User]:
        found: dict[str, User] = {}
        for part in chunks(sorted({e.lower() for e in emails})):
            rows = await self.db.all(f"SELECT * FROM users WHERE lower(email) IN ({marks(len(part))})", part)
            found.update({(row["email"] or "").lower(): user(row) for row in rows})
        return found

    async def default_calendars(self, owner_ids: Sequence[int]) -> dict[int, Calendar]:
        found: dict[int, Calendar] = {}
        for part in chunks(sorted(set(owner_ids))):
            rows = await self.db.all(
                f"SELECT * FROM calendars WHERE is_default = 1 AND owner_id IN ({marks(len(part))})", part
            )
            found.update({row["owner_id"]: calendar(row) for row in rows})
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
        self,
        steps: Sequence[ObjectPut | ObjectDelete],
        inbox: Sequence[InboxItem] = (),
        expire_before: str = "",
        mail: Sequence[Mail] = (),
    ) -> list[tuple[CalendarObject | None, bool]]:
        puts = [(index, step) for index, step in enumerate(steps) if isinstance(step, ObjectPut)]
        results: list[tuple[CalendarObject | None, bool]] = [(None, False)] * len(steps)

        async def written(tx: Tx) -> None:
            revisions = await self._bump_all(tx, sorted({step.calendar_id for _, step in puts}))
            found = await self._rows_at(tx, [step for _, step in puts])
            placed = []
            for index, step in puts:
                write, calendar_id = step.write, step.calendar_id
                current = found.get((calendar_id, "href", write.href))
                holder = found.get((calendar_id, "uid", write.uid))
                try:
                    if current is not None and current["uid"] != write.uid:
                        raise Conflict(REPLACES_UID)
                    if holder is not None and holder["href"] != write.href:
                        raise Conflict("uid")
                    if step.create_only and current is not None:
                        raise PreconditionFailed("the destination exists")
                    if step.if_etag is not None and (current is None or step.if_etag not in ("*", current["etag"])):
                        raise PreconditionFailed(CHANGED)
                except PreconditionFailed as failed:
                    failed.step = index
                    raise
                placed.append(Placed(calendar_id, write, write.href, current))
                results[index] = (None, current is None)
            ids = await self._write_objects(tx, placed)
            changes = [(p.calendar_id, revisions[p.calendar_id], p.href, p.write.uid, False) for p in placed]
            if changes:
                await self._record_many(tx, changes, placed[0].write.by)
            for index, removal in enumerate(steps):
                if isinstance(removal, ObjectDelete):
                    try:
                        deleted = await self._delete(tx, removal.calendar_id, removal.href, removal.if_etag, removal.by)
                    except PreconditionFailed as failed:
                        failed.step = index
                        raise
                    results[index] = (None, deleted)
            if puts and puts[0][0] == 0:  # the first step's object, as written
                first = puts[0][1]
                row = await tx.one(
                    f"SELECT {OBJECT_COLUMNS} FROM objects WHERE id = ?", (ids[first.calendar_id, first.write.href],)
                )
                results[0] = (calendar_object(present(row)), results[0][1])
            await self._deliver(tx, inbox, expire_before)
            if mail:
                await tx.many(
                    "INSERT INTO mail_queue (organizer_id, dedupe, recipient, message, created_at) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (dedupe) DO NOTHING",
                    [(m.organizer_id, m.dedupe, m.recipient, m.message, now_iso()) for m in mail],
                )

        # a meeting of many attendees, or a long series, writes many rows: heavy work (Database.run)
        spans = sum(len(step.write.spans) for _, step in puts)
        await self.db.run(written, heavy=len(steps) + len(inbox) + len(mail) > HEAVY_STEPS or spans > HEAVY_SPANS)
        return results

    async def _bump_all(self, tx: Tx, calendar_ids: Sequence[int]) -> dict[int, int]:
        """The next sync revision of each calendar, their rows locked in the order of their ids
        (every writer of several takes them so: two meetings between the same users wait
        instead of deadlocking)."""
        if not calendar_ids:
            return {}
        marked = marks(len(calendar_ids))
        if self.db.for_update:  # (SQLite has one writer at a time: nothing to order)
            await tx.all(
                f"SELECT id FROM calendars WHERE id IN ({marked}) ORDER BY id{self.db.for_update}", calendar_ids
            )
        rows = await tx.all(
            f"UPDATE calendars SET sync_revision = sync_revision + 1, updated_at = ? WHERE id IN ({marked}) "
            "RETURNING id, sync_revision",
            (now_iso(), *calendar_ids),
        )
        revisions = {row[0]: int(row[1]) for row in rows}
        if len(revisions) != len(calendar_ids):
            raise Gone("a calendar of the meeting does not exist")
        return revisions

    async def _rows_at(self, tx: Tx, puts: Sequence[ObjectPut]) -> dict[tuple[int, str, str], Row]:
        """The objects the puts would replace or collide with, by (calendar, "href" or "uid",
        value): one query for all (a superset, kept by what each put names)."""
        found: dict[tuple[int, str, str], Row] = {}
        wanted = {(p.calendar_id, "href", p.write.href) for p in puts} | {
            (p.calendar_id, "uid", p.write.uid) for p in puts
        }
        calendars = sorted({p.calendar_id for p in puts})
        for part in chunks(puts, 100):
            names = sorted({p.write.href for p in part} | {p.write.uid for p in part})
            rows = await tx.all(
                f"SELECT id, calendar_id, href, uid, etag, span_count FROM objects WHERE calendar_id IN "
                f"({marks(len(calendars))}) AND (href IN ({marks(len(names))}) OR uid IN ({marks(len(names))}))",
                (*calendars, *names, *names),
            )
            for row in rows:
                for key in ((row["calendar_id"], "href", row["href"]), (row["calendar_id"], "uid", row["uid"])):
                    if key in wanted:
                        found[key] = row
        return found

    async def _deliver(self, tx: Tx, inbox: Sequence[InboxItem], expire_before: str) -> None:
        """Inbox items delivered, after their recipients' expired ones are dropped."""
        recipients = sorted({item.user_id for item in inbox})
        for part in chunks(recipients):
            await tx.run(
                f"DELETE FROM schedule_inbox WHERE user_id IN ({marks(len(part))}) AND created_at < ?",
                (*part, expire_before),
            )
        if inbox:
            now = now_iso()
            await tx.many(
                "INSERT INTO schedule_inbox (user_id, name, uid, method, ical, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                [(item.user_id, item.name, item.uid, item.method, item.ical, now) for item in inbox],
            )

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

    async def imip_token(self, organizer_id: int, attendee: str, uid: str, fresh: str) -> str:
        async with self.db.transaction() as tx:
            await tx.run(
                "INSERT INTO imip_tokens (token, organizer_id, attendee, uid) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (organizer_id, attendee, uid) DO NOTHING",
                (fresh, organizer_id, attendee, uid),
            )
            row = await tx.one(
                "SELECT token FROM imip_tokens WHERE organizer_id = ? AND attendee = ? AND uid = ?",
                (organizer_id, attendee, uid),
            )
        return str(present(row)[0])

    async def claim_mail(self, runner: str, now: int, lease_until: int) -> Mail | None:
        async with self.db.transaction() as tx:
            row = await tx.one(
                "SELECT id FROM mail_queue WHERE state = 'queued' AND next_attempt <= ? "
                "AND (lease_until IS NULL OR lease_until < ?) ORDER BY id LIMIT 1" + self.db.skip_locked,
                (now, now),
            )
            if row is None:
                return None
            await tx.run(
                "UPDATE mail_queue SET runner = ?, lease_until = ?, attempts = attempts + 1 WHERE id = ?",
                (runner, lease_until, row[0]),
            )
            found = await tx.one("SELECT * FROM mail_queue WHERE id = ?", (row[0],))
        return record(Mail, present(found))

    async def mail_done(self, mail_id: int, runner: str, error: str | None, retry_at: int | None) -> None:
        state = "sent" if error is None else "queued" if retry_at is not None else "failed"
        async with self.db.transaction() as tx:
            await tx.run(
                "UPDATE mail_queue SET state = ?, error = ?, next_attempt = ?, lease_until = NULL, sent_at = ? "
                "WHERE id = ? AND runner = ?",
                (state, error, retry_at or 0, now_iso() if error is None else None, mail_id, runner),
            )

    async def imip_token_of(self, token: str) -> tuple[int, str, str] | None:
        row = await self.db.one("SELECT organizer_id, attendee, uid FROM imip_tokens WHERE token = ?", (token,))
        return (int(row[0]), str(row[1]), str(row[2])) if row else None
