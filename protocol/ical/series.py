"""Editing a recurring series as calendar programs offer it: one occurrence (an override, or an
EXDATE to remove it), this and the following ones (the series ends before it and a new series
takes over from it), all of them (the series moved as a whole); and the simple repeat rules a
form offers (daily, weekly on days, monthly, yearly, with an end), read back from a rule. Pure."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from dateutil.rrule import rrulestr
from icalendar import Calendar, Component, vRecur

from protocol.ical.values import main_component, prop_value, to_utc

FREQUENCIES = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
#: a repeat's frequency when the rule says more than the form can (it is then kept as it is)
CUSTOM = "CUSTOM"


def _same(value: object, rid: date | datetime) -> bool:
    """Whether a RECURRENCE-ID (or EXDATE) value names the instance ``rid``."""
    moment = getattr(value, "dt", value)
    if isinstance(rid, datetime):
        return isinstance(moment, datetime) and to_utc(moment)[0] == rid
    return isinstance(moment, date) and not isinstance(moment, datetime) and moment == rid


def _like(rid: date | datetime, start: date | datetime) -> date | datetime:
    """``rid`` (a UTC instant or a date) written as the series' DTSTART is: in its zone, floating."""
    if not isinstance(rid, datetime) or not isinstance(start, datetime):
        return rid
    return rid.astimezone(start.tzinfo) if start.tzinfo is not None else rid.replace(tzinfo=None)


def _master(calendar: Calendar) -> Component:
    master = main_component(calendar)
    if master is None or "RECURRENCE-ID" in master or ("RRULE" not in master and "RDATE" not in master):
        raise ValueError("this is not a recurring series")
    return master


def _length(component: Component) -> timedelta:
    start = prop_value(component, "DTSTART")
    if "DTEND" in component:
        return prop_value(component, "DTEND") - start
    if "DURATION" in component:
        return prop_value(component, "DURATION")
    return timedelta(0) if isinstance(start, datetime) else timedelta(days=1)


def override(calendar: Calendar, rid: date | datetime) -> Component:
    """The overridden instance at ``rid``, made from the master when there is none yet."""
    for component in calendar.subcomponents:
        if _same(component.get("RECURRENCE-ID"), rid):
            return component
    master = _master(calendar)
    instance = master.copy()
    for prop in ("RRULE", "RDATE", "EXDATE", "EXRULE", "DTSTART", "DTEND", "DURATION"):
        instance.pop(prop, None)
    instance.subcomponents = list(master.subcomponents)
    moment = _like(rid, prop_value(master, "DTSTART"))
    instance.add("DTSTART", moment)
    instance.add("DTEND", moment + _length(master))
    instance.add("RECURRENCE-ID", moment)
    calendar.add_component(instance)
    return instance


def exclude(calendar: Calendar, rid: date | datetime) -> None:
    """Remove one occurrence: an EXDATE on the master, its override gone."""
    master = _master(calendar)
    calendar.subcomponents = [c for c in calendar.subcomponents if not _same(c.get("RECURRENCE-ID"), rid)]
    master.add("EXDATE", _like(rid, prop_value(master, "DTSTART")))


def _kept(values: Any, keep: Callable[[Any], bool]) -> list[Any]:
    """The EXDATE/RDATE properties' values that ``keep`` keeps."""
    found = values if isinstance(values, list) else [values]
    return [v.dt for prop in found for v in prop.dts if keep(v.dt)]


def _rid(component: Component) -> Any:
    """A component's RECURRENCE-ID value (None for a master)."""
    return getattr(component.get("RECURRENCE-ID"), "dt", None)


def _rule(master: Component) -> str:
    prop: Any = master["RRULE"]
    return str(prop.to_ical().decode())


def _after(value: date | datetime, rid: date | datetime) -> bool:
    if isinstance(rid, datetime):
        return isinstance(value, datetime) and to_utc(value)[0] >= rid
    return not isinstance(value, datetime) and value >= rid


def end_before(calendar: Calendar, rid: date | datetime) -> bool:
    """The series ends before the instance ``rid`` (its rule gets an UNTIL, later overrides and
    dates go); False when no instance would be left (the whole series is to go)."""
    master = _master(calendar)
    start = prop_value(master, "DTSTART")
    if _after(start, rid):  # it is the first instance: none is left before it
        return False
    calendar.subcomponents = [
        c for c in calendar.subcomponents
        if _rid(c) is None or not _after(_rid(c), rid)
    ]  # fmt: skip
    for name in ("RDATE", "EXDATE"):
        if name in master:
            kept = _kept(master.pop(name), lambda v: not _after(v, rid))
            for value in kept:
                master.add(name, value)
    if "RRULE" in master:
        rule = vRecur.from_ical(_rule(master))
        rule.pop("COUNT", None)
        if isinstance(rid, datetime):
            last = rid - timedelta(seconds=1)
            rule["UNTIL"] = [last if start.tzinfo is not None else last.replace(tzinfo=None)]
        else:
            rule["UNTIL"] = [rid - timedelta(days=1)]
        master["RRULE"] = rule
    return True


