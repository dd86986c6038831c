"""One occurrence of a stored resource: overridden (made from the master when there is none yet),
cancelled (an EXDATE), or shown alone; a resource's times shown in another zone. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

from icalendar import Calendar, Component, Timezone

from protocol.ical.values import OBJECT_COMPONENTS, main_component, parse_resource, prop_value, split_stored, to_utc


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
