"""iCalendar (.ics) files, including Google Calendar's quirks.

Reading walks the file line by line (twice, see ``read``) to find each top-level component and
the line it starts on, then reads each component on its own: a plain one (most of them) with the
plain reader (``protocol.formats.plain``: icalendar's value types, none of its parsing), any
other with ``icalendar``, and a big file's plain ones partly in helper processes
(``ParseOptions.pool``). So every problem is reported with its line, and the stored text of each
event is the text the file had (line endings normalised), not a re-serialisation. Google files
are made RFC 5545-conformant with the ``x-wr-timezone`` package (X-WR-TIMEZONE applied to UTC
and floating times); X-WR-CALNAME and X-WR-CALDESC name the calendar.
"""

from __future__ import annotations

import functools
import itertools
import re
import zoneinfo
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import x_wr_timezone
from icalendar import Calendar, Component, Timezone

from protocol import zones
from protocol.formats import ExportItem, LineError, Lines, ParseOptions, ParseResult, whole_lines
from protocol.formats.ics_walk import FileCalendar, Stop, ignore, walk
from protocol.formats.plain import plain_block, plain_fields
from protocol.ical.repairs import component_problems, excluded_starts, match_series, repair, repair_text
from protocol.ical.resources import ParsedComponent, Resource, assemble, block_from_component, version
from protocol.ical.values import (
    CRLF,
    OBJECT_COMPONENTS,
    PRODID,
    UNREADABLE,
    cache_timezone,
    every,
    timezones_and_body,
    unfold,
)

#: a VTIMEZONE is a few kilobytes (13 KB with every transition since 1883); parsing one is slow
MAX_TIMEZONE_CHARS = 128 * 1024


@dataclass(slots=True)
class _Plan:
    """What the first reading of a file learns, for the second."""

    zones: list[zoneinfo.ZoneInfo | None]  #: each VCALENDAR's X-WR-TIMEZONE
    timezones: dict[str, str]  #: TZID -> VTIMEZONE text
    uids: Counter[str]  #: UID (as written) -> how many components have it


def read(lines: Lines, options: ParseOptions, result: ParseResult) -> Iterator[Resource]:
    """Read the file twice: first its structure, calendar properties, time zones and which
    UIDs several components share (a recurring event and its overridden instances, wherever
    they are in the file); then each component, yielding its resource as soon as all the
    components of its UID have been read. So only those pending stay in memory."""
    plan = _plan(whole_lines(lines()), options, result)
    if plan is not None:
        yield from _resources(whole_lines(lines()), plan, options, result)


def _plan(source: Iterator[str], options: ParseOptions, result: ParseResult) -> _Plan | None:
    """The first reading; None (with ``result.stopped``) when the structure is broken or the
    file has too many components: then nothing is parsed."""
    calendars: list[FileCalendar] = []
    timezones: dict[str, str] = {}
    uids: Counter[str] = Counter()
    count = 0
    try:
        for calendar, name, line, block in walk(source, result.error, result.warn):
            if calendar.index == len(calendars):
                calendars.append(calendar)
            if name == "VTIMEZONE":
                _read_timezone(block, line, result, timezones)
            elif name in OBJECT_COMPONENTS:
                count += 1
                if count > options.max_components:
                    result.error(LineError(line, f"more than {options.max_components} components in one import"))
                    raise Stop
                uids[_written_uid(block)] += 1
            elif name != "VCALENDAR":
                result.warn(LineError(line, f"{name} skipped: only events, todos and journals are imported"))
                result.discarded += 1
    except Stop:
        result.stopped = True
        return None
    if not count and not result.errors:
        result.error(LineError(1, "the calendar holds no events, todos or journals"))
    for calendar in calendars:
        props = calendar.properties
        result.calendar_name = result.calendar_name or _unescape(props.get("X-WR-CALNAME") or props.get("NAME"))
        result.calendar_description = result.calendar_description or _unescape(
            props.get("X-WR-CALDESC") or props.get("DESCRIPTION")
        )
    zones = [_zone(c.properties.get("X-WR-TIMEZONE"), c.line, result) for c in calendars]
    return _Plan(zones, timezones, uids)


def _resources(source: Iterator[str], plan: _Plan, options: ParseOptions, result: ParseResult) -> Iterator[Resource]:
    """The second reading: parse each component and yield the resources."""
    seen: dict[str, int] = {}  #: UID -> first line, of the resources yielded
    waiting: dict[str, list[ParsedComponent | None]] = {}  #: UID -> the components read so far
    for written, block in _blocks(source, plan, options, result):
        if plan.uids[written] > 1 and written:
            group = waiting.setdefault(written, [])
            group.append(block)
            if len(group) < plan.uids[written]:
                continue
            blocks = [b for b in waiting.pop(written) if b is not None]
        else:
            blocks = [block] if block is not None else []
        blocks = _without_clashes(_one_series(blocks, result, options), seen, result)
        blocks = _own_rules(blocks, plan.timezones, result, options)
        if blocks:
            seen[blocks[0].uid] = blocks[0].line
            resource = assemble(blocks, plan.timezones)
            resource.calendar = result.calendar_name
            yield resource


