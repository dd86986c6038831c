"""Plain components, read without icalendar's parser: the import's fast path.

Most components of real files are plain: well-formed content lines of common properties,
nothing to repair, nothing to refuse. For those ``plain_block`` splits the lines itself, lets
icalendar's own value types read each value that could fail or that the store needs, and
computes the block with the functions ``block_from_component`` uses. Whatever it is not sure
of (an unusual line, parameter or property, a value icalendar would refuse, anything a repair
would change, overridden instances, RDATE and EXDATE) it declines, and the caller parses the
component with icalendar as before. So what is stored and what is refused does not depend on
the reader (tests/test_plain.py compares both on the real-world corpora).
"""

from __future__ import annotations

import dataclasses
import functools
import re
import zoneinfo
from typing import Any

from icalendar import vCalAddress, vDDDTypes, vInt, vRecur, vText, vUri
from icalendar.parser.ical.component import ComponentIcalParser
from icalendar.parser.property import unescape_backslash
from icalendar.prop.categories import vCategory
from icalendar.prop.factory import TypesFactory
from icalendar.prop.unknown import vUnknown

from protocol.ical.repairs import ONCE, date_problems, repair_text, rule_problems
from protocol.ical.resources import ParsedComponent, block_spans, used_tzids
from protocol.ical.values import CONTROL, CRLF, unfold
from protocol.ical.walk import Timing, span_of, timing_bounds

#: a content line whose name and parameters hold nothing icalendar reads in a special way
#: (no backslash, caret, comma-separated or unquoted-colon parameter values, no whitespace)
_LINE = re.compile(r'([A-Za-z][A-Za-z0-9-]*)((?:;[A-Za-z0-9-]+=(?:"[^"\\^]*"|[^";:,=\\^]*))*):(.*)')
_PARAM = re.compile(r';([A-Za-z0-9-]+)=("[^"\\^]*"|[^";:,=\\^]*)')
#: a time zone name as plain as it gets (quoted or not)
_TZID = re.compile(r"[A-Za-z0-9_+./-]+(?: [A-Za-z0-9_+./-]+)*")
#: values icalendar takes as they come: their readers never fail
_ANY_TEXT = (vText, vUnknown, vCategory)
#: values whose readers may fail: read here by icalendar, and declined when they do
_READ = (vDDDTypes, vInt, vRecur, vCalAddress, vUri)
#: what the block needs the value of
_TIMES = frozenset(("DTSTART", "DTEND", "DUE", "DURATION"))
_TEXTS = frozenset(("UID", "SUMMARY", "CLASS"))
#: properties whose handling the icalendar path owns (series, repairs, lists of periods)
_DECLINED = frozenset(("RECURRENCE-ID", "RDATE", "EXDATE", "EXRULE", "FREEBUSY"))
_WITH_TZID = frozenset(ComponentIcalParser.datetime_names)
_TYPES = TypesFactory.instance()
#: what ``plain_fields`` sends of a block: all but the parsed component (it has none)
_SENT = [f.name for f in dataclasses.fields(ParsedComponent) if f.name != "component"]
_system_zones = functools.cache(zoneinfo.available_timezones)


@functools.lru_cache(maxsize=1024)
def _value_type(name: str, value_type: str | None) -> Any:
    """icalendar's value type for a property (and its VALUE parameter); None when this reader
    does not know it."""
    factory = _TYPES.for_property(name, value_type)
    return factory if issubclass(factory, _ANY_TEXT + _READ) else None


@functools.lru_cache(maxsize=4096)
def _date_value(text: str) -> Any:
    """A date, date-time or duration without TZID as icalendar reads it (cached: DTSTAMP and
    the like repeat across a file, and the values are immutable)."""
    return vDDDTypes.from_ical(text)


def _parameters(raw: str, system_zones: bool) -> tuple[str | None, str | None] | None:
    """The TZID and VALUE parameters; None when a parameter is there twice, or either is not plain
    (or, with ``system_zones``, the TZID is not a name of the system's time zone database:
    icalendar reads any other in the light of the VTIMEZONEs its process has read before)."""
    found: dict[str, str] = {}
    for key, value in _PARAM.findall(raw):
        name = key.upper()
        if name in found:
            return None
        found[name] = value[1:-1] if value[:1] == '"' else value
    tzid, value_type = found.get("TZID"), found.get("VALUE")
    if tzid is not None and (not _TZID.fullmatch(tzid) or (system_zones and tzid not in _system_zones())):
        return None
    if value_type == "":
        return None
    return tzid, value_type.upper() if value_type else None


