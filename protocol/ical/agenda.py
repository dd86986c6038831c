"""Occurrences: what a calendar view shows of stored events and todos in a window (each instance
with its times, title, place and the key that names it for an edit). Read from the time-range
index's spans where they tell everything, else by expanding the text. Pure."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Protocol

from icalendar import Component

from protocol.ical import busy
from protocol.ical.values import UNREADABLE, parse_resource, prop_value, to_utc, unfold
from protocol.ical.windows import instances


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One instance as a view shows it: UTC instants, or dates (end exclusive) for all-day ones."""

    object_id: int
    calendar_id: int
    start: date | datetime
    end: date | datetime
    summary: str
    location: str = ""
    #: the instance's key for an edit (``instance_key``); "" for an object that does not recur
    key: str = ""
    cancelled: bool = False
    #: a free/busy-only share's period: no title, nothing to open
    busy: bool = False

    @property
    def all_day(self) -> bool:
        return not isinstance(self.start, datetime)


class Spanned(busy.Spanned, Protocol):
    """An object as the index gives it (as free/busy reads it), with its id."""

    @property
    def id(self) -> int: ...


def instance_key(value: date | datetime) -> str:
    """The name of an instance in an address: its RECURRENCE-ID's UTC epoch seconds, or its
    date as YYYYMMDD for all-day series (floating times read as UTC, as ``same_instant`` does)."""
    if isinstance(value, datetime):
        return str(int(to_utc(value)[0].timestamp()))
    return value.strftime("%Y%m%d")


def key_value(key: str) -> date | datetime:
    """The RECURRENCE-ID an ``instance_key`` names; ValueError when it names none."""
    if len(key) == 8 and key.isdigit():
        return date(int(key[:4]), int(key[4:6]), int(key[6:]))
    try:
        return datetime.fromtimestamp(int(key[:20]), UTC)
    except (OverflowError, OSError):
        raise ValueError(f"no instance is called {key[:20]!r}") from None


def names_instance(text: str, rid: date | datetime) -> bool:
    """Whether ``rid`` names an instance of the stored series: an override's RECURRENCE-ID, or
    an instance its rule and dates make and its exceptions leave."""
    key = instance_key(rid)
    try:
        data = parse_resource(text)
        if any(_key_of(c) == key for c in data.subcomponents):
            return True
        if isinstance(rid, datetime):  # the instance starting there (floating times read as UTC)
            start, end = rid, rid + timedelta(seconds=1)
        else:  # the day anywhere on earth
            start = datetime.combine(rid, time(), UTC) - timedelta(hours=14)
            end = start + timedelta(hours=52)
        found = parse_resource(instances(text, start, end, 1000))
    except UNREADABLE:
        return False
    return any(_key_of(c) == key for c in found.subcomponents)


def _key_of(component: Component) -> str | None:
    """The instance key of a component's RECURRENCE-ID (None for a master)."""
    value = getattr(component.get("RECURRENCE-ID"), "dt", None)
    return instance_key(value) if isinstance(value, date) else None


_LINE = re.compile(r"^(SUMMARY|LOCATION|RRULE|RDATE)(?:;[^:\r\n]*)?:(.*)$", re.IGNORECASE | re.MULTILINE)
_ESCAPE = re.compile(r"\\([\\;,nN])")
_CANCELLED = re.compile(r"^STATUS:CANCELLED\r?$", re.IGNORECASE | re.MULTILINE)


def _unescaped(value: str) -> str:
    return _ESCAPE.sub(lambda m: "\n" if m.group(1) in "nN" else m.group(1), value)


