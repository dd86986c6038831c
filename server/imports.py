"""ImportService: decode -> detect -> parse -> check -> store in one transaction -> record.

Every door's import goes through ``run``. A file with any bad line imports nothing: the
caller gets every problem with its line, and the store is left as it was.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from protocol import formats
from protocol.formats import ParseOptions, ParseResult
from protocol.ical import in_window, parse_resource, resource_from_calendar
from server.calendars import CalendarService, object_write, window
from server.config import Config
from server.errors import BadEncoding, Invalid, NotFound, TooLarge
from storage.base import Store
from storage.model import Calendar, ImportJob, ImportOutcome, ImportTarget, NewImport, User


@dataclass(slots=True, frozen=True)
class ImportRequest:
    """One file to import, as a door received it."""

    data: bytes | str
    door: str
    #: the target calendar, already resolved and checked by the door; None: the import group
    calendar: Calendar | None = None
    format: str | None = None
    filename: str | None = None
    #: keep only components with an instance overlapping [start, end) (epoch seconds; None: unbounded)
    start: int | None = None
    end: int | None = None


class ImportService:
    def __init__(self, store: Store, calendars: CalendarService, config: Config) -> None:
        self.store = store
        self.calendars = calendars
        self.config = config

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
            raise Invalid(unknown.message, field="file", errors=[error]) from None

    def parse(self, text: str, fmt: str | None, calendar: Calendar | None) -> ParseResult:
        """Parse (CPU-bound: call it in a thread); raises Invalid for any bad line."""
        options = ParseOptions(
            timezone=calendar.timezone if calendar else None,
            max_components=self.config.max_components,
            max_instances=self.config.max_instances,
        )
        result = formats.parse(text, self.detect(text, fmt), options)
        if result.errors:
            count = len(result.errors)
            raise Invalid(
                f"the file has {count} invalid {'entry' if count == 1 else 'entries'}: nothing was imported",
                field="file",
                errors=[e.as_dict() for e in result.errors],
            )
        return result

    @staticmethod
    def keep_window(result: ParseResult, start: int | None, end: int | None) -> None:
        """Drop the resources without an instance in the window (they count as discarded)."""
        low, high = window(start, end)
        kept = [r for r in result.resources if in_window(r.text, r.start, r.end, r.recurring, low, high)]
        result.discarded += len(result.resources) - len(kept)
        result.resources = kept

    async def run(self, user: User, request: ImportRequest) -> tuple[ImportOutcome, ParseResult]:
        text = self.decode(request.data)
        result = await asyncio.to_thread(self.parse, text, request.format, request.calendar)
        if request.calendar is not None:
            target = ImportTarget(owner_id=user.id, calendar_id=request.calendar.id)
        else:
            target = self.calendars.import_target(user, self.config.import_group)
        if request.start is not None or request.end is not None:
            await asyncio.to_thread(self.keep_window, result, request.start, request.end)
        job = NewImport(
            user_id=user.id,
            door=request.door,
            format=result.format,
            filename=request.filename,
            options={k: v for k, v in (("dtstart", request.start), ("dtend", request.end)) if v is not None},
            warnings=[w.as_dict() for w in result.warnings],
            discarded=result.discarded,
        )
        writes = [object_write(resource) for resource in result.resources]
        outcome = await self.store.apply_import(job, target, writes)
        return outcome, result

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
        replaced, _ = await self.store.import_items(import_id, action="updated")
        restores = await asyncio.to_thread(
            lambda: [
                (item.calendar_id, object_write(resource_from_calendar(parse_resource(item.previous_ical)), item.href))
                for item in replaced
                if item.previous_ical
            ]
        )
        try:
            return await self.store.undo_import(import_id, restores)
        except LookupError:
            raise Invalid("the import changed while it was being undone; try again", field="status") from None
