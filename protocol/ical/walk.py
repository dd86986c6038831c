"""Bounds and the recurrence walk: the UTC bounds that contain every instance of a component, and
the instances themselves, walked from the window (not from the series' start) and bounded
(``MAX_WALK``, ``held``); the spans of the time-range index. Pure."""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from dateutil import rrule as dateutil_rrule
from icalendar import Calendar, Component

from protocol.ical.values import (
    DEFAULT_MAX_INSTANCES,
    FIRST_INSTANT,
    FLOATING_SLACK,
    LAST_INSTANT,
    MIN_EPOCH,
    OBJECT_COMPONENTS,
    ZONE_SHIFT,
    Decoded,
    dates_of,
    decoded_value,
    epoch,
    every,
    formatted,
    is_all_day,
    length_between,
    period,
    rrule_strings,
    to_utc,
)


@dataclass(slots=True)
class Bounds:
    start: int | None
    end: int | None
    recurring: bool = False


def component_span(component: Component) -> tuple[date | None, timedelta | None]:
    """DTSTART (or DUE for a todo without one) and the duration of one instance (RFC 5545)."""
    return span_of(str(component.name), functools.partial(decoded_value, component))


def span_of(name: str, decoded: Decoded) -> tuple[date | None, timedelta | None]:
    """``component_span`` of a ``name`` component whose properties ``decoded`` gives."""
    start = decoded("DTSTART")
    if name == "VTODO":
        due = decoded("DUE")
        duration = decoded("DURATION")
        if not isinstance(start, date):
            return (due, timedelta(0)) if isinstance(due, date) else (None, None)
        if isinstance(due, date):
            return start, length_between(start, due)
        if isinstance(duration, timedelta):
            return start, duration
        return start, timedelta(0)
    if not isinstance(start, date):
        return None, None
    end = decoded("DTEND")
    if isinstance(end, date):
        return start, length_between(start, end)
    duration = decoded("DURATION")
    if isinstance(duration, timedelta):
        return start, duration
    return start, timedelta(days=1) if is_all_day(start) else timedelta(0)


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
    return Timing(start, duration, rrule_strings(component), every(component, "RDATE"), every(component, "EXDATE"))


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
        for item in dates_of(rdate_list):
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


def naive_local(value: date | datetime, zone: tzinfo | None) -> datetime:
    """A DATE or DATE-TIME as naive wall-clock time in ``zone`` (the zone of DTSTART)."""
    if not isinstance(value, datetime):
        return datetime.combine(value, time())
    if value.tzinfo is None:
        return value
    return value.astimezone(zone or UTC).replace(tzinfo=None)


def local_rule(rule: str, zone: tzinfo | None) -> str:
    """The RRULE with UNTIL as naive local time, as dateutil wants it for a naive DTSTART."""

    def local(match: re.Match[str]) -> str:
        raw = match.group(1)
        if raw.upper().endswith("Z"):
            moment = datetime.strptime(raw[:15], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
            return "UNTIL=" + formatted(naive_local(moment, zone), "%Y%m%dT%H%M%S")
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
    first = naive_local(start, zone)
    from_moment = None
    if after is not None and after - FIRST_INSTANT > duration + ZONE_SHIFT:  # else: from the first
        from_moment = naive_local(after - duration, zone)
    periods: dict[datetime, int] = {}  #: RDATE;VALUE=PERIOD instances keep their own length
    rules = _fixed_walk(times, first, from_moment)
    if rules is None:
        rules = dateutil_rrule.rruleset()
        rules.rdate(first)  # DTSTART is always the first instance (RFC 5545 3.8.5.3)
        for rule in times.rules:
            skipped = skip_to(local_rule(rule, zone), first, from_moment)
            if skipped is not None:
                rules.rrule(dateutil_rrule.rrulestr(skipped[0], dtstart=skipped[1]))
        for props, add in ((times.rdates, rules.rdate), (times.exdates, rules.exdate)):
            for item in props:
                for value in dates_of(item):
                    moment, period_end = period(value)
                    add(naive_local(moment, zone))
                    if period_end is not None:
                        periods[naive_local(moment, zone)] = int(
                            (to_utc(period_end)[0] - to_utc(moment)[0]).total_seconds()
                        )
    limit = naive_local(horizon, zone)
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


def held(calendar: Calendar, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """[start, end) cut to where a walk over ``calendar``'s components stays within the dates
    Python holds (recurring-ical-events moves a window back by the longest component's length,
    a wall clock forward by up to a day): only an instance starting within that length of the
    year 1's first instant, or on the last day of 9999, could be missed."""
    longest = max(
        (length for c in calendar.walk() if c.name in OBJECT_COMPONENTS if (length := component_span(c)[1])),
        default=timedelta(),
    )
    return max(start, FIRST_INSTANT + longest), min(end, LAST_INSTANT - ZONE_SHIFT)