def split(calendar: Calendar, rid: date | datetime, uid: str) -> Calendar:
    """A new series (UID ``uid``) of the instances from ``rid`` on: the master moved to it (a
    COUNT keeps the instances left), the later overrides and dates with it. The old series is
    ended with ``end_before``."""
    master = _master(calendar)
    start = prop_value(master, "DTSTART")
    fresh = Calendar()
    for name, value in calendar.property_items(recursive=False)[1:-1]:
        fresh.add(name, value)
    for component in calendar.subcomponents:
        if component.name == "VTIMEZONE":
            fresh.add_component(component)
    follower = master.copy()
    follower.subcomponents = list(master.subcomponents)
    moment = _like(rid, start)
    for prop in ("UID", "DTSTART", "DTEND", "DURATION", "RDATE", "EXDATE"):
        follower.pop(prop, None)
    follower.add("UID", uid)
    follower.add("DTSTART", moment)
    follower.add("DTEND", moment + _length(master))
    for name in ("RDATE", "EXDATE"):
        if name in master:
            for value in _kept(master[name], lambda v: _after(v, rid)):
                follower.add(name, value)
    if "RRULE" in master and "COUNT=" in _rule(master).upper():
        rule = vRecur.from_ical(_rule(master))
        before = sum(1 for _ in _walk(master, moment))
        rule["COUNT"] = [max(1, int(rule["COUNT"][0]) - before)]
        follower["RRULE"] = rule
    fresh.add_component(follower)
    for component in calendar.subcomponents:
        if _rid(component) is not None and _after(_rid(component), rid):
            moved = component.copy()
            moved.subcomponents = list(component.subcomponents)
            moved.pop("UID")
            moved.add("UID", uid)
            fresh.add_component(moved)
    return fresh


def _walk(master: Component, before: date | datetime) -> list[datetime]:
    """The master rule's instances before ``before`` (to count a COUNT down)."""
    start = prop_value(master, "DTSTART")
    first = start if isinstance(start, datetime) else datetime.combine(start, time())
    limit = before if isinstance(before, datetime) else datetime.combine(before, time())
    if first.tzinfo is not None and limit.tzinfo is None:
        limit = limit.replace(tzinfo=first.tzinfo)
    rule = rrulestr(_rule(master), dtstart=first)
    return [moment for moment in rule.xafter(first, count=100_000, inc=True) if moment < limit][:100_000]


def shift(calendar: Calendar, delta: timedelta) -> None:
    """Move a whole series by ``delta``: its start and, so that they still name their
    instances, its overrides' RECURRENCE-IDs and its EXDATEs."""
    if not delta:
        return
    master = main_component(calendar)
    assert master is not None
    if "EXDATE" in master:
        for value in _kept(master.pop("EXDATE"), lambda v: True):
            master.add("EXDATE", value + delta)
    for component in calendar.subcomponents:
        rid = component.get("RECURRENCE-ID")
        if rid is not None:
            moved = rid.dt + delta
            component.pop("RECURRENCE-ID")
            component.add("RECURRENCE-ID", moved)


@dataclass(slots=True)
class Repeat:
    """A repeat rule as the event form shows it."""

    frequency: str = ""  # "" (no repeat), one of FREQUENCIES, or CUSTOM (a rule the form keeps)
    interval: int = 1
    days: list[str] = field(default_factory=list)
    until: date | None = None
    count: int | None = None


def repeat_rule(repeat: Repeat, start: date | datetime, zone: tzinfo | None) -> str | None:
    """The RRULE for a form's repeat (None: no repeat); ValueError for one that is not valid."""
    if not repeat.frequency:
        return None
    if repeat.frequency not in FREQUENCIES:
        raise ValueError(f"repeat is one of {', '.join(f.lower() for f in FREQUENCIES)}")
    if not 1 <= repeat.interval <= 999:
        raise ValueError("a repeat's interval is 1 to 999")
    parts = [f"FREQ={repeat.frequency}"] + ([f"INTERVAL={repeat.interval}"] if repeat.interval > 1 else [])
    if repeat.frequency == "WEEKLY" and repeat.days:
        if any(day not in WEEKDAYS for day in repeat.days):
            raise ValueError("weekdays are MO, TU, WE, TH, FR, SA, SU")
        parts.append("BYDAY=" + ",".join(d for d in WEEKDAYS if d in repeat.days))
    if repeat.count is not None:
        if not 1 <= repeat.count <= 10_000:
            raise ValueError("a repeat ends after 1 to 10,000 times")
        parts.append(f"COUNT={repeat.count}")
    elif repeat.until is not None:
        if repeat.until < (start.date() if isinstance(start, datetime) else start):
            raise ValueError("a repeat cannot end before the event starts")
        if isinstance(start, datetime):  # the whole last day, in UTC (RFC 5545 3.3.10)
            last = datetime.combine(repeat.until, time(23, 59, 59), zone or UTC).astimezone(UTC)
            parts.append("UNTIL=" + last.strftime("%Y%m%dT%H%M%SZ"))
        else:
            parts.append("UNTIL=" + repeat.until.strftime("%Y%m%d"))
    return ";".join(parts)


def repeat_of(rule: str | None, zone: tzinfo | None) -> Repeat:
    """What a form shows of a rule: CUSTOM when it says more than the form can."""
    if not rule:
        return Repeat()
    parts = dict(part.split("=", 1) for part in rule.upper().split(";") if "=" in part)
    repeat = Repeat(frequency=parts.pop("FREQ", CUSTOM))
    with contextlib.suppress(ValueError):
        repeat.interval = int(parts.pop("INTERVAL", "1"))
        if "COUNT" in parts:
            repeat.count = int(parts.pop("COUNT"))
    until = parts.pop("UNTIL", "")
    if until:
        with contextlib.suppress(ValueError):
            moment = datetime.strptime(until[:8], "%Y%m%d")
            if until.endswith("Z") and len(until) == 16:
                instant = datetime.strptime(until, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
                moment = instant.astimezone(zone or UTC).replace(tzinfo=None)
            repeat.until = moment.date()
    if repeat.frequency == "WEEKLY" and "BYDAY" in parts:
        repeat.days = parts.pop("BYDAY").split(",")
    parts.pop("WKST", None)
    if parts or repeat.frequency not in FREQUENCIES or any(d not in WEEKDAYS for d in repeat.days):
        repeat.frequency = CUSTOM
    return repeat
