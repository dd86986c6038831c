"""Repairs and checks: what real writers send that the RFC does not allow but whose intent is plain
(``repair_text``, ``repair``, ``match_series``), and what makes a component unacceptable
(``component_problems``), in words a person understands. Pure."""

from __future__ import annotations

import functools
import re
from collections.abc import Container
from datetime import date, datetime, timedelta
from typing import Any

from dateutil import rrule as dateutil_rrule
from icalendar import Component, vDDDLists, vDDDTypes

from protocol.ical.values import (
    Decoded,
    dates_of,
    decoded_value,
    epoch,
    every,
    is_all_day,
    length_between,
    period,
    rrule_strings,
    to_utc,
    unfold,
)
from protocol.ical.walk import rule_never_matches

#: a content line with a TZID parameter whose values are all UTC (``...T100000Z``)
_TZID_ON_UTC = re.compile(
    r'^([A-Z][A-Z0-9-]*)((?:;[^\r\n]*?)?);TZID=(?:"[^"\r\n]*"|[^;:,"\r\n]*)'
    r"((?:;[^\r\n]*?)?:\d{8}T\d{6}Z(?:,\d{8}T\d{6}Z)*)(?=\r?\n|\Z)",
    re.MULTILINE | re.IGNORECASE,
)


def repair_text(text: str) -> tuple[str, list[str]]:
    """Mend what the parser would misread (so it must be seen as written): a TZID parameter on
    a UTC value, which icalendar would read as a time in that zone. The text, and what was mended."""
    if "TZID" not in text.upper():
        return text, []
    unfolded = unfold(text)
    names: list[str] = []

    def drop(match: re.Match[str]) -> str:
        names.append(match.group(1).upper())
        return match.group(1) + match.group(2) + match.group(3)

    mended = _TZID_ON_UTC.sub(drop, unfolded)
    if not names:
        return text, []
    return mended, [f"{name} has a TZID on a UTC time (RFC 5545 3.3.5 forbids it): TZID dropped" for name in names]


def _as_start_type(value: date | datetime, start: date | datetime) -> date | datetime:
    """``value`` (a DATE or DATE-TIME) as the same type as DTSTART ``start``: a date-time's
    date, or the date at DTSTART's time of day in DTSTART's zone."""
    if not isinstance(start, datetime):
        return value.date() if isinstance(value, datetime) else value
    if isinstance(value, datetime):
        return value
    return datetime.combine(value, start.time()).replace(tzinfo=start.tzinfo)


def _typed_like_start(value: Any, start: date | datetime, tzid: str | None, params: dict[str, str]) -> Any:
    """A DATE or DATE-TIME property ``value`` rebuilt as DTSTART's type, with ``params``."""
    prop = vDDDTypes(value) if not isinstance(value, list) else vDDDLists(value)
    prop.params.update(params)
    if is_all_day(start):
        prop.params["VALUE"] = "DATE"
    elif tzid:
        prop.params["TZID"] = tzid
    return prop


def excluded_starts(component: Component) -> set[int]:
    """The instances a series' EXDATEs remove, as the epoch seconds of their starts (UTC; a
    date as its day's UTC midnight, as RECURRENCE-IDs are read)."""
    return {
        epoch(to_utc(value)[0]) for prop in every(component, "EXDATE") for value in dates_of(prop)
        if isinstance(value, date)
    }  # fmt: skip


def match_start_type(component: Component, name: str, start: date | datetime, tzid: str | None) -> bool:
    """Make each ``name`` property (EXDATE, RDATE, RECURRENCE-ID) of ``component`` the same
    value type as the series' DTSTART (``start``, in zone ``tzid``); whether one changed. A
    PERIOD value is left as it is."""
    changed = False
    kept = []
    for prop in every(component, name):
        values = dates_of(prop) if name != "RECURRENCE-ID" else [prop.dt]
        if any(not isinstance(v, date) for v in values) or all(is_all_day(v) == is_all_day(start) for v in values):
            kept.append(prop)
            continue
        params = {k: v for k, v in prop.params.items() if k not in ("TZID", "VALUE")}
        retyped = [_as_start_type(v, start) for v in values]
        kept.append(_typed_like_start(retyped if name != "RECURRENCE-ID" else retyped[0], start, tzid, params))
        changed = True
    if changed:
        component.pop(name)
        for prop in kept:
            component.add(name, prop)
    return changed


def match_series(master: Component, override: Component) -> str | None:
    """Make an override's RECURRENCE-ID the value type of its series' DTSTART (Exchange writes
    a DATE-TIME for an all-day series and the reverse), so it replaces the instance it means:
    the date of a date-time, or the date at the series' time of day; what was mended, or None."""
    start = decoded_value(master, "DTSTART")
    if not isinstance(start, date) or "RECURRENCE-ID" not in override:
        return None
    if not match_start_type(override, "RECURRENCE-ID", start, master["DTSTART"].params.get("TZID")):
        return None
    kind = "DATE" if is_all_day(start) else "DATE-TIME"
    return f"RECURRENCE-ID of another value type than the series' DTSTART: read as the {kind} of that instance"


#: properties a VEVENT, VTODO or VJOURNAL holds once at most (RFC 5545 3.6.1-3.6.3)
ONCE = frozenset(("UID", "DTSTAMP", "DTSTART", "DTEND", "DUE", "DURATION", "RECURRENCE-ID", "SEQUENCE", "CLASS",
                   "CREATED", "DESCRIPTION", "GEO", "LAST-MODIFIED", "LOCATION", "ORGANIZER", "PRIORITY", "STATUS",
                   "SUMMARY", "TRANSP", "URL", "COMPLETED", "PERCENT-COMPLETE"))  # fmt: skip


