"""The file formats Almanac imports and exports.

Every codec has ``read(lines, options, result) -> Iterator[Resource]``, which streams the
resources of a file as it reads them (every problem goes to ``result`` with its line, nothing is
dropped silently), and a ``Writer`` whose chunks ``dump`` streams. A file is read through
``Lines``, a function that opens it again from its beginning, so a codec may read it twice
(iCalendar does) and memory stays bounded whatever the file's size.
"""

from __future__ import annotations

import codecs
import importlib
import io
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Protocol

from protocol.ical.resources import Resource
from protocol.ical.values import CONTROL, DEFAULT_MAX_INSTANCES

#: format names, as used by the REST door, the import jobs and the CLI
FORMATS = ("ics", "google", "outlook", "timeslot")

#: opens a file from its beginning and yields its text in pieces: lines with their own line
#: ends ("\n", "\r\n" or "\r", as ``open(..., newline="")`` reads them), a very long line
#: perhaps in several pieces (see ``whole_lines``)
Lines = Callable[[], Iterator[str]]


class EncodingProblem(ValueError):
    """The file has bytes that are not valid in its encoding."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class UnknownFormat(ValueError):
    """The file is not a calendar file Almanac recognises."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass(slots=True)
class LineError:
    """A problem with one line (or record starting on that line) of an imported file."""

    line: int | None
    error: str
    fields: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "fields": self.fields, "error": self.error}


@dataclass(slots=True)
class ParseOptions:
    """What a parse may need besides the text."""

    #: zone for local times without one (Outlook CSV); None keeps them floating
    timezone: str | None = None
    #: CSV field delimiter; None detects it
    delimiter: str | None = None
    max_components: int = 200_000
    max_instances: int = DEFAULT_MAX_INSTANCES
    #: called now and then with the line reading has reached (for a progress bar)
    progress: Callable[[int], None] | None = None
    #: processes to read a big file's plain components in, beside this one (see ics)
    pool: Executor | None = None

    def reached(self, count: int, line: int) -> None:
        """Report the line of the ``count``-th entry, every 200 entries."""
        if self.progress is not None and count % 200 == 0:
            self.progress(line)


#: problems of one kind listed in full per file; the rest are counted (an all-bad 100 MB file
#: would otherwise hold hundreds of thousands of them in memory and in the import's record)
LISTED = 1000


@dataclass(slots=True)
class ParseResult:
    format: str
    resources: list[Resource] = field(default_factory=list)
    #: the first LISTED problems (add them with ``error``); ``error_count`` counts them all
    errors: list[LineError] = field(default_factory=list)
    error_count: int = 0
    #: the first LISTED things kept or skipped on purpose that the user should know about
    warnings: list[LineError] = field(default_factory=list)
    calendar_name: str | None = None
    calendar_description: str | None = None
    calendar_timezone: str | None = None
    #: components skipped on purpose (reported in ``warnings``)
    discarded: int = 0
    #: reading stopped before the end (a broken structure, too many entries): the errors are
    #: not all about single entries, so the valid ones cannot be imported on their own
    stopped: bool = False
    _bad_lines: set[int | None] = field(default_factory=set)

    def error(self, problem: LineError) -> None:
        """Record a problem (listed if fewer than LISTED are)."""
        self.error_count += 1
        self._bad_lines.add(problem.line)
        if len(self.errors) < LISTED:
            self.errors.append(problem)

    def warn(self, problem: LineError) -> None:
        """Record a warning (kept if fewer than LISTED are; what it skipped is counted in ``discarded``)."""
        if len(self.warnings) < LISTED:
            self.warnings.append(problem)

    @property
    def bad_entries(self) -> int:
        """How many entries have problems (an entry may have several, all on its first line)."""
        return len(self._bad_lines)


@dataclass(slots=True)
class GroupInfo:
    """The calendar an exported event belongs to (Timeslot's "group")."""

    uuid: str
    name: str
    description: str | None = None
    public: bool = False


@dataclass(slots=True)
class ExportItem:
    text: str  #: the stored iCalendar resource
    group: GroupInfo | None = None


def encoding_by_bom(start: bytes) -> str:
    """The encoding of a file that starts so: UTF-16 with its BOM, else UTF-8 (BOM optional)."""
    return "utf-16" if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else "utf-8-sig"


def decode(data: bytes) -> str:
    """Text of an uploaded file: UTF-8 (BOM optional) or UTF-16 with a BOM.

    Raises EncodingProblem with the line of the first invalid byte.
    """
    encoding = encoding_by_bom(data)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise EncodingProblem(line, f"invalid {error.encoding.upper()} byte sequence on line {line}") from None


