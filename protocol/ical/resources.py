"""Resources, the top of the family: one per UID (the master, its overridden instances and the
VTIMEZONEs they use) with the values the store indexes, assembled from a file's parsed components
or from a parsed calendar. Pure."""

from __future__ import annotations

import contextlib
import functools
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo

from icalendar import Calendar, Component, Timezone

from protocol.ical.values import (
    CONTROL,
    CRLF,
    DEFAULT_MAX_INSTANCES,
    MAX_EPOCH,
    MIN_EPOCH,
    OBJECT_COMPONENTS,
    PRODID,
    TZID_PARAM,
    decoded_value,
    epoch,
    make_uid,
    prop_value,
    to_utc,
    unfold,
)
from protocol.ical.walk import INDEX_HORIZON, Bounds, Timing, timing, timing_bounds, timing_instances
from protocol.ical.windows import moved_by, this_and_future


@dataclass(slots=True)
class Resource:
    """One calendar object resource: all components of one UID, as iCalendar text."""

    uid: str
    component: str
    text: str
    start: int | None  #: epoch seconds UTC, None = unbounded in the past
    end: int | None  #: epoch seconds UTC, None = unbounded in the future
    recurring: bool = False
    summary: str = ""
    klass: str | None = None
    line: int = 1  #: first line of the resource in the source file
    #: (start, end, exact) spans for the time-range index: one per instance of a recurring
    #: resource (up to a horizon), one for the rest; ``exact`` False means "check the text"
    spans: list[tuple[int, int, bool]] = field(default_factory=list)
    #: the calendar the file puts it in (X-WR-CALNAME, a Timeslot group), if it names one
    calendar: str | None = None


@dataclass(slots=True)
class ParsedComponent:
    """One top-level component (VEVENT, VTODO, ...) of a parsed file."""

    name: str
    uid: str
    text: str  #: the component's content lines, CRLF-terminated
    start: int | None
    end: int | None
    recurring: bool
    is_override: bool
    summary: str
    klass: str | None
    tzids: frozenset[str]
    line: int
    #: (start, end, exact) in epoch seconds of each instance the time-range index holds
    spans: list[tuple[int, int, bool]] = field(default_factory=list)
    #: for an overridden instance: the start (epoch) of the instance it replaces
    recurrence_id: int | None = None
    #: RANGE=THISANDFUTURE: the override applies to every later instance too (RFC 5545 3.8.4.4)
    this_and_future: bool = False
    #: the parsed component, while the other components of its UID are read
    component: Component | None = field(default=None, repr=False)


def _offset(moment: int, zone: tzinfo) -> timedelta | None:
    """The zone's UTC offset at an instant (epoch seconds)."""
    return datetime.fromtimestamp(moment, UTC).astimezone(zone).utcoffset()


def block_spans(times: Timing, bounds: Bounds, max_instances: int) -> list[tuple[int, int, bool]]:
    """The index spans of one component (its ``timing`` and ``timing_bounds``): exact ones
    where the times are unambiguous. They are not for floating times, for an instance longer
    than a day, or for one whose zone changes its offset (a DST change) between its start and
    its end: its end is then checked on the text."""
    low = MIN_EPOCH if bounds.start is None else bounds.start
    high = MAX_EPOCH if bounds.end is None else bounds.end
    start, duration = times.start, times.duration
    floating = start is not None and (not isinstance(start, datetime) or start.tzinfo is None)
    exact = not floating and (duration is None or duration <= timedelta(days=1))
    zone = start.tzinfo if isinstance(start, datetime) and start.tzinfo not in (None, UTC) else None

    def span(begin: int, end: int) -> tuple[int, int, bool]:
        shifts = (
            zone is not None and begin > MIN_EPOCH and end < MAX_EPOCH and _offset(begin, zone) != _offset(end, zone)
        )
        return begin, end, exact and not shifts

    if not bounds.recurring or start is None:
        return [span(low, high)]
    try:
        horizon = max(datetime.now(UTC), to_utc(start)[0]) + INDEX_HORIZON
        spans, rest = timing_instances(times, max_instances, horizon)
    except (ValueError, TypeError, OverflowError):
        return [(low, high, False)]
    result = [span(begin, end) for begin, end in spans]
    if rest is not None:
        result.append((rest, high, False))
    return result


def merge_bounds(blocks: Iterable[ParsedComponent]) -> tuple[int | None, int | None]:
    """The union of the bounds of several blocks (None is unbounded)."""
    starts: list[int | None] = []
    ends: list[int | None] = []
    for block in blocks:
        starts.append(block.start)
        ends.append(block.end)
    start = None if None in starts else min(s for s in starts if s is not None)
    end = None if None in ends else max(e for e in ends if e is not None)
    return start, end


def used_tzids(text: str) -> frozenset[str]:
    return frozenset(value.strip('"') for value in TZID_PARAM.findall(text))