def _repeated_once(component: Component) -> list[tuple[str, list[Any]]]:
    """The properties RFC 5545 allows once that ``component`` has more than once, with their
    values (icalendar keeps a repeated property as a list)."""
    return [(name, value) for name, value in component.items() if isinstance(value, list) and name in ONCE]


def _value_text(value: Any) -> bytes:
    return value.to_ical() if hasattr(value, "to_ical") else str(value).encode()


def repair(component: Component) -> list[str]:
    """Mend, in place, what real-world writers get wrong where their intent is plain; what was
    mended, in words (each a named rule, listed in docs/formats.md)."""
    done = []
    start = decoded_value(component, "DTSTART")
    if isinstance(start, date) and "RECURRENCE-ID" not in component:
        tzid = component["DTSTART"].params.get("TZID")
        for name in ("EXDATE", "RDATE"):
            if match_start_type(component, name, start, tzid):
                kind = "DATE" if is_all_day(start) else "DATE-TIME"
                done.append(f"{name} of another value type than DTSTART (RFC 5545 3.8.5): read as a {kind}")
    for end in ("DTEND", "DUE"):
        if end in component and "DURATION" in component:
            component.pop("DURATION")
            done.append(f"{end} and DURATION together (RFC 5545 allows one): DURATION dropped, {end} kept")
    for name, given in _repeated_once(component):
        if len({_value_text(value) for value in given}) == 1:
            component[name] = given[0]
            done.append(f"{name} given {len(given)} times with the same value (RFC 5545 allows one): one kept")
    rules = every(component, "RRULE")
    if not all(rules):  # "RRULE:" with nothing after it (Germany_Holidays.ics)
        component.pop("RRULE")
        for rule in filter(None, rules):
            component.add("RRULE", rule)
        done.append("an empty RRULE (RFC 5545 requires FREQ): dropped, the component does not recur")
    for rule in every(component, "RRULE"):
        if "COUNT" in rule and "UNTIL" in rule:
            rule.pop("COUNT")
            done.append("RRULE with both COUNT and UNTIL (RFC 5545 allows one): COUNT dropped, UNTIL kept")
    return done


def component_problems(component: Component) -> list[str]:
    """What makes a VEVENT/VTODO/VJOURNAL unacceptable, in words a person understands."""
    problems = [f"{name}: {message}" if name else message for name, message in component.errors]
    for sub in component.subcomponents:
        problems.extend(f"{sub.name} {name}: {message}" for name, message in sub.errors)
    if problems:
        return problems
    twice = _repeated_once(component)
    if twice:
        return [f"{n} appears more than once with different values (RFC 5545 allows one)" for n, _ in twice]
    decoded = functools.partial(decoded_value, component)
    problems = date_problems(str(component.name), component, decoded)
    start = decoded("DTSTART")
    if component.name == "VEVENT" and start is None:
        return problems
    for name in ("RDATE", "EXDATE"):
        for item in every(component, name):
            moments = [period(value)[0] for value in dates_of(item)]
            if not all(isinstance(moment, date) for moment in moments):
                problems.append(f"{name} holds a value that is not a date or date-time")
    for rule in rrule_strings(component):
        problems += rule_problems(rule, start)
    return problems


def date_problems(name: str, present: Container[str], decoded: Decoded) -> list[str]:
    """What is wrong with the dates of a ``name`` component that has the properties named in
    ``present``, whose values ``decoded`` gives (part of ``component_problems``)."""
    problems = []
    start = decoded("DTSTART")
    for dated in ("DTSTART", "RECURRENCE-ID"):
        if dated in present and not isinstance(decoded(dated), date):
            problems.append(f"{dated} is not a valid date or date-time")
    if name == "VEVENT":
        if start is None:
            problems.append("VEVENT has no DTSTART")
            return problems
        if "DTEND" in present and "DURATION" in present:
            problems.append("VEVENT has both DTEND and DURATION")
        end = decoded("DTEND")
        if "DTEND" in present and not isinstance(end, date):
            problems.append("DTEND is not a valid date or date-time")
        elif isinstance(end, date) and isinstance(start, date):
            if is_all_day(start) != is_all_day(end):
                problems.append("DTSTART and DTEND must both be dates or both date-times")
            elif length_between(start, end) < timedelta(0):
                problems.append("DTEND is before DTSTART")
        duration = decoded("DURATION")
        if isinstance(duration, timedelta) and duration < timedelta(0):
            problems.append("DURATION is negative")
    elif name == "VTODO":
        due = decoded("DUE")
        if "DUE" in present and not isinstance(due, date):
            problems.append("DUE is not a valid date or date-time")
        elif isinstance(due, date) and isinstance(start, date) and length_between(start, due) < timedelta(0):
            problems.append("DUE is before DTSTART")
        if "DUE" in present and "DURATION" in present:
            problems.append("VTODO has both DUE and DURATION")
    return problems


def rule_problems(rule: str, start: object) -> list[str]:
    """What is wrong with an RRULE (as icalendar writes it) of a series starting at ``start``."""
    count = re.search(r"COUNT=(-?\d+)", rule, re.IGNORECASE)
    if count and int(count.group(1)) < 1:
        return [f"RRULE {rule} has COUNT={count.group(1)}: a rule counts one instance at least"]
    try:
        dateutil_rrule.rrulestr(re.sub(r";?UNTIL=[0-9TZ]+", "", rule, flags=re.I), dtstart=datetime(2000, 1, 1))
    except (ValueError, TypeError) as error:
        return [f"RRULE is invalid: {error}"]
    if isinstance(start, date) and rule_never_matches(rule, start):
        return [f"RRULE {rule} matches no date at all"]
    return []
