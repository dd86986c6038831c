"""Import jobs, what they wrote, and undoing them."""

from __future__ import annotations

import json
import uuid as uuid_module
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from typing import Any

from storage.errors import Conflict, Gone
from storage.model import (
    Calendar,
    ImportFilter,
    ImportItem,
    ImportJob,
    ImportTarget,
    JobStatus,
    NewImport,
    ObjectWrite,
    now_iso,
)
from storage.sql.calendars import Calendars
from storage.sql.database import Tx
from storage.sql.objects import Placed
from storage.sql.records import calendar, chunks, job, marks, record

#: an import that wrote at least this many objects has the planner's statistics refreshed
BULK = 1000


class Imports(Calendars):
    """Import jobs, the objects they write in batches, what they wrote, and undo."""

    async def get_import(self, import_id: int) -> ImportJob | None:
        row = await self.db.one("SELECT * FROM imports WHERE id = ?", (import_id,))
        return job(row) if row else None

    async def list_imports(
        self, where: ImportFilter, *, offset: int = 0, limit: int = 30
    ) -> tuple[list[ImportJob], int]:
        clauses: list[str] = ["1 = 1"]
        params: list[Any] = []
        if where.user_id is not None and where.or_into:
            clauses.append(f"(user_id = ? OR calendar_id IN ({marks(len(where.or_into))}))")
            params += [where.user_id, *where.or_into]
        elif where.user_id is not None:
            clauses.append("user_id = ?")
            params.append(where.user_id)
        for column, value in (
            ("format", where.format), ("calendar_id", where.calendar_id), ("status", where.status),
        ):  # fmt: skip
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if where.since:
            clauses.append("created_at >= ?")
            params.append(where.since)
        if where.until:
            clauses.append("created_at <= ?")
            params.append(where.until + ("T23:59:59.999Z" if len(where.until) == 10 else ""))
        condition = " AND ".join(clauses)
        total = await self.db.one(f"SELECT COUNT(*) FROM imports WHERE {condition}", params)
        rows = await self.db.all(
            f"SELECT * FROM imports WHERE {condition} ORDER BY id DESC LIMIT ? OFFSET ?", [*params, limit, offset]
        )
        return [job(row) for row in rows], int(total[0]) if total else 0

    async def import_items(
        self, import_id: int, *, action: str | None = None, offset: int = 0, limit: int | None = None
    ) -> tuple[list[ImportItem], int]:
        condition = "import_id = ?" + (" AND action = ?" if action else "")
        params: list[Any] = [import_id, *([action] if action else [])]
        total = await self.db.one(f"SELECT COUNT(*) FROM import_items WHERE {condition}", params)
        rows = await self.db.all(
            f"SELECT * FROM import_items WHERE {condition} ORDER BY {self.db.insertion_order} LIMIT ? OFFSET ?",
            [*params, 1 << 62 if limit is None else limit, offset],
        )
        return [record(ImportItem, row) for row in rows], int(total[0]) if total else 0

    async def import_calendars(self, import_id: int) -> list[int]:
        rows = await self.db.all("SELECT DISTINCT calendar_id FROM import_items WHERE import_id = ?", (import_id,))
        return [row[0] for row in rows]

    async def create_import(self, new: NewImport, upload: AsyncIterable[bytes] | None = None) -> ImportJob:
        now = now_iso()
        async with self.db.transaction() as tx:
            import_id = await tx.insert(
                "INSERT INTO imports (user_id, calendar_id, door, format, filename, options, status, runner, "
                "lease_until, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (new.user_id, new.calendar_id, new.door, new.format, new.filename, json.dumps(new.options),
                 new.status, new.runner, new.lease_until, now, now),
            )  # fmt: skip
            if upload is not None:
                await self._write_upload(tx, import_id, upload)
            return await self._job_in(tx, import_id)

    async def update_import(self, import_id: int, **changes: Any) -> ImportJob:
        for name in ("errors", "warnings"):
            if name in changes:
                changes[name] = json.dumps(changes[name])
        if changes.get("status") in (JobStatus.COMPLETE, JobStatus.FAILED):
            changes.setdefault("finished_at", now_iso())
        assignments = ", ".join(f"{name} = ?" for name in changes)
        async with self.db.transaction() as tx:
            await tx.run(
                f"UPDATE imports SET {assignments}, updated_at = ? WHERE id = ?",
                (*changes.values(), now_iso(), import_id),
            )
            job = await self._job_in(tx, import_id)
        if job.status == JobStatus.COMPLETE and job.created + job.updated >= BULK:
            await self.db.refresh_statistics(("objects", "spans", "changes", "import_items"))
        return job

    async def _job_in(self, tx: Tx, import_id: int) -> ImportJob:
        row = await tx.one("SELECT * FROM imports WHERE id = ?", (import_id,))
        if row is None:
            raise Gone(f"import {import_id} does not exist")
        return job(row)

    async def save_upload(self, import_id: int, pieces: AsyncIterable[bytes]) -> None:
        async with self.db.transaction() as tx:
            await self._write_upload(tx, import_id, pieces)

    @staticmethod
    async def _write_upload(tx: Tx, import_id: int, pieces: AsyncIterable[bytes]) -> None:
        """The file's pieces as they come (one at a time in memory); at least one, empty for an
        empty file, so that a kept file is never taken for a missing one."""
        insert = "INSERT INTO import_upload_pieces (import_id, piece, data) VALUES (?, ?, ?)"
        count = 0
        async for piece in pieces:
            if piece:
                await tx.run(insert, (import_id, count, piece))
                count += 1
        if not count:
            await tx.run(insert, (import_id, 0, b""))

    async def upload_pieces(self, import_id: int) -> AsyncIterator[bytes]:
        place = 0
        while row := await self.db.one(
            "SELECT data FROM import_upload_pieces WHERE import_id = ? AND piece = ?", (import_id, place)
        ):
            yield bytes(row[0])
            place += 1

    async def drop_upload(self, import_id: int) -> None:
        async with self.db.transaction() as tx:
            await tx.run("DELETE FROM import_upload_pieces WHERE import_id = ?", (import_id,))

    async def _claim(self, assign: str, which: str, params: Sequence[Any]) -> ImportJob | None:
        """Set ``assign`` on the first import (by id) matching ``which``, skipping rows another
        transaction holds: of claims made at once, each import goes to one."""
        async with self.db.transaction() as tx:
            row = await tx.one(
                f"UPDATE imports SET {assign}, updated_at = ? WHERE id = (SELECT id FROM imports WHERE {which} "
                f"ORDER BY id LIMIT 1{self.db.skip_locked}) RETURNING *",
                params,
            )
            return job(row) if row else None

    async def claim_import(self, runner: str, lease_until: int) -> ImportJob | None:
        return await self._claim(
            "status = ?, runner = ?, lease_until = ?", "status = ?",
            (JobStatus.IN_PROGRESS, runner, lease_until, now_iso(), JobStatus.QUEUED),
        )  # fmt: skip

    async def claim_abandoned(
        self, runner: str, lease_until: int, now: int, *, of: str | None = None
    ) -> ImportJob | None:
        return await self._claim(
            "runner = ?, lease_until = ?", "status = ? AND (lease_until < ? OR runner = ?)",
            (runner, lease_until, now_iso(), JobStatus.IN_PROGRESS, now, of),
        )  # fmt: skip

    async def renew_lease(self, import_id: int, runner: str, lease_until: int) -> bool:
        async with self.db.transaction() as tx:
            return (
                await tx.run(
                    "UPDATE imports SET lease_until = ? WHERE id = ? AND runner = ? AND status = ?",
                    (lease_until, import_id, runner, JobStatus.IN_PROGRESS),
                )
                > 0
            )

    async def uid_etags(self, calendar_id: int, uids: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for chunk in chunks(uids):
            rows = await self.db.all(
                f"SELECT uid, etag FROM objects WHERE calendar_id = ? AND uid IN ({marks(len(chunk))})",
                (calendar_id, *chunk),
            )
            found.update((row[0], row[1]) for row in rows)
        return found

    async def undo_import(
        self,
        import_id: int,
        restores: AsyncIterable[Sequence[tuple[int, ObjectWrite]]],
        *,
        expect: str = JobStatus.COMPLETE,
        status: str = JobStatus.UNDONE,
        message: str | None = None,
        by: int | None = None,
    ) -> ImportJob:
        async with self.db.transaction() as tx:
            found = await self._job_in(tx, import_id)
            if found.status != expect:
                raise Gone(f"import {import_id} is {found.status}, not {expect}")
            created: dict[int, list[str]] = {}
            for item in await tx.all(
                "SELECT calendar_id, href FROM import_items WHERE import_id = ? AND action = 'created'", (import_id,)
            ):
                created.setdefault(item["calendar_id"], []).append(item["href"])
            for calendar_id, hrefs in created.items():
                await self._delete_many(tx, calendar_id, hrefs, by)
            not_restored = []
            async for page in restores:
                for calendar_id, write in page:
                    gone = await tx.one("SELECT 1 FROM calendars WHERE id = ?", (calendar_id,)) is None
                    try:
                        if gone:
                            raise Gone("its calendar was deleted")
                        await self._put(tx, calendar_id, write)
                    except (Conflict, Gone) as error:  # checked before anything is written
                        why = (
                            "another object in its calendar now holds its UID" if isinstance(error, Conflict) else error
                        )
                        problem = {"line": None, "fields": [write.uid, write.href], "error": f"not put back: {why}"}
                        not_restored.append(problem)
            for calendar_id in found.calendars_created:
                if await tx.one("SELECT 1 FROM objects WHERE calendar_id = ? LIMIT 1", (calendar_id,)) is None:
                    await self._delete_calendar(tx, calendar_id)
            if not_restored:
                note = f"{len(not_restored)} replaced object(s) could not be put back (see the warnings)"
                message = f"{message}; {note}" if message else note
            now = now_iso()
            await tx.run(
                "UPDATE imports SET status = ?, message = COALESCE(?, message), warnings = ?, updated_at = ?, "
                "finished_at = COALESCE(finished_at, ?) WHERE id = ?",
                (status, message, json.dumps(found.warnings + not_restored), now, now, import_id),
            )
            if status == JobStatus.QUEUED:  # to run again from the start: it has written nothing
                await tx.run(
                    "UPDATE imports SET progress = 0, created = 0, updated = 0, unchanged = 0, discarded = 0, "
                    "calendars_created = '[]', finished_at = NULL, runner = NULL, lease_until = 0 WHERE id = ?",
                    (import_id,),
                )
                await tx.run("DELETE FROM import_items WHERE import_id = ?", (import_id,))
            return await self._job_in(tx, import_id)

    async def _delete_many(self, tx: Tx, calendar_id: int, hrefs: Sequence[str], by: int | None) -> None:
        """Delete objects by href (those still there) with one sync revision for them all."""
        revision = await self._bump(tx, calendar_id)
        for chunk in chunks(hrefs):
            sql = (
                f"SELECT id, href, uid, span_count FROM objects WHERE calendar_id = ? AND href IN ({marks(len(chunk))})"
            )
            rows = await tx.all(sql, (calendar_id, *chunk))
            if not rows:
                continue
            await self.db.write_spans(tx, [(calendar_id, r["id"], r["span_count"], ()) for r in rows])
            await tx.many("DELETE FROM objects WHERE id = ?", [(r["id"],) for r in rows])
            await self._record_changes(tx, calendar_id, revision, [(r["href"], r["uid"], True) for r in rows], by)

    async def import_batch(
        self, import_id: int, target: ImportTarget, writes: Sequence[ObjectWrite], progress: int
    ) -> tuple[int, int, int]:
        now = now_iso()

        async def written(tx: Tx) -> tuple[int, int, int]:
            found = await self._job_in(tx, import_id)
            if found.status != JobStatus.IN_PROGRESS:  # rolled back by another process meanwhile
                raise Gone(f"import {import_id} is {found.status}, not in progress")
            into, made = await self._import_calendar(tx, target)
            made_list = found.calendars_created + ([into.id] if made else [])
            revision = into.sync_revision + 1  # the calendar's row is held: nobody else takes it
            created, updated, unchanged = await self._import_chunk(tx, found, into.id, revision, writes)
            if created or updated:
                await self._bump(tx, into.id)
            await tx.run(
                "UPDATE imports SET created = created + ?, updated = updated + ?, unchanged = unchanged + ?, "
                "calendars_created = ?, calendar_id = COALESCE(calendar_id, ?), progress = ?, updated_at = ? "
                "WHERE id = ?",
                (created, updated, unchanged, json.dumps(made_list), into.id, progress, now, import_id),
            )
            return created, updated, unchanged

        return await self.db.run(written, heavy=True)

    async def _import_calendar(self, tx: Tx, target: ImportTarget) -> tuple[Calendar, bool]:
        """The calendar an import writes into, its row held until the batch commits."""
        params: tuple[object, ...]
        if target.calendar_id is not None:
            sql, params = "SELECT * FROM calendars WHERE id = ?", (target.calendar_id,)
        else:
            assert target.create is not None
            # the owner's row is held first, so that two imports cannot both make the calendar
            await tx.one("SELECT id FROM users WHERE id = ?" + self.db.for_update, (target.owner_id,))
            sql = "SELECT * FROM calendars WHERE owner_id = ? AND name = ? ORDER BY id LIMIT 1"
            params = (target.owner_id, target.create.name)
        row = await tx.one(sql + self.db.for_update, params)
        if row is not None:
            return calendar(row), False
        if target.create is None:
            raise Gone(f"calendar {target.calendar_id} does not exist")
        return await self._insert_calendar(tx, target.create), True

    async def _import_chunk(
        self,
        tx: Tx,
        job: ImportJob,
        calendar_id: int,
        revision: int,
        chunk: Sequence[ObjectWrite],
    ) -> tuple[int, int, int]:
        import_id = job.id
        rows = await tx.all(
            f"SELECT id, href, uid, etag, ical, span_count FROM objects WHERE calendar_id = ? "
            f"AND uid IN ({marks(len(chunk))})",
            (calendar_id, *(w.uid for w in chunk)),
        )
        existing = {row["uid"]: row for row in rows}
        fresh = [w.href for w in chunk if w.uid not in existing]
        taken: set[str] = set()
        if fresh:
            found = await tx.all(
                f"SELECT href FROM objects WHERE calendar_id = ? AND href IN ({marks(len(fresh))})",
                (calendar_id, *fresh),
            )
            taken = {row[0] for row in found}
        placed, items, changes = [], [], []
        unchanged = 0
        for write in chunk:
            old = existing.get(write.uid)
            if old is None:
                href = write.href if write.href not in taken else f"{uuid_module.uuid4()}.ics"
                taken.add(href)
                items.append((import_id, calendar_id, href, write.uid, "created", None, None))
            elif old["etag"] == write.etag:
                unchanged += 1
                continue
            else:
                href = old["href"]
                items.append((import_id, calendar_id, href, write.uid, "updated", old["ical"], old["etag"]))
            placed.append(Placed(calendar_id, write, href, old))
            changes.append((href, write.uid, False))
        await self._write_objects(tx, placed, import_id, job.user_id)
        await tx.many(
            "INSERT INTO import_items (import_id, calendar_id, href, uid, action, previous_ical, previous_etag) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            items,
        )
        await self._record_changes(tx, calendar_id, revision, changes, job.user_id)
        updated = sum(p.old is not None for p in placed)
        return len(placed) - updated, updated, unchanged
