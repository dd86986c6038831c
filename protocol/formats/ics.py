"""iCalendar (.ics) files, including Google Calendar's quirks.

Parsing walks the file line by line to find each top-level component and the line it starts
on, then lets ``icalendar`` parse each component on its own. So every problem is reported
with its line, and the stored text of each event is the text the file had (line endings
normalised), not a re-serialisation. Google files are made RFC 5545-conformant with the
``x-wr-timezone`` package (X-WR-TIMEZONE applied to UTC and floating times); X-WR-CALNAME
and X-WR-CALDESC name the calendar.
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import x_wr_timezone
from icalendar import Calendar, Component, Timezone

from protocol.formats import ExportItem, LineError, ParseOptions, ParseResult
from protocol.ical import (
    CRLF,
    OBJECT_COMPONENTS,
    PRODID,
    Collected,
    assemble,
    block_from_component,
    cache_timezone,
    component_problems,
    timezones_and_body,
)

_LINE_BREAK = re.compile(r"\r\n|\n|\r")
#: calendar-level properties Almanac reads (the rest are not needed per event)
_CALENDAR_PROPERTIES = ("X-WR-TIMEZONE", "X-WR-CALNAME", "X-WR-CALDESC", "NAME", "DESCRIPTION")


@dataclass(slots=True)
class _Calendar:
    """One VCALENDAR of the file while it is read."""

    line: int
    properties: dict[str, str] = field(default_factory=dict)
    blocks: list[tuple[str, int, list[str]]] = field(default_factory=list)


class _Stop(Exception):
    """The file's structure is broken beyond the current line: stop reading."""


def parse(text: str, options: ParseOptions) -> ParseResult:
    result = ParseResult("ics")
    collected = Collected()
    timezones: dict[str, str] = {}
    try:
        for calendar in _calendars(text, result):
            _read_calendar(calendar, result, collected, timezones, options)
    except _Stop:
        result.stopped = True
    if not collected.by_uid and not result.errors:
        result.errors.append(LineError(1, "the calendar holds no events, todos or journals"))
    result.resources = [assemble(blocks, timezones) for blocks in collected.by_uid.values()]
    for resource in result.resources:
        resource.calendar = result.calendar_name
    return result


def _calendars(text: str, result: ParseResult) -> Iterator[_Calendar]:
    """Yield each VCALENDAR with its top-level components' lines; structure errors stop."""
    stack: list[tuple[str, int]] = []
    calendar: _Calendar | None = None
    block: list[str] = []
    last_property = ""

    def fail(line: int, message: str) -> None:
        result.errors.append(LineError(line, message))
        raise _Stop

    for number, line in enumerate(_LINE_BREAK.split(text), 1):
        if not line.strip():
            continue
        if line[0] in " \t":
            if len(stack) >= 2:
                block.append(line)
            elif len(stack) == 1 and calendar is not None and last_property:
                calendar.properties[last_property] += line[1:]
            elif not stack:
                fail(number, "text outside BEGIN:VCALENDAR ... END:VCALENDAR")
            continue
        head, colon, value = line.partition(":")
        if not colon:
            fail(number, f"invalid content line (no colon): {line[:60]!r}")
        name = head.split(";", 1)[0].strip().upper()
        if name == "BEGIN":
            component = value.strip().upper()
            if not stack:
                if component != "VCALENDAR":
                    fail(number, f"expected BEGIN:VCALENDAR, found BEGIN:{component}")
                calendar = _Calendar(number)
            elif len(stack) == 1:
                block = [line]
            else:
                block.append(line)
            stack.append((component, number))
        elif name == "END":
            component = value.strip().upper()
            if not stack:
                fail(number, f"END:{component} without a matching BEGIN")
            if stack[-1][0] != component:
                open_name, open_line = stack[-1]
                fail(number, f"END:{component} does not close BEGIN:{open_name} (line {open_line})")
            begun = stack.pop()[1]
            if len(stack) == 1:
                block.append(line)
                calendar.blocks.append((component, begun, block))  # type: ignore[union-attr]
                block = []
            elif not stack:
                yield calendar  # type: ignore[misc]
                calendar = None
            else:
                block.append(line)
        elif len(stack) >= 2:
            block.append(line)
        elif len(stack) == 1:
            last_property = name if name in _CALENDAR_PROPERTIES else ""
            if last_property:
                calendar.properties[name] = value  # type: ignore[union-attr]
        else:
            fail(number, "text outside BEGIN:VCALENDAR ... END:VCALENDAR")
    if stack:
        open_name, open_line = stack[-1]
        result.errors.append(
            LineError(
                open_line,
                f"the file ends inside {open_name} (begun on line {open_line}): is it truncated?",
            )
        )


