"""ImportService: every import, from every door, is a job.

A job is recorded first (who, which door, calendar, format, file name, options), then run:
check the encoding -> detect the format -> read the file as a stream, staging what it would
write on disk -> write the staged objects in batches. A file with any bad line writes nothing:
the job is marked failed with every problem and its line. Neither the file nor what it holds is
ever all in memory. Batches are written in separate transactions so that a 100,000-event import
never holds the store's single writer for long; a job that fails while writing, or that a
stopped server left half-written, is rolled back with the same code that undoes a finished
import.

``/v1/imports`` and the web page queue their jobs (the file waits in ``<data>/imports/``) for a
pool of workers; the seed's ``/v1/import/``, ``import.wcap`` and the CLI run theirs at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import logging
import multiprocessing
import os
import pickle
import socket
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, TypeVar

from protocol import formats
from protocol.formats import Lines, ParseOptions, ParseResult
from protocol.formats.plain import plain_fields
from protocol.ical import Resource, in_window, parse_resource, resource_from_calendar
from server.config import Config
from server.lineage import exit_with_parent
from server.services.access import Level
from server.services.calendars import CalendarService, object_write, window
from server.services.errors import BadEncoding, Forbidden, Invalid, NameTaken, NotFound, TooLarge, disk_space
from storage.base import Store
from storage.errors import Gone
from storage.model import (
    Calendar,
    CalendarObject,
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

T = TypeVar("T")

#: objects written per store transaction
BATCH = 500
#: CSV field delimiters a caller may name (``tab`` for a tab)
DELIMITERS = {",": ",", ";": ";", "|": "|", "\t": "\t", "tab": "\t"}
#: progress (percent) once the file is parsed and checked (two thirds of the work); writing
#: takes it to 100
PARSED = 60
#: how often an idle worker looks for imports queued by another process (this process's
#: own wake it at once)
POLL = 1.0
#: a file is read in pieces of at most this many characters (a line longer than this too)
PIECE = 1 << 20
Progress = Callable[[ImportJob], None]


def iso(moment: int | None) -> str | None:
    return None if moment is None else datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch_of(text: str | None) -> int | None:
    return None if text is None else int(datetime.fromisoformat(text).timestamp())


@dataclass(slots=True, frozen=True)
class Upload:
    """An uploaded file: in memory, or on disk (a spooled upload, or the CLI's file), which is
    then only ever read in pieces."""

    data: bytes | None = None
    path: Path | None = None

    @classmethod
    def of(cls, data: bytes | str) -> Upload:
        """A file in memory (text as UTF-8; lone surrogates from JSON become invalid bytes)."""
        return cls(data=data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)

    @property
    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        return self.path.stat().st_size if self.path is not None else 0

    def _open(self) -> IO[bytes]:
        if self.data is not None or self.path is None:
            return io.BytesIO(self.data or b"")
        return open(self.path, "rb")

    def chunks(self) -> Iterator[bytes]:
        with self._open() as file:
            yield from iter(functools.partial(file.read, 1 << 20), b"")

    def head(self) -> str:
        """The file's beginning, for format detection (bad bytes replaced)."""
        start = next(self.chunks(), b"")[:65536]
        return start.decode(formats.encoding_by_bom(start), "replace")

    def lines(self, encoding: str) -> Lines:
        def pieces() -> Iterator[str]:
            with io.TextIOWrapper(self._open(), encoding, newline="") as text:
                yield from iter(functools.partial(text.readline, PIECE), "")

        return pieces

    def discard(self) -> None:
        """Remove a spooled upload (never call it on a file the user owns)."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)


@dataclass(slots=True, frozen=True)
class ImportRequest:
    """How to import one file, as a door received the request."""

    door: str
    #: the target calendar, already resolved and checked by the door; None: the import group
    calendar: Calendar | None = None
    format: str | None = None  #: None: detect it
    filename: str | None = None
    #: keep only components with an instance overlapping [start, end) (epoch seconds; None: unbounded)
    start: int | None = None
    end: int | None = None
    #: put events into the calendars the file names (X-WR-CALNAME, Timeslot groups), made if missing
    create_calendars: bool = False
    delimiter: str | None = None  #: CSV field delimiter; None: detect it
    #: import the valid entries of a file with bad ones (reported as line errors) instead of
    #: refusing the file; never when reading stopped early (a broken file)
    skip_invalid: bool = False

    def options(self) -> dict[str, Any]:
        """The options as the job records them."""
        options: dict[str, Any] = {"create_calendars": self.create_calendars}
        if self.skip_invalid:
            options["skip_invalid"] = True
        for key, value in (("dtstart", iso(self.start)), ("dtend", iso(self.end)), ("field_delimiter", self.delimiter)):
            if value is not None:
                options[key] = value
        return options

    @classmethod
    def of_job(cls, job: ImportJob, calendar: Calendar | None) -> ImportRequest:
        """The request a queued job was made from."""
        options = job.options
        return cls(
            door=job.door, calendar=calendar, format=job.format, filename=job.filename,
            start=epoch_of(options.get("dtstart")), end=epoch_of(options.get("dtend")),
            create_calendars=bool(options.get("create_calendars")), delimiter=options.get("field_delimiter"),
            skip_invalid=bool(options.get("skip_invalid")),
        )  # fmt: skip


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


class ParseProcesses(Executor):
    """The helper processes that read big files' plain components beside the server's own
    process (see protocol.formats.ics): started with the server (``start``) or by the first big
    file, kept, and started again after one died (what it was reading is read in the server's
    process instead)."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()  #: imports read in several threads

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        with self._lock:
            try:
                return self._processes().submit(fn, *args, **kwargs)
            except BrokenProcessPool:  # one of them died: start them again
                self._drop(wait=False, cancel_futures=True)
                return self._processes().submit(fn, *args, **kwargs)

    def _processes(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.processes, multiprocessing.get_context("spawn"), exit_with_parent, (os.getpid(),)
            )
        return self._pool

    def _drop(self, wait: bool, cancel_futures: bool) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait, cancel_futures=cancel_futures)
            self._pool = None

    def start(self) -> None:
        """Start the processes now (they start with the first big file otherwise, and a file read
        while they start is read in the server's process)."""
        self.submit(plain_fields, [], 0)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._drop(wait, cancel_futures)


