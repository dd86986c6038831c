"""iCalendar resources: split calendars into one resource per UID, validate, index bounds.

A *resource* is what the store keeps for one UID: a complete VCALENDAR holding the master
component, its overridden instances (RECURRENCE-ID) and the VTIMEZONEs they use, plus the
values the store indexes (UTC start/end bounds, summary, CLASS).

Everything here is pure: text in, values out.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import re
import zoneinfo
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

import recurring_ical_events
from dateutil import rrule as dateutil_rrule
from icalendar import Calendar, Component, Timezone, vDDDLists, vDDDTypes
from icalendar.timezone import tzp

PRODID = "-//Almanac//Almanac Calendar Server//EN"
CRLF = "\r\n"
#: components a calendar object resource may hold (RFC 4791 4.1)
OBJECT_COMPONENTS = frozenset({"VEVENT", "VTODO", "VJOURNAL"})
#: floating times and dates mean "wall clock anywhere": widen index bounds by the widest offset
FLOATING_SLACK = 14 * 3600
#: the earliest and latest instants a query may name (0001-01-02 and 9999-12-31 UTC)
MIN_EPOCH, MAX_EPOCH = -62135510400, 253402214400
#: the first and last instants Python's datetime holds; a wall clock is at most a day off UTC
_FIRST, _LAST = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)
_ZONE_SHIFT = timedelta(days=1)
#: recurrence sets with more instances than this are indexed as open-ended
DEFAULT_MAX_INSTANCES = 10_000

_FOLD = re.compile("\r\n[ \t]")
#: control characters RFC 5545 allows in no value (all but TAB; CR and LF only end lines)
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TZID_PARAM = re.compile(r';TZID=("[^"]*"|[^;:]*)', re.IGNORECASE)


#: what icalendar raises on text it cannot read (a TZID given twice is an AttributeError)
UNREADABLE = (ValueError, KeyError, TypeError, AttributeError, IndexError, OverflowError)


class ICalError(ValueError):
    """An iCalendar text that cannot be accepted, with the line it was found on."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


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


@dataclass(slots=True)
class Bounds:
    start: int | None
    end: int | None
    recurring: bool = False


# --------------------------------------------------------------------------- time helpers


def formatted(moment: date, pattern: str) -> str:
    """``moment.strftime(pattern)`` with four-digit years: C's ``%Y`` writes the year 1 as "1"."""
    return moment.strftime(pattern.replace("%Y", f"{moment.year:04d}"))


def to_utc(value: date | datetime) -> tuple[datetime, bool]:
    """A UTC datetime for a DATE or DATE-TIME value, and whether it was floating."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC), True
        return value.astimezone(UTC), False
    return datetime.combine(value, time(), UTC), True


def epoch(value: datetime) -> int:
    return int(value.timestamp())


def is_all_day(value: object) -> bool:
    return isinstance(value, date) and not isinstance(value, datetime)


def _decoded(component: Component, name: str) -> object | None:
    if name not in component:
        return None
    try:
        value = component.decoded(name)
    except (ValueError, KeyError, TypeError):
        return None
    return value


#: a property's decoded value, None when the component lacks it or it cannot be read
Decoded = Callable[[str], Any]


def component_span(component: Component) -> tuple[date | None, timedelta | None]:
    """DTSTART (or DUE for a todo without one) and the duration of one instance (RFC 5545)."""
    return span_of(str(component.name), functools.partial(_decoded, component))


def span_of(name: str, decoded: Decoded) -> tuple[date | None, timedelta | None]:
    """``component_span`` of a ``name`` component whose properties ``decoded`` gives."""
    start = decoded("DTSTART")
    if name == "VTODO":
        due = decoded("DUE")
        duration = decoded("DURATION")
        if not isinstance(start, date):
            return (due, timedelta(0)) if isinstance(due, date) else (None, None)
        if isinstance(due, date):
            return start, _difference(start, due)
        if isinstance(duration, timedelta):
            return start, duration
        return start, timedelta(0)
    if not isinstance(start, date):
        return None, None
    end = decoded("DTEND")
    if isinstance(end, date):
        return start, _difference(start, end)
    duration = decoded("DURATION")
    if isinstance(duration, timedelta):
        return start, duration
    return start, timedelta(days=1) if is_all_day(start) else timedelta(0)


def _difference(start: date, end: date) -> timedelta:
    if is_all_day(start) != is_all_day(end) or (
        isinstance(start, datetime) and isinstance(end, datetime) and (start.tzinfo is None) != (end.tzinfo is None)
    ):
        start = to_utc(start)[0]
        end = to_utc(end)[0]
    return end - start


def prop_value(component: Component, name: str) -> Any:
    """The date, date-time (or other value) of a property (icalendar's types do not say
    which property holds what)."""
    prop: Any = component[name]
    if not hasattr(prop, "dt"):
        raise ValueError(f"{name} holds no date, time or duration")
    return prop.dt


def every(component: Component, name: str) -> list[Any]:
    """All values of a property that may appear more than once (icalendar gives one or a list)."""
    value = component.get(name)
    return [] if value is None else value if isinstance(value, list) else [value]


def _rrule_strings(component: Component) -> list[str]:
    return [rule.to_ical().decode() for rule in every(component, "RRULE")]


def _last_start(start: date | datetime, rule: str, max_instances: int) -> datetime | None:
    """Start of the last instance of a bounded RRULE, or None when unbounded or too long."""
    upper = rule.upper()
    if "COUNT=" not in upper and "UNTIL=" not in upper:
        return None
    begin = start if isinstance(start, datetime) else datetime.combine(start, time())
    naive = begin.replace(tzinfo=None)
    until = re.search(r"UNTIL=([0-9TZ]+)", upper)
    if until:
        # Conservative: no instance starts after UNTIL.
        raw = until.group(1)
        try:
            if "T" in raw:
                stamp = datetime.strptime(raw[:15], "%Y%m%dT%H%M%S")
            else:
                stamp = datetime.strptime(raw[:8], "%Y%m%d") + timedelta(days=1)
        except ValueError:
            return None
        return stamp.replace(tzinfo=UTC if raw.endswith("Z") else begin.tzinfo)
    counted = re.search(r"COUNT=(\d+)", upper)
    if counted is None:
        return None
    count = int(counted.group(1))
    if count > max_instances:
        return None
    fixed = _fixed_steps(rule)
    try:
        last = naive + (count - 1) * fixed[0] if fixed is not None and not naive.microsecond else None
    except OverflowError:  # past the year 9999, where dateutil stops
        last = None
    if last is None:
        try:
            for last in dateutil_rrule.rrulestr(rule, dtstart=naive):  # noqa: B007 - only the last one matters
                pass
        except (ValueError, TypeError, OverflowError):
            return None
    if last is None:
        return begin
    return last.replace(tzinfo=begin.tzinfo) if begin.tzinfo is not None else last


@dataclass(slots=True)
class Timing:
    """What the index needs of one component's times."""

    start: date | None  #: DTSTART (or a todo's DUE), see ``component_span``
    duration: timedelta | None  #: of one instance
    rules: list[str] = field(default_factory=list)  #: the RRULEs as written by icalendar
    rdates: list[Any] = field(default_factory=list)  #: the RDATE properties
    exdates: list[Any] = field(default_factory=list)  #: the EXDATE properties


