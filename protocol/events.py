"""A flat view of an event or todo, and the way back: what the CSV, JSON and REST doors share.

``view(text)`` reads a stored resource into an ``EventFields``; ``build(fields)`` makes the
iCalendar component for one. Formats that cannot carry iCalendar themselves (Outlook CSV,
Timeslot JSON, the slot API) go through these two functions and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import zoneinfo
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from icalendar import Alarm, Calendar, Component, Event, Todo, vRecur

from protocol.ical.repairs import component_problems
from protocol.ical.resources import Resource, resource_from_components
from protocol.ical.values import DEFAULT_MAX_INSTANCES, main_component, parse_resource, prop_value

#: Timeslot visibility <-> iCalendar CLASS (Timeslot writes the visibility upper-cased)
VISIBILITIES = ("private", "friends", "foaf", "public")
#: an extension property keeping what a format carries and iCalendar has no place for
EXTRA_PROPERTY = "X-ALMANAC-EXTRA"


def visibility_of(klass: str | None) -> str:
    """Timeslot visibility for a CLASS value (RFC 5545: no CLASS means PUBLIC)."""
    if klass is None:
        return "public"
    value = klass.lower()
    if value in VISIBILITIES:
        return value
    return "private"  # CONFIDENTIAL and unknown classes are at least private


def class_of(visibility: str) -> str:
    return visibility.upper()


@dataclass(slots=True)
class EventFields:
    """What CSV, JSON and the slot API can say about an event or todo."""

    uid: str = ""
    component: str = "VEVENT"
    summary: str = ""
    description: str = ""
    location: str = ""
    geo: tuple[float, float] | None = None
    start: date | datetime | None = None
    end: date | datetime | None = None
    rrule: str | None = None
    klass: str | None = None
    categories: list[str] = field(default_factory=list)
    #: the first display/audio alarm: a trigger relative to the start, or an absolute time
    alarm: timedelta | datetime | None = None
    priority: int | None = None
    transparent: bool = False
    #: X-MICROSOFT-CDO-BUSYSTATUS (FREE, TENTATIVE, BUSY, OOF)
    busy_status: str | None = None
    #: format-specific data kept verbatim (X-ALMANAC-EXTRA, a JSON object)
    extra: dict[str, Any] = field(default_factory=dict)
    created: datetime | None = None
    modified: datetime | None = None
    #: the TZID of the start as written (IANA or custom), None for UTC, floating and dates
    tzid: str | None = None

    @property
    def all_day(self) -> bool:
        return isinstance(self.start, date) and not isinstance(self.start, datetime)

    @property
    def visibility(self) -> str:
        return visibility_of(self.klass)


def _text(component: Component, name: str) -> str:
    value = component.get(name)
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def view(text: str) -> EventFields:
    """The fields of a stored resource's master component."""
    return view_of(parse_resource(text))


def view_of(calendar: Calendar) -> EventFields:
    """The fields of a parsed resource's master component."""
    component = main_component(calendar)
    if component is None:
        return EventFields()
    fields = EventFields(
        uid=_text(component, "UID"),
        component=str(component.name),
        summary=_text(component, "SUMMARY"),
        description=_text(component, "DESCRIPTION"),
        location=_text(component, "LOCATION"),
        klass=_text(component, "CLASS").upper() or None,
    )
    fields.start = prop_value(component, "DTSTART") if "DTSTART" in component else None
    if isinstance(fields.start, datetime):
        fields.tzid = component["DTSTART"].params.get("TZID")
    if "DTEND" in component:
        fields.end = prop_value(component, "DTEND")
    elif "DUE" in component:
        fields.end = prop_value(component, "DUE")
    elif "DURATION" in component and fields.start is not None:
        fields.end = fields.start + prop_value(component, "DURATION")
    geo = component.get("GEO")
    if geo is not None:
        fields.geo = (float(geo.latitude), float(geo.longitude))
    rrule = component.get("RRULE")
    if rrule is not None:
        rrule = rrule[0] if isinstance(rrule, list) else rrule
        fields.rrule = rrule.to_ical().decode()
    categories = component.get("CATEGORIES")
    for item in categories if isinstance(categories, list) else [categories] if categories else []:
        fields.categories.extend(str(c) for c in item.cats)
    if "PRIORITY" in component:
        with contextlib.suppress(ValueError):
            fields.priority = int(str(component["PRIORITY"]))
    fields.transparent = _text(component, "TRANSP").upper() == "TRANSPARENT"
    fields.busy_status = _text(component, "X-MICROSOFT-CDO-BUSYSTATUS").upper() or None
    for alarm in component.walk("VALARM"):
        trigger = alarm.get("TRIGGER")
        if trigger is not None and str(alarm.get("ACTION", "DISPLAY")).upper() in ("DISPLAY", "AUDIO"):
            fields.alarm = prop_value(alarm, "TRIGGER")
            break
    extra = component.get(EXTRA_PROPERTY)
    if extra is not None:
        try:
            fields.extra = json.loads(str(extra))
        except ValueError:
            fields.extra = {}
    for name, attr in (("CREATED", "created"), ("LAST-MODIFIED", "modified")):
        if name in component:
            setattr(fields, attr, prop_value(component, name))
    return fields


