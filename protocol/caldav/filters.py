"""Whether a calendar resource matches a calendar-query filter (RFC 4791 9.7): components,
properties and parameters, time ranges per RFC 4791 9.9 (recurrence aware; todos, free-busy and
alarms by their own rules), text matches with their collations. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, tzinfo

import recurring_ical_events
from icalendar import Calendar, Component
from icalendar.prop import vCategory, vText

from protocol.caldav.query import MAX_INSTANCES, RANGE_FIRST, RANGE_LAST, CompFilter, ParamFilter, PropFilter, TimeRange
from protocol.ical.values import OBJECT_COMPONENTS
from protocol.ical.windows import window_calendar

#: how far around an alarm's time range the events that may ring in it are looked for
_REACH = timedelta(days=366)


_MARGIN = timedelta(days=1)


def matches(top: CompFilter, calendar: Calendar, zone: tzinfo | None = None) -> bool:
    """Whether a resource satisfies a calendar-query filter (``top`` names VCALENDAR).

    RFC 4791 9.7 has no time-range under VCALENDAR, and VCALENDAR itself has no SUMMARY or
    CATEGORIES; clients that send them without a component type (python-caldav does) mean
    "any component of the resource", so that is how they are read.
    """
    zone = zone or UTC
    untyped = tuple(p for p in top.prop_filters if p.name not in calendar)
    if top.time_range is not None or untyped:
        inner = [CompFilter(name, time_range=top.time_range, prop_filters=untyped) for name in OBJECT_COMPONENTS]
        if not any(_child_matches(spec, calendar, zone) for spec in inner):
            return False
        top = replace(top, time_range=None, prop_filters=tuple(p for p in top.prop_filters if p not in untyped))
    return _component_matches(top, [calendar], zone)


def _component_matches(spec: CompFilter, candidates: Iterable[Component], zone: tzinfo) -> bool:
    if spec.is_not_defined:
        return next(iter(candidates), None) is None
    return any(
        all(_prop_matches(p, component, zone) for p in spec.prop_filters)
        and all(_child_matches(c, component, zone) for c in spec.comp_filters)
        for component in candidates
    )


def _child_matches(spec: CompFilter, parent: Component, zone: tzinfo) -> bool:
    if spec.name == "VALARM":  # alarm times depend on their parent (instance)
        return _alarm_matches(spec, parent, zone)
    return _component_matches(spec, _children(parent, spec, zone), zone)


def _children(parent: Component, spec: CompFilter, zone: tzinfo) -> Iterable[Component]:
    """The subcomponents named by ``spec`` that pass its time range, lazily: for a recurring
    set, its instances in the range (or, when only an alarm below has a range, around it)."""
    found: Iterable[Component] = [c for c in parent.subcomponents if c.name == spec.name]
    recurring = any("RRULE" in c or "RDATE" in c for c in found)
    if recurring and spec.name in OBJECT_COMPONENTS and spec.has_time_range():
        found = _instances(parent, spec.name, spec.time_range or _nested_range(spec), zone)
    if spec.time_range is None:
        return found
    return (c for c in found if in_range(c, spec.time_range, zone))


def _shifted(moment: datetime, delta: timedelta) -> datetime:
    """``moment + delta`` kept between RANGE_FIRST and RANGE_LAST, which any zone can still show (an open
    range's end moved by a margin and shown at -05:00 would otherwise be the year 0)."""
    try:
        return min(max(moment + delta, RANGE_FIRST), RANGE_LAST)
    except OverflowError:
        return RANGE_FIRST if delta < timedelta(0) else RANGE_LAST


def _nested_range(spec: CompFilter) -> TimeRange:
    ranges = [c.time_range or _nested_range(c) for c in spec.comp_filters if c.has_time_range()]
    low, high = min(r.low() for r in ranges), max(r.high() for r in ranges)
    return TimeRange(_shifted(low, -_REACH), _shifted(high, _REACH))


def _instances(parent: Component, name: str, window: TimeRange, zone: tzinfo) -> Iterator[Component]:
    """Instances of the recurring set starting before the window ends and not ending before it
    starts (a day's margin for RFC 4791's closed todo ends), in order, at most MAX_INSTANCES."""
    calendar = Calendar()
    calendar.subcomponents = [c for c in parent.subcomponents if c.name in (name, "VTIMEZONE")]
    low = _shifted(window.low(), -_MARGIN).astimezone(zone)
    high = _shifted(window.high(), _MARGIN)
    query = recurring_ical_events.of(window_calendar(calendar, low, high, MAX_INSTANCES), components=[name])
    for count, instance in enumerate(query.after(low)):
        start = instant_of(property_value(instance, "DTSTART") or property_value(instance, "DUE"), zone)
        if count >= MAX_INSTANCES or start is None or start >= high:
            return
        yield instance


def instant_of(value: object, zone: tzinfo) -> datetime | None:
    """A DATE or DATE-TIME as an aware datetime (floating and dates in ``zone``)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=zone)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=zone)
    return None


def property_value(component: Component, name: str) -> object | None:
    try:
        return component.decoded(name) if name in component else None
    except (ValueError, KeyError, TypeError):
        return None


def in_range(component: Component, time_range: TimeRange, zone: tzinfo) -> bool:
    """RFC 4791 9.9: whether one component (or instance) overlaps the range."""
    low, high = time_range.low(), time_range.high()
    name = component.name
    start_value = property_value(component, "DTSTART")
    start = instant_of(start_value, zone)
    if name in ("VEVENT", "VJOURNAL"):
        if start is None:
            return False
        if name == "VJOURNAL":
            finish = start + timedelta(days=1) if not isinstance(start_value, datetime) else start
        else:
            end = instant_of(property_value(component, "DTEND"), zone)
            duration = property_value(component, "DURATION")
            if end is not None:
                finish = end
            elif isinstance(duration, timedelta):
                finish = start + duration
            else:
                finish = start + timedelta(days=1) if not isinstance(start_value, datetime) else start
        if finish > start:
            return low < finish and high > start
        return low <= start < high
    if name == "VTODO":
        return _todo_in_range(component, low, high, start, zone)
    if name == "VFREEBUSY":
        return _freebusy_in_range(component, low, high, start, zone)
    return False  # alarms are matched against their parent by _alarm_matches


def _todo_in_range(component: Component, low: datetime, high: datetime, start: datetime | None, zone: tzinfo) -> bool:
    due = instant_of(property_value(component, "DUE"), zone)
    duration = property_value(component, "DURATION")
    completed = instant_of(property_value(component, "COMPLETED"), zone)
    created = instant_of(property_value(component, "CREATED"), zone)
    if start is not None and isinstance(duration, timedelta):
        finish = start + duration
        return low <= finish and (high > start or high >= finish)
    if start is not None and due is not None:
        return (low < due or low <= start) and (high > start or high >= due)
    if start is not None:
        return low <= start < high
    if due is not None:
        return low < due <= high
    if completed is not None and created is not None:
        return (low <= created or low <= completed) and (high >= created or high >= completed)
    if completed is not None:
        return low <= completed <= high
    if created is not None:
        return high > created
    return True


def _freebusy_in_range(
    component: Component, low: datetime, high: datetime, start: datetime | None, zone: tzinfo
) -> bool:
    periods: list[tuple[datetime, datetime]] = []
    for period in _props(component, "FREEBUSY"):
        first, length = getattr(period, "dt", (None, None))
        begin = instant_of(first, zone)
        finish = begin + length if begin and isinstance(length, timedelta) else instant_of(length, zone)
        if begin is not None and finish is not None:
            periods.append((begin, finish))
    if not periods:
        end = instant_of(property_value(component, "DTEND"), zone)
        if start is None or end is None:
            return False
        periods = [(start, end)]
    return any(begin < high and finish > low for begin, finish in periods)


def alarm_times(alarm: Component, parent: Component, zone: tzinfo) -> list[datetime]:
    """When an alarm fires for one (instance of an) event or todo, repetitions included."""
    trigger = alarm.get("TRIGGER")
    if trigger is None:
        return []
    value = trigger.dt
    if isinstance(value, timedelta):
        related = str(trigger.params.get("RELATED", "START")).upper()
        anchor_name = "DTEND" if related == "END" else "DTSTART"
        anchor = instant_of(property_value(parent, anchor_name), zone)
        if anchor is None and related == "END":
            anchor = instant_of(property_value(parent, "DUE"), zone)
            if anchor is None:
                begin = instant_of(property_value(parent, "DTSTART"), zone)
                duration = property_value(parent, "DURATION")
                anchor = begin + duration if begin and isinstance(duration, timedelta) else None
        if anchor is None and parent.name == "VTODO":
            anchor = instant_of(property_value(parent, "DUE"), zone)
        if anchor is None:
            return []
        first: datetime | None = anchor + value
    else:
        first = instant_of(value, zone)
    if first is None:
        return []
    times = [first]
    repeat, interval = property_value(alarm, "REPEAT"), property_value(alarm, "DURATION")
    if isinstance(repeat, int) and isinstance(interval, timedelta) and interval > timedelta(0):
        times += [first + interval * n for n in range(1, min(repeat, 1000) + 1)]
    return times


def _prop_matches(spec: PropFilter, component: Component, zone: tzinfo) -> bool:
    props = _props(component, spec.name)
    if spec.is_not_defined:
        return not props
    if not props:
        return False
    return any(
        (spec.time_range is None or _prop_in_range(prop, spec.time_range, zone))
        and (spec.text_match is None or spec.text_match.matches(_text(prop)))
        and all(_param_matches(p, prop) for p in spec.param_filters)
        for prop in props
    )


def _props(component: Component, name: str) -> list[object]:
    value = component.get(name)
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _prop_in_range(prop: object, time_range: TimeRange, zone: tzinfo) -> bool:
    moment = instant_of(getattr(prop, "dt", None), zone)
    return moment is not None and time_range.low() <= moment < time_range.high()


def _text(prop: object) -> str:
    if isinstance(prop, vCategory):
        return ",".join(str(c) for c in prop.cats)
    if isinstance(prop, vText | str):
        return str(prop)
    to_ical = getattr(prop, "to_ical", None)
    raw = to_ical() if to_ical else prop
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _param_matches(spec: ParamFilter, prop: object) -> bool:
    params = getattr(prop, "params", {})
    value = params.get(spec.name)
    if spec.is_not_defined:
        return value is None
    if value is None:
        return False
    values = value if isinstance(value, list) else [value]
    return spec.text_match is None or any(spec.text_match.matches(str(v)) for v in values)


def _alarm_matches(spec: CompFilter, parent: Component, zone: tzinfo) -> bool:
    alarms = [c for c in parent.subcomponents if c.name == "VALARM"]
    if spec.is_not_defined:
        return not alarms
    for alarm in alarms:
        if spec.time_range is not None:
            low, high = spec.time_range.low(), spec.time_range.high()
            if not any(low <= t < high for t in alarm_times(alarm, parent, zone)):
                continue
        if all(_prop_matches(p, alarm, zone) for p in spec.prop_filters):
            return True
    return False