def timing(component: Component) -> Timing:
    start, duration = component_span(component)
    return Timing(start, duration, _rrule_strings(component), every(component, "RDATE"), every(component, "EXDATE"))


def component_bounds(component: Component, max_instances: int = DEFAULT_MAX_INSTANCES) -> Bounds:
    """UTC bounds that contain every instance of one component (a superset is fine)."""
    return timing_bounds(timing(component), max_instances)


def timing_bounds(times: Timing, max_instances: int = DEFAULT_MAX_INSTANCES) -> Bounds:
    """``component_bounds`` of a component's ``timing``."""
    start, duration = times.start, times.duration
    if start is None or duration is None:
        return Bounds(None, None, recurring=bool(times.rules or times.rdates))
    first, floating = to_utc(start)
    last_end = first + duration
    recurring = False
    for rule in times.rules:
        recurring = True
        last_start = _last_start(start, rule, max_instances)
        if last_start is None:
            return Bounds(epoch(first) - (FLOATING_SLACK if floating else 0), None, True)
        last_end = max(last_end, to_utc(last_start)[0] + duration)
    for rdate_list in times.rdates:
        recurring = True
        for item in _dates(rdate_list):
            begin, end = period(item)
            begin_utc = to_utc(begin)[0]
            end_utc = to_utc(end)[0] if end is not None else begin_utc + duration
            first = min(first, begin_utc)
            last_end = max(last_end, end_utc)
    slack = FLOATING_SLACK if floating else 0
    return Bounds(epoch(first) - slack, epoch(last_end) + slack, recurring)


#: instances of open-ended series are indexed this far ahead; later ones are found by parsing
INDEX_HORIZON = timedelta(days=400)
_UNTIL = re.compile(r"UNTIL=(\d{8}(?:T\d{6}Z?)?)", re.IGNORECASE)


def _naive_local(value: date | datetime, zone: tzinfo | None) -> datetime:
    """A DATE or DATE-TIME as naive wall-clock time in ``zone`` (the zone of DTSTART)."""
    if not isinstance(value, datetime):
        return datetime.combine(value, time())
    if value.tzinfo is None:
        return value
    return value.astimezone(zone or UTC).replace(tzinfo=None)


