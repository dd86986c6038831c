"""iCalendar values and times, the bottom of the family: constants and bounds of time, a property's
value, UTC instants, parsing a stored resource and splitting its text, ETags and hrefs. Pure."""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from icalendar import Calendar, Component
from icalendar.timezone import tzp

PRODID = "-//Almanac//Almanac Calendar Server//EN"


CRLF = "\r\n"


#: components a calendar object resource may hold (RFC 4791 4.1)
OBJECT_COMPONENTS = frozenset({"VEVENT", "VTODO", "VJOURNAL"})


#: floating times and dates mean "wall clock anywhere": widen index bounds by the widest offset
FLOATING_SLACK = 14 * 3600


#: the earliest and latest instants a query may name (0001-01-02 and 9999-12-31 UTC)
MIN_EPOCH, MAX_EPOCH = -62135510400, 253402214400


#: the first and last instants Python's datetime holds; a wall clock is at most a day off UTC
FIRST_INSTANT, LAST_INSTANT = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)


ZONE_SHIFT = timedelta(days=1)


#: recurrence sets with more instances than this are indexed as open-ended
DEFAULT_MAX_INSTANCES = 10_000


_FOLD = re.compile("\r\n[ \t]")


#: control characters RFC 5545 allows in no value (all but TAB; CR and LF only end lines)
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


TZID_PARAM = re.compile(r';TZID=("[^"]*"|[^;:]*)', re.IGNORECASE)


#: what icalendar raises on text it cannot read (a TZID given twice is an AttributeError)
UNREADABLE = (ValueError, KeyError, TypeError, AttributeError, IndexError, OverflowError)


class ICalError(ValueError):
    """An iCalendar text that cannot be accepted, with the line it was found on."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def formatted(moment: date, pattern: str) -> str:
    """``moment.strftime(pattern)`` with four-digit years: C's ``%Y`` writes the year 1 as "1"."""
    return moment.strftime(pattern.replace("%Y", f"{moment.year:04d}"))


def to_utc(value: date | datetime) -> tuple[datetime, bool]:
    """A UTC datetime for a DATE or DATE-TIME value, and whether it was floating."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC), True
        return value.astimezone(UTC), False
    return datetime.combine(value, time(), UTC), True


def epoch(value: datetime) -> int:
    return int(value.timestamp())


def is_all_day(value: object) -> bool:
    return isinstance(value, date) and not isinstance(value, datetime)


def decoded_value(component: Component, name: str) -> object | None:
    if name not in component:
        return None
    try:
        value = component.decoded(name)
    except (ValueError, KeyError, TypeError):
        return None
    return value


#: a property's decoded value, None when the component lacks it or it cannot be read
Decoded = Callable[[str], Any]


def length_between(start: date, end: date) -> timedelta:
    if is_all_day(start) != is_all_day(end) or (
        isinstance(start, datetime) and isinstance(end, datetime) and (start.tzinfo is None) != (end.tzinfo is None)
    ):
        start = to_utc(start)[0]
        end = to_utc(end)[0]
    return end - start


def prop_value(component: Component, name: str) -> Any:
    """The date, date-time (or other value) of a property (icalendar's types do not say
    which property holds what)."""
    prop: Any = component[name]
    if not hasattr(prop, "dt"):
        raise ValueError(f"{name} holds no date, time or duration")
    return prop.dt


def every(component: Component, name: str) -> list[Any]:
    """All values of a property that may appear more than once (icalendar gives one or a list)."""
    value = component.get(name)
    return [] if value is None else value if isinstance(value, list) else [value]


def rrule_strings(component: Component) -> list[str]:
    return [rule.to_ical().decode() for rule in every(component, "RRULE")]


def dates_of(prop: Any) -> list[Any]:
    """The values of an RDATE or EXDATE property (a PERIOD is a (start, end or duration) tuple)."""
    try:
        return [item.dt for item in prop.dts]
    except (AttributeError, ValueError):  # icalendar's stand-in for a value it could not read
        return []


def period(value: Any) -> tuple[date | datetime, date | datetime | None]:
    """An RDATE value's start and, for a PERIOD, its end (RFC 5545 3.3.9: an end or a duration)."""
    if not isinstance(value, tuple):
        return value, None
    begin, stop = value
    return begin, begin + stop if isinstance(stop, timedelta) else stop