def build(fields: EventFields, stamp: datetime | None = None) -> Component:
    """The iCalendar component for ``fields`` (UID must be set)."""
    component: Component = Todo() if fields.component == "VTODO" else Event()
    component.add("UID", fields.uid)
    component.add("DTSTAMP", stamp or datetime.now(UTC).replace(microsecond=0))
    if fields.start is not None:
        component.add("DTSTART", fields.start)
    if fields.end is not None:
        component.add("DUE" if fields.component == "VTODO" else "DTEND", fields.end)
    if fields.rrule:
        component.add("RRULE", vRecur.from_ical(fields.rrule.removeprefix("RRULE:")))
    if fields.summary:
        component.add("SUMMARY", fields.summary)
    if fields.description:
        component.add("DESCRIPTION", fields.description)
    if fields.location:
        component.add("LOCATION", fields.location)
    if fields.geo is not None:
        component.add("GEO", fields.geo)
    if fields.klass:
        component.add("CLASS", fields.klass)
    if fields.categories:
        component.add("CATEGORIES", fields.categories)
    if fields.priority is not None:
        component.add("PRIORITY", fields.priority)
    if fields.transparent:
        component.add("TRANSP", "TRANSPARENT")
    if fields.busy_status:
        component.add("X-MICROSOFT-CDO-BUSYSTATUS", fields.busy_status)
    if fields.extra:
        component.add(EXTRA_PROPERTY, json.dumps(fields.extra, sort_keys=True, ensure_ascii=False))
    if fields.alarm is not None:
        alarm = Alarm()
        alarm.add("ACTION", "DISPLAY")
        alarm.add("DESCRIPTION", fields.summary or "Reminder")
        alarm.add("TRIGGER", fields.alarm)
        component.add_component(alarm)
    return component


def resource(fields: EventFields, line: int = 1, max_instances: int = DEFAULT_MAX_INSTANCES) -> Resource:
    """A storable resource for ``fields``; ValueError when it is not a valid event or todo."""
    component = build(fields)
    problems = component_problems(component)
    if problems:
        raise ValueError("; ".join(problems))
    return resource_from_components([component], max_instances, line)


#: EventFields attributes and the properties that carry them
_PROPERTIES = {
    "summary": ("SUMMARY",),
    "description": ("DESCRIPTION",),
    "location": ("LOCATION",),
    "geo": ("GEO",),
    "start": ("DTSTART",),
    "end": ("DTEND", "DUE", "DURATION"),
    "rrule": ("RRULE",),
    "klass": ("CLASS",),
    "categories": ("CATEGORIES",),
}


def update(calendar: Calendar, fields: EventFields, changed: set[str]) -> Component:
    """Replace the ``changed`` fields of a resource's master (the rest is kept); the master.

    Raises ValueError when the resource has no master.
    """
    master = main_component(calendar)
    if master is None:
        raise ValueError("the resource has no event or todo")
    return update_component(master, fields, changed)


def update_component(component: Component, fields: EventFields, changed: set[str]) -> Component:
    """Replace the ``changed`` fields of one component (the rest is kept), stamp it as modified
    and count the change in its SEQUENCE where it has one; the component."""
    wanted = {name: getattr(fields, name) for name in changed}
    fresh = build(replace(EventFields(uid=fields.uid, component=str(component.name)), **wanted))
    for name in changed:
        for prop in _PROPERTIES[name]:
            component.pop(prop, None)
        for prop in _PROPERTIES[name]:
            if prop in fresh:
                component[prop] = fresh[prop]
    for prop in ("DTSTAMP", "LAST-MODIFIED"):
        component.pop(prop, None)
        component.add(prop, datetime.now(UTC).replace(microsecond=0))
    if "SEQUENCE" in component:
        component["SEQUENCE"] = int(str(component["SEQUENCE"])) + 1
    return component


def localize(value: datetime, zone: str | None) -> datetime:
    """Attach a zone to a naive wall-clock time (None keeps it floating)."""
    if zone is None or value.tzinfo is not None:
        return value
    if zone.upper() == "UTC":
        return value.replace(tzinfo=UTC)
    return value.replace(tzinfo=zoneinfo.ZoneInfo(zone))


def wall_clock(value: date | datetime, zone: str | None) -> date | datetime:
    """A value as wall-clock time in ``zone`` (None: in its own zone); dates stay dates."""
    if not isinstance(value, datetime) or value.tzinfo is None or zone is None:
        return value
    target = UTC if zone.upper() == "UTC" else zoneinfo.ZoneInfo(zone)
    return value.astimezone(target)


def zone_named(name: str | None) -> tzinfo | None:
    """The time zone with this name (UTC, or one of the system's database); None for none."""
    if not name or not valid_zone(name):
        return None
    return UTC if name.upper() == "UTC" else zoneinfo.ZoneInfo(name)


def valid_zone(name: str) -> bool:
    if name.upper() == "UTC":
        return True
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True