def encoding_of(chunks: Iterable[bytes]) -> tuple[str, int]:
    """Check a file given in chunks as ``decode`` would: its encoding (for ``codecs``) and its
    number of lines; raises EncodingProblem with the line of the first invalid byte."""
    chunks, head = iter(chunks), b""
    for chunk in chunks:
        head += chunk
        if len(head) >= 2:
            break
    encoding = encoding_by_bom(head)
    decoder, lines = codecs.getincrementaldecoder(encoding)(), 1
    try:
        for chunk in itertools.chain([head], chunks):
            lines += decoder.decode(chunk).count("\n")
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as error:
        line = lines + error.object[: error.start].decode(encoding, "replace").count("\n")
        raise EncodingProblem(line, f"invalid {error.encoding.upper()} byte sequence on line {line}") from None
    return encoding, lines


def whole_lines(pieces: Iterator[str]) -> Iterator[str]:
    """The lines of a ``Lines`` source, each in one piece."""
    held: list[str] = []
    for piece in pieces:
        if piece.endswith(("\n", "\r")):
            yield "".join(held) + piece if held else piece
            held = []
        else:
            held.append(piece)
    if held:
        yield "".join(held)


def lines_of(text: str) -> Lines:
    """The ``Lines`` of a text in memory."""
    return lambda: iter(io.StringIO(text, newline=""))


def detect(text: str) -> str:
    """The format of a file's text; raises UnknownFormat. Tolerates a BOM and leading space."""
    head = text.lstrip("\ufeff \t\r\n")
    if not head:
        raise UnknownFormat("the file is empty", 1)
    if head[:15].upper() == "BEGIN:VCALENDAR":
        end = head.upper().find("BEGIN:V", 15)
        calendar_header = head[: end if end > 0 else 4000].upper()
        if "PRODID:-//GOOGLE" in calendar_header:  # X-WR-* alone: Apple, Outlook, Almanac write them too
            return "google"
        return "ics"
    if head[0] in "[{":
        return "timeslot"
    first_line = head.split("\n", 1)[0]
    if "subject" in first_line.lower() and any(d in first_line for d in ",;\t"):
        return "outlook"
    raise UnknownFormat(
        "not a recognisable calendar file: expected iCalendar (BEGIN:VCALENDAR), "
        "an Outlook CSV export (a header line with Subject and Start Date) or Timeslot JSON",
        1,
    )


_MODULES = {"ics": "ics", "google": "ics", "outlook": "outlook_csv", "timeslot": "timeslot_json"}


def codec(name: str) -> ModuleType:
    """The module that reads and writes format ``name``."""
    return importlib.import_module(f"protocol.formats.{_MODULES[name]}")


def read(lines: Lines, fmt: str, options: ParseOptions, result: ParseResult) -> Iterator[Resource]:
    """Stream the resources of a file in format ``fmt``; problems go to ``result``."""
    result.format = fmt
    warned: set[int] = set()  # formats that read the file twice warn once

    def cleaned() -> Iterator[str]:
        """The lines without a BOM and without the control characters RFC 5545 allows in no
        value (all but TAB), each removal a warning: one stray byte must not make a calendar
        unreadable in the XML replies."""
        number = 1
        for index, raw in enumerate(lines()):
            piece = raw.lstrip("\ufeff") if index == 0 else raw
            if CONTROL.search(piece):
                piece = CONTROL.sub("", piece)
                if number not in warned:
                    warned.add(number)
                    result.warn(LineError(number, "control characters removed: only TAB may appear in a value"))
            number += piece.endswith(("\n", "\r"))
            yield piece

    return codec(fmt).read(cleaned, options, result)


def parse(text: str, fmt: str | None = None, options: ParseOptions | None = None) -> ParseResult:
    """Parse a decoded file held in memory in the given (or detected) format."""
    fmt = fmt or detect(text)
    result = ParseResult(fmt)
    result.resources = list(read(lines_of(text), fmt, options or ParseOptions(), result))
    return result


class Writer(Protocol):
    """Writes one export file piece by piece, so a door can stream it from the store."""

    def begin(self) -> str: ...

    def write(self, items: Sequence[ExportItem]) -> str: ...

    def end(self) -> str: ...


def writer(fmt: str, **options: Any) -> Writer:
    """A writer for the format; ``options`` are the codec's own keyword arguments."""
    if fmt == "google":
        options["google"] = True
    return codec(fmt).Writer(**options)


def dump(fmt: str, items: Iterable[ExportItem], batch: int = 200, **options: Any) -> Iterator[str]:
    """The whole file, in chunks."""
    out = writer(fmt, **options)
    yield out.begin()
    pending: list[ExportItem] = []
    for item in items:
        pending.append(item)
        if len(pending) >= batch:
            yield out.write(pending)
            pending = []
    yield out.write(pending)
    yield out.end()