#: components a file needs for its plain ones to be read in ``options.pool`` too, and how many
#: go there at a time (and at most ahead of this process's reading)
POOLED_FROM = 2000
CHUNK, AHEAD = 200, 8

Fields = tuple[Any, ...]  #: a block's fields as ``plain_fields`` sends them


@dataclass(slots=True)
class _Item:
    """One component of the second reading, on its way to its block."""

    name: str
    line: int
    lines: list[str]
    written: str  #: its UID as written
    zone: zoneinfo.ZoneInfo | None  #: its calendar's X-WR-TIMEZONE
    plain: bool  #: whether the plain reader may read it (alone of its UID, no X-WR-TIMEZONE)


@dataclass(slots=True)
class _Chunk:
    """Components sent to the pool together; ``read`` once their plain blocks are known."""

    items: list[_Item]
    pooled: Future[list[Fields | None]] | None = None
    read: list[ParsedComponent | None] | None = None

    def read_here(self, max_instances: int) -> bool:
        """Read the plain blocks here unless the pool has begun them; whether they are read."""
        if self.read is None and (self.pooled is None or self.pooled.cancel()):
            self.pooled = None
            self.read = [plain_block(i.name, i.lines, i.line, max_instances) if i.plain else None for i in self.items]
        return self.read is not None

    def blocks(self, max_instances: int) -> list[ParsedComponent | None]:
        """The plain blocks (None: not plain), from the pool or read here."""
        if self.read is None and not self.read_here(max_instances):
            assert self.pooled is not None
            try:
                sent = self.pooled.result()
            except Exception:  # the pool failed (a process died): read here
                sent = [None] * len(self.items)
            # what the pool declined may use a custom zone this process knows: read here too
            self.read = [
                ParsedComponent(*fields) if fields is not None else plain_block(i.name, i.lines, i.line, max_instances)
                if i.plain else None
                for i, fields in zip(self.items, sent, strict=True)
            ]  # fmt: skip
        assert self.read is not None
        return self.read


def _blocks(
    source: Iterator[str], plan: _Plan, options: ParseOptions, result: ParseResult
) -> Iterator[tuple[str, ParsedComponent | None]]:
    """Each component of the second reading, in order, as (its UID as written, its block; None
    when it is invalid and its problems are in ``result``). With a pool and a big file, chunks
    of components go to the pool a few chunks ahead; while this process waits for the pool it
    reads the plain blocks of the furthest chunk the pool has not begun. Only the plain reader
    runs out of order (it reports nothing): the rest, and every problem, in the file's order."""

    def items() -> Iterator[_Item]:
        for calendar, name, line, lines in walk(source, ignore, ignore):
            if name in OBJECT_COMPONENTS:
                written, zone = _written_uid(lines), plan.zones[calendar.index]
                yield _Item(name, line, lines, written, zone, plan.uids[written] < 2 and zone is None)

    pool = options.pool if sum(plan.uids.values()) >= POOLED_FROM else None
    ahead: deque[_Chunk] = deque()
    count = 0

    def read(chunk: _Chunk) -> Iterator[tuple[str, ParsedComponent | None]]:
        nonlocal count
        while chunk.pooled is not None and not chunk.pooled.done() and not chunk.read_here(options.max_instances):
            spare = next((c for c in reversed(ahead) if c.read is None and c.read_here(options.max_instances)), None)
            if spare is None:
                break
        for item, block in zip(chunk.items, chunk.blocks(options.max_instances), strict=True):
            count += 1
            options.reached(count, item.line)
            yield item.written, block or _read_component(item.name, item.lines, item.line, result, item.zone, options)

    try:
        walked, size = items(), CHUNK if pool is not None else 1
        for items_of_chunk in iter(lambda: list(itertools.islice(walked, size)), []):
            chunk = _Chunk(items_of_chunk)
            if pool is not None and any(item.plain for item in items_of_chunk):
                jobs = [(i.name, i.lines, i.line) if i.plain else None for i in items_of_chunk]
                try:
                    chunk.pooled = pool.submit(plain_fields, jobs, options.max_instances)
                except Exception:  # the pool takes no more work: the rest is read here
                    pool = None
            ahead.append(chunk)
            while len(ahead) > (AHEAD if pool is not None else 0):
                yield from read(ahead.popleft())
        while ahead:
            yield from read(ahead.popleft())
    finally:  # a reading given up (a refused file, a cancelled job): the pool drops the rest
        for chunk in ahead:
            if chunk.pooled is not None:
                chunk.pooled.cancel()


