"""ImportService: every import, from every door, is a job, and a finished one can be undone.

A job is recorded first (who, which door, calendar, format, file name, options), then run:
check the encoding -> detect the format -> read the file as a stream, staging what it would
write on disk (``files``) -> write the staged objects in batches. A file with any bad line writes
nothing: the job is marked failed with every problem and its line. Batches are written in
separate transactions so that a 100,000-event import never holds the store's single writer for
long; a job that fails while writing, or that a stopped server left half-written, is rolled back
with the same code that undoes a finished import.

``/v1/imports`` and the web page queue their jobs (the file waits in the store) for the
``workers``; the seed's ``/v1/import/``, ``import.wcap`` and the CLI run theirs at once.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from protocol.formats import ParseResult
from protocol.ical.resources import resource_from_calendar
from protocol.ical.values import parse_resource
from server.config import Config
from server.metrics import metrics
from server.services.access import Level
from server.services.calendars import CalendarService, object_write
from server.services.errors import BadEncoding, Forbidden, Invalid, NotFound, disk_space
from server.services.imports.files import FileReader, ImportRequest, Upload
from server.services.imports.processes import ParseProcesses
from server.services.imports.workers import Workers
from storage.base import Store
from storage.errors import Gone
from storage.model import (
    Calendar,
    ImportFilter,
    ImportItem,
    ImportJob,
    ImportTarget,
    JobStatus,
    NewImport,
    ObjectWrite,
    User,
)

log = logging.getLogger("almanac.imports")

#: progress (percent) once the file is parsed and checked (two thirds of the work); writing
#: takes it to 100
PARSED = 60
#: replaced versions an undo re-indexes, and the store puts back, at a time
UNDO_PAGE = 500
Progress = Callable[[ImportJob], None]


@dataclass(slots=True)
class Preview:
    """What an import would do (a dry run): nothing is written."""

    format: str | None
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    discarded: int = 0
    calendars: list[str] = field(default_factory=list)  #: calendars it would make
    line_errors: list[dict[str, Any]] = field(default_factory=list)  #: the first LISTED
    line_error_count: int = 0
    warnings: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.format, "entries_created": self.created, "entries_updated": self.updated,
            "entries_unchanged": self.unchanged, "entries_discarded": self.discarded,
            "calendars_created": self.calendars, "line_errors": self.line_errors,
            "line_error_count": self.line_error_count, "warnings": self.warnings,
        }  # fmt: skip


def line_errors(problem: Invalid | BadEncoding) -> list[dict[str, Any]]:
    if isinstance(problem, BadEncoding):
        return [{"line": problem.line, "fields": [], "error": problem.message}]
    return problem.errors or [{"line": None, "fields": [], "error": problem.message}]


def restored(item: ImportItem) -> tuple[int, ObjectWrite]:
    """The version an import replaced, byte for byte and with its ETag, re-indexed, and the
    calendar it goes back to."""
    text = item.previous_ical or ""
    write = object_write(resource_from_calendar(parse_resource(text)), item.href)
    return item.calendar_id, replace(write, ical=text, etag=item.previous_etag or write.etag)


def stage_restores(items: list[ImportItem], staged: IO[bytes]) -> None:
    """Append the restores of a page of replaced items to ``staged`` (CPU-bound: in a thread)."""
    pickle.dump([restored(item) for item in items if item.previous_ical], staged, pickle.HIGHEST_PROTOCOL)


class ImportService:
    """Every door's imports: run at once (``run``) or queued (``submit``) for the ``workers``,
    previewed, listed and undone."""

    def __init__(self, store: Store, calendars: CalendarService, reader: FileReader, config: Config) -> None:
        self.store = store
        self.calendars = calendars
        self.reader = reader
        self.config = config
        self.workers = Workers(store, config, self._run_claimed, self._revert)

    @property
    def spool(self) -> Path:
        """This process's uploads on their way in (queued imports wait in the store)."""
        return self.reader.spool

    @property
    def parsers(self) -> ParseProcesses | None:
        return self.reader.parsers

    @property
    def runner(self) -> str:
        return self.workers.runner

    def target(self, user: User, request: ImportRequest, result: ParseResult, name: str | None) -> ImportTarget:
        """Where the objects for calendar ``name`` go (None: the request's calendar)."""
        if name is None:
            assert request.calendar is not None
            return ImportTarget(owner_id=user.id, calendar_id=request.calendar.id)
        description = result.calendar_description if name == result.calendar_name else None
        return ImportTarget(owner_id=user.id, create=self.calendars.new_calendar(user, name, description=description))

    # running -------------------------------------------------------------------------------

    def _new(self, user: User, request: ImportRequest, status: str, fmt: str | None = None) -> NewImport:
        return NewImport(
            user_id=user.id, door=request.door, format=fmt or request.format, filename=request.filename,
            calendar_id=request.calendar.id if request.calendar else None, options=request.options(), status=status,
        )  # fmt: skip

    async def writable(self, user: User, calendar: Calendar | None) -> None:
        """Refuse an import into a calendar the user may not write to (a new one is theirs)."""
        if calendar is not None:
            await self.calendars.need(user, [calendar], Level.READ_WRITE)

    async def _still_writable(self, user: User, calendar: Calendar | None) -> None:
        """Before each batch of a running job: Forbidden once the importer's access to someone
        else's calendar has fallen below read-write (looked up afresh, not as the job began)."""
        if calendar is None or calendar.owner_id == user.id:
            return
        if await self.calendars.level(user, calendar) < Level.READ_WRITE:
            raise Forbidden("access revoked: the importer may no longer write to the calendar")

    async def run(
        self, user: User, request: ImportRequest, upload: Upload, progress: Progress | None = None
    ) -> tuple[ImportJob, ParseResult]:
        """Import now (the doors that answer with the outcome); Invalid/BadEncoding after the
        failed job is recorded."""
        self.reader.check_size(upload.size)
        await self.writable(user, request.calendar)
        new = self._new(user, request, JobStatus.IN_PROGRESS)
        job = await self.store.create_import(
            replace(new, runner=self.workers.runner, lease_until=self.workers.lease_until())
        )
        with disk_space():
            async with self.workers.leased(job.id):
                return await self._execute(job, user, request, upload, progress)

    async def submit(self, user: User, request: ImportRequest, upload: Upload) -> ImportJob:
        """Queue an import for the workers, taking the upload over (a spooled one is moved to
        the queue, or removed if refused); what can be refused at once is refused (TooLarge,
        Invalid) and then nothing is recorded."""
        try:
            self.reader.check_size(upload.size)
            await self.writable(user, request.calendar)
            fmt = self.reader.format_of(upload, request.format)
            # the job and its file in one transaction (the file a piece at a time): a worker
            # never claims a job without its file
            job = await self.store.create_import(self._new(user, request, JobStatus.QUEUED, fmt), upload.pieces())
        finally:
            upload.discard()
        self.workers.wake.set()
        metrics().imports.labels("queued").inc()
        return job

    async def _execute(
        self, job: ImportJob, user: User, request: ImportRequest, upload: Upload, progress: Progress | None
    ) -> tuple[ImportJob, ParseResult]:
        """``_executed``, counted in the metrics and told in the log when it ends (how, by whom,
        what it wrote, how long it took)."""
        began, counted = time.monotonic(), metrics()
        counted.imports.labels("started").inc()
        counted.running.inc()
        try:
            done, result = await self._executed(job, user, request, upload, progress)
        except Exception as error:
            counted.imports.labels("failed").inc()
            log.warning("import %d by %s failed after %.1f s: %s", job.id, user.username, time.monotonic() - began,
                        getattr(error, "message", error))  # fmt: skip
            raise
        finally:
            counted.running.dec()
        counted.imports.labels("complete").inc()
        log.info(
            "import %d by %s complete in %.1f s: %d created, %d updated, %d unchanged, %d discarded", job.id,
            user.username, time.monotonic() - began, done.created, done.updated, done.unchanged, done.discarded,
        )  # fmt: skip
        return done, result

    async def _executed(
        self, job: ImportJob, user: User, request: ImportRequest, upload: Upload, progress: Progress | None
    ) -> tuple[ImportJob, ParseResult]:
        fmt, result = None, None

        async def reading(reached: int, count: int) -> None:
            now = await self.store.update_import(job.id, progress=PARSED * reached // count)
            if progress:
                progress(now)

        try:
            fmt = self.reader.format_of(upload, request.format)
            result, staged, total = await self.reader.staged(upload, request, reading)
            problem = self.reader.refusal(result, request, total)
            if problem:
                staged.close()
                raise problem
        except (Invalid, BadEncoding) as problem:
            errors = line_errors(problem)
            await self.store.update_import(
                job.id, status=JobStatus.FAILED, format=fmt, message=problem.message, errors=errors,
                error_count=result.error_count if result and result.errors else len(errors),
            )  # fmt: skip
            raise
        with staged:
            job = await self.store.update_import(
                job.id, format=result.format, total=total, discarded=result.discarded, progress=PARSED,
                warnings=[w.as_dict() for w in result.warnings], errors=[e.as_dict() for e in result.errors],
                error_count=result.error_count,
            )  # fmt: skip
            if progress:
                progress(job)
            await self._write(job, user, request, result, staged, total, progress)
        job = await self.store.update_import(job.id, status=JobStatus.COMPLETE, progress=100)
        if progress:
            progress(job)
        return job, result

    async def _write(
        self,
        job: ImportJob,
        user: User,
        request: ImportRequest,
        result: ParseResult,
        staged: IO[bytes],
        total: int,
        progress: Progress | None,
    ) -> None:
        """Write the staged objects, a batch per transaction; on any failure the job is rolled
        back and fails."""
        targets: dict[str | None, ImportTarget] = {}
        written = 0
        # the next batch is read from the staged file while this one is written
        reading = asyncio.ensure_future(asyncio.to_thread(self.reader.next_batch, staged))
        try:
            while batch := await reading:
                reading = asyncio.ensure_future(asyncio.to_thread(self.reader.next_batch, staged))
                await self._still_writable(user, request.calendar)
                for name, writes in batch.items():
                    if name not in targets:
                        targets[name] = self.target(user, request, result, name)
                    written += len(writes)
                    percent = PARSED + (100 - PARSED) * written // max(total, 1)
                    await self.store.import_batch(job.id, targets[name], writes, min(percent, 99))
                    metrics().imported.inc(len(writes))
                    if progress and (now := await self.store.get_import(job.id)) is not None:
                        progress(now)
        except Forbidden as refused:  # the importer's access was taken back meanwhile
            log.warning("import %d stopped: %s", job.id, refused.message)
            await self._revert(job.id, JobStatus.IN_PROGRESS, JobStatus.FAILED, f"{refused.message}: nothing kept")
            raise
        except Exception as error:
            log.error("import %d failed while writing: %r", job.id, error)
            await self._revert(
                job.id, JobStatus.IN_PROGRESS, JobStatus.FAILED, f"the import failed while writing: {error}"
            )
            raise
        finally:  # the staged file closes after this: not while a thread reads it
            await asyncio.wait([reading])
            if not reading.cancelled():
                reading.exception()  # retrieved: what failed is the write's to report

    async def preview(self, user: User, request: ImportRequest, upload: Upload) -> Preview:
        """A dry run: what the import would create, update and skip, and every line error."""
        try:
            result, staged, _ = await self.reader.staged(upload, request)
        except (Invalid, BadEncoding) as problem:
            errors = line_errors(problem)
            return Preview(None, line_errors=errors, line_error_count=len(errors))
        preview = Preview(
            result.format, discarded=result.discarded, line_errors=[e.as_dict() for e in result.errors],
            line_error_count=result.error_count, warnings=[w.as_dict() for w in result.warnings],
        )  # fmt: skip
        calendar_ids: dict[str | None, int | None] = {None: request.calendar.id if request.calendar else None}
        with staged:
            while batch := await asyncio.to_thread(self.reader.next_batch, staged):
                for name, writes in batch.items():
                    if name is not None and name not in calendar_ids:
                        found = await self.store.find_calendar_by_name(user.id, name)
                        calendar_ids[name] = found.id if found else None
                        if found is None:
                            preview.calendars.append(name)
                    calendar_id = calendar_ids[name]
                    known = await self.store.uid_etags(calendar_id, [w.uid for w in writes]) if calendar_id else {}
                    counts = Counter(
                        "created" if w.uid not in known else "unchanged" if known[w.uid] == w.etag else "updated"
                        for w in writes
                    )
                    preview.created += counts["created"]
                    preview.updated += counts["updated"]
                    preview.unchanged += counts["unchanged"]
        return preview

    # queued jobs ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Roll back the imports this runner's earlier life left half-written (and any whose
        runner's lease lapsed), remove the files a stopped server left in its spool, and start
        the workers."""
        await self.workers.sweep(of=self.workers.runner)
        if self.spool.is_dir():
            for path in self.spool.iterdir():
                path.unlink(missing_ok=True)
        await self._adopt_legacy_spool()
        self.workers.start()

    async def _adopt_legacy_spool(self) -> None:
        """Before version 5 of the store a queued import's file waited in ``<data>/imports/<id>``:
        move those into the store (so that they run), and remove what else is left there."""
        for path in (self.config.data_dir / "imports").glob("*"):
            if not path.is_file():
                continue
            job = await self.store.get_import(int(path.name)) if path.name.isdigit() else None
            if job is not None and job.status == JobStatus.QUEUED:
                await self.store.save_upload(job.id, Upload(path=path).pieces())
            path.unlink(missing_ok=True)

    async def stop(self) -> None:
        """Stop the workers: an import running is rolled back and queued again, for another
        worker (here after a restart, or on another node) to run from the start."""
        await self.workers.stop()
        if self.parsers is not None:
            self.parsers.shutdown(wait=False, cancel_futures=True)

    async def idle(self) -> None:
        """Wait until no import is queued or running here (for tests and the benchmark)."""
        await self.workers.idle()

    async def _run_claimed(self, job: ImportJob) -> None:
        """Run a queued import a worker claimed (its file fetched from the store to this
        process's spool, a piece at a time); stopped half-way, it is rolled back and queued
        again."""
        path = await self._fetch_upload(job.id)
        try:
            await self._run_fetched(job, path)
        finally:
            if path is not None:
                path.unlink(missing_ok=True)

    async def _fetch_upload(self, import_id: int) -> Path | None:
        """A queued import's file copied from the store into the spool; None when it is gone."""
        await asyncio.to_thread(self.spool.mkdir, parents=True, exist_ok=True)
        path = self.spool / f"queued-{import_id}"
        kept = False
        with disk_space(), open(path, "wb") as file:
            async for piece in self.store.upload_pieces(import_id):
                kept = True
                await asyncio.to_thread(file.write, piece)
        if not kept:
            path.unlink(missing_ok=True)
        return path if kept else None

    async def _run_fetched(self, job: ImportJob, path: Path | None) -> None:
        user = await self.store.get_user(job.user_id)
        calendar = await self.store.get_calendar(job.calendar_id) if job.calendar_id else None
        problem = (
            "the uploaded file is gone" if path is None
            else "the target calendar was deleted" if job.calendar_id and calendar is None
            else "the user was deleted" if user is None
            else None
        )  # fmt: skip
        if not problem and user is not None:
            try:
                await self.writable(user, calendar)
            except (NotFound, Forbidden):
                problem = "the user may no longer write to the target calendar"
        if problem or user is None or path is None:
            await self.store.update_import(job.id, status=JobStatus.FAILED, message=problem)
            await self.store.drop_upload(job.id)
            return
        try:
            await self._execute(job, user, ImportRequest.of_job(job, calendar), Upload(path=path), None)
        except asyncio.CancelledError:
            await asyncio.shield(self._requeue(job.id))
            raise
        await self.store.drop_upload(job.id)

    async def _requeue(self, job_id: int) -> None:
        try:
            await self._revert(job_id, JobStatus.IN_PROGRESS, JobStatus.QUEUED, "the server stopped: queued again")
            log.warning("import %d was stopped with its server: rolled back and queued again", job_id)
        except Exception as error:  # its lease lapses: another process rolls it back
            log.error("import %d was stopped and could not be queued again: %r", job_id, error)

    # the imports resource ------------------------------------------------------------------

    async def jobs(self, where: ImportFilter, *, offset: int = 0, limit: int = 30) -> tuple[list[ImportJob], int]:
        """A page of imports, newest first, and how many match (the door filters by its user)."""
        return await self.store.list_imports(where, offset=offset, limit=limit)

    async def items(self, job: ImportJob, *, offset: int = 0, limit: int | None = None) -> tuple[list[ImportItem], int]:
        """A page of what an import wrote, in write order, and how many in all."""
        return await self.store.import_items(job.id, offset=offset, limit=limit)

    async def target_of(self, job: ImportJob) -> Calendar | None:
        """The calendar an import wrote into (None when it made several or none)."""
        return await self.store.get_calendar(job.calendar_id) if job.calendar_id else None

    async def get(self, user: User, import_id: int) -> ImportJob:
        """An import the user may see: their own, or one into a calendar they own or administer
        (whoever ran it); NotFound for unknown and other ones alike."""
        job = await self.store.get_import(import_id)
        if job is None or not (job.user_id == user.id or await self._manages_target(user, job)):
            raise NotFound("import not found")
        return job

    async def _manages_target(self, user: User, job: ImportJob) -> bool:
        calendar = await self.target_of(job)
        return calendar is not None and await self.calendars.level(user, calendar) >= Level.ADMIN

    async def jobs_of(
        self, user: User, where: ImportFilter, *, offset: int = 0, limit: int = 30
    ) -> tuple[list[ImportJob], int]:
        """A page of the imports a user sees (see ``get``), newest first, and how many match."""
        managed = tuple(calendar.id for calendar in await self.calendars.managed(user))
        return await self.jobs(replace(where, user_id=user.id, or_into=managed), offset=offset, limit=limit)

    async def undo(self, user: User, import_id: int) -> ImportJob:
        """Take an import back in one transaction: what it created goes (edited since or not),
        what it replaced comes back, the calendars it made go unless they now hold other events.
        The user must be able to write to every calendar it wrote into."""
        job = await self.get(user, import_id)
        if job.status != JobStatus.COMPLETE:
            raise Invalid(f"only a complete import can be undone; this one is {job.status}", field="status")
        for calendar_id in {*await self.store.import_calendars(job.id), *job.calendars_created}:
            calendar = await self.store.get_calendar(calendar_id)
            if calendar is not None and await self.calendars.level(user, calendar) < Level.READ_WRITE:
                raise Forbidden("the import wrote into a calendar you may not change: only its owner may undo it")
        try:
            return await self._revert(import_id, JobStatus.COMPLETE, JobStatus.UNDONE, by=user.id)
        except Gone:
            raise Invalid("the import changed while it was being undone; try again", field="status") from None

    async def _revert(
        self, import_id: int, expect: str, status: str, message: str | None = None, by: int | None = None
    ) -> ImportJob:
        """Undo (or roll back) an import in one transaction of the store: the versions it
        replaced are re-indexed first, a page at a time, into a file of this process's spool,
        and handed to the store from there a page at a time (never all in memory)."""

        await asyncio.to_thread(self.spool.mkdir, parents=True, exist_ok=True)
        with disk_space(), tempfile.TemporaryFile(dir=self.spool, prefix="undo-") as staged:
            offset = 0
            while True:
                items, _ = await self.store.import_items(import_id, action="updated", offset=offset, limit=UNDO_PAGE)
                if not items:
                    break
                offset += len(items)
                await asyncio.to_thread(stage_restores, items, staged)
            staged.seek(0)

            async def pages() -> AsyncIterator[list[tuple[int, ObjectWrite]]]:
                while True:
                    try:
                        yield await asyncio.to_thread(pickle.load, staged)
                    except EOFError:
                        return

            return await self.store.undo_import(
                import_id, pages(), expect=expect, status=status, message=message, by=by
            )
