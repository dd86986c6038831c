"""Busy periods (free/busy): the opaque, not cancelled instances of events in a range, as RFC 4791
7.10 gives their FBTYPE, merged, and written as a VFREEBUSY. Pure."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, tzinfo

from icalendar import Calendar, Event

from protocol.ical.values import parse_resource, to_utc
from protocol.ical.walk import component_span

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


def busy_from_spans(
    text: str, spans: Sequence[tuple[int, int, bool]], start: datetime, end: datetime
) -> list[BusyPeriod] | None:
    """``busy_periods`` of one stored event from its spans in the time-range index (start, end
    and exactness of each instance in the range, epoch seconds) and a look at its TRANSP and
    STATUS lines, without parsing it: only for one VEVENT without overrides whose spans are all
    exact (they are then its instances' times, none floating); None for anything else."""
    if not spans or "RECURRENCE-ID" in text or text.count("BEGIN:VEVENT") != 1:
        return None
    if not all(exact and finish - begin != 1 for begin, finish, exact in spans):  # 1 s: maybe [s, s] on PostgreSQL
        return None
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
        for begin, finish, _ in spans
        if max(begin, low) < min(finish, high)
    ]


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