def _one_series(blocks: list[ParsedComponent], result: ParseResult, options: ParseOptions) -> list[ParsedComponent]:
    """The components of one UID as one series. Repairs: of several versions of one component
    (no RECURRENCE-ID, or the same one) the newest is kept (highest SEQUENCE, then latest
    DTSTAMP) and the others are reported; an override of an occurrence the newest master
    excludes (a user deleted it after changing it: Google's and Thunderbird's exports) is left
    out and reported; an override's RECURRENCE-ID gets the type of the series' DTSTART."""
    if len(blocks) < 2:
        return blocks
    newest: dict[tuple[str, bool, int | None], ParsedComponent] = {}
    for block in blocks:
        key = (block.name, block.is_override, block.recurrence_id)
        kept = newest.setdefault(key, block)
        if kept is not block:
            older, newer = (kept, block) if _version(block) > _version(kept) else (block, kept)
            newest[key] = newer
            result.warn(
                LineError(
                    older.line,
                    f"UID {block.uid}: an older version (SEQUENCE {_version(older)[0]}) of the {block.name} on line "
                    f"{newer.line}, which has the highest SEQUENCE (then the latest DTSTAMP): left out",
                    _fields(older),
                )
            )
    blocks = list(newest.values())
    master = next((b.component for b in blocks if not b.is_override and b.component is not None), None)
    if master is None:
        return blocks
    for index, block in enumerate(blocks):
        if block.is_override and block.component is not None:
            mended = match_series(master, block.component)
            if mended:
                result.warn(LineError(block.line, mended, _fields(block)))
                text = block.component.to_ical().decode()
                blocks[index] = block_from_component(block.component, text, block.line, options.max_instances)
    deleted = excluded_starts(master)
    for block in [b for b in blocks if b.is_override and b.recurrence_id in deleted]:
        blocks.remove(block)
        result.warn(
            LineError(block.line, f"UID {block.uid}: an override of an occurrence the series' EXDATE deletes "
                      "(deleted after it was changed): left out", _fields(block))
        )  # fmt: skip
    return blocks


def _own_rules(
    blocks: list[ParsedComponent], timezones: dict[str, str], result: ParseResult, options: ParseOptions
) -> list[ParsedComponent]:
    """The components of one UID, with each VTIMEZONE of the file that is named like a zone of
    the system's database but gives other times at their instants renamed as its own
    (``protocol.zones``), so that its rules decide their times everywhere; a warning says so."""
    differing = {
        tzid for block in blocks for tzid in block.tzids
        if tzid in timezones and zones.disagrees(tzid, timezones[tzid], block.spans)
    }  # fmt: skip
    if not differing:
        return blocks
    for tzid in sorted(differing):
        name = zones.own_name(tzid, timezones[tzid])
        if name not in timezones:
            timezones[name] = zones.renamed(unfold(timezones[tzid]), tzid, name)
            _timezone_id(timezones[name])  # known to the parser from now on
        result.warn(
            LineError(blocks[0].line, f"VTIMEZONE {tzid} gives other times than the time zone database's {tzid}: "
                      f"its own rules decide, under the name {name!r}", _fields(blocks[0]))
        )  # fmt: skip
    mended = []
    for block in blocks:
        if not block.tzids & differing:
            mended.append(block)
            continue
        text = unfold(block.text)
        for tzid in block.tzids & differing:
            text = zones.renamed(text, tzid, zones.own_name(tzid, timezones[tzid]))
        mended.append(block_from_component(Component.from_ical(text), text, block.line, options.max_instances))
    return mended


def _version(block: ParsedComponent) -> tuple[int, int]:
    return version(block.component) if block.component is not None else (0, 0)


def _fields(block: ParsedComponent) -> list[str]:
    return [f"UID:{block.uid}"] + ([f"SUMMARY:{block.summary}"] if block.summary else [])


def _without_clashes(blocks: list[ParsedComponent], seen: dict[str, int], result: ParseResult) -> list[ParsedComponent]:
    """The components of one UID that may be stored together; the others are line errors."""
    kept: list[ParsedComponent] = []
    for block in blocks:
        clash = f"UID {block.uid} already appears on line {seen[block.uid]}" if block.uid in seen else None
        for other in kept:
            if other.name != block.name:
                clash = f"UID {block.uid} is used by a {other.name} on line {other.line} too"
            elif not block.is_override and not other.is_override:
                clash = f"UID {block.uid} already appears on line {other.line}"
        if clash:
            result.error(LineError(block.line, clash, _fields(block)))
        else:
            kept.append(block)
    return kept