def _read_calendar(
    calendar: _Calendar,
    result: ParseResult,
    collected: Collected,
    timezones: dict[str, str],
    options: ParseOptions,
) -> None:
    props = calendar.properties
    result.calendar_name = result.calendar_name or _unescape(props.get("X-WR-CALNAME") or props.get("NAME"))
    result.calendar_description = result.calendar_description or _unescape(
        props.get("X-WR-CALDESC") or props.get("DESCRIPTION")
    )
    xwr_zone = _zone(props.get("X-WR-TIMEZONE"), calendar.line, result)
    # VTIMEZONEs first: events may reference a zone defined further down.
    for name, line, lines in calendar.blocks:
        if name == "VTIMEZONE":
            _read_timezone(lines, line, result, timezones)
    count = sum(len(b) for b in collected.by_uid.values())
    for name, line, lines in calendar.blocks:
        if name == "VTIMEZONE":
            continue
        if name not in OBJECT_COMPONENTS:
            result.warnings.append(LineError(line, f"{name} skipped: only events, todos and journals are imported"))
            result.discarded += 1
            continue
        count += 1
        options.reached(count, line)
        if count > options.max_components:
            result.errors.append(LineError(line, f"more than {options.max_components} components in one import"))
            raise _Stop
        _read_component(name, lines, line, result, collected, xwr_zone, options)


def _read_timezone(lines: list[str], line: int, result: ParseResult, timezones: dict[str, str]) -> None:
    text = CRLF.join(lines) + CRLF
    try:
        tzid = _timezone_id(text)
    except (ValueError, KeyError) as error:
        result.errors.append(LineError(line, f"invalid VTIMEZONE: {error}"))
        return
    timezones.setdefault(tzid, text)


@functools.lru_cache(maxsize=256)
def _timezone_id(text: str) -> str:
    """The TZID of a VTIMEZONE, registered for later parses; clients send the same few zones
    with every object, and parsing one costs more than the event it comes with."""
    component = Timezone.from_ical(text)
    tzid = str(component["TZID"])
    cache_timezone(component)
    return tzid


def _read_component(
    name: str,
    lines: list[str],
    line: int,
    result: ParseResult,
    collected: Collected,
    xwr_zone: zoneinfo.ZoneInfo | None,
    options: ParseOptions,
) -> None:
    text = CRLF.join(lines) + CRLF
    try:
        component = Component.from_ical(text)
    except ValueError as error:
        result.errors.append(LineError(line, f"invalid {name}: {error}"))
        return
    fields = [f"{key}:{component[key]}" for key in ("UID", "SUMMARY") if key in component]
    problems = component_problems(component)
    if problems:
        result.errors.extend(LineError(line, problem, fields) for problem in problems)
        return
    if xwr_zone is not None:
        wrapper = Calendar()
        wrapper.add_component(component)
        converted = x_wr_timezone.to_standard(wrapper, timezone=xwr_zone).subcomponents[0]
        if converted is not component:
            component, text = converted, converted.to_ical().decode()
    block = block_from_component(component, text, line, options.max_instances)
    clash = collected.add(block)
    if clash:
        result.errors.append(LineError(line, clash, fields))


def _zone(name: str | None, line: int, result: ParseResult) -> zoneinfo.ZoneInfo | None:
    if not name:
        return None
    name = name.strip()
    try:
        zone = zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        result.warnings.append(LineError(line, f"X-WR-TIMEZONE {name!r} is not a known time zone: ignored"))
        return None
    result.calendar_timezone = name
    return zone


def _unescape(value: str | None) -> str | None:
    if not value:
        return None
    return re.sub(r"\\([\\;,nN])", lambda m: "\n" if m.group(1) in "nN" else m.group(1), value).strip()


# --------------------------------------------------------------------------- export


def header(
    name: str | None = None,
    description: str | None = None,
    timezone: str | None = None,
    google: bool = False,
    method: str | None = "PUBLISH",
) -> str:
    """The VCALENDAR opening lines of an export (without END:VCALENDAR)."""
    calendar = Calendar()
    calendar.add("VERSION", "2.0")
    calendar.add("PRODID", PRODID)
    calendar.add("CALSCALE", "GREGORIAN")
    if method:
        calendar.add("METHOD", method)
    if google:
        if name:
            calendar.add("X-WR-CALNAME", name)
        if timezone:
            calendar.add("X-WR-TIMEZONE", timezone)
        if description:
            calendar.add("X-WR-CALDESC", description)
    elif name:
        calendar.add("NAME", name)
    text = calendar.to_ical().decode()
    return text[: text.rindex("END:VCALENDAR")]


class Writer:
    """One VCALENDAR holding every item, each VTIMEZONE once."""

    def __init__(
        self,
        name: str | None = None,
        description: str | None = None,
        timezone: str | None = None,
        google: bool = False,
    ) -> None:
        self.opening = header(name, description, timezone, google)
        self.seen: set[str] = set()

    def begin(self) -> str:
        return self.opening

    def write(self, items: Sequence[ExportItem]) -> str:
        chunk = []
        for item in items:
            zones, body = timezones_and_body(item.text)
            for tzid, zone in zones:
                if tzid not in self.seen:
                    self.seen.add(tzid)
                    chunk.append(zone)
            chunk.append(body)
        return "".join(chunk)

    def end(self) -> str:
        return "END:VCALENDAR" + CRLF