def plain_fields(
    components: list[tuple[str, list[str], int] | None], max_instances: int
) -> list[tuple[Any, ...] | None]:
    """``plain_block`` of each (name, lines, line) given, as the block's fields (quicker to send
    between processes), in a process that may know other custom time zones than its caller:
    only the zones of the system's time zone database are taken (see ``_parameters``)."""
    found = []
    for component in components:
        block = None if component is None else plain_block(*component, max_instances, system_zones=True)
        found.append(None if block is None else tuple(getattr(block, name) for name in _SENT))
    return found


def plain_block(
    name: str, lines: list[str], line: int, max_instances: int, *, system_zones: bool = False
) -> ParsedComponent | None:
    """The block of a top-level component (its physical ``lines``, from file line ``line``) when
    it is plain; None when it is not, and icalendar must read it. ``system_zones``: only TZIDs
    of the system's time zone database (not the custom ones of VTIMEZONEs read before)."""
    text = CRLF.join(lines) + CRLF
    if CONTROL.search(text) or repair_text(text)[1]:
        return None
    unfolded = unfold(text)
    content = unfolded.split(CRLF)[:-1]
    if content[0] != f"BEGIN:{name}" or content[-1] != f"END:{name}":
        return None
    times: dict[str, Any] = {}
    texts: dict[str, str] = {}
    rules: list[vRecur] = []
    once: set[str] = set()
    in_alarm = False
    for content_line in content[1:-1]:
        match = _LINE.fullmatch(content_line)
        if match is None:
            return None
        prop, raw_params, value = match.groups()
        prop = prop.upper()
        if prop in ("BEGIN", "END"):
            if value != "VALARM" or in_alarm == (prop == "BEGIN"):
                return None
            in_alarm = prop == "BEGIN"
            continue
        if prop in _DECLINED:
            return None
        params = _parameters(raw_params, system_zones) if raw_params else (None, None)
        if params is None:
            return None
        tzid, value_type = params
        factory = _value_type(prop, value_type)
        if factory is None:
            return None
        if issubclass(factory, _READ):
            text_value = unescape_backslash(value) if "\\" in value else value
            try:
                if tzid and prop in _WITH_TZID:
                    parsed = factory.from_ical(text_value, tzid)
                else:
                    parsed = _date_value(text_value) if factory is vDDDTypes else factory.from_ical(text_value)
            except Exception:  # icalendar refuses it (or fails on it): its own path says how
                return None
        if in_alarm:
            continue
        if prop in ONCE:
            if prop in once:
                return None
            once.add(prop)
        if prop in _TIMES:
            if factory is not vDDDTypes:
                return None
            times[prop] = parsed
        elif prop in _TEXTS:
            if factory is not vText:
                return None
            texts[prop] = unescape_backslash(value)
        elif prop == "RRULE":
            rule = vRecur(parsed)  # as icalendar keeps it: the component's value
            if rules or not rule or ("COUNT" in rule and "UNTIL" in rule):
                return None
            rules.append(rule)
    if in_alarm:
        return None
    rule_texts = [rule.to_ical().decode() for rule in rules]
    return _block(name, text, unfolded, line, max_instances, times, texts, rule_texts)


def _block(
    name: str,
    text: str,
    unfolded: str,
    line: int,
    max_instances: int,
    times: dict[str, Any],
    texts: dict[str, str],
    rules: list[str],
) -> ParsedComponent | None:
    """The block of a plain component from its values; None when it has something to refuse
    or to repair."""
    uid = texts.get("UID", "").strip()
    if not uid or ("DURATION" in times and ("DTEND" in times or "DUE" in times)):
        return None
    if date_problems(name, times, times.get):
        return None
    start = times.get("DTSTART")
    if any(rule_problems(rule, start) for rule in rules):
        return None
    timing = Timing(*span_of(name, times.get), rules=rules)
    bounds = timing_bounds(timing, max_instances)
    klass = texts.get("CLASS")
    return ParsedComponent(
        name=name,
        uid=uid,
        text=text,
        start=bounds.start,
        end=bounds.end,
        recurring=bounds.recurring,
        is_override=False,
        summary=texts.get("SUMMARY", ""),
        klass=klass.upper() if klass is not None else None,
        tzids=used_tzids(unfolded),
        line=line,
        spans=block_spans(timing, bounds, max_instances),
    )