def _local_rule(rule: str, zone: tzinfo | None) -> str:
    """The RRULE with UNTIL as naive local time, as dateutil wants it for a naive DTSTART."""

    def local(match: re.Match[str]) -> str:
        raw = match.group(1)
        if raw.upper().endswith("Z"):
            moment = datetime.strptime(raw[:15], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
            return "UNTIL=" + formatted(_naive_local(moment, zone), "%Y%m%dT%H%M%S")
        return f"UNTIL={raw}"

    return _UNTIL.sub(local, rule)


#: rule iterations one walk may take, however far its window lies from the series' start
MAX_WALK = 100_000
#: the periods a rule can be skipped through arithmetically (MONTHLY and YEARLY vary in length)
_PERIOD_SECONDS = {"SECONDLY": 1, "MINUTELY": 60, "HOURLY": 3600, "DAILY": 86400, "WEEKLY": 604800}
#: the rule parts that pick days: a rule made only of impossible days would be walked for ever
_DAY_PARTS = ("BYMONTH", "BYWEEKNO", "BYYEARDAY", "BYMONTHDAY", "BYDAY", "BYSETPOS")
#: the Gregorian calendar repeats itself (dates and weekdays) every 400 years
_CYCLE_YEARS = 400


def _rule_parts(rule: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in rule.upper().split(";") if "=" in part)


def _interval(parts: dict[str, str]) -> int:
    try:
        return max(int(parts.get("INTERVAL") or 1), 1)
    except ValueError:
        return 1


def skip_to(rule: str, first: datetime, after: datetime | None) -> tuple[str, datetime] | None:
    """The rule and the start to walk it from so that no instance starting at or after
    ``after`` is lost, skipping whole periods arithmetically: (``rule``, ``first``) when
    nothing can be skipped, None when the rule's COUNT is used up before ``after``.

    A rule of fixed-length periods (SECONDLY to WEEKLY) keeps its instances when its start
    moves by whole intervals; with COUNT that holds only when every period has exactly one
    instance (no BYxxx part), and COUNT goes down by the periods skipped."""
    if after is None or after <= first:
        return rule, first
    parts = _rule_parts(rule)
    period = _PERIOD_SECONDS.get(parts.get("FREQ", ""))
    if period is None:
        return rule, first
    step = period * _interval(parts)
    skipped = int((after - first).total_seconds()) // step - 1  # one period of margin
    if skipped <= 0:
        return rule, first
    if "COUNT" in parts:
        if any(name.startswith("BY") for name in parts):
            return rule, first
        try:
            left = int(parts["COUNT"]) - skipped
        except ValueError:
            return rule, first
        if left <= 0:
            return None
        rule = re.sub(r"COUNT=\d+", f"COUNT={left}", rule, flags=re.IGNORECASE)
    return rule, first + timedelta(seconds=skipped * step)


_FIXED_PARTS = frozenset(("FREQ", "COUNT", "INTERVAL", "WKST"))
_WEEKDAYS = frozenset(("MO", "TU", "WE", "TH", "FR", "SA", "SU"))


def _fixed_steps(rule: str) -> tuple[timedelta, int | None] | None:
    """The step and COUNT (None: no end) of a rule whose instances are its first one plus whole
    steps (SECONDLY to WEEKLY, no BYxxx part, no UNTIL); None for any other rule."""
    parts = _rule_parts(rule)
    seconds = _PERIOD_SECONDS.get(parts.get("FREQ", ""))
    interval, count = parts.get("INTERVAL", "1"), parts.get("COUNT")
    if (
        seconds is None
        or not parts.keys() <= _FIXED_PARTS
        or parts.get("WKST", "MO") not in _WEEKDAYS
        or not (interval.isascii() and interval.isdigit() and int(interval) >= 1)
        or (count is not None and not (count.isascii() and count.isdigit() and int(count) >= 1))
    ):
        return None
    return timedelta(seconds=seconds * int(interval)), None if count is None else int(count)


def _fixed_walk(times: Timing, first: datetime, after: datetime | None) -> Iterator[datetime] | None:
    """The instances (naive local starts) of a series of one rule of fixed steps and no RDATE or
    EXDATE, as dateutil walks them (from near ``after``, see ``skip_to``) but without it; None
    for any other series."""
    if len(times.rules) != 1 or times.rdates or times.exdates or first.microsecond:
        return None
    fixed = _fixed_steps(times.rules[0])
    if fixed is None:
        return None
    skipped = skip_to(times.rules[0], first, after)
    if skipped is not None and skipped[0] != times.rules[0]:
        fixed = _fixed_steps(skipped[0])  # its COUNT less the periods skipped

    def instances() -> Iterator[datetime]:
        if skipped is None or skipped[1] != first:
            yield first  # DTSTART is always the first instance (RFC 5545 3.8.5.3)
        if skipped is None or fixed is None:
            return
        step, count = fixed
        for index in itertools.count() if count is None else range(count):
            try:
                yield skipped[1] + index * step
            except OverflowError:  # past the year 9999, where dateutil stops
                return

    return instances()


def rule_never_matches(rule: str, start: date | datetime) -> bool:
    """Whether a rule's BYxxx parts pick no date at all (``FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30``).

    dateutil walks such a rule to the year 9999 looking for an instance (seconds of CPU), so
    it is refused on the way in. The calendar repeats every 400 years: a rule that matches
    nothing in the last whole cycle before 9999 matches nothing ever."""
    parts = _rule_parts(rule)
    if not any(name in parts for name in _DAY_PARTS):
        return False
    first = start.replace(tzinfo=None) if isinstance(start, datetime) else datetime.combine(start, time())
    cycle = _CYCLE_YEARS * _interval(parts)
    cycles = (9999 - cycle - first.year) // cycle
    probe_start = first.replace(year=first.year + cycles * cycle) if cycles > 0 else first
    pattern = re.sub(r";?(COUNT|UNTIL)=[^;]*", "", rule, flags=re.IGNORECASE).lstrip(";")
    try:
        probe = dateutil_rrule.rrulestr(pattern, dtstart=probe_start)
        return next(iter(probe), None) is None
    except (ValueError, TypeError, OverflowError):
        return False  # refused elsewhere as invalid


def instance_spans(
    component: Component, max_instances: int, horizon: datetime, after: datetime | None = None
) -> tuple[list[tuple[int, int]], int | None]:
    """UTC (start, end) of each instance of a recurring component that ends after ``after``
    (all when None), up to ``horizon`` or ``max_instances``; and the start of the first
    instance not listed (None: all listed).

    The walk starts near ``after``, not at the series' start (whole periods are skipped
    arithmetically where the rule allows), and takes at most MAX_WALK steps whatever the rule."""
    return timing_instances(timing(component), max_instances, horizon, after)


def timing_instances(
    times: Timing, max_instances: int, horizon: datetime, after: datetime | None = None
) -> tuple[list[tuple[int, int]], int | None]:
    """``instance_spans`` of a component's ``timing``."""
    start, duration = times.start, times.duration
    if start is None or duration is None:
        raise ValueError("no start")
    zone = start.tzinfo if isinstance(start, datetime) else None
    first = _naive_local(start, zone)
    from_moment = None
    if after is not None and after - _FIRST > duration + _ZONE_SHIFT:  # else: from the first
        from_moment = _naive_local(after - duration, zone)
    periods: dict[datetime, int] = {}  #: RDATE;VALUE=PERIOD instances keep their own length
    rules = _fixed_walk(times, first, from_moment)
    if rules is None:
        rules = dateutil_rrule.rruleset()
        rules.rdate(first)  # DTSTART is always the first instance (RFC 5545 3.8.5.3)
        for rule in times.rules:
            skipped = skip_to(_local_rule(rule, zone), first, from_moment)
            if skipped is not None:
                rules.rrule(dateutil_rrule.rrulestr(skipped[0], dtstart=skipped[1]))
        for props, add in ((times.rdates, rules.rdate), (times.exdates, rules.exdate)):
            for item in props:
                for value in _dates(item):
                    moment, period_end = period(value)
                    add(_naive_local(moment, zone))
                    if period_end is not None:
                        periods[_naive_local(moment, zone)] = int(
                            (to_utc(period_end)[0] - to_utc(moment)[0]).total_seconds()
                        )
    limit = _naive_local(horizon, zone)
    low = MIN_EPOCH if after is None else epoch(after)
    length = int(duration.total_seconds())
    spans: list[tuple[int, int]] = []
    for walked, occurrence in enumerate(rules):
        moment = occurrence.replace(tzinfo=zone) if zone else occurrence
        begin = epoch(to_utc(moment)[0])
        if occurrence > limit or len(spans) >= max_instances or walked >= MAX_WALK:
            return spans, begin
        own = periods.get(occurrence, length)
        if begin + own > low or begin >= low:
            spans.append((begin, begin + own))
    return spans, None


def block_spans(times: Timing, bounds: Bounds, max_instances: int) -> list[tuple[int, int, bool]]:
    """The index spans of one component (its ``timing`` and ``timing_bounds``): exact ones
    where the times are unambiguous."""
    low = MIN_EPOCH if bounds.start is None else bounds.start
    high = MAX_EPOCH if bounds.end is None else bounds.end
    start, duration = times.start, times.duration
    floating = start is not None and (not isinstance(start, datetime) or start.tzinfo is None)
    # A span longer than a day may cross a DST change: its end is then checked on the text.
    exact = not floating and (duration is None or duration <= timedelta(days=1))
    if not bounds.recurring or start is None:
        return [(low, high, exact)]
    try:
        horizon = max(datetime.now(UTC), to_utc(start)[0]) + INDEX_HORIZON
        spans, rest = timing_instances(times, max_instances, horizon)
    except (ValueError, TypeError, OverflowError):
        return [(low, high, False)]
    result = [(begin, end, exact) for begin, end in spans]
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


# --------------------------------------------------------------------------- validation


#: a content line with a TZID parameter whose values are all UTC (``...T100000Z``)
_TZID_ON_UTC = re.compile(
    r'^([A-Z][A-Z0-9-]*)((?:;[^\r\n]*?)?);TZID=(?:"[^"\r\n]*"|[^;:,"\r\n]*)'
    r"((?:;[^\r\n]*?)?:\d{8}T\d{6}Z(?:,\d{8}T\d{6}Z)*)(?=\r?\n|\Z)",
    re.MULTILINE | re.IGNORECASE,
)


def repair_text(text: str) -> tuple[str, list[str]]:
    """Mend what the parser would misread (so it must be seen as written): a TZID parameter on
    a UTC value, which icalendar would read as a time in that zone. The text, and what was mended."""
    if "TZID" not in text.upper():
        return text, []
    unfolded = unfold(text)
    names: list[str] = []

    def drop(match: re.Match[str]) -> str:
        names.append(match.group(1).upper())
        return match.group(1) + match.group(2) + match.group(3)

    mended = _TZID_ON_UTC.sub(drop, unfolded)
    if not names:
        return text, []
    return mended, [f"{name} has a TZID on a UTC time (RFC 5545 3.3.5 forbids it): TZID dropped" for name in names]


def _as_start_type(value: date | datetime, start: date | datetime) -> date | datetime:
    """``value`` (a DATE or DATE-TIME) as the same type as DTSTART ``start``: a date-time's
    date, or the date at DTSTART's time of day in DTSTART's zone."""
    if not isinstance(start, datetime):
        return value.date() if isinstance(value, datetime) else value
    if isinstance(value, datetime):
        return value
    return datetime.combine(value, start.time()).replace(tzinfo=start.tzinfo)


def _typed_like_start(value: Any, start: date | datetime, tzid: str | None, params: dict[str, str]) -> Any:
    """A DATE or DATE-TIME property ``value`` rebuilt as DTSTART's type, with ``params``."""
    prop = vDDDTypes(value) if not isinstance(value, list) else vDDDLists(value)
    prop.params.update(params)
    if is_all_day(start):
        prop.params["VALUE"] = "DATE"
    elif tzid:
        prop.params["TZID"] = tzid
    return prop


def _dates(prop: Any) -> list[Any]:
    """The values of an RDATE or EXDATE property (a PERIOD is a (start, end or duration) tuple)."""
    try:
        return [item.dt for item in prop.dts]
    except (AttributeError, ValueError):  # icalendar's stand-in for a value it could not read
        return []


def excluded_starts(component: Component) -> set[int]:
    """The instances a series' EXDATEs remove, as the epoch seconds of their starts (UTC; a
    date as its day's UTC midnight, as RECURRENCE-IDs are read)."""
    return {
        epoch(to_utc(value)[0]) for prop in every(component, "EXDATE") for value in _dates(prop)
        if isinstance(value, date)
    }  # fmt: skip


def period(value: Any) -> tuple[date | datetime, date | datetime | None]:
    """An RDATE value's start and, for a PERIOD, its end (RFC 5545 3.3.9: an end or a duration)."""
    if not isinstance(value, tuple):
        return value, None
    begin, stop = value
    return begin, begin + stop if isinstance(stop, timedelta) else stop


def match_start_type(component: Component, name: str, start: date | datetime, tzid: str | None) -> bool:
    """Make each ``name`` property (EXDATE, RDATE, RECURRENCE-ID) of ``component`` the same
    value type as the series' DTSTART (``start``, in zone ``tzid``); whether one changed. A
    PERIOD value is left as it is."""
    changed = False
    kept = []
    for prop in every(component, name):
        values = _dates(prop) if name != "RECURRENCE-ID" else [prop.dt]
        if any(not isinstance(v, date) for v in values) or all(is_all_day(v) == is_all_day(start) for v in values):
            kept.append(prop)
            continue
        params = {k: v for k, v in prop.params.items() if k not in ("TZID", "VALUE")}
        retyped = [_as_start_type(v, start) for v in values]
        kept.append(_typed_like_start(retyped if name != "RECURRENCE-ID" else retyped[0], start, tzid, params))
        changed = True
    if changed:
        component.pop(name)
        for prop in kept:
            component.add(name, prop)
    return changed


def match_series(master: Component, override: Component) -> str | None:
    """Make an override's RECURRENCE-ID the value type of its series' DTSTART (Exchange writes
    a DATE-TIME for an all-day series and the reverse), so it replaces the instance it means:
    the date of a date-time, or the date at the series' time of day; what was mended, or None."""
    start = _decoded(master, "DTSTART")
    if not isinstance(start, date) or "RECURRENCE-ID" not in override:
        return None
    if not match_start_type(override, "RECURRENCE-ID", start, master["DTSTART"].params.get("TZID")):
        return None
    kind = "DATE" if is_all_day(start) else "DATE-TIME"
    return f"RECURRENCE-ID of another value type than the series' DTSTART: read as the {kind} of that instance"


#: properties a VEVENT, VTODO or VJOURNAL holds once at most (RFC 5545 3.6.1-3.6.3)
ONCE = frozenset(("UID", "DTSTAMP", "DTSTART", "DTEND", "DUE", "DURATION", "RECURRENCE-ID", "SEQUENCE", "CLASS",
                   "CREATED", "DESCRIPTION", "GEO", "LAST-MODIFIED", "LOCATION", "ORGANIZER", "PRIORITY", "STATUS",
                   "SUMMARY", "TRANSP", "URL", "COMPLETED", "PERCENT-COMPLETE"))  # fmt: skip


def _repeated_once(component: Component) -> list[tuple[str, list[Any]]]:
    """The properties RFC 5545 allows once that ``component`` has more than once, with their
    values (icalendar keeps a repeated property as a list)."""
    return [(name, value) for name, value in component.items() if isinstance(value, list) and name in ONCE]


def _value_text(value: Any) -> bytes:
    return value.to_ical() if hasattr(value, "to_ical") else str(value).encode()


def repair(component: Component) -> list[str]:
    """Mend, in place, what real-world writers get wrong where their intent is plain; what was
    mended, in words (each a named rule, listed in docs/formats.md)."""
    done = []
    start = _decoded(component, "DTSTART")
    if isinstance(start, date) and "RECURRENCE-ID" not in component:
        tzid = component["DTSTART"].params.get("TZID")
        for name in ("EXDATE", "RDATE"):
            if match_start_type(component, name, start, tzid):
                kind = "DATE" if is_all_day(start) else "DATE-TIME"
                done.append(f"{name} of another value type than DTSTART (RFC 5545 3.8.5): read as a {kind}")
    for end in ("DTEND", "DUE"):
        if end in component and "DURATION" in component:
            component.pop("DURATION")
            done.append(f"{end} and DURATION together (RFC 5545 allows one): DURATION dropped, {end} kept")
    for name, given in _repeated_once(component):
        if len({_value_text(value) for value in given}) == 1:
            component[name] = given[0]
            done.append(f"{name} given {len(given)} times with the same value (RFC 5545 allows one): one kept")
    rules = every(component, "RRULE")
    if not all(rules):  # "RRULE:" with nothing after it (Germany_Holidays.ics)
        component.pop("RRULE")
        for rule in filter(None, rules):
            component.add("RRULE", rule)
        done.append("an empty RRULE (RFC 5545 requires FREQ): dropped, the component does not recur")
    for rule in every(component, "RRULE"):
        if "COUNT" in rule and "UNTIL" in rule:
            rule.pop("COUNT")
            done.append("RRULE with both COUNT and UNTIL (RFC 5545 allows one): COUNT dropped, UNTIL kept")
    return done


def component_problems(component: Component) -> list[str]:
    """What makes a VEVENT/VTODO/VJOURNAL unacceptable, in words a person understands."""
    problems = [f"{name}: {message}" if name else message for name, message in component.errors]
    for sub in component.subcomponents:
        problems.extend(f"{sub.name} {name}: {message}" for name, message in sub.errors)
    if problems:
        return problems
    twice = _repeated_once(component)
    if twice:
        return [f"{n} appears more than once with different values (RFC 5545 allows one)" for n, _ in twice]
    decoded = functools.partial(_decoded, component)
    problems = date_problems(str(component.name), component, decoded)
    start = decoded("DTSTART")
    if component.name == "VEVENT" and start is None:
        return problems
    for name in ("RDATE", "EXDATE"):
        for item in every(component, name):
            moments = [period(value)[0] for value in _dates(item)]
            if not all(isinstance(moment, date) for moment in moments):
                problems.append(f"{name} holds a value that is not a date or date-time")
    for rule in _rrule_strings(component):
        problems += rule_problems(rule, start)
    return problems


def date_problems(name: str, present: Container[str], decoded: Decoded) -> list[str]:
    """What is wrong with the dates of a ``name`` component that has the properties named in
    ``present``, whose values ``decoded`` gives (part of ``component_problems``)."""
    problems = []
    start = decoded("DTSTART")
    for dated in ("DTSTART", "RECURRENCE-ID"):
        if dated in present and not isinstance(decoded(dated), date):
            problems.append(f"{dated} is not a valid date or date-time")
    if name == "VEVENT":
        if start is None:
            problems.append("VEVENT has no DTSTART")
            return problems
        if "DTEND" in present and "DURATION" in present:
            problems.append("VEVENT has both DTEND and DURATION")
        end = decoded("DTEND")
        if "DTEND" in present and not isinstance(end, date):
            problems.append("DTEND is not a valid date or date-time")
        elif isinstance(end, date) and isinstance(start, date):
            if is_all_day(start) != is_all_day(end):
                problems.append("DTSTART and DTEND must both be dates or both date-times")
            elif _difference(start, end) < timedelta(0):
                problems.append("DTEND is before DTSTART")
        duration = decoded("DURATION")
        if isinstance(duration, timedelta) and duration < timedelta(0):
            problems.append("DURATION is negative")
    elif name == "VTODO":
        due = decoded("DUE")
        if "DUE" in present and not isinstance(due, date):
            problems.append("DUE is not a valid date or date-time")
        elif isinstance(due, date) and isinstance(start, date) and _difference(start, due) < timedelta(0):
            problems.append("DUE is before DTSTART")
        if "DUE" in present and "DURATION" in present:
            problems.append("VTODO has both DUE and DURATION")
    return problems


def rule_problems(rule: str, start: object) -> list[str]:
    """What is wrong with an RRULE (as icalendar writes it) of a series starting at ``start``."""
    count = re.search(r"COUNT=(-?\d+)", rule, re.IGNORECASE)
    if count and int(count.group(1)) < 1:
        return [f"RRULE {rule} has COUNT={count.group(1)}: a rule counts one instance at least"]
    try:
        dateutil_rrule.rrulestr(re.sub(r";?UNTIL=[0-9TZ]+", "", rule, flags=re.I), dtstart=datetime(2000, 1, 1))
    except (ValueError, TypeError) as error:
        return [f"RRULE is invalid: {error}"]
    if isinstance(start, date) and rule_never_matches(rule, start):
        return [f"RRULE {rule} matches no date at all"]
    return []


# --------------------------------------------------------------------------- blocks and resources


def make_uid(*parts: str) -> str:
    """A deterministic UID for data that has none, so a re-import updates instead of duplicating."""
    digest = hashlib.sha1("\x1f".join(parts).encode()).hexdigest()
    return f"almanac-{digest}"


def unfold(text: str) -> str:
    """Content lines without their folds (RFC 5545 3.1: a fold may fall anywhere)."""
    return _FOLD.sub("", text) if "\r\n " in text or "\r\n\t" in text else text


def used_tzids(text: str) -> frozenset[str]:
    return frozenset(value.strip('"') for value in _TZID_PARAM.findall(text))


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
    stamp = _decoded(component, "DTSTAMP") or _decoded(component, "LAST-MODIFIED")
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
        span if block.is_override else _moved_by(span, futures)
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


# --------------------------------------------------------------------------- reading stored text


def parse_resource(text: str) -> Calendar:
    """Parse a stored resource (trusted: it was validated when written)."""
    return Calendar.from_ical(text)


def main_component(calendar: Calendar) -> Component | None:
    """The master component of a resource (the first one without RECURRENCE-ID)."""
    first = None
    for component in calendar.subcomponents:
        if component.name in OBJECT_COMPONENTS:
            if "RECURRENCE-ID" not in component:
                return component
            first = first or component
    return first


_VTIMEZONE = re.compile(r"BEGIN:VTIMEZONE\r\n.*?END:VTIMEZONE\r\n", re.DOTALL)
_TZID_LINE = re.compile(r"^TZID[;:](?:[^:\r\n]*:)?(.*?)\r$", re.MULTILINE)


def timezones_and_body(text: str) -> tuple[list[tuple[str, str]], str]:
    """The (TZID, VTIMEZONE text) pairs of a stored resource, and all its other components
    as one text: the fast path of exports and fetches (no line-by-line walk)."""
    begin = text.find("\r\nBEGIN:") + 2
    end = text.rfind("END:VCALENDAR")
    body = text[begin:end] if begin > 1 and end > begin else ""
    if "BEGIN:VTIMEZONE" not in body:
        return [], body
    zones = []
    for match in _VTIMEZONE.finditer(body):
        tzid = _TZID_LINE.search(match.group(0))
        zones.append((tzid.group(1).strip() if tzid else "", match.group(0)))
    return zones, _VTIMEZONE.sub("", body)


def split_stored(text: str) -> Iterator[tuple[str, str, str]]:
    """Yield (kind, key, text) for each top-level component of a stored resource.

    kind is "VTIMEZONE" (key = TZID) or the component name (key = ""). Calendar-level
    properties are skipped. Works on text only: no parsing, for fast exports.
    """
    depth = 0
    current: list[str] = []
    kind = key = ""
    for line in text.split(CRLF):
        if not line:
            continue
        upper = line[:20].upper()
        if upper.startswith("BEGIN:"):
            depth += 1
            if depth == 2:
                kind, key, current = line[6:].strip().upper(), "", []
        if depth >= 2:
            current.append(line)
            if depth == 2 and kind == "VTIMEZONE" and upper.startswith("TZID"):
                key = line.split(":", 1)[1].strip()
        if upper.startswith("END:"):
            if depth == 2:
                yield kind, key, CRLF.join(current) + CRLF
            depth -= 1


def _as_instant(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _moved_series(component: Component, start: datetime, end: datetime, limit: int) -> Component:
    """A copy of a recurring component whose rule starts at its first instance in
    [start, end) and ends (UNTIL) at its last one there, at most ``limit`` instances on:
    the same instances in the window, a compact rule, a walk that begins at the window.

    Moving DTSTART to an instance of its rule keeps the rule's later instances (they keep
    its interval grid and its defaults); RDATE and EXDATE are absolute and stay."""
    (rule,) = _rrule_strings(component)
    first_start, duration = component_span(component)
    if not isinstance(first_start, date) or duration is None:  # the start: DTSTART, or a todo's DUE
        raise ValueError("no start")
    zone = first_start.tzinfo if isinstance(first_start, datetime) else None
    first = _naive_local(first_start, zone)
    low, high = _naive_local(start - duration, zone), _naive_local(end, zone)
    skipped = skip_to(_local_rule(rule, zone), first, low)
    excluded = {_naive_local(moment, zone) for exdate in every(component, "EXDATE") for moment in _dates(exdate)}
    hits: list[datetime] = []  # the instances the window holds (not those EXDATE removes)
    if skipped is not None:
        for walked, occurrence in enumerate(dateutil_rrule.rrulestr(skipped[0], dtstart=skipped[1])):
            if occurrence >= high or walked >= MAX_WALK or len(hits) >= limit:
                break
            if occurrence >= low and occurrence not in excluded:
                hits.append(occurrence)
    copy = component.copy()
    copy.subcomponents = list(component.subcomponents)
    copy.pop("RRULE")
    if not hits:
        return copy

    def value(moment: datetime) -> date | datetime:
        if not isinstance(first_start, datetime):
            return moment.date()
        return moment.replace(tzinfo=zone) if zone else moment

    shift = hits[0] - first
    for name in ("DTSTART", "DTEND", "DUE"):
        if name in component:
            moved = component.decoded(name)
            copy.pop(name)
            copy.add(name, value(_naive_local(moved, zone) + shift))
    until = value(hits[-1])
    recur = every(component, "RRULE")[0].copy()
    recur.pop("COUNT", None)
    recur["UNTIL"] = [until.astimezone(UTC) if isinstance(until, datetime) and until.tzinfo else until]
    copy.add("RRULE", recur)
    return copy


def window_calendar(calendar: Calendar, start: datetime, end: datetime, limit: int) -> Calendar:
    """A copy of a parsed resource in which each recurring component lists, instead of its
    whole rule, only its instances in [start, end) (naive bounds read as UTC), at most ``limit``.

    recurring-ical-events walks a rule from the series' start whatever the window (an
    every-second rule from 2001 asked about 2090 would take hours); this copy gives it the
    bounded walk of ``instance_spans`` instead, so every door expands the same way."""
    start, end = _as_instant(start), _as_instant(end)
    copy = calendar.copy()
    copy.subcomponents = []
    for component in calendar.subcomponents:
        kept = component
        if component.name in OBJECT_COMPONENTS and "RRULE" in component and "RECURRENCE-ID" not in component:
            try:
                kept = _moved_series(component, start, end, limit)
            except (ValueError, TypeError, KeyError, OverflowError):
                kept = component.copy()  # a rule that cannot be walked: its DTSTART alone
                kept.subcomponents = list(component.subcomponents)
                kept.pop("RRULE")
        copy.subcomponents.append(kept)
    return copy


def overlaps(text: str, start: datetime, end: datetime) -> bool:
    """Whether any instance of a stored resource overlaps [start, end) (floating times as UTC).

    Only the window's instances are walked (``window_calendar``), so an endless rule with an
    open-ended window costs a few instances, not all of them until the year 9999."""
    calendar = parse_resource(text)
    start, end = held(calendar, start, end)
    windowed = window_calendar(calendar, start, end, len(calendar.subcomponents) + 1)
    query = recurring_ical_events.of(windowed, components=sorted(OBJECT_COMPONENTS))
    # between() overlaps as RFC 4791 9.9 says; after() would give up near the year 9999
    return next(iter(query.between(start, end)), None) is not None


def held(calendar: Calendar, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """[start, end) cut to where a walk over ``calendar``'s components stays within the dates
    Python holds (recurring-ical-events moves a window back by the longest component's length,
    a wall clock forward by up to a day): only an instance starting within that length of the
    year 1's first instant, or on the last day of 9999, could be missed."""
    longest = max(
        (length for c in calendar.walk() if c.name in OBJECT_COMPONENTS if (length := component_span(c)[1])),
        default=timedelta(),
    )
    return max(start, _FIRST + longest), min(end, _LAST - _ZONE_SHIFT)


def instances(text: str, start: datetime, end: datetime, limit: int, zone: tzinfo | None = None) -> str:
    """A resource holding the instances of ``text`` in [start, end) (instances of recurring
    components carry RECURRENCE-ID) and the VTIMEZONEs they use; at most ``limit`` instances.
    Floating times and dates are placed in ``zone`` (UTC when None)."""
    zones = [part for kind, _, part in split_stored(text) if kind == "VTIMEZONE"]
    calendar = parse_resource(text)
    master = main_component(calendar)
    first = component_span(master)[0] if master is not None else None
    if zone is not None and isinstance(first, date) and getattr(first, "tzinfo", None) is None:
        # floating instances are compared as UTC: move the window to the zone's wall clock instead
        with contextlib.suppress(OverflowError, ValueError):
            start, end = (moment.astimezone(zone).replace(tzinfo=UTC) for moment in (start, end))
    start, end = held(calendar, start, end)
    try:
        found = _expand_text(text, calendar, start, end, limit)
    except (ValueError, TypeError, KeyError, OverflowError):
        windowed = window_calendar(calendar, start, end, limit)
        query = recurring_ical_events.of(windowed, components=sorted(OBJECT_COMPONENTS))
        found = [c.to_ical().decode() for c in itertools.islice(query.between(start, end), limit)]
    head = f"BEGIN:VCALENDAR{CRLF}VERSION:2.0{CRLF}PRODID:{PRODID}{CRLF}"  # RFC 5545 3.6: both required
    return f"{head}{''.join(zones)}{''.join(found)}END:VCALENDAR{CRLF}"


_DROPPED_IN_INSTANCES = ("RRULE", "RDATE", "EXDATE", "EXRULE")
#: a content line's name and parameters: up to the first colon outside double quotes
_NAME_PART = re.compile(r'^((?:[^":]|"[^"]*")*)')


def _logical_lines(block: str) -> list[str]:
    """The content lines of a component, each with its folded continuation lines."""
    lines: list[str] = []
    for line in block.split(CRLF):
        if line[:1] in (" ", "\t") and lines:
            lines[-1] += CRLF + line
        elif line:
            lines.append(line)
    return lines


def _moved_by(span: tuple[int, int, bool], futures: list[tuple[int, int, int]]) -> tuple[int, int, bool]:
    """A master's span after the RANGE=THISANDFUTURE overrides (recurrence id, shift, length)
    before it: moved and resized as the last of them says; an inexact span only widened."""
    begin, end, exact = span
    if not exact:
        return min([begin, *(begin + shift for _, shift, _ in futures)]), end, exact
    last = next((future for future in reversed(futures) if future[0] < begin), None)
    return (begin + last[1], begin + last[1] + last[2], exact) if last else span


def this_and_future(component: Component) -> bool:
    """Whether an overridden instance stands for every later one too (RANGE=THISANDFUTURE)."""
    rid = component.get("RECURRENCE-ID")
    return rid is not None and str(rid.params.get("RANGE", "")).upper() == "THISANDFUTURE"


def _name(line: str) -> str:
    """A logical content line's name and parameters (a fold may fall inside them)."""
    named = _NAME_PART.match(unfold(line))
    return named.group(1) if named else ""


def _instance_text(
    lines: list[str],
    moment: int,
    length: int,
    value_of: Callable[[int], str],
    anchor: str,
    own_length: bool,
    rid: int | None = None,
) -> str:
    """The master's lines as the instance starting at ``moment``: its ``anchor`` (DTSTART, or
    DUE for a todo without one) moved there with a RECURRENCE-ID beside it, DTEND or DUE
    ``length`` seconds later, no recurrence rules. ``own_length`` (an RDATE period's): a DTEND
    takes the place of the master's DURATION. ``rid``: the instance's original start when it
    moved (a RANGE=THISANDFUTURE override's shift); else ``moment``."""
    out = []
    params = next(n[len(anchor) :] for n in map(_name, lines) if n.upper().startswith(anchor))
    end_written = False
    for line in lines:
        name = _name(line)
        key = name.split(";", 1)[0].upper()
        if key in _DROPPED_IN_INSTANCES:
            continue
        if key == anchor:
            rid_value = value_of(moment if rid is None else rid)
            out += [f"{name}:{value_of(moment)}", f"RECURRENCE-ID{params}:{rid_value}"]
        elif key in ("DTEND", "DUE") or (key == "DURATION" and own_length):
            end_written = True
            out.append(f"{name if key != 'DURATION' else 'DTEND' + params}:{value_of(moment + length)}")
        else:
            out.append(line)
    if own_length and not end_written and anchor == "DTSTART":  # the master has no end of its own
        out.insert(out.index(f"{anchor}{params}:{value_of(moment)}") + 1, f"DTEND{params}:{value_of(moment + length)}")
    return CRLF.join(out) + CRLF


_UTC_TIME = re.compile(r"\d{8}T\d{6}Z")
_LOCAL_TIME = re.compile(r"\d{8}T\d{6}")
#: the times expand_spans writes from the spans
_SPAN_TIMES = ("DTSTART", "DTEND")


def utc_stamp(moment: int) -> str:
    """Epoch seconds as an iCalendar UTC date-time."""
    return formatted(datetime(1970, 1, 1) + timedelta(seconds=moment), "%Y%m%dT%H%M%SZ")


def expand_spans(text: str, spans: Sequence[tuple[int, int, bool]], limit: int) -> str | None:
    """The instances of a stored resource in a range, every time in UTC and no VTIMEZONE (what
    an expand asks), made from its spans in the time-range index (``spans``: start, end and
    exactness of each instance in the range) instead of parsing it. Only for the plain case: one
    VEVENT, recurring by RRULE or not, with UTC or zoned date-time DTSTART/DTEND, no overrides,
    RDATEs or other zoned times, every span exact; None for anything else (parse it)."""
    if not spans or len(spans) > limit or "RECURRENCE-ID" in text:
        return None
    if not all(exact and end - start != 1 for start, end, exact in spans):  # a 1 s span: maybe [s, s] on PostgreSQL
        return None
    head: list[str] = []  # the calendar's own lines
    event: list[str] = []  # the VEVENT's, its alarms' included
    depth, component = 0, ""
    for line in _logical_lines(text):
        upper = line.upper()
        if upper.startswith("BEGIN:"):
            depth += 1
            if depth == 2:
                component = upper[6:].strip()
                if component not in ("VEVENT", "VTIMEZONE") or (component == "VEVENT" and event):
                    return None
        if depth >= 2:
            if component == "VEVENT":
                event.append(line)
        elif depth == 1 and not upper.startswith(("BEGIN:VCALENDAR", "END:VCALENDAR")):
            head.append(line)
        if upper.startswith("END:"):
            depth -= 1
    recurring = ends = False
    own: list[str] = []
    nested = 0
    for line in event[1:-1]:
        name = _name(line)
        key = name.split(";", 1)[0].upper()
        top = nested == 0 and key != "BEGIN"
        nested += (key == "BEGIN") - (key == "END")
        if top and key in _SPAN_TIMES:
            value, params = line[len(name) + 1 :], name[len(key) :].upper()
            zoned = params.startswith(";TZID=") and ";" not in params[1:] and _LOCAL_TIME.fullmatch(value)
            if not (zoned or (not params and _UTC_TIME.fullmatch(value))):
                return None
            ends = ends or key == "DTEND"
        elif top and key == "RDATE":  # its instances may have lengths of their own
            return None
        elif top and key in _DROPPED_IN_INSTANCES:
            recurring = recurring or key == "RRULE"
        elif "TZID=" in name.upper():
            return None
        else:
            own.append(line)
    if not event or (not recurring and len(spans) != 1):
        return None
    instances = []
    for start, end, _ in sorted(spans):
        times = [f"DTSTART:{utc_stamp(start)}"]
        times += [f"RECURRENCE-ID:{utc_stamp(start)}"] if recurring else []
        times += [f"DTEND:{utc_stamp(end)}"] if ends else []
        instances.append(CRLF.join(["BEGIN:VEVENT", *times, *own, "END:VEVENT", ""]))
    return CRLF.join(["BEGIN:VCALENDAR", *head, ""]) + "".join(instances) + f"END:VCALENDAR{CRLF}"


def _expand_text(text: str, calendar: Calendar, start: datetime, end: datetime, limit: int) -> list[str]:
    """Instances by editing the master's text (recurring-ical-events is ~10x slower here)."""
    master = main_component(calendar)
    if master is None or "RECURRENCE-ID" in master or ("RRULE" not in master and "RDATE" not in master):
        raise ValueError("not a plain series")
    first, duration = component_span(master)
    if first is None or duration is None:
        raise ValueError("no start")
    low, high = epoch(start), epoch(end)
    blocks = [(kind, part) for kind, _, part in split_stored(text) if kind in OBJECT_COMPONENTS]
    master_text = next(part for kind, part in blocks if "RECURRENCE-ID" not in part)
    overrides = {}
    for component, (_, part) in zip(
        [c for c in calendar.subcomponents if c.name in OBJECT_COMPONENTS], blocks, strict=True
    ):
        if "RECURRENCE-ID" in component:
            overrides[epoch(to_utc(prop_value(component, "RECURRENCE-ID"))[0])] = (component, part)
    # a RANGE=THISANDFUTURE override moves later instances: walk that much wider
    moves = [
        epoch(to_utc(moved)[0]) - rid
        for rid, (c, _) in overrides.items()
        if this_and_future(c) and isinstance(moved := component_span(c)[0], date)
    ]
    reach = timedelta(seconds=max(map(abs, moves), default=0))
    spans, _ = instance_spans(master, limit + len(overrides), end + reach, after=start - reach)
    zone = first.tzinfo if isinstance(first, datetime) else None

    def value_of(moment: int) -> str:
        when = datetime.fromtimestamp(moment, UTC)
        if not isinstance(first, datetime):
            return formatted(when, "%Y%m%d")
        if zone is None:
            return formatted(when, "%Y%m%dT%H%M%S")  # floating: the index reads it as UTC
        if zone is UTC or getattr(zone, "key", None) == "UTC":
            return formatted(when, "%Y%m%dT%H%M%SZ")
        return formatted(when.astimezone(zone), "%Y%m%dT%H%M%S")

    lines = _logical_lines(master_text)
    anchor = "DTSTART" if "DTSTART" in master else "DUE"
    length = int(duration.total_seconds())
    found = []
    futures = sorted((rid, part, c) for rid, (c, part) in overrides.items() if this_and_future(c))
    for begin, finish in spans:
        if begin in overrides:
            continue
        future = next((f for f in reversed(futures) if f[0] < begin), None)
        if future is not None:  # RANGE=THISANDFUTURE: the override's text, moved as it moved its own
            rid, part, component = future
            moved, moved_length = component_span(component)
            if moved is None or moved_length is None:
                continue
            shifted = begin + epoch(to_utc(moved)[0]) - rid
            length_of = int(moved_length.total_seconds())
            if in_window_bounds(shifted, shifted + length_of, low, high):
                own = [line for line in _logical_lines(part) if not _name(line).upper().startswith("RECURRENCE-ID")]
                found.append((shifted, _instance_text(own, shifted, length_of, value_of, anchor, False, begin)))
        elif begin < high and (finish > low or (finish == begin and begin >= low)):
            own_length = finish - begin != length
            found.append((begin, _instance_text(lines, begin, finish - begin, value_of, anchor, own_length)))
    for component, part in overrides.values():
        # an override is one instance, whatever rules it carries (RFC 5545 3.8.4.4)
        moved, moved_length = component_span(component)
        if moved is None or moved_length is None:
            continue
        begin = epoch(to_utc(moved)[0])
        if in_window_bounds(begin, begin + int(moved_length.total_seconds()), low, high):
            kept = [
                line
                for line in _logical_lines(part)
                if _name(line).split(";", 1)[0].upper() not in _DROPPED_IN_INSTANCES
            ]
            found.append((begin, CRLF.join(kept) + CRLF))
    return [part for _, part in sorted(found, key=lambda item: item[0])[:limit]]


def in_window_bounds(begin: int | None, finish: int | None, low: int, high: int) -> bool:
    begin = MIN_EPOCH if begin is None else begin
    finish = MAX_EPOCH if finish is None else finish
    return begin < high and (finish > low or (finish == begin and begin >= low))


def clearly_overlaps(bounds_start: int | None, bounds_end: int | None, start: int, end: int) -> bool:
    """True when index bounds overlap [start, end) even after removing the floating slack,
    so a non-recurring object needs no exact check."""
    inner_start = MIN_EPOCH if bounds_start is None else bounds_start + FLOATING_SLACK
    inner_end = MAX_EPOCH if bounds_end is None else bounds_end - FLOATING_SLACK
    return inner_start < end and inner_end > start


def in_window(
    text: str, bounds_start: int | None, bounds_end: int | None, recurring: bool, start: int, end: int
) -> bool:
    """Whether an object has an instance overlapping [start, end): the index bounds decide
    when they can, recurrence and floating times are checked exactly."""
    instant_at_start = bounds_start == bounds_end == start  # zero length at the start: inside
    ends_before = bounds_end is not None and bounds_end <= start and not instant_at_start
    if ends_before or (bounds_start is not None and bounds_start >= end):
        return False
    if not recurring and clearly_overlaps(bounds_start, bounds_end, start, end):
        return True
    return overlaps(text, datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC))


#: custom zones icalendar keeps process-wide before its cache is emptied (it never forgets one)
MAX_CACHED_ZONES = 1000


def cache_timezone(component: Component) -> None:
    """Let later parses resolve a custom TZID defined by this VTIMEZONE (stored resources carry
    their VTIMEZONEs, so forgetting one costs a parse, never a wrong answer)."""
    cache = getattr(tzp, "_TZP__tz_cache", None)
    if isinstance(cache, dict) and len(cache) >= MAX_CACHED_ZONES:
        cache.clear()  # a stream of made-up TZIDs would otherwise grow it for ever
    with contextlib.suppress(ValueError, KeyError, TypeError):
        tzp.cache_timezone_component(component)


# --------------------------------------------------------------------------- identities


_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+=-]{0,150}$")


def etag_of(text: str) -> str:
    """The entity tag of a stored resource (unquoted)."""
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def href_for_uid(uid: str) -> str:
    """The resource name for a UID: ``{uid}.ics`` when the UID is URL-safe, else a digest."""
    if _SAFE_NAME.match(uid):
        return f"{uid}.ics"
    return hashlib.sha1(uid.encode()).hexdigest() + ".ics"
