"""The calendar-data a report returns (RFC 4791 9.6): ``expand``, ``limit-recurrence-set``, a
selection of components and properties, and a free-busy-query's VFREEBUSY. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, tzinfo

from icalendar import Calendar, Component

from protocol.caldav.filters import in_range, instant_of, property_value
from protocol.caldav.query import MAX_INSTANCES, CalendarData, CompSelect, TimeRange
from protocol.ical.instances import rezone_components
from protocol.ical.values import CRLF, OBJECT_COMPONENTS, formatted, parse_resource, split_stored
from protocol.ical.windows import expand_spans, instances


def shape(
    text: str, data: CalendarData, zone: tzinfo | None = None, spans: Sequence[tuple[int, int, bool]] = ()
) -> str:
    """The calendar-data of one resource as the report's ``<C:calendar-data>`` asks for it
    (``zone``: the query's, where floating times and dates are placed, RFC 4791 9.9; ``spans``:
    the resource's instances in the expand's range from the time-range index, which spare
    parsing it where they tell everything)."""
    if data.as_stored:
        return text
    if data.expand is not None:
        text = expand_spans(text, spans, MAX_INSTANCES) or expand_utc(text, data.expand, zone)
        if data.limit_recurrence is None and data.select is None:
            return text
    calendar = parse_resource(text)
    if data.limit_recurrence is not None:
        _limit_recurrence(calendar, data.limit_recurrence)
    if data.select is not None:
        _select(calendar, data.select)
    return calendar.to_ical().decode()


def expand_utc(text: str, time_range: TimeRange, zone: tzinfo | None = None) -> str:
    """The instances overlapping the range (RFC 4791 9.6.5): each with a RECURRENCE-ID when it
    belongs to a series, no recurrence rules, every zoned time in UTC and no VTIMEZONE."""
    recurring = any("RRULE" in part or "RDATE" in part for kind, _, part in split_stored(text) if kind != "VTIMEZONE")
    if not recurring and "TZID" not in text:
        return text  # one instance already, its times UTC, floating or dates
    if not recurring:
        calendar = parse_resource(text)
    else:
        calendar = parse_resource(instances(text, time_range.low(), time_range.high(), MAX_INSTANCES, zone))
    calendar.subcomponents = [c for c in calendar.subcomponents if c.name != "VTIMEZONE"]
    rezone_components(calendar, UTC)
    return calendar.to_ical().decode()


def _limit_recurrence(calendar: Calendar, time_range: TimeRange) -> None:
    """Keep the master and only the overridden instances that touch the range (RFC 4791 9.6.6)."""
    kept = []
    for component in calendar.subcomponents:
        if component.name in OBJECT_COMPONENTS and "RECURRENCE-ID" in component:
            rid = instant_of(property_value(component, "RECURRENCE-ID"), UTC)
            if not (in_range(component, time_range, UTC) or (rid and time_range.low() <= rid < time_range.high())):
                continue
        kept.append(component)
    calendar.subcomponents = kept


def _select(component: Component, select: CompSelect) -> None:
    if not select.all_props:
        wanted = set(select.props)
        for name in list(component.keys()):
            if name not in wanted:
                del component[name]
    if not select.all_comps:
        by_name = {c.name: c for c in select.comps}
        component.subcomponents = [c for c in component.subcomponents if c.name in by_name]
        for child in component.subcomponents:
            _select(child, by_name[str(child.name)])


def freebusy_text(
    periods: Iterable[tuple[datetime, datetime] | tuple[datetime, datetime, str]], time_range: TimeRange, prodid: str
) -> str:
    """A VCALENDAR with one VFREEBUSY listing busy periods in UTC, each with its FBTYPE (RFC 4791
    7.10; BUSY when a period does not say)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{prodid}", "BEGIN:VFREEBUSY", f"DTSTAMP:{stamp}"]
    lines.append(f"DTSTART:{_utc(time_range.low())}")
    lines.append(f"DTEND:{_utc(time_range.high())}")
    for begin, finish, *kind in periods:
        lines.append(f"FREEBUSY;FBTYPE={kind[0] if kind else 'BUSY'}:{_utc(begin)}/{_utc(finish)}")
    lines += ["END:VFREEBUSY", "END:VCALENDAR"]
    return CRLF.join(lines) + CRLF


def _utc(moment: datetime) -> str:
    return formatted(moment.astimezone(UTC), "%Y%m%dT%H%M%SZ")