def line_errors(problem: Invalid | BadEncoding) -> list[dict[str, Any]]:
    if isinstance(problem, BadEncoding):
        return [{"line": problem.line, "fields": [], "error": problem.message}]
    return problem.errors or [{"line": None, "fields": [], "error": problem.message}]


class ImportService:
    def __init__(self, store: Store, calendars: CalendarService, config: Config) -> None:
        self.store = store
        self.calendars = calendars
        self.config = config
        #: this process's uploads on their way in (queued imports wait in the store)
        self.spool = config.data_dir / "imports" / f"worker-{config.worker}"
        #: who holds the leases of the imports this process runs: stable across restarts, so
        #: that a restarted server rolls back what it was running at once
        self.runner = f"{socket.gethostname()}:{config.data_dir.resolve()}:{config.worker}"
        self.parsers = ParseProcesses(config.parse_processes) if config.parse_processes else None
        self._wake = asyncio.Event()  #: set when this process queues an import
        self._running: set[int] = set()
        self._tasks: list[asyncio.Task[None]] = []

    # checking and parsing ------------------------------------------------------------------

    def check_size(self, size: int | None) -> None:
        if size is not None and size > self.config.max_upload_bytes:
            raise TooLarge(f"the file is larger than the limit of {self.config.max_upload_bytes} bytes")

    def open(self, upload: Upload) -> tuple[Lines, int]:
        """The file's lines and how many there are, once its size and encoding are checked
        (reads it through: call it in a thread); TooLarge, Invalid, BadEncoding."""
        self.check_size(upload.size)
        try:
            encoding, count = formats.encoding_of(upload.chunks())
        except formats.EncodingProblem as problem:
            # Garbage is "not a calendar file" (422); a calendar file with bad bytes is 403.
            self.detect(upload.head(), None)
            raise BadEncoding(
                f"the file includes invalid encoded characters: {problem.message}", problem.line
            ) from None
        return upload.lines(encoding), count

    @staticmethod
    def detect(text: str, fmt: str | None) -> str:
        """The format named by the caller, or the one the text looks like; raises Invalid."""
        if fmt is not None:
            if fmt not in formats.FORMATS:
                raise Invalid(f"unknown format {fmt!r}: use one of {', '.join(formats.FORMATS)}", field="type")
            return fmt
        try:
            return formats.detect(text)
        except formats.UnknownFormat as unknown:
            error: dict[str, Any] = {"line": unknown.line, "fields": [], "error": unknown.message}
            raise Invalid(unknown.message, field="file", errors=[error], code="invalid_file") from None

    def format_of(self, upload: Upload, fmt: str | None) -> str:
        """The format named by the caller, or the one the file's beginning looks like: a file
        that starts like no calendar file of any format is refused (Invalid) at once."""
        return self.detect(upload.head(), fmt)

    def read(
        self, lines: Lines, request: ImportRequest, result: ParseResult, progress: Callable[[int], None] | None = None
    ) -> Iterator[Resource]:
        """Stream the resources in the window (CPU-bound: iterate in a thread); problems go to
        ``result``. ``progress`` hears the line reading has reached."""
        calendar = request.calendar
        options = ParseOptions(
            timezone=calendar.timezone if calendar else None,
            delimiter=request.delimiter,
            max_components=self.config.max_components,
            max_instances=self.config.max_instances,
            progress=progress,
            pool=self.parsers,
        )
        resources = formats.read(lines, result.format, options, result)
        if request.start is None and request.end is None:
            return resources
        low, high = window(request.start, request.end)

        def kept(resource: Resource) -> bool:
            inside = in_window(resource.text, resource.start, resource.end, resource.recurring, low, high)
            result.discarded += not inside
            return inside

        return filter(kept, resources)

    async def put_object(
        self,
        user: User,
        calendar: Calendar,
        data: bytes,
        href: str,
        *,
        if_etag: str | None = None,
        create_only: bool = False,
    ) -> tuple[CalendarObject, bool]:
        """One calendar object sent as iCalendar text (a CalDAV PUT), read by the import's rules
        (its repairs included) and written at ``href``. Refused with Invalid: ``invalid_data``
        (or BadEncoding), ``unsupported_component`` (none the calendar takes), ``one_resource``
        (several UIDs); NameTaken (its UID is another href's), PreconditionFailed."""
        await self.calendars.need(user, [calendar], Level.READ_WRITE)  # before any work
        request = ImportRequest(door="caldav", calendar=calendar, format="ics")

        def parse() -> ParseResult:  # a small text (the door bounds it): whole, in a thread
            upload = Upload(data)
            lines, _ = self.open(upload)
            result = ParseResult(self.format_of(upload, request.format))
            result.resources = list(self.read(lines, request, result))
            return result

        try:
            result = await asyncio.to_thread(parse)
        except Invalid as error:
            raise Invalid(error.message, field="data", code="invalid_data") from None
        if result.discarded and not result.resources:  # only a VFREEBUSY, say
            raise Invalid("no component a calendar holds", field="data", code="unsupported_component")
        if result.discarded:  # a VFREEBUSY beside the event, say: kept, it would not be what was sent
            skipped = next((w.error for w in result.warnings if "skipped" in w.error), "a component")
            raise Invalid(f"one kind of component per calendar object: {skipped}", field="data", code="one_resource")
        if result.errors:
            raise Invalid(result.errors[0].error, field="data", code="invalid_data")
        if len(result.resources) != 1:
            raise Invalid("one UID per calendar object resource", field="data", code="one_resource")
        resource = result.resources[0]
        if resource.component not in calendar.components.split(","):
            raise Invalid(f"this calendar holds no {resource.component}", field="data", code="unsupported_component")
        try:
            return await self.calendars.put(
                user, calendar, resource, href=href, if_etag=if_etag, create_only=create_only
            )
        except Invalid as taken:  # the UID is another object's, or the href holds another UID
            if taken.code == "replaces_uid":
                raise NameTaken(taken.message, href, replacing=True) from None
            raise await self.calendars.uid_taken(calendar, resource.uid) from None

    def target_name(self, request: ImportRequest, resource: Resource) -> str | None:
        """The name of the calendar a resource goes to; None: the request's calendar."""
        if request.create_calendars and resource.calendar:
            return resource.calendar
        return None if request.calendar is not None else self.config.import_group

    def _stage(
        self, lines: Lines, request: ImportRequest, result: ParseResult, staged: IO[bytes], heard: Callable[[int], None]
    ) -> int:
        """Read the file into ``staged`` as (calendar name, None for the request's; object)
        records, and rewind it; how many there are."""
        count = 0
        for resource in self.read(lines, request, result, heard):
            pickle.dump((self.target_name(request, resource), object_write(resource)), staged, pickle.HIGHEST_PROTOCOL)
            count += 1
        staged.seek(0)
        return count

    @staticmethod
    def _next_batch(staged: IO[bytes]) -> dict[str | None, list[ObjectWrite]]:
        """The next staged objects (up to BATCH) by the calendar they go to; empty at the end."""
        batch: dict[str | None, list[ObjectWrite]] = {}
        for _ in range(BATCH):
            try:
                name, write = pickle.load(staged)
            except EOFError:
                break
            batch.setdefault(name, []).append(write)
        return batch

    async def staged(
        self, upload: Upload, request: ImportRequest, job: ImportJob | None = None, progress: Progress | None = None
    ) -> tuple[ParseResult, IO[bytes], int]:
        """The file read through: the result (problems, warnings, calendar name), a temporary
        file of what it would write (see ``_stage``; close it) and how many objects that
        is. With a job, its progress follows the reading (every half second)."""
        lines, count = await asyncio.to_thread(self.open, upload)
        result = ParseResult(self.format_of(upload, request.format))
        reached = [0]

        def heard(line: int) -> None:
            reached[0] = line

        self.spool.mkdir(parents=True, exist_ok=True)
        staged = tempfile.TemporaryFile(dir=self.spool, prefix="staged-")  # noqa: SIM115 (the caller closes it)
        try:
            reading = asyncio.ensure_future(asyncio.to_thread(self._stage, lines, request, result, staged, heard))
            while job is not None and not reading.done():
                await asyncio.wait([reading], timeout=0.5)
                job = await self.store.update_import(job.id, progress=PARSED * min(reached[0], count) // count)
                if progress:
                    progress(job)
            return result, staged, await reading
        except BaseException:
            staged.close()
            raise

    @staticmethod
    def refusal(result: ParseResult, request: ImportRequest, total: int) -> Invalid | None:
        """Why the file must not be imported: any bad line, unless the request skips invalid
        entries and there are valid ones, read to the end (then they count as discarded)."""
        if result.errors and request.skip_invalid and total and not result.stopped:
            result.discarded += result.bad_entries
            return None
        if not result.errors:
            return None
        count = result.bad_entries
        shown = len(result.errors)
        listed = f" (the first {shown:,} problems are listed)" if result.error_count > shown else ""
        return Invalid(
            f"the file has {count:,} invalid {'entry' if count == 1 else 'entries'}: nothing was imported{listed}",
            field="file",
            errors=[e.as_dict() for e in result.errors],
        )

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
        self.check_size(upload.size)
        await self.writable(user, request.calendar)
        new = replace(self._new(user, request, JobStatus.IN_PROGRESS), runner=self.runner, lease_until=self._lease())
        job = await self.store.create_import(new)
        with disk_space():
            async with self._leased(job.id):
                return await self._execute(job, user, request, upload, progress)

    async def submit(self, user: User, request: ImportRequest, upload: Upload) -> ImportJob:
        """Queue an import for the workers, taking the upload over (a spooled one is moved to
        the queue, or removed if refused); what can be refused at once is refused (TooLarge,
        Invalid) and then nothing is recorded."""
        try:
            self.check_size(upload.size)
            await self.writable(user, request.calendar)
            fmt = self.format_of(upload, request.format)
            data = upload.data if upload.path is None else await asyncio.to_thread(upload.path.read_bytes)
            # the job and its file in one transaction: a worker never claims a job without its file
            job = await self.store.create_import(self._new(user, request, JobStatus.QUEUED, fmt), upload=data or b"")
        finally:
            upload.discard()
        self._wake.set()
        return job

    async def _execute(
        self, job: ImportJob, user: User, request: ImportRequest, upload: Upload, progress: Progress | None
    ) -> tuple[ImportJob, ParseResult]:
        fmt, result = None, None
        try:
            fmt = self.format_of(upload, request.format)
            result, staged, total = await self.staged(upload, request, job, progress)
            problem = self.refusal(result, request, total)
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
            targets: dict[str | None, ImportTarget] = {}
            written = 0
            # the next batch is read from the staged file while this one is written
            reading = asyncio.ensure_future(asyncio.to_thread(self._next_batch, staged))
            try:
                while batch := await reading:
                    reading = asyncio.ensure_future(asyncio.to_thread(self._next_batch, staged))
                    await self._still_writable(user, request.calendar)
                    for name, writes in batch.items():
                        if name not in targets:
                            targets[name] = self.target(user, request, result, name)
                        written += len(writes)
                        percent = PARSED + (100 - PARSED) * written // max(total, 1)
                        await self.store.import_batch(job.id, targets[name], writes, min(percent, 99))
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
            finally:  # the staged file closes below: not while a thread reads it
                await asyncio.wait([reading])
                if not reading.cancelled():
                    reading.exception()  # retrieved: what failed is the write's to report
        job = await self.store.update_import(job.id, status=JobStatus.COMPLETE, progress=100)
        if progress:
            progress(job)
        return job, result

    async def jobs(self, where: ImportFilter, *, offset: int = 0, limit: int = 30) -> tuple[list[ImportJob], int]:
        """A page of imports, newest first, and how many match (the door filters by its user)."""
        return await self.store.list_imports(where, offset=offset, limit=limit)

    async def items(self, job: ImportJob, *, offset: int = 0, limit: int | None = None) -> tuple[list[ImportItem], int]:
        """A page of what an import wrote, in write order, and how many in all."""
        return await self.store.import_items(job.id, offset=offset, limit=limit)

    async def target_of(self, job: ImportJob) -> Calendar | None:
        """The calendar an import wrote into (None when it made several or none)."""
        return await self.store.get_calendar(job.calendar_id) if job.calendar_id else None

    async def preview(self, user: User, request: ImportRequest, upload: Upload) -> Preview:
        """A dry run: what the import would create, update and skip, and every line error."""
        try:
            result, staged, _ = await self.staged(upload, request)
        except (Invalid, BadEncoding) as problem:
            errors = line_errors(problem)
            return Preview(None, line_errors=errors, line_error_count=len(errors))
        preview = Preview(
            result.format, discarded=result.discarded, line_errors=[e.as_dict() for e in result.errors],
            line_error_count=result.error_count, warnings=[w.as_dict() for w in result.warnings],
        )  # fmt: skip
        calendar_ids: dict[str | None, int | None] = {None: request.calendar.id if request.calendar else None}
        with staged:
            while batch := await asyncio.to_thread(self._next_batch, staged):
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

    # the worker pool -----------------------------------------------------------------------

    async def start(self) -> None:
        """Roll back the imports this runner's earlier life left half-written (and any whose
        runner's lease lapsed), remove the files a stopped server left in its spool, and start
        the workers and the watch over other runners' leases."""
        await self._sweep(of=self.runner)
        if self.spool.is_dir():
            for path in self.spool.iterdir():
                path.unlink(missing_ok=True)
        await self._adopt_legacy_spool()
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self.config.import_workers)]
        self._tasks.append(asyncio.create_task(self._watch()))

    async def _adopt_legacy_spool(self) -> None:
        """Before version 5 of the store a queued import's file waited in ``<data>/imports/<id>``:
        move those into the store (so that they run), and remove what else is left there."""
        for path in (self.config.data_dir / "imports").glob("*"):
            if not path.is_file():
                continue
            job = await self.store.get_import(int(path.name)) if path.name.isdigit() else None
            if job is not None and job.status == JobStatus.QUEUED:
                await self.store.save_upload(job.id, await asyncio.to_thread(path.read_bytes))
            path.unlink(missing_ok=True)

    async def stop(self) -> None:
        """Stop the workers: an import running is rolled back and queued again, for another
        worker (here after a restart, or on another node) to run from the start."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self.parsers is not None:
            self.parsers.shutdown(wait=False, cancel_futures=True)

    async def idle(self) -> None:
        """Wait until no import is queued or running here (for tests and the benchmark)."""
        while self._running or (await self.store.list_imports(ImportFilter(status=JobStatus.QUEUED), limit=1))[1]:
            await asyncio.sleep(0.02)

    def _lease(self) -> int:
        return int(time.time()) + self.config.import_lease

    @contextlib.asynccontextmanager
    async def _leased(self, job_id: int) -> AsyncIterator[None]:
        """Renew the job's lease while the block runs (it lapses if this process dies)."""

        async def renew() -> None:
            while True:
                await asyncio.sleep(self.config.import_lease / 3)
                if not await self.store.renew_lease(job_id, self.runner, self._lease()):
                    log.warning("import %d: its lease was taken over; its next batch will be refused", job_id)
                    return

        self._running.add(job_id)
        renewing = asyncio.create_task(renew())
        try:
            yield
        finally:
            renewing.cancel()
            self._running.discard(job_id)

    async def _sweep(self, of: str | None = None) -> None:
        """Roll back every import in progress whose runner is gone (its lease lapsed, or it
        was this runner's earlier life)."""
        while job := await self.store.claim_abandoned(self.runner, self._lease(), int(time.time()), of=of):
            try:
                await self._revert(
                    job.id, JobStatus.IN_PROGRESS, JobStatus.FAILED,
                    "the server stopped during the import: what it had written was removed",
                )  # fmt: skip
                await self.store.drop_upload(job.id)
                log.warning("import %d was interrupted (its server stopped) and has been rolled back", job.id)
            except Exception as error:  # the lease lapses again: tried again by the next sweep
                log.error("import %d was interrupted and could not be rolled back: %r", job.id, error)
                return

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.config.import_lease / 2)
            try:
                await self._sweep()
            except Exception:
                log.exception("looking for abandoned imports failed")

    async def _work(self) -> None:
        while True:
            try:
                job = await self.store.claim_import(self.runner, self._lease())
            except Exception:
                log.exception("claiming an import failed")
                job = None
            if job is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL)
                continue
            try:
                await self._run_claimed(job)
            except (Invalid, BadEncoding, Forbidden):
                pass  # recorded on the job
            except Exception:
                log.exception("import %d failed", job.id)

    async def _run_claimed(self, job: ImportJob) -> None:
        """Run a queued import this worker claimed; stopped half-way, it is rolled back and
        queued again."""
        async with self._leased(job.id):
            data = await self.store.load_upload(job.id)
            user = await self.store.get_user(job.user_id)
            calendar = await self.store.get_calendar(job.calendar_id) if job.calendar_id else None
            problem = (
                "the uploaded file is gone" if data is None
                else "the target calendar was deleted" if job.calendar_id and calendar is None
                else "the user was deleted" if user is None
                else None
            )  # fmt: skip
            if not problem and user is not None:
                try:
                    await self.writable(user, calendar)
                except (NotFound, Forbidden):
                    problem = "the user may no longer write to the target calendar"
            if problem or user is None or data is None:
                await self.store.update_import(job.id, status=JobStatus.FAILED, message=problem)
                await self.store.drop_upload(job.id)
                return
            try:
                await self._execute(job, user, ImportRequest.of_job(job, calendar), Upload(data=data), None)
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
        replaced, _ = await self.store.import_items(import_id, action="updated")

        def restore(item: ImportItem) -> tuple[int, ObjectWrite]:
            """The replaced version, byte for byte and with its ETag, re-indexed."""
            parsed = resource_from_calendar(parse_resource(item.previous_ical or ""))
            write = object_write(parsed, item.href)
            ical = item.previous_ical or ""
            return item.calendar_id, replace(write, ical=ical, etag=item.previous_etag or write.etag)

        restores = await asyncio.to_thread(lambda: [restore(item) for item in replaced if item.previous_ical])
        return await self.store.undo_import(import_id, restores, expect=expect, status=status, message=message, by=by)