def _quick(item: Spanned) -> list[Occurrence] | None:
    """The occurrences of one VEVENT without overrides whose spans are all exact (then they are
    its instances' times), read from its spans and lines; None for anything else."""
    text = item.ical
    if item.component != "VEVENT" or "RECURRENCE-ID" in text or text.count("BEGIN:VEVENT") != 1:
        return None
    if not item.spans or _CANCELLED.search(text):
        return None
    lines = {name.upper(): value.rstrip("\r") for name, value in _LINE.findall(unfold(text))}
    recurs = "RRULE" in lines or "RDATE" in lines
    summary, location = _unescaped(lines.get("SUMMARY", "")), _unescaped(lines.get("LOCATION", ""))
    if not all(exact and finish - begin != 1 for begin, finish, exact in item.spans):  # 1 s: maybe [s, s]
        days = busy.one_day(text)  # an all-day event's spans are loose: its lines say its days
        if days is None:
            return None
        first = days[0]
        return [Occurrence(item.id, item.calendar_id, first, first + timedelta(days=days[1]), summary, location)]
    return [
        Occurrence(
            item.id,
            item.calendar_id,
            datetime.fromtimestamp(begin, UTC),
            datetime.fromtimestamp(finish, UTC),
            summary,
            location,
            key=str(begin) if recurs else "",
        )
        for begin, finish, _ in item.spans
    ]


def _placed(value: date | datetime, zone: tzinfo) -> date | datetime:
    """A DATE stays a date; a date-time becomes UTC (a floating one read on ``zone``'s wall clock)."""
    if not isinstance(value, datetime):
        return value
    if value.tzinfo is None:
        return value.replace(tzinfo=zone).astimezone(UTC)
    return to_utc(value)[0]


def _parsed(item: Spanned, start: datetime, end: datetime, zone: tzinfo, limit: int) -> Iterable[Occurrence]:
    """The occurrences of any object, by expanding its text in the window."""
    try:
        expanded = parse_resource(instances(item.ical, start, end, limit, zone))
    except UNREADABLE:
        return
    recurs = any(name in item.ical for name in ("RRULE", "RDATE"))
    for component in expanded.subcomponents:
        if component.name not in ("VEVENT", "VTODO"):
            continue
        occurrence = _occurrence(item, component, zone, recurs)
        if occurrence is not None:
            yield occurrence


def _occurrence(item: Spanned, component: Component, zone: tzinfo, recurs: bool) -> Occurrence | None:
    first: date | datetime | None = None
    if "DTSTART" in component:
        first = prop_value(component, "DTSTART")
    elif "DUE" in component:
        first = prop_value(component, "DUE")
    if not isinstance(first, date):
        return None
    last: date | datetime
    if "DTEND" in component:
        last = prop_value(component, "DTEND")
    elif "DURATION" in component:
        last = first + prop_value(component, "DURATION")
    elif "DUE" in component and "DTSTART" in component:
        last = prop_value(component, "DUE")
    else:  # RFC 5545 3.6.1: a date lasts the day, a date-time no time
        last = first if isinstance(first, datetime) else first + timedelta(days=1)
    if isinstance(first, datetime) != isinstance(last, datetime):
        last = first if isinstance(first, datetime) else first + timedelta(days=1)
    key = (_key_of(component) or "") if recurs else ""
    return Occurrence(
        item.id, item.calendar_id, _placed(first, zone), _placed(last, zone),
        str(component.get("SUMMARY", "")), str(component.get("LOCATION", "")), key=key,
        cancelled=str(component.get("STATUS", "")).upper() == "CANCELLED",
    )  # fmt: skip


def occurrences(
    found: Sequence[Spanned], start: datetime, end: datetime, zone: tzinfo, limit: int
) -> tuple[list[Occurrence], bool]:
    """The occurrences of the objects the index found in [start, end), in order of their start,
    at most ``limit`` (and whether some were left out); floating times on ``zone``'s wall clock."""
    shown: list[Occurrence] = []
    for item in found:
        quick = _quick(item)
        shown += quick if quick is not None else _parsed(item, start, end, zone, limit)
    shown = [o for o in shown if _overlaps(o, start, end, zone)]
    shown.sort(key=lambda o: in_order(o, zone))
    return shown[:limit], len(shown) > limit


def in_order(occurrence: Occurrence, zone: tzinfo) -> tuple[datetime, bool, str]:
    """What occurrences are ordered by: their start (all-day ones first on their day), title."""
    return _instant(occurrence.start, zone), not occurrence.all_day, occurrence.summary


def _instant(value: date | datetime, zone: tzinfo) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime(value.year, value.month, value.day, tzinfo=zone)


def _overlaps(occurrence: Occurrence, start: datetime, end: datetime, zone: tzinfo) -> bool:
    begin, finish = _instant(occurrence.start, zone), _instant(occurrence.end, zone)
    return begin < end and (finish > start or begin == finish >= start)