def _written_uid(lines: list[str]) -> str:
    """The UID of a top-level component as the file writes it ("" for none), unfolded."""
    depth, uid = 0, None
    for line in lines:
        folded = line[:1] in (" ", "\t")
        if uid is not None:
            if not folded:
                break
            uid += line[1:]
        elif not folded:
            name = line.partition(":")[0].split(";", 1)[0].strip().upper()
            if name in ("BEGIN", "END"):
                depth += 1 if name == "BEGIN" else -1
            elif depth == 1 and name == "UID":
                uid = line.partition(":")[2]
    return (uid or "").strip()


def _read_timezone(lines: list[str], line: int, result: ParseResult, timezones: dict[str, str]) -> None:
    text = CRLF.join(lines) + CRLF
    if len(text) > MAX_TIMEZONE_CHARS:
        result.error(LineError(line, f"VTIMEZONE is longer than {MAX_TIMEZONE_CHARS} characters"))
        return
    try:
        tzid = _timezone_id(text)
    except UNREADABLE as error:
        result.error(LineError(line, f"invalid VTIMEZONE: {error}"))
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
    xwr_zone: zoneinfo.ZoneInfo | None,
    options: ParseOptions,
) -> ParsedComponent | None:
    """The component parsed and checked; None (and line errors) when it is invalid."""
    text, mended = repair_text(CRLF.join(lines) + CRLF)
    try:
        component = Component.from_ical(text)
    except UNREADABLE as error:
        result.error(LineError(line, f"invalid {name}: {error}"))
        return None
    fields = [f"{key}:{every(component, key)[0]}" for key in ("UID", "SUMMARY") if key in component]
    repairs = [] if component.errors else repair(component)  # a broken component is refused below
    if repairs:  # what the writer meant is plain: store that, and say so
        text = component.to_ical().decode()
    for repaired in mended + repairs:
        result.warn(LineError(line, repaired, fields))
    problems = component_problems(component)
    if problems:
        for problem in problems:
            result.error(LineError(line, problem, fields))
        return None
    if xwr_zone is not None:
        wrapper = Calendar()
        wrapper.add_component(component)
        converted = x_wr_timezone.to_standard(wrapper, timezone=xwr_zone).subcomponents[0]
        if converted is not component:
            component, text = converted, converted.to_ical().decode()
    return block_from_component(component, text, line, options.max_instances)


def _zone(name: str | None, line: int, result: ParseResult) -> zoneinfo.ZoneInfo | None:
    if not name:
        return None
    name = name.strip()
    try:
        zone = zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        result.warn(LineError(line, f"X-WR-TIMEZONE {name!r} is not a known time zone: ignored"))
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
    color: str | None = None,
    feed: bool = False,
) -> str:
    """The VCALENDAR opening lines of an export (without END:VCALENDAR); a ``feed`` (a calendar
    subscribed to) names itself as the common clients read it: X-WR-CALNAME and NAME, its zone
    (X-WR-TIMEZONE), colour (X-APPLE-CALENDAR-COLOR) and how often to look again."""
    calendar = Calendar()
    calendar.add("VERSION", "2.0")
    calendar.add("PRODID", PRODID)
    calendar.add("CALSCALE", "GREGORIAN")
    if method:
        calendar.add("METHOD", method)
    if feed:
        for prop, value in (("NAME", name), ("X-WR-CALNAME", name), ("X-WR-CALDESC", description),
                            ("X-WR-TIMEZONE", timezone), ("X-APPLE-CALENDAR-COLOR", color)):  # fmt: skip
            if value:
                calendar.add(prop, value)
        calendar.add("REFRESH-INTERVAL", timedelta(hours=1), parameters={"VALUE": "DURATION"})
        calendar.add("X-PUBLISHED-TTL", "PT1H")
    elif google:
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


_ALARM = re.compile(r"^BEGIN:VALARM\r\n.*?^END:VALARM\r\n", re.MULTILINE | re.DOTALL)


class Writer:
    """One VCALENDAR holding every item, each VTIMEZONE once."""

    def __init__(
        self,
        name: str | None = None,
        description: str | None = None,
        timezone: str | None = None,
        google: bool = False,
        color: str | None = None,
        feed: bool = False,
    ) -> None:
        self.opening = header(name, description, timezone, google, color=color, feed=feed)
        self.seen: set[str] = set()
        #: a feed leaves out the owner's alarms: they are not its subscribers'
        self.alarms = not feed

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
            chunk.append(body if self.alarms else _ALARM.sub("", body))
        return "".join(chunk)

    def end(self) -> str:
        return "END:VCALENDAR" + CRLF
