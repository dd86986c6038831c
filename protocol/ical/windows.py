"""Windows and expansion: whether a resource has an instance in a window (``overlaps``,
``in_window``), its instances there (``instances``, ``window_calendar`` for recurring-ical-events),
and a CalDAV ``expand`` written from the index spans where they tell everything
(``expand_spans``). Pure."""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo

import recurring_ical_events
from dateutil import rrule as dateutil_rrule
from icalendar import Calendar, Component

from protocol.ical.values import (
    CRLF,
    FLOATING_SLACK,
    MAX_EPOCH,
    MIN_EPOCH,
    OBJECT_COMPONENTS,
    PRODID,
    dates_of,
    epoch,
    every,
    formatted,
    main_component,
    parse_resource,
    prop_value,
    rrule_strings,
    split_stored,
    to_utc,
    unfold,
    utc_stamp,
)
from protocol.ical.walk import MAX_WALK, component_span, held, instance_spans, local_rule, naive_local, skip_to


def _as_instant(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _moved_series(component: Component, start: datetime, end: datetime, limit: int) -> Component:
    """A copy of a recurring component whose rule starts at its first instance in
    [start, end) and ends (UNTIL) at its last one there, at most ``limit`` instances on:
    the same instances in the window, a compact rule, a walk that begins at the window.

    Moving DTSTART to an instance of its rule keeps the rule's later instances (they keep
    its interval grid and its defaults); RDATE and EXDATE are absolute and stay."""
    (rule,) = rrule_strings(component)
    first_start, duration = component_span(component)
    if not isinstance(first_start, date) or duration is None:  # the start: DTSTART, or a todo's DUE
        raise ValueError("no start")
    zone = first_start.tzinfo if isinstance(first_start, datetime) else None
    first = naive_local(first_start, zone)
    low, high = naive_local(start - duration, zone), naive_local(end, zone)
    skipped = skip_to(local_rule(rule, zone), first, low)
    excluded = {naive_local(moment, zone) for exdate in every(component, "EXDATE") for moment in dates_of(exdate)}
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
            copy.add(name, value(naive_local(moved, zone) + shift))
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


def moved_by(span: tuple[int, int, bool], futures: list[tuple[int, int, int]]) -> tuple[int, int, bool]:
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
