"""Reading an uploaded file: its size and encoding checked, its format detected, its resources
streamed in a thread (only those in the request's window), and what an import would write
staged on disk, so that neither the file nor what it holds is ever all in memory. Used by the
import jobs and by a CalDAV PUT (``server/services/objects.py``), which read the same way."""

from __future__ import annotations

import asyncio
import functools
import io
import pickle
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from protocol import formats
from protocol.formats import Lines, ParseOptions, ParseResult
from protocol.ical.resources import Resource
from protocol.ical.windows import in_window
from server.config import Config
from server.services.calendars import object_write, window
from server.services.errors import BadEncoding, Invalid, TooLarge
from server.services.imports.processes import ParseProcesses
from storage.model import Calendar, ImportJob, ObjectWrite

#: objects written per store transaction
BATCH = 500
#: CSV field delimiters a caller may name (``tab`` for a tab)
DELIMITERS = {",": ",", ";": ";", "|": "|", "\t": "\t", "tab": "\t"}
#: a file is read in pieces of at most this many characters (a line longer than this too)
PIECE = 1 << 20
#: what a staged file holds: batches of (calendar name, None for the request's; object)
Batch = dict[str | None, list[ObjectWrite]]


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

    def chunks(self) -> Generator[bytes]:
        with self._open() as file:
            yield from iter(functools.partial(file.read, 1 << 20), b"")

    async def pieces(self) -> AsyncIterator[bytes]:
        """The file in pieces of 1 MiB, each read in a thread (for the store, which keeps a
        queued file in pieces)."""
        chunks = self.chunks()
        try:
            while piece := await asyncio.to_thread(next, chunks, b""):
                yield piece
        finally:
            chunks.close()

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


class FileReader:
    """Reads files by the imports' rules (repairs included), for every import and every CalDAV
    PUT; ``spool`` is where this process stages what a file would write."""

    def __init__(self, config: Config, spool: Path, parsers: ParseProcesses | None) -> None:
        self.config = config
        self.spool = spool
        self.parsers = parsers

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

    def read_whole(self, upload: Upload, request: ImportRequest) -> ParseResult:
        """A small file (a door bounds it) read whole: its resources in ``resources`` (in a thread)."""
        lines, _ = self.open(upload)
        result = ParseResult(self.format_of(upload, request.format))
        result.resources = list(self.read(lines, request, result))
        return result

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
    def next_batch(staged: IO[bytes]) -> Batch:
        """The next staged objects (up to BATCH) by the calendar they go to; empty at the end."""
        batch: Batch = {}
        for _ in range(BATCH):
            try:
                name, write = pickle.load(staged)
            except EOFError:
                break
            batch.setdefault(name, []).append(write)
        return batch

    async def staged(
        self, upload: Upload, request: ImportRequest, progress: Callable[[int, int], Awaitable[None]] | None = None
    ) -> tuple[ParseResult, IO[bytes], int]:
        """The file read through: the result (problems, warnings, calendar name), a temporary
        file of what it would write (see ``_stage``; close it) and how many objects that
        is. ``progress`` hears every half second how many lines were read, of how many."""
        lines, count = await asyncio.to_thread(self.open, upload)
        result = ParseResult(self.format_of(upload, request.format))
        reached = [0]

        def heard(line: int) -> None:
            reached[0] = line

        self.spool.mkdir(parents=True, exist_ok=True)
        staged = tempfile.TemporaryFile(dir=self.spool, prefix="staged-")  # noqa: SIM115 (the caller closes it)
        try:
            reading = asyncio.ensure_future(asyncio.to_thread(self._stage, lines, request, result, staged, heard))
            while progress is not None and not reading.done():
                await asyncio.wait([reading], timeout=0.5)
                await progress(min(reached[0], count), count)
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
