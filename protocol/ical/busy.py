"""Busy periods (free/busy): the opaque, not cancelled instances of events in a range, as RFC 4791
7.10 gives their FBTYPE, merged, and written as a VFREEBUSY. Pure."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, tzinfo
from typing import Protocol

from icalendar import Calendar, Event

from protocol.ical.values import parse_resource, to_utc
from protocol.ical.walk import component_span
from protocol.ical.windows import instances

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


#: the lines that make an event free or tentative: looked for only when one is there
_MARKS = re.compile(r"^(TRANSP|STATUS)[;:]", re.IGNORECASE | re.MULTILINE)


#: a single all-day event's times: its DTSTART and DTEND dates, or its length in days or weeks
_DAY_START = re.compile(r"^DTSTART;VALUE=DATE:(\d{8})\r?$", re.MULTILINE)
_DAY_END = re.compile(r"^(?:DTEND;VALUE=DATE:(\d{8})|DURATION:P(\d{1,4})([DW]))\r?$", re.MULTILINE)
#: what makes an event more than one all-day instance (or its times something else)
_NOT_ONE_DAY = re.compile(r"^(?:RRULE|RDATE|EXRULE|RECURRENCE-ID|DTSTART|DTEND|DURATION)[;:]", re.MULTILINE)


def busy_from_spans(
    text: str, spans: Sequence[tuple[int, int, bool]], start: datetime, end: datetime, zone: tzinfo | None = None
) -> list[BusyPeriod] | None:
    """``busy_periods`` of one stored event from its spans in the time-range index (start, end
    and exactness of each instance in the range, epoch seconds) and a look at its TRANSP and
    STATUS lines, without parsing it: for one VEVENT without overrides whose spans are all exact
    (they are then its instances' times, none floating), or one all-day event (its dates read
    from its lines, placed on ``zone``'s wall clock); None for anything else."""
    if not spans or "RECURRENCE-ID" in text or text.count("BEGIN:VEVENT") != 1:
        return None
    if all(exact and finish - begin != 1 for begin, finish, exact in spans):  # 1 s: maybe [s, s] on PostgreSQL
        times = [(begin, finish) for begin, finish, _ in spans]
    else:
        day = _one_day(text, zone)
        if day is None:
            return None
        times = [day]
    found: dict[str, str] = {}
    depth = 0
    lines = text.replace("\r\n ", "").replace("\r\n\t", "").split("\r\n") if _MARKS.search(text) else []
    for line in lines:  # most events say neither: opaque and busy
        head = line[:6].upper()
        depth += (head == "BEGIN:") - (line[:4].upper() == "END:")
        name = line.split(":", 1)[0].split(";", 1)[0].upper()
        if depth == 2 and name in ("TRANSP", "STATUS"):
            found[name] = line.rsplit(":", 1)[-1].strip().upper()
    if found.get("TRANSP") == "TRANSPARENT" or found.get("STATUS") == "CANCELLED":
        return []
    kind = TENTATIVE if found.get("STATUS") == "TENTATIVE" else BUSY
    low, high = int(start.timestamp()), int(end.timestamp())
    return [
        (datetime.fromtimestamp(max(begin, low), UTC), datetime.fromtimestamp(min(finish, high), UTC), kind)
        for begin, finish in times
        if max(begin, low) < min(finish, high)
    ]


def _one_day(text: str, zone: tzinfo | None) -> tuple[int, int] | None:
    """The busy time (epoch seconds) of an event of one all-day instance, as ``busy_periods``
    places it (from midnight of its first day on ``zone``'s wall clock, as long as it lasts),
    from its lines; None when it is not plainly one."""
    found = one_day(text)
    if found is None:
        return None
    moment = _placed(found[0], zone)
    return int(moment.timestamp()), int(moment.timestamp()) + found[1] * 86400


def one_day(text: str) -> tuple[date, int] | None:
    """The first day and the number of days of an event of one all-day instance, from its
    lines; None when it is not plainly one."""
    first, last = _DAY_START.findall(text), _DAY_END.findall(text)
    if len(first) != 1 or len(last) > 1 or len(_NOT_ONE_DAY.findall(text)) != 1 + len(last):
        return None
    try:
        begin = date(int(first[0][:4]), int(first[0][4:6]), int(first[0][6:]))
        if not last:
            days = 1
        elif last[0][0]:
            finish = last[0][0]
            days = (date(int(finish[:4]), int(finish[4:6]), int(finish[6:])) - begin).days
        else:
            days = int(last[0][1]) * (7 if last[0][2] == "W" else 1)
    except ValueError:  # no such day: the parsed way says what it is
        return None
    return (begin, days) if days > 0 else None


class Spanned(Protocol):
    """An event as the index gives it for free/busy: its calendar, UID, component, text, and
    its spans in the range."""

    @property
    def calendar_id(self) -> int: ...
    @property
    def uid(self) -> str: ...
    @property
    def component(self) -> str: ...
    @property
    def ical(self) -> str: ...
    @property
    def spans(self) -> list[tuple[int, int, bool]]: ...


def busy_by_calendar(
    found: Sequence[Spanned],
    places: Mapping[int, tzinfo | None],
    start: datetime,
    end: datetime,
    besides: str | None,
    limit: int,
) -> dict[int, list[BusyPeriod]]:
    """The busy periods of these events' instances in [start, end) by calendar, not merged;
    floating times and dates on the wall clock of their calendar's place; ``besides``: a UID
    that does not count. An event the index tells everything of, or one all-day event, is read
    from its spans and lines; the rest is parsed (at most ``limit`` instances each)."""
    periods: dict[int, list[BusyPeriod]] = {calendar_id: [] for calendar_id in places}
    for item in found:
        if item.component != "VEVENT" or item.uid == besides:
            continue
        zone = places[item.calendar_id]
        quick = busy_from_spans(item.ical, item.spans, start, end, zone)
        if quick is None:
            quick = busy_periods([instances(item.ical, start, end, limit, zone)], start, end, zone)
        periods[item.calendar_id] += quick
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


def busy_calendar(name: str, periods: list[BusyPeriod], zone: tzinfo = UTC) -> str:
    """A calendar of busy periods only (a public feed's "busy times"): one opaque event titled
    Busy per period (tentative ones with STATUS:TENTATIVE), its UID and stamp taken from its
    times so the text changes only with them. A period of whole days on ``zone``'s wall clock
    (an all-day event, read there) is written as dates, so it stays on its days everywhere."""
    calendar = Calendar()
    calendar.add("PRODID", "-//Almanac//busy times//EN")
    calendar.add("VERSION", "2.0")
    calendar.add("X-WR-CALNAME", name)
    for start, end, kind in periods:
        event = Event()
        key = f"{start.isoformat()}/{end.isoformat()}" + ("/tentative" if kind == TENTATIVE else "")
        event.add("UID", hashlib.sha256(key.encode()).hexdigest()[:32] + "@busy.almanac")
        event.add("DTSTAMP", start)
        first, last = start.astimezone(zone), end.astimezone(zone)
        whole_days = first.time() == last.time() == time() and first < last
        event.add("DTSTART", first.date() if whole_days else start)
        event.add("DTEND", last.date() if whole_days else end)
        event.add("SUMMARY", "Busy (tentative)" if kind == TENTATIVE else "Busy")
        if kind == TENTATIVE:
            event.add("STATUS", "TENTATIVE")
        event.add("TRANSP", "OPAQUE")
        calendar.add_component(event)
    return calendar.to_ical().decode()