def block_from_component(
    component: Component,
    text: str,
    line: int,
    max_instances: int = DEFAULT_MAX_INSTANCES,
) -> ParsedComponent:
    """Index values of one validated component whose content lines are ``text`` (control
    characters removed: a value built from a form or JSON may carry them)."""
    if CONTROL.search(text):
        text = CONTROL.sub("", text)
    uid = CONTROL.sub("", str(component.get("UID", ""))).strip()
    if not uid:
        uid = make_uid(text)
        text = _insert_after_begin(text, f"UID:{uid}")
    times = timing(component)
    bounds = timing_bounds(times, max_instances)
    klass = component.get("CLASS")
    recurrence_id = None
    if "RECURRENCE-ID" in component:
        with contextlib.suppress(ValueError, TypeError, KeyError):
            recurrence_id = epoch(to_utc(prop_value(component, "RECURRENCE-ID"))[0])
    return ParsedComponent(
        this_and_future=this_and_future(component),
        name=str(component.name),
        uid=uid,
        text=text,
        start=bounds.start,
        end=bounds.end,
        recurring=bounds.recurring,
        is_override="RECURRENCE-ID" in component,
        summary=CONTROL.sub("", str(component.get("SUMMARY", ""))),
        klass=str(klass).upper() if klass is not None else None,
        tzids=used_tzids(unfold(text)),
        line=line,
        spans=block_spans(times, bounds, max_instances),
        recurrence_id=recurrence_id,
        component=component,
    )


def version(component: Component) -> tuple[int, int]:
    """(SEQUENCE, DTSTAMP in epoch seconds): the larger is the newer version (RFC 5546 2.1.5)."""
    try:
        sequence = int(component.get("SEQUENCE", 0))
    except (TypeError, ValueError):
        sequence = 0
    stamp = decoded_value(component, "DTSTAMP") or decoded_value(component, "LAST-MODIFIED")
    return sequence, epoch(to_utc(stamp)[0]) if isinstance(stamp, date) else 0


def _insert_after_begin(text: str, content_line: str) -> str:
    """``content_line`` after the component's BEGIN line, which may be folded (RFC 5545 3.1)."""
    lines = text.split(CRLF)
    at = 1
    while at < len(lines) and lines[at][:1] in (" ", "\t"):
        at += 1
    lines.insert(at, content_line)
    return CRLF.join(lines)


@functools.lru_cache(maxsize=512)
def timezone_text(tzid: str) -> str | None:
    """A VTIMEZONE for a zone known to the system (IANA or Windows name), or None."""
    try:
        return Timezone.from_tzid(tzid).to_ical().decode().replace("\r\n", CRLF)
    except (ValueError, KeyError):
        return None


_ALL_TIMEZONES: list[str] = []


def build_all_timezones() -> str:
    """VTIMEZONEs for every IANA zone (about 500; building them takes seconds of CPU)."""
    names = sorted(n for n in zoneinfo.available_timezones() if "/" in n and not n.startswith(("Etc/", "SystemV/")))
    return "".join(text for text in map(timezone_text, [*names, "UTC"]) if text)


def all_timezones() -> str:
    """The VTIMEZONEs of every zone, built once per process (or handed in by ``keep_timezones``)."""
    if not _ALL_TIMEZONES:
        _ALL_TIMEZONES.append(build_all_timezones())
    return _ALL_TIMEZONES[0]


def keep_timezones(text: str) -> None:
    """Use ``text`` (built elsewhere, e.g. in a helper process) as ``all_timezones()``."""
    if not _ALL_TIMEZONES:
        _ALL_TIMEZONES.append(text)


def assemble(
    blocks: list[ParsedComponent],
    timezones: dict[str, str],
    header: Iterable[str] = (),
) -> Resource:
    """One resource from the blocks of one UID; ``timezones`` maps TZID to VTIMEZONE text."""
    master = next((b for b in blocks if not b.is_override), blocks[0])
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{PRODID}", *header]
    text = CRLF.join(lines) + CRLF
    tzids = sorted(set().union(*(b.tzids for b in blocks)))
    for tzid in tzids:
        vtimezone = timezones.get(tzid) or timezone_text(tzid)
        if vtimezone:
            text += vtimezone
    text += "".join(b.text for b in blocks) + "END:VCALENDAR" + CRLF
    start, end = merge_bounds(blocks)
    replaced = {b.recurrence_id for b in blocks if b.is_override}
    futures = sorted(
        (b.recurrence_id, b.start - b.recurrence_id, (b.end if b.end is not None else b.start) - b.start)
        for b in blocks
        if b.this_and_future and b.recurrence_id is not None and b.start is not None
    )
    spans = [
        span if block.is_override else moved_by(span, futures)
        for block in blocks
        for span in block.spans
        if block.is_override or span[0] not in replaced or not span[2]
    ]
    return Resource(
        uid=master.uid,
        component=master.name,
        text=text,
        start=start,
        end=end,
        recurring=any(b.recurring for b in blocks),
        summary=master.summary,
        klass=master.klass,
        line=min(b.line for b in blocks),
        spans=spans,
    )


def resource_from_components(
    components: list[Component],
    max_instances: int = DEFAULT_MAX_INSTANCES,
    line: int = 1,
    timezones: dict[str, str] | None = None,
) -> Resource:
    """A resource from built or edited components of one UID (CSV, JSON, REST slots)."""
    blocks = [block_from_component(c, c.to_ical().decode(), line, max_instances) for c in components]
    return assemble(blocks, timezones or {})


def resource_from_calendar(calendar: Calendar, max_instances: int = DEFAULT_MAX_INSTANCES) -> Resource:
    """A resource from a parsed (and possibly edited) stored resource."""
    timezones = {str(tz["TZID"]): tz.to_ical().decode() for tz in calendar.walk("VTIMEZONE")}
    components = [c for c in calendar.subcomponents if c.name in OBJECT_COMPONENTS]
    return resource_from_components(components, max_instances, timezones=timezones)
