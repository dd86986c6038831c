"""Timeslot JSON: an array of slots, in the 2016 shape and the later one.

2016 (seed 002): ``uid, title, visibility, start, end, location`` with ISO UTC times such as
``2019-09-15T20:44:02.000Z``. Later: also ``notes``, ``media``, ``settings``, ``groups`` and a
location object. Almanac adds ``allday``, ``rrule``, ``timezone`` and ``type`` where they carry
something, and keeps every key it has no iCalendar property for, so a file re-exports as it came.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any

from protocol.events import VISIBILITIES, EventFields, class_of, resource, valid_zone, view, wall_clock
from protocol.formats import ExportItem, LineError, Lines, ParseOptions, ParseResult
from protocol.ical.resources import Resource
from protocol.ical.values import make_uid

#: keys with a place in iCalendar; every other key is kept verbatim in the event's extra data
MAPPED_KEYS = frozenset(
    {"uid", "title", "visibility", "start", "end", "location", "notes", "description",
     "allday", "rrule", "timezone", "type", "groups", "group"}
)  # fmt: skip
_LOCATION_KEYS = ("name", "address", "city", "postalcode", "country", "latitude", "longitude")
_WHITESPACE = re.compile(r"[ \t\r\n]*")
_CHUNK = 1 << 16  #: characters read at a time
_MAX_SLOT = 1 << 23  #: a slot that does not end within this many characters is invalid


class _Window:
    """The part of the file being decoded: more is read when a slot runs past its end and
    what has been decoded is dropped, so about one slot is held at a time."""

    def __init__(self, source: Iterator[str]) -> None:
        self.source = source
        self.text = ""
        self.line = 1  #: the line ``text`` starts on
        self.ended = False

    def more(self, size: int) -> bool:
        """Read about ``size`` more characters; False at the end of the file."""
        parts: list[str] = []
        for line in self.source:
            parts.append(line)
            size -= len(line)
            if size <= 0:
                break
        else:
            self.ended = True
        self.text += "".join(parts)
        return bool(parts)

    def drop(self, index: int) -> None:
        self.line += self.text.count("\n", 0, index)
        self.text = self.text[index:]

    def skip_space(self) -> bool:
        """Drop the whitespace ahead; False at the end of the file."""
        while True:
            space = _WHITESPACE.match(self.text)
            self.drop(space.end() if space else 0)
            if self.text or not self.more(_CHUNK):
                return bool(self.text)


def _items(source: Iterator[str], result: ParseResult) -> Iterator[tuple[int, Any]]:
    """Each element of the top-level array with the line it starts on."""

    def stop(line: int, message: str) -> None:
        result.error(LineError(line, message))
        result.stopped = True

    decoder = json.JSONDecoder()
    window = _Window(source)
    if not window.skip_space() or window.text[0] != "[":
        kind = "an object" if window.text[:1] == "{" else "not an array"
        return stop(1, f"Timeslot JSON must be an array of slots; this is {kind}")
    window.drop(1)
    expect_item = True
    while True:
        if not window.skip_space():
            return stop(window.line, "the array is not closed: is the file truncated?")
        if window.text[0] == "]":
            window.drop(1)
            if window.skip_space():
                stop(window.line, "unexpected text after the array")
            return
        if not expect_item:
            if window.text[0] != ",":
                return stop(window.line, "expected ',' or ']' between slots")
            window.drop(1)
            expect_item = True
            continue
        while True:
            try:
                value, end = decoder.raw_decode(window.text)
            except json.JSONDecodeError as error:
                # Perhaps the slot goes on past what has been read: read more (up to a limit).
                if len(window.text) < _MAX_SLOT and window.more(len(window.text)):
                    continue
                return stop(window.line + error.lineno - 1, f"invalid JSON: {error.msg}")
            if end < len(window.text) or not window.more(_CHUNK):  # a number may go on
                break
        yield window.line, value
        window.drop(end)
        expect_item = False


def _instant(value: Any, key: str) -> datetime | date:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key}: expected an ISO 8601 date-time string, got {value!r}")
    text = value.strip()
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"{key}: {value!r} is not an ISO 8601 date-time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _flag(value: object, name: str) -> bool:
    """A JSON true/false (also 0/1 and their strings, as forms send them); ValueError otherwise."""
    if value in (None, "", False, 0, "false", "0"):
        return False
    if value in (True, 1, "true", "1"):
        return True
    raise ValueError(f"{name} must be true or false, not {value!r}")


def slot_fields(item: dict[str, Any]) -> EventFields:
    """Fields of one slot object (the export's keys); raises ValueError saying what is wrong."""
    title = item.get("title")
    if not isinstance(title, str) or not title.strip():
        raise ValueError("title is missing or empty")
    fields = EventFields(summary=title)
    if item.get("type") == "todo":
        fields.component = "VTODO"  # a todo may have neither start nor due
        if item.get("start") not in (None, ""):
            fields.start = _instant(item.get("start"), "start")
    else:
        fields.start = _instant(item.get("start"), "start")
    end = item.get("end")
    if end not in (None, ""):
        fields.end = _instant(end, "end")
    zone = item.get("timezone")
    if zone and (not isinstance(zone, str) or not valid_zone(zone)):
        raise ValueError(f"timezone: {zone!r} is not a known time zone")
    if _flag(item.get("allday"), "allday") and fields.start is not None:
        fields.start = _day(fields.start)
        fields.end = _day(fields.end) if fields.end is not None else None  # a day without end lasts the day
    elif zone:
        fields.start = wall_clock(fields.start, zone) if fields.start is not None else None
        fields.end = wall_clock(fields.end, zone) if fields.end is not None else None
    same_kind = isinstance(fields.start, datetime) == isinstance(fields.end, datetime)
    if fields.start is not None and fields.end is not None and same_kind and fields.end < fields.start:
        raise ValueError("end is before start")
    visibility = item.get("visibility") or "private"
    if visibility not in VISIBILITIES:
        raise ValueError(f"visibility must be one of {', '.join(VISIBILITIES)}, not {visibility!r}")
    fields.klass = class_of(visibility)
    rrule = item.get("rrule")
    if rrule:
        if not isinstance(rrule, str):
            raise ValueError("rrule must be a string such as FREQ=WEEKLY;COUNT=4")
        fields.rrule = rrule.strip().removeprefix("RRULE:")
    _read_location(item.get("location"), fields)
    _read_notes(item, fields)
    fields.extra.update({k: v for k, v in item.items() if k not in MAPPED_KEYS})
    return fields


def _day(value: date | datetime) -> date:
    return value.astimezone(UTC).date() if isinstance(value, datetime) else value


def _read_location(location: Any, fields: EventFields) -> None:
    if location in (None, "", {}):
        return
    if isinstance(location, str):
        fields.location = location
        return
    if not isinstance(location, dict):
        raise ValueError("location must be null, a string or an object")
    fields.location = str(location.get("name") or "")
    latitude, longitude = location.get("latitude"), location.get("longitude")
    if isinstance(latitude, int | float) and isinstance(longitude, int | float):
        fields.geo = (float(latitude), float(longitude))
    rest = {k: v for k, v in location.items() if k not in ("name", "latitude", "longitude")}
    if any(v not in (None, "") for v in rest.values()):
        fields.extra["location"] = rest


def _read_notes(item: dict[str, Any], fields: EventFields) -> None:
    notes = item.get("notes") or []
    if not isinstance(notes, list) or not all(isinstance(n, dict) for n in notes):
        raise ValueError("notes must be an array of {title, content} objects")
    description = item.get("description")
    others = []
    for note in notes:
        if description is None and note.get("title") == "Description":
            description = note.get("content") or ""
        else:
            others.append(note)
    fields.description = str(description or "")
    if others:
        fields.extra["notes"] = others


def _group_name(item: dict[str, Any]) -> str | None:
    """The name of the slot's first group (``groups: [{"name": ...}]`` as exported, or a
    ``group`` name or object)."""
    groups = item.get("groups")
    group = groups[0] if isinstance(groups, list) and groups else item.get("group")
    if isinstance(group, dict):
        group = group.get("name")
    return group.strip() or None if isinstance(group, str) else None


def read(lines: Lines, options: ParseOptions, result: ParseResult) -> Iterator[Resource]:
    """Each slot's event, as the array is read."""
    seen: dict[str, int] = {}
    for count, (line, item) in enumerate(_items(lines(), result), 1):
        options.reached(count, line)
        if len(seen) >= options.max_components:
            result.error(LineError(line, f"more than {options.max_components} slots in one import"))
            result.stopped = True
            break
        if not isinstance(item, dict):
            result.error(LineError(line, f"a slot must be an object, not {type(item).__name__}"))
            continue
        try:
            fields = slot_fields(item)
        except ValueError as error:
            result.error(LineError(line, str(error), [str(item.get("uid", ""))]))
            continue
        uid = item.get("uid")
        fields.uid = str(uid) if uid else make_uid("timeslot", fields.summary, str(item.get("start")))
        if fields.uid in seen:
            result.error(LineError(line, f"uid {fields.uid} already used on line {seen[fields.uid]}"))
            continue
        try:
            made = resource(fields, line, options.max_instances)
        except ValueError as error:
            result.error(LineError(line, str(error), [fields.uid]))
            continue
        seen[fields.uid] = line
        made.calendar = _group_name(item)
        yield made
    if not seen and not result.errors:
        result.error(LineError(1, "the array holds no slots"))


# --------------------------------------------------------------------------- export


def iso_utc(value: date | datetime) -> str:
    """``2019-09-15T20:44:02.000Z``: floating times and dates are read as UTC."""
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def slot(fields: EventFields, groups: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One exported slot: the seed's keys first, then what else the event carries."""
    extra = dict(fields.extra)
    location: dict[str, Any] | None = None
    if fields.location or fields.geo or "location" in extra:
        location = {"name": fields.location, **extra.pop("location", {})}
        if fields.geo:
            location["latitude"], location["longitude"] = fields.geo
    data: dict[str, Any] = {
        "uid": fields.uid,
        "title": fields.summary,
        "visibility": fields.visibility,
        "start": iso_utc(fields.start) if fields.start is not None else "",
        "end": iso_utc(fields.end) if fields.end is not None else "",
        "location": location,
    }
    notes = [{"title": "Description", "content": fields.description}] if fields.description else []
    notes += extra.pop("notes", [])
    if notes:
        data["notes"] = notes
    if groups is not None:
        data["groups"] = groups
    if fields.component == "VTODO":
        data["type"] = "todo"
    if fields.all_day:
        data["allday"] = True
    if fields.rrule:
        data["rrule"] = fields.rrule
    if fields.tzid and valid_zone(fields.tzid):  # custom VTIMEZONEs cannot travel in JSON
        data["timezone"] = fields.tzid
    data.update(extra)
    return data


class Writer:
    """A JSON array of slots, pretty-printed like the seed."""

    def __init__(self) -> None:
        self.separator = "\n"

    def begin(self) -> str:
        return "["

    def write(self, items: Sequence[ExportItem]) -> str:
        chunk = []
        for item in items:
            groups = None
            if item.group is not None:
                groups = [
                    {"uuid": item.group.uuid, "name": item.group.name, "image": "",
                     "public": item.group.public, "description": item.group.description}
                ]  # fmt: skip
            text = json.dumps(slot(view(item.text), groups), indent=2, ensure_ascii=False)
            chunk.append(self.separator + "  " + text.replace("\n", "\n  "))
            self.separator = ",\n"
        return "".join(chunk)

    def end(self) -> str:
        return "\n]\n"
