"""VTIMEZONEs named like a zone of the system's time zone database, but with rules of their own.

icalendar reads ``TZID=America/New_York`` with the system's zone of that name, whatever the
VTIMEZONE sent beside it says; a client reads it with that VTIMEZONE (RFC 5545 3.6.5: the
VTIMEZONE defines the zone). Where the two disagree at an object's own instants, the object
keeps its VTIMEZONE under a name of its own (``America/New_York (3fa2c1)``, the digest of its
rules), so every reader, Almanac's and the clients', takes its times from the same rules.
Pure: text and values in, text and values out.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import re
import zoneinfo
from collections.abc import Sequence
from datetime import UTC, datetime

from icalendar import Timezone

#: instants of an object compared in both zones at most (its first index spans)
MAX_COMPARED = 400


@functools.lru_cache(maxsize=512)
def system_zone(tzid: str) -> zoneinfo.ZoneInfo | None:
    """The system database's zone of this name, or None for a name it does not know."""
    try:
        return zoneinfo.ZoneInfo(tzid.strip("/"))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


#: transitions are compared from here up to there (icalendar lists a rule's transitions until 2038)
SINCE, UNTIL = int(datetime(1900, 1, 1, tzinfo=UTC).timestamp()), int(datetime(2037, 1, 1, tzinfo=UTC).timestamp())


@functools.lru_cache(maxsize=256)
def rules_of(vtimezone: str) -> tuple[list[int], list[int]] | None:
    """The UTC offsets (seconds) a VTIMEZONE's text defines, as (transition instants in epoch
    seconds, the offset from each on), the first offset also before the first transition;
    None when it defines none that can be used."""
    try:
        component = Timezone.from_ical(vtimezone)
        if not isinstance(component, Timezone):
            return None
        times, infos = component.get_transitions()
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, OverflowError):
        return None
    if not times:
        return None
    return [int(t.replace(tzinfo=UTC).timestamp()) for t in times], [int(info[0].total_seconds()) for info in infos]


def _offset(rules: tuple[list[int], list[int]], moment: int) -> int | None:
    """The offset the rules give at ``moment``; None before their first onset, where a VTIMEZONE
    says nothing (exporters often send only the transitions from a recent year on)."""
    times, offsets = rules
    found = bisect.bisect_right(times, moment) - 1
    return offsets[found] if found >= 0 else None


def disagrees(tzid: str, vtimezone: str, spans: Sequence[tuple[int, int, bool]]) -> bool:
    """Whether the VTIMEZONE ``vtimezone`` sent for ``tzid`` gives another UTC offset than the
    system's zone of that name at an object's exact ``spans`` (those it defines, up to 2037)."""
    system, own = system_zone(tzid), rules_of(vtimezone)
    if system is None or own is None:
        return False
    for start, end, exact in spans[:MAX_COMPARED]:
        for moment in (start, end) if exact else ():
            defined = _offset(own, moment) if SINCE <= moment < UNTIL else None
            offset = datetime.fromtimestamp(moment, system).utcoffset() if defined is not None else None
            if offset is not None and offset.total_seconds() != defined:
                return True
    return False


def own_name(tzid: str, vtimezone: str) -> str:
    """The name a VTIMEZONE keeps when its rules are not the system's zone's of ``tzid``."""
    return f"{tzid} ({hashlib.sha256(vtimezone.encode()).hexdigest()[:6]})"


def renamed(text: str, tzid: str, name: str) -> str:
    """Content lines (unfolded) with ``tzid`` called ``name``: in TZID parameters and in a
    VTIMEZONE's TZID property."""
    quoted = '"' + name.replace('"', "") + '"'
    text = re.sub(rf';(?i:TZID)=(?:"{re.escape(tzid)}"|{re.escape(tzid)})(?=[;:])', f";TZID={quoted}", text)
    return re.sub(rf"^(?i:TZID)((?:;[^:\r\n]*)?):{re.escape(tzid)}(?=\r?$)", rf"TZID\1:{name}", text, flags=re.M)
