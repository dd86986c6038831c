"""Reading and editing the occurrences of stored resources: one instance overridden or
cancelled, times shown in another zone, busy periods. Pure: text and values in and out."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, tzinfo

from icalendar import Calendar, Component, Event, Timezone

from protocol.ical import (
    OBJECT_COMPONENTS,
    component_span,
    main_component,
    parse_resource,
    prop_value,
    split_stored,
    to_utc,
)


def same_instant(value: object, rid: datetime) -> bool:
    """Whether a RECURRENCE-ID value names the instance at ``rid`` (floating read as UTC)."""
    moment = getattr(value, "dt", None)
    return isinstance(moment, datetime) and to_utc(moment)[0] == rid


def override_instance(calendar_data: Calendar, rid: datetime) -> Component:
    """The overridden instance at ``rid``, made from the master when there is none yet.

    Raises ValueError when there is no master to make it from."""
    for component in calendar_data.subcomponents:
        if same_instant(component.get("RECURRENCE-ID"), rid):
            return component
    master = main_component(calendar_data)
    if master is None or "RECURRENCE-ID" in master:
        raise ValueError("there is no master component to override an instance of")
    instance = master.copy()
    for prop in ("RRULE", "RDATE", "EXDATE", "EXRULE"):
        instance.pop(prop, None)
    instance.subcomponents = list(master.subcomponents)
    start, end = master.get("DTSTART"), master.get("DTEND")
    if start is not None:
        length = (end.dt - start.dt) if end is not None else None
        instance.pop("DTSTART")
        instance.add("DTSTART", rid)
        if length is not None:
            instance.pop("DTEND")
            instance.add("DTEND", rid + length)
    instance.add("RECURRENCE-ID", rid)
    calendar_data.add_component(instance)
    return instance


def one_component(text: str, rid: datetime | None) -> str:
    """The resource with just one component: the master, or the instance at ``rid``."""
    parts, chosen = [], None
    for kind, _, part in split_stored(text):
        if kind == "VTIMEZONE":
            parts.append(part)
        elif chosen is None and (rid is None) == ("RECURRENCE-ID" not in part):
            chosen = part
    return f"BEGIN:VCALENDAR\r\n{''.join(parts)}{chosen or ''}END:VCALENDAR\r\n"


def cancel_instance(calendar_data: Calendar, rid: datetime) -> Component:
    """Remove one occurrence of a series: an EXDATE on the master and no override for it; the
    master.

    Raises ValueError when the resource does not recur."""
    master = main_component(calendar_data)
    if master is None or ("RRULE" not in master and "RDATE" not in master):
        raise ValueError("only occurrences of recurring items can be deleted one by one")
    calendar_data.subcomponents = [
        c for c in calendar_data.subcomponents if not same_instant(c.get("RECURRENCE-ID"), rid)
    ]
    start = prop_value(master, "DTSTART")
    master.add("EXDATE", rid.astimezone(start.tzinfo) if isinstance(start, datetime) and start.tzinfo else rid)
    return master


def rezone(text: str, zone: tzinfo | None) -> str:
    """A resource with its components' times converted to ``zone`` (tzidout)."""
    if zone is None:
        return text
    calendar = parse_resource(text)
    rezone_components(calendar, zone)
    if zone is not UTC:
        calendar.subcomponents.insert(0, Timezone.from_tzid(str(zone)))
    return calendar.to_ical().decode()


def rezone_components(calendar: Calendar, zone: tzinfo) -> None:
    """Convert the zoned DTSTART, DTEND, DUE and RECURRENCE-ID of the components to ``zone``
    (floating times and dates stay as they are)."""
    for component in calendar.subcomponents:
        if component.name not in OBJECT_COMPONENTS:
            continue
        for prop in ("DTSTART", "DTEND", "DUE", "RECURRENCE-ID"):
            value = component.get(prop)
            if value is not None and isinstance(value.dt, datetime) and value.dt.tzinfo is not None:
                component.pop(prop)
                component.add(prop, value.dt.astimezone(zone))


#: a free/busy period's FBTYPE (RFC 5545 3.2.9) as RFC 4791 7.10 gives it for an event's STATUS
BUSY, TENTATIVE = "BUSY", "BUSY-TENTATIVE"
#: a busy period: start, end (UTC) and FBTYPE
BusyPeriod = tuple[datetime, datetime, str]


def busy_periods(texts: list[str], start: datetime, end: datetime, zone: tzinfo | None = None) -> list[BusyPeriod]:
    """The busy periods of the opaque, not cancelled event instances within [start, end), not
    yet merged: BUSY-TENTATIVE for tentative ones, BUSY for the others (RFC 4791 7.10; RFC 5545
    3.8.2.7 TRANSP, 3.8.1.11 STATUS). Floating times and dates are the asker's wall clock: read
    in ``zone`` (UTC when None)."""
    periods: list[BusyPeriod] = []
    for text in texts:
        for component in parse_resource(text).walk("VEVENT"):
            if str(component.get("TRANSP", "")).upper() == "TRANSPARENT":
                continue
            status = str(component.get("STATUS", "")).upper()
            if status == "CANCELLED":
                continue
            first, length = component_span(component)
            if first is None or length is None:
                continue
            begin = _placed(first, zone)
            clipped = (max(begin, start), min(begin + length, end))
            if clipped[0] < clipped[1]:
                periods.append((*clipped, TENTATIVE if status == "TENTATIVE" else BUSY))
    return periods


def _placed(value: date, zone: tzinfo | None) -> datetime:
    """An instant for a DATE or DATE-TIME value: floating ones and dates on ``zone``'s wall clock."""
    if zone is None or (isinstance(value, datetime) and value.tzinfo is not None):
        return to_utc(value)[0]
    moment = value if isinstance(value, datetime) else datetime.combine(value, time())
    return moment.replace(tzinfo=zone).astimezone(UTC)


def merged(periods: Iterable[BusyPeriod]) -> list[BusyPeriod]:
    """Busy periods with those of one FBTYPE that touch or overlap joined, in order of start."""
    joined: list[BusyPeriod] = []
    for begin, finish, kind in sorted(periods, key=lambda p: (p[2], p[0], p[1])):
        if joined and joined[-1][2] == kind and begin <= joined[-1][1]:
            joined[-1] = (joined[-1][0], max(joined[-1][1], finish), kind)
        else:
            joined.append((begin, finish, kind))
    return sorted(joined)


def busy_calendar(name: str, periods: list[BusyPeriod]) -> str:
    """A calendar of busy periods only (a public feed's "busy times"): one opaque event titled
    Busy per period (tentative ones with STATUS:TENTATIVE), its UID and stamp taken from its
    times so the text changes only with them."""
    calendar = Calendar()
    calendar.add("PRODID", "-//Almanac//busy times//EN")
    calendar.add("VERSION", "2.0")
    calendar.add("X-WR-CALNAME", name)
    for start, end, kind in periods:
        event = Event()
        key = f"{start.isoformat()}/{end.isoformat()}" + ("/tentative" if kind == TENTATIVE else "")
        event.add("UID", hashlib.sha256(key.encode()).hexdigest()[:32] + "@busy.almanac")
        event.add("DTSTAMP", start)
        event.add("DTSTART", start)
        event.add("DTEND", end)
        event.add("SUMMARY", "Busy (tentative)" if kind == TENTATIVE else "Busy")
        if kind == TENTATIVE:
            event.add("STATUS", "TENTATIVE")
        event.add("TRANSP", "OPAQUE")
        calendar.add_component(event)
    return calendar.to_ical().decode()
