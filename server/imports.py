"""ImportService: every import, from every door, is a job.

A job is recorded first (who, which door, calendar, format, file name, options), then run:
decode -> detect -> parse -> check every line -> write in batches. A file with any bad line
writes nothing: the job is marked failed with every problem and its line. Batches are written
in separate transactions so that a 100,000-event import never holds the store's single writer
for long; a job that fails while writing, or that a stopped server left half-written, is rolled
back with the same code that undoes a finished import.

``/v1/imports`` and the web page queue their jobs (the file waits in ``<data>/imports/``) for a
pool of workers; the seed's ``/v1/import/``, ``import.wcap`` and the CLI run theirs at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from protocol import formats
from protocol.formats import ParseOptions, ParseResult
from protocol.ical import Resource, in_window, parse_resource, resource_from_calendar
from server.calendars import CalendarService, object_write, window
from server.config import Config
from server.errors import BadEncoding, Invalid, NotFound, TooLarge
from storage.base import Store
from storage.model import Calendar, ImportFilter, ImportItem, ImportJob, ImportTarget, NewImport, ObjectWrite, User

log = logging.getLogger("almanac.imports")

#: objects written per store transaction
BATCH = 500
#: CSV field delimiters a caller may name (``tab`` for a tab)
DELIMITERS = {",": ",", ";": ";", "|": "|", "\t": "\t", "tab": "\t"}
#: progress (percent) once the file is parsed and checked (two thirds of the work); writing
#: takes it to 100
PARSED = 60
Progress = Callable[[ImportJob], None]


def iso(moment: int | None) -> str | None:
    return None if moment is None else datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch_of(text: str | None) -> int | None:
    return None if text is None else int(datetime.fromisoformat(text).timestamp())


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
    line_errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.format, "entries_created": self.created, "entries_updated": self.updated,
            "entries_unchanged": self.unchanged, "entries_discarded": self.discarded,
            "calendars_created": self.calendars, "line_errors": self.line_errors, "warnings": self.warnings,
        }  # fmt: skip


def line_errors(problem: Invalid | BadEncoding) -> list[dict[str, Any]]:
    if isinstance(problem, BadEncoding):
        return [{"line": problem.line, "fields": [], "error": problem.message}]
    return problem.errors or [{"line": None, "fields": [], "error": problem.message}]


class ImportService:
    def __init__(self, store: Store, calendars: CalendarService, config: Config) -> None:
        self.store = store
        self.calendars = calendars
        self.config = config
        self.spool = config.data_dir / "imports"  #: files of queued imports, named by job id
        self._queue: asyncio.Queue[int] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []

    # checking and parsing ------------------------------------------------------------------

    def check_size(self, size: int | None) -> None:
        if size is not None and size > self.config.max_upload_bytes:
            raise TooLarge(f"the file is larger than the limit of {self.config.max_upload_bytes} bytes")

    def decode(self, data: bytes | str) -> str:
        try:
            if isinstance(data, bytes):
                self.check_size(len(data))
                return formats.decode(data)
            self.check_size(len(data.encode("utf-8", "surrogatepass")))
            formats.check_text(data)
            return data
        except formats.EncodingProblem as problem:
            # Garbage is "not a calendar file" (422); a calendar file with bad bytes is 403.
            self.detect(data.decode("utf-8", "replace") if isinstance(data, bytes) else data, None)
            raise BadEncoding(
                f"the file includes invalid encoded characters: {problem.message}", problem.line
            ) from None

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
            error = {"line": unknown.line, "fields": [], "error": unknown.message}
            raise Invalid(unknown.message, field="file", errors=[error], code="invalid_file") from None

    def check_head(self, data: bytes | str, fmt: str | None) -> None:
        """Refuse at once (Invalid) a file whose beginning is no calendar file of any format."""
        head = data[:65536]
        self.detect(head.decode("utf-8", "replace") if isinstance(head, bytes) else head, fmt)

    def parse(self, text: str, request: ImportRequest, progress: Callable[[int], None] | None = None) -> ParseResult:
        """Parse and keep what is in the window (CPU-bound: call it in a thread); problems
        are in the result's ``errors``. ``progress`` hears the line reading has reached."""
        calendar = request.calendar
        options = ParseOptions(
            timezone=calendar.timezone if calendar else None,
            delimiter=request.delimiter,
            max_components=self.config.max_components,
            max_instances=self.config.max_instances,
            progress=progress,
        )
        result = formats.parse(text, self.detect(text, request.format), options)
        if request.start is not None or request.end is not None:
            low, high = window(request.start, request.end)
            kept = [r for r in result.resources if in_window(r.text, r.start, r.end, r.recurring, low, high)]
            result.discarded += len(result.resources) - len(kept)
            result.resources = kept
        return result

    async def checked(
        self, data: bytes | str, request: ImportRequest, job: ImportJob | None = None, progress: Progress | None = None
    ) -> ParseResult:
        """The parsed file; Invalid with every line error if any line is bad (unless the
        request skips invalid entries and there are valid ones, read to the end). With a job,
        its progress follows the parse (every half second)."""
        text = self.decode(data)
        lines, reached = max(text.count("\n"), 1), [0]

        def heard(line: int) -> None:
            reached[0] = line

        parsing = asyncio.ensure_future(asyncio.to_thread(self.parse, text, request, heard if job else None))
        while job is not None and not parsing.done():
            await asyncio.wait([parsing], timeout=0.5)
            job = await self.store.update_import(job.id, progress=PARSED * min(reached[0], lines) // lines)
            if progress:
                progress(job)
        result = await parsing
        if result.errors and request.skip_invalid and result.resources and not result.stopped:
            result.discarded += len({e.line for e in result.errors})
        elif result.errors:
            count = len(result.errors)
            raise Invalid(
                f"the file has {count} invalid {'entry' if count == 1 else 'entries'}: nothing was imported",
                field="file",
                errors=[e.as_dict() for e in result.errors],
            )
        return result

    def target_name(self, request: ImportRequest, resource: Resource) -> str | None:
        """The name of the calendar a resource goes to; None: the request's calendar."""
        if request.create_calendars and resource.calendar:
            return resource.calendar
        return None if request.calendar is not None else self.config.import_group

    def targets(
        self, user: User, request: ImportRequest, result: ParseResult
    ) -> Iterator[tuple[ImportTarget, list[Resource]]]:
        """The resources grouped by the calendar they go to, in file order."""
        groups: dict[str | None, list[Resource]] = {}
        for resource in result.resources:
            groups.setdefault(self.target_name(request, resource), []).append(resource)
        for name, resources in groups.items():
            if name is None:
                assert request.calendar is not None
                yield ImportTarget(owner_id=user.id, calendar_id=request.calendar.id), resources
            else:
                description = result.calendar_description if name == result.calendar_name else None
                made = self.calendars.new_calendar(user, name, description=description)
                yield ImportTarget(owner_id=user.id, create=made), resources

    # running -------------------------------------------------------------------------------

    def _new(self, user: User, request: ImportRequest, status: str) -> NewImport:
        return NewImport(
            user_id=user.id, door=request.door, format=request.format, filename=request.filename,
            calendar_id=request.calendar.id if request.calendar else None, options=request.options(), status=status,
        )  # fmt: skip

    async def run(
        self, user: User, request: ImportRequest, data: bytes | str, progress: Progress | None = None
    ) -> tuple[ImportJob, ParseResult]:
        """Import now (the doors that answer with the outcome); Invalid/BadEncoding after the
        failed job is recorded."""
        self.check_size(len(data))
        job = await self.store.create_import(self._new(user, request, "in_progress"))
        return await self._execute(job, user, request, data, progress)

    async def submit(self, user: User, request: ImportRequest, data: bytes | str) -> ImportJob:
        """Queue an import for the workers; what can be refused at once is refused (TooLarge,
        Invalid) and then nothing is recorded."""
        self.check_size(len(data))
        self.check_head(data, request.format)
        job = await self.store.create_import(self._new(user, request, "queued"))
        raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
        await asyncio.to_thread(self._spool_write, job.id, raw)
        self._queue.put_nowait(job.id)
        return job

    def _spool_write(self, job_id: int, data: bytes) -> None:
        self.spool.mkdir(parents=True, exist_ok=True)
        partial = self.spool / f"{job_id}.part"
        partial.write_bytes(data)
        partial.rename(self.spool / str(job_id))

    async def _execute(
        self, job: ImportJob, user: User, request: ImportRequest, data: bytes | str, progress: Progress | None
    ) -> tuple[ImportJob, ParseResult]:
        try:
            result = await self.checked(data, request, job, progress)
        except (Invalid, BadEncoding) as problem:
            await self.store.update_import(
                job.id, status="failed", message=problem.message, errors=line_errors(problem)
            )
            raise
        total = len(result.resources)
        job = await self.store.update_import(
            job.id, format=result.format, total=total, discarded=result.discarded, progress=PARSED,
            warnings=[w.as_dict() for w in result.warnings], errors=[e.as_dict() for e in result.errors],
        )  # fmt: skip
        if progress:
            progress(job)
        written = 0
        try:
            for target, resources in self.targets(user, request, result):
                for start in range(0, len(resources), BATCH):
                    batch = resources[start : start + BATCH]
                    writes = await asyncio.to_thread(lambda b=batch: [object_write(r) for r in b])  # type: ignore[misc]
                    written += len(batch)
                    percent = PARSED + (100 - PARSED) * written // max(total, 1)
                    await self.store.import_batch(job.id, target, writes, min(percent, 99))
                    if progress:
                        progress(await self.store.get_import(job.id))  # type: ignore[arg-type]
        except Exception as error:
            log.exception("import %d failed while writing", job.id)
            await self._revert(job.id, "in_progress", "failed", f"the import failed while writing: {error}")
            raise
        job = await self.store.update_import(job.id, status="complete", progress=100)
        if progress:
            progress(job)
        return job, result

    async def preview(self, user: User, request: ImportRequest, data: bytes | str) -> Preview:
        """A dry run: what the import would create, update and skip, and every line error."""
        try:
            result = await asyncio.to_thread(self.parse, self.decode(data), request)
        except (Invalid, BadEncoding) as problem:
            return Preview(None, line_errors=line_errors(problem))
        preview = Preview(
            result.format, discarded=result.discarded, line_errors=[e.as_dict() for e in result.errors],
            warnings=[w.as_dict() for w in result.warnings],
        )  # fmt: skip
        for target, resources in self.targets(user, request, result):
            calendar_id = target.calendar_id
            if target.create is not None:
                found = await self.store.find_calendar_by_name(user.id, target.create.name)
                calendar_id = found.id if found else None
                if found is None:
                    preview.calendars.append(target.create.name)
            writes = await asyncio.to_thread(lambda r=resources: [object_write(x) for x in r])  # type: ignore[misc]
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
        """Roll back the imports a stopped server left half-written, queue the waiting ones,
        and start the workers."""
        interrupted, _ = await self.store.list_imports(ImportFilter(status="in_progress"), limit=1_000_000)
        for job in interrupted:
            await self._revert(
                job.id, "in_progress", "failed", "the server stopped during the import: what it had written was removed"
            )
            self._spool_path(job.id).unlink(missing_ok=True)
            log.warning("import %d was interrupted by a restart and has been rolled back", job.id)
        queued, _ = await self.store.list_imports(ImportFilter(status="queued"), limit=1_000_000)
        for job in reversed(queued):  # oldest first
            self._queue.put_nowait(job.id)
        self._workers = [asyncio.create_task(self._work()) for _ in range(self.config.import_workers)]

    async def stop(self) -> None:
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []

    async def idle(self) -> None:
        """Wait until every queued import has run (for tests and the benchmark)."""
        await self._queue.join()

    def _spool_path(self, job_id: int) -> Path:
        return self.spool / str(job_id)

    async def _work(self) -> None:
        while True:
            job_id = await self._queue.get()
            try:
                await self._run_queued(job_id)
            except (Invalid, BadEncoding):
                pass  # recorded on the job
            except Exception:
                log.exception("import %d failed", job_id)
            finally:
                self._queue.task_done()

    async def _run_queued(self, job_id: int) -> None:
        job = await self.store.get_import(job_id)
        if job is None or job.status != "queued":
            return
        path = self._spool_path(job_id)
        user = await self.store.get_user(job.user_id)
        calendar = await self.store.get_calendar(job.calendar_id) if job.calendar_id else None
        problem = (
            "the uploaded file is gone" if not path.exists()
            else "the target calendar was deleted" if job.calendar_id and calendar is None
            else None
        )  # fmt: skip
        if user is None or problem:
            await self.store.update_import(job_id, status="failed", message=problem or "the user was deleted")
            path.unlink(missing_ok=True)
            return
        job = await self.store.update_import(job_id, status="in_progress")
        try:
            data = await asyncio.to_thread(path.read_bytes)
            await self._execute(job, user, ImportRequest.of_job(job, calendar), data, None)
        finally:
            path.unlink(missing_ok=True)

    # the imports resource ------------------------------------------------------------------

    async def get(self, user: User, import_id: int) -> ImportJob:
        """The user's import with this id; NotFound for unknown and foreign ones alike."""
        job = await self.store.get_import(import_id)
        if job is None or job.user_id != user.id:
            raise NotFound("import not found")
        return job

    async def undo(self, user: User, import_id: int) -> ImportJob:
        """Take an import back in one transaction: what it created goes (edited since or not),
        what it replaced comes back, the calendars it made go unless they now hold other events."""
        job = await self.get(user, import_id)
        if job.status != "complete":
            raise Invalid(f"only a complete import can be undone; this one is {job.status}", field="status")
        try:
            return await self._revert(import_id, "complete", "undone")
        except LookupError:
            raise Invalid("the import changed while it was being undone; try again", field="status") from None

    async def _revert(self, import_id: int, expect: str, status: str, message: str | None = None) -> ImportJob:
        replaced, _ = await self.store.import_items(import_id, action="updated")

        def restore(item: ImportItem) -> tuple[int, ObjectWrite]:
            """The replaced version, byte for byte and with its ETag, re-indexed."""
            parsed = resource_from_calendar(parse_resource(item.previous_ical or ""))
            write = object_write(parsed, item.href)
            return item.calendar_id, replace(write, ical=item.previous_ical, etag=item.previous_etag or write.etag)

        restores = await asyncio.to_thread(lambda: [restore(item) for item in replaced if item.previous_ical])
        return await self.store.undo_import(import_id, restores, expect=expect, status=status, message=message)
