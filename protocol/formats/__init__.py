"""The file formats Almanac imports and exports.

Every codec has ``parse(text, options) -> ParseResult`` (all problems reported with their line,
nothing dropped silently) and ``dump(items, ...) -> Iterator[str]`` (streamed chunks).
"""

from __future__ import annotations

import codecs
import importlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Protocol

from protocol.ical import DEFAULT_MAX_INSTANCES, Resource

#: format names, as used by the REST door, the import jobs and the CLI
FORMATS = ("ics", "google", "outlook", "timeslot")


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

    def reached(self, count: int, line: int) -> None:
        """Report the line of the ``count``-th entry, every 200 entries."""
        if self.progress is not None and count % 200 == 0:
            self.progress(line)


@dataclass(slots=True)
class ParseResult:
    format: str
    resources: list[Resource] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)
    #: things kept or skipped on purpose that the user should know about
    warnings: list[LineError] = field(default_factory=list)
    calendar_name: str | None = None
    calendar_description: str | None = None
    calendar_timezone: str | None = None
    #: components skipped on purpose (reported in ``warnings``)
    discarded: int = 0
    #: reading stopped before the end (a broken structure, too many entries): the errors are
    #: not all about single entries, so the valid ones cannot be imported on their own
    stopped: bool = False


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


def decode(data: bytes) -> str:
    """Text of an uploaded file: UTF-8 (BOM optional) or UTF-16 with a BOM.

    Raises EncodingProblem with the line of the first invalid byte.
    """
    encoding = "utf-16" if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else "utf-8-sig"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise EncodingProblem(line, f"invalid {error.encoding.upper()} byte sequence on line {line}") from None


def check_text(text: str) -> None:
    """Raise EncodingProblem for text that cannot be encoded (lone surrogates from JSON)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        line = text.count("\n", 0, error.start) + 1
        raise EncodingProblem(line, f"invalid character on line {line}") from None


def detect(text: str) -> str:
    """The format of a file's text; raises UnknownFormat. Tolerates a BOM and leading space."""
    head = text.lstrip("\ufeff \t\r\n")
    if not head:
        raise UnknownFormat("the file is empty", 1)
    if head[:15].upper() == "BEGIN:VCALENDAR":
        end = head.upper().find("BEGIN:V", 15)
        calendar_header = head[: end if end > 0 else 4000].upper()
        if "X-WR-" in calendar_header or "PRODID:-//GOOGLE" in calendar_header:
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


def parse(text: str, fmt: str | None = None, options: ParseOptions | None = None) -> ParseResult:
    """Parse a decoded file in the given (or detected) format."""
    fmt = fmt or detect(text)
    result: ParseResult = codec(fmt).parse(text.lstrip("\ufeff"), options or ParseOptions())
    result.format = fmt
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
