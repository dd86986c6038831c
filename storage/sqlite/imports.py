"""Import jobs, what they wrote, and undoing them."""

from __future__ import annotations

import json
import uuid as uuid_module
from collections.abc import Sequence
from typing import Any

import aiosqlite

from storage.model import (
    Calendar,
    Conflict,
    ImportFilter,
    ImportItem,
    ImportJob,
    ImportTarget,
    JobStatus,
    NewImport,
    ObjectWrite,
    now_iso,
)
from storage.sqlite.calendars import Calendars
from storage.sqlite.connection import (
    _calendar,
    _chunks,
    _inserted,
    _job,
    _marks,
    _record,
)
from storage.sqlite.objects import Placed


class Imports(Calendars):
    """Import jobs, the objects they write in batches, what they wrote, and undo."""

    async def get_import(self, import_id: int) -> ImportJob | None:
        row = await self._one("SELECT * FROM imports WHERE id = ?", (import_id,))
        return _job(row) if row else None

    async def list_imports(
        self, where: ImportFilter, *, offset: int = 0, limit: int = 30
    ) -> tuple[list[ImportJob], int]:
        clauses, params = ["1 = 1"], []
        for column, value in (
            ("user_id", where.user_id), ("format", where.format), ("calendar_id", where.calendar_id),
            ("status", where.status),
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
        total = await self._one(f"SELECT COUNT(*) FROM imports WHERE {condition}", params)
        rows = await self._all(
            f"SELECT * FROM imports WHERE {condition} ORDER BY id DESC LIMIT ? OFFSET ?", [*params, limit, offset]
        )
        return [_job(row) for row in rows], int(total[0]) if total else 0

    async def import_items(
        self, import_id: int, *, action: str | None = None, offset: int = 0, limit: int | None = None
    ) -> tuple[list[ImportItem], int]:
        condition = "import_id = ?" + (" AND action = ?" if action else "")
        params: list[Any] = [import_id, *([action] if action else [])]
        total = await self._one(f"SELECT COUNT(*) FROM import_items WHERE {condition}", params)
        rows = await self._all(
            f"SELECT * FROM import_items WHERE {condition} ORDER BY rowid LIMIT ? OFFSET ?",
            [*params, -1 if limit is None else limit, offset],
        )
        return [_record(ImportItem, row) for row in rows], int(total[0]) if total else 0

    async def create_import(self, job: NewImport) -> ImportJob:
        now = now_iso()
        async with self._transaction() as db:
            cursor = await db.execute(
                "INSERT INTO imports (user_id, calendar_id, door, format, filename, options, status, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (job.user_id, job.calendar_id, job.door, job.format, job.filename, json.dumps(job.options),
                 job.status, now, now),
            )  # fmt: skip
            return await self._job_in(db, _inserted(cursor))

    async def update_import(self, import_id: int, **changes: Any) -> ImportJob:
        for name in ("errors", "warnings"):
            if name in changes:
                changes[name] = json.dumps(changes[name])
        if changes.get("status") in (JobStatus.COMPLETE, JobStatus.FAILED):
            changes.setdefault("finished_at", now_iso())
        assignments = ", ".join(f"{name} = ?" for name in changes)
        async with self._transaction() as db:
            await db.execute(
                f"UPDATE imports SET {assignments}, updated_at = ? WHERE id = ?",
                (*changes.values(), now_iso(), import_id),
            )
            return await self._job_in(db, import_id)

    async def _job_in(self, db: aiosqlite.Connection, import_id: int) -> ImportJob:
        async with db.execute("SELECT * FROM imports WHERE id = ?", (import_id,)) as cursor:
            row = await cursor.fetchone()
        if row is None:
            raise LookupError(f"import {import_id} does not exist")
        return _job(row)

    async def uid_etags(self, calendar_id: int, uids: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for chunk in _chunks(uids):
            rows = await self._all(
                f"SELECT uid, etag FROM objects WHERE calendar_id = ? AND uid IN ({_marks(len(chunk))})",
                (calendar_id, *chunk),
            )
            found.update((row[0], row[1]) for row in rows)
        return found

    async def undo_import(
        self,
        import_id: int,
        restores: Sequence[tuple[int, ObjectWrite]],
        *,
        expect: str = JobStatus.COMPLETE,
        status: str = JobStatus.UNDONE,
        message: str | None = None,
    ) -> ImportJob:
        async with self._transaction() as db:
            job = await self._job_in(db, import_id)
            if job.status != expect:
                raise LookupError(f"import {import_id} is {job.status}, not {expect}")
            async with db.execute(
                "SELECT calendar_id, href FROM import_items WHERE import_id = ? AND action = 'created'", (import_id,)
            ) as cursor:
                created: dict[int, list[str]] = {}
                for item in await cursor.fetchall():
                    created.setdefault(item["calendar_id"], []).append(item["href"])
            for calendar_id, hrefs in created.items():
                await self._delete_many(db, calendar_id, hrefs)
            not_restored = []
            for calendar_id, write in restores:
                async with db.execute("SELECT 1 FROM calendars WHERE id = ?", (calendar_id,)) as cursor:
                    gone = await cursor.fetchone() is None
                try:
                    if gone:
                        raise LookupError("its calendar was deleted")
                    await self._put(db, calendar_id, write)
                except (Conflict, LookupError) as error:  # checked before anything is written
                    why = "another object in its calendar now holds its UID" if isinstance(error, Conflict) else error
                    not_restored.append(
                        {"line": None, "fields": [write.uid, write.href], "error": f"not put back: {why}"}
                    )
            for calendar_id in job.calendars_created:
                async with db.execute("SELECT 1 FROM objects WHERE calendar_id = ? LIMIT 1", (calendar_id,)) as cursor:
                    if await cursor.fetchone() is None:
                        await self._delete_calendar(db, calendar_id)
            if not_restored:
                note = f"{len(not_restored)} replaced object(s) could not be put back (see the warnings)"
                message = f"{message}; {note}" if message else note
            now = now_iso()
            await db.execute(
                "UPDATE imports SET status = ?, message = COALESCE(?, message), warnings = ?, updated_at = ?, "
                "finished_at = COALESCE(finished_at, ?) WHERE id = ?",
                (status, message, json.dumps(job.warnings + not_restored), now, now, import_id),
            )
            return await self._job_in(db, import_id)

    async def _delete_many(self, db: aiosqlite.Connection, calendar_id: int, hrefs: Sequence[str]) -> None:
        """Delete objects by href (those still there) with one sync revision for them all."""
        revision = None
        for chunk in _chunks(hrefs):
            marks = _marks(len(chunk))
            sql = f"SELECT id, href, uid, span_count FROM objects WHERE calendar_id = ? AND href IN ({marks})"
            async with db.execute(sql, (calendar_id, *chunk)) as cursor:
                rows = await cursor.fetchall()
            if not rows:
                continue
            await self._write_spans(db, calendar_id, [(r["id"], r["span_count"], ()) for r in rows])
            await db.executemany("DELETE FROM objects WHERE id = ?", [(r["id"],) for r in rows])
            revision = revision or await self._bump(db, calendar_id)
            await self._record_changes(db, calendar_id, revision, [(r["href"], r["uid"], True) for r in rows])

    async def import_batch(
        self, import_id: int, target: ImportTarget, writes: Sequence[ObjectWrite], progress: int
    ) -> tuple[int, int, int]:
        now = now_iso()
        async with self._transaction() as db:
            job = await self._job_in(db, import_id)
            calendar, made = await self._import_calendar(db, target)
            made_list = job.calendars_created + ([calendar.id] if made else [])
            revision = calendar.sync_revision + 1
            created, updated, unchanged = await self._import_chunk(db, import_id, calendar.id, revision, writes)
            if created or updated:
                await self._bump(db, calendar.id)
            await db.execute(
                "UPDATE imports SET created = created + ?, updated = updated + ?, unchanged = unchanged + ?, "
                "calendars_created = ?, calendar_id = COALESCE(calendar_id, ?), progress = ?, updated_at = ? "
                "WHERE id = ?",
                (created, updated, unchanged, json.dumps(made_list), calendar.id, progress, now, import_id),
            )
        return created, updated, unchanged

    async def _import_calendar(self, db: aiosqlite.Connection, target: ImportTarget) -> tuple[Calendar, bool]:
        params: tuple[object, ...]
        if target.calendar_id is not None:
            sql, params = "SELECT * FROM calendars WHERE id = ?", (target.calendar_id,)
        else:
            assert target.create is not None
            sql = "SELECT * FROM calendars WHERE owner_id = ? AND name = ? ORDER BY id LIMIT 1"
            params = (target.owner_id, target.create.name)
        async with db.execute(sql, params) as cursor:
            row = await cursor.fetchone()
        if row is not None:
            return _calendar(row), False
        if target.create is None:
            raise LookupError(f"calendar {target.calendar_id} does not exist")
        return await self._insert_calendar(db, target.create), True

    async def _import_chunk(
        self,
        db: aiosqlite.Connection,
        import_id: int,
        calendar_id: int,
        revision: int,
        chunk: Sequence[ObjectWrite],
    ) -> tuple[int, int, int]:
        async with db.execute(
            f"SELECT id, href, uid, etag, ical, span_count FROM objects WHERE calendar_id = ? "
            f"AND uid IN ({_marks(len(chunk))})",
            (calendar_id, *(w.uid for w in chunk)),
        ) as cursor:
            existing = {row["uid"]: row for row in await cursor.fetchall()}
        fresh = [w.href for w in chunk if w.uid not in existing]
        taken: set[str] = set()
        if fresh:
            async with db.execute(
                f"SELECT href FROM objects WHERE calendar_id = ? AND href IN ({_marks(len(fresh))})",
                (calendar_id, *fresh),
            ) as cursor:
                taken = {row[0] for row in await cursor.fetchall()}
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
            placed.append(Placed(write, href, old))
            changes.append((href, write.uid, False))
        await self._write_objects(db, calendar_id, placed, import_id)
        await db.executemany("INSERT INTO import_items VALUES (?, ?, ?, ?, ?, ?, ?)", items)
        await self._record_changes(db, calendar_id, revision, changes)
        updated = sum(p.old is not None for p in placed)
        return len(placed) - updated, updated, unchanged