def make_uid(*parts: str) -> str:
    """A deterministic UID for data that has none, so a re-import updates instead of duplicating."""
    digest = hashlib.sha1("\x1f".join(parts).encode()).hexdigest()
    return f"almanac-{digest}"


def unfold(text: str) -> str:
    """Content lines without their folds (RFC 5545 3.1: a fold may fall anywhere)."""
    return _FOLD.sub("", text) if "\r\n " in text or "\r\n\t" in text else text


def parse_resource(text: str) -> Calendar:
    """Parse a stored resource (trusted: it was validated when written)."""
    return Calendar.from_ical(text)


def main_component(calendar: Calendar) -> Component | None:
    """The master component of a resource (the first one without RECURRENCE-ID)."""
    first = None
    for component in calendar.subcomponents:
        if component.name in OBJECT_COMPONENTS:
            if "RECURRENCE-ID" not in component:
                return component
            first = first or component
    return first


_VTIMEZONE = re.compile(r"BEGIN:VTIMEZONE\r\n.*?END:VTIMEZONE\r\n", re.DOTALL)


_TZID_LINE = re.compile(r"^TZID[;:](?:[^:\r\n]*:)?(.*?)\r$", re.MULTILINE)


def timezones_and_body(text: str) -> tuple[list[tuple[str, str]], str]:
    """The (TZID, VTIMEZONE text) pairs of a stored resource, and all its other components
    as one text: the fast path of exports and fetches (no line-by-line walk)."""
    begin = text.find("\r\nBEGIN:") + 2
    end = text.rfind("END:VCALENDAR")
    body = text[begin:end] if begin > 1 and end > begin else ""
    if "BEGIN:VTIMEZONE" not in body:
        return [], body
    zones = []
    for match in _VTIMEZONE.finditer(body):
        tzid = _TZID_LINE.search(match.group(0))
        zones.append((tzid.group(1).strip() if tzid else "", match.group(0)))
    return zones, _VTIMEZONE.sub("", body)


def split_stored(text: str) -> Iterator[tuple[str, str, str]]:
    """Yield (kind, key, text) for each top-level component of a stored resource.

    kind is "VTIMEZONE" (key = TZID) or the component name (key = ""). Calendar-level
    properties are skipped. Works on text only: no parsing, for fast exports.
    """
    depth = 0
    current: list[str] = []
    kind = key = ""
    for line in text.split(CRLF):
        if not line:
            continue
        upper = line[:20].upper()
        if upper.startswith("BEGIN:"):
            depth += 1
            if depth == 2:
                kind, key, current = line[6:].strip().upper(), "", []
        if depth >= 2:
            current.append(line)
            if depth == 2 and kind == "VTIMEZONE" and upper.startswith("TZID"):
                key = line.split(":", 1)[1].strip()
        if upper.startswith("END:"):
            if depth == 2:
                yield kind, key, CRLF.join(current) + CRLF
            depth -= 1


def utc_stamp(moment: int) -> str:
    """Epoch seconds as an iCalendar UTC date-time."""
    return formatted(datetime(1970, 1, 1) + timedelta(seconds=moment), "%Y%m%dT%H%M%SZ")


#: custom zones icalendar keeps process-wide before its cache is emptied (it never forgets one)
MAX_CACHED_ZONES = 1000


def cache_timezone(component: Component) -> None:
    """Let later parses resolve a custom TZID defined by this VTIMEZONE (stored resources carry
    their VTIMEZONEs, so forgetting one costs a parse, never a wrong answer)."""
    cache = getattr(tzp, "_TZP__tz_cache", None)
    if isinstance(cache, dict) and len(cache) >= MAX_CACHED_ZONES:
        cache.clear()  # a stream of made-up TZIDs would otherwise grow it for ever
    with contextlib.suppress(ValueError, KeyError, TypeError):
        tzp.cache_timezone_component(component)


_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+=-]{0,150}$")


def etag_of(text: str) -> str:
    """The entity tag of a stored resource (unquoted)."""
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def href_for_uid(uid: str) -> str:
    """The resource name for a UID: ``{uid}.ics`` when the UID is URL-safe, else a digest."""
    if _SAFE_NAME.match(uid):
        return f"{uid}.ics"
    return hashlib.sha1(uid.encode()).hexdigest() + ".ics"
