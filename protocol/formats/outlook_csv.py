"""Microsoft Outlook calendar CSV: the real 22-column export and Timeslot's underscore variant.

Real Outlook: quoted English headers ("Subject","Start Date",...), dates ``M/D/YYYY``, times
``h:mm:ss AM/PM``, local times without a zone, CRLF. Timeslot's variant: an unquoted header
``Subject,Start_Date,Start_Time,End_Date,End_Time,...``, ISO dates and 24-hour times, and an
optional ``uid`` column. Both are read by one parser that matches headers by name (case,
spaces and underscores do not matter). Unknown columns are an error: nothing is dropped.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import date, datetime, time, timedelta

import recurring_ical_events

from protocol.events import EventFields, localize, resource, view, wall_clock
from protocol.formats import ExportItem, LineError, Lines, ParseOptions, ParseResult, whole_lines
from protocol.ical.resources import Resource
from protocol.ical.values import make_uid, parse_resource
from protocol.ical.windows import window_calendar

OUTLOOK_HEADER = [
    "Subject", "Start Date", "Start Time", "End Date", "End Time", "All day event",
    "Reminder on/off", "Reminder Date", "Reminder Time", "Meeting Organizer",
    "Required Attendees", "Optional Attendees", "Meeting Resources", "Billing Information",
    "Categories", "Description", "Location", "Mileage", "Priority", "Private", "Sensitivity",
    "Show time as",
]  # fmt: skip
TIMESLOT_HEADER = [
    "Subject", "Start_Date", "Start_Time", "End_Date", "End_Time", "All_Day_Event",
    "Categories", "Show_Time", "Location", "Description", "uid",
]  # fmt: skip
#: Outlook columns iCalendar has no property for: kept in the event's extra data
KEPT_COLUMNS = (
    "meeting organizer", "required attendees", "optional attendees", "meeting resources",
    "billing information", "mileage",
)  # fmt: skip
KNOWN_COLUMNS = frozenset([re.sub(r"[\s_]+", " ", h.lower()) for h in OUTLOOK_HEADER + TIMESLOT_HEADER])
_TRUE = {"true", "yes", "1", "waar", "x", "on"}
_FALSE = {"false", "no", "0", "onwaar", "", "off"}
_PRIORITY_IN = {"high": 1, "normal": None, "low": 9}
_SHOW_AS = {"0": "FREE", "1": "TENTATIVE", "2": "BUSY", "3": "OOF", "4": "WORKINGELSEWHERE"}
_SHOW_AS_OUT = {v: k for k, v in _SHOW_AS.items()}
#: recurring events are written one row per instance, up to this many, up to a year ahead
MAX_ROWS_PER_EVENT = 1000


def normalize(name: str) -> str:
    return re.sub(r"[\s_]+", " ", name.strip().lower())


def sniff_delimiter(header_line: str) -> str:
    counts = {d: header_line.count(d) for d in ",;\t|"}
    return max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","


def read(lines: Lines, options: ParseOptions, result: ParseResult) -> Iterator[Resource]:
    """Each row's event, as the rows are read."""
    source = whole_lines(lines())
    blank = 0  # empty lines before the header
    first_line = next(source, "")
    while first_line and not first_line.strip():
        blank, first_line = blank + 1, next(source, "")
    delimiter = options.delimiter or sniff_delimiter(first_line)
    reader = csv.reader(itertools.chain([first_line], source), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as error:
        result.error(LineError(blank + 1, f"cannot read the CSV header: {error}"))
        result.stopped = True
        return
    keys = [normalize(h) for h in header]
    unknown = [h for h, k in zip(header, keys, strict=True) if k not in KNOWN_COLUMNS]
    if unknown:
        result.error(LineError(blank + 1, "unknown columns: " + ", ".join(repr(u) for u in unknown), header))
        result.stopped = True
        return
    missing = [c for c in ("subject", "start date") if c not in keys]
    if missing:
        result.error(LineError(blank + 1, "missing required columns: " + ", ".join(missing), header))
        result.stopped = True
        return
    duplicates = [k for k, n in Counter(keys).items() if n > 1]
    if duplicates:
        result.error(LineError(blank + 1, "repeated columns: " + ", ".join(duplicates), header))
        result.stopped = True
        return
    seen_uids: dict[str, int] = {}
    derived: Counter[str] = Counter()
    line, count = blank + reader.line_num, 0
    try:
        for row in reader:
            start_line, line = line + 1, blank + reader.line_num
            options.reached(start_line, start_line)
            if not any(cell.strip() for cell in row):
                continue
            if count >= options.max_components:
                result.error(LineError(start_line, f"more than {options.max_components} rows in one import"))
                result.stopped = True
                break
            if len(row) != len(keys):
                result.error(LineError(start_line, f"expected {len(keys)} fields, found {len(row)}", row))
                continue
            record = dict(zip(keys, (cell.strip() for cell in row), strict=True))
            try:
                fields = _fields(record, options.timezone)
            except ValueError as error:
                result.error(LineError(start_line, str(error), row))
                continue
            uid = record.get("uid", "")
            if not uid:
                key = "\x1f".join(row)
                derived[key] += 1
                uid = make_uid("csv", key, str(derived[key]))
            if uid in seen_uids:
                result.error(LineError(start_line, f"uid {uid} already used on line {seen_uids[uid]}", row))
                continue
            seen_uids[uid] = start_line
            fields.uid = uid
            count += 1
            yield resource(fields, start_line, options.max_instances)
    except csv.Error as error:
        result.error(LineError(blank + reader.line_num, f"malformed CSV: {error}"))
        result.stopped = True
    if not count and not result.errors:
        result.error(LineError(1, "the file has a header but no events"))


def _boolean(value: str, column: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"{column}: {value!r} is not True or False")


def _date(value: str, column: str) -> date:
    for pattern in ("%m/%d/%Y", "%Y-%m-%d", "%d.%m.%Y", "%m/%d/%y"):
        try:
            return datetime.strptime(value, pattern).date()
        except ValueError:
            continue
    raise ValueError(f"{column}: {value!r} is not a date (M/D/YYYY or YYYY-MM-DD)")


def _time(value: str, column: str) -> time:
    cleaned = re.sub(r"\s+", " ", value.upper().replace(".", ""))
    for pattern in ("%I:%M:%S %p", "%I:%M %p", "%H:%M:%S", "%H:%M"):
        try:
            return datetime.strptime(cleaned, pattern).time()
        except ValueError:
            continue
    raise ValueError(f"{column}: {value!r} is not a time (h:mm:ss AM/PM or HH:MM)")


def _fields(record: dict[str, str], zone: str | None) -> EventFields:
    subject = record.get("subject", "")
    if not subject:
        raise ValueError("Subject is empty")
    start_day = _date(record["start date"], "Start Date") if record["start date"] else None
    if start_day is None:
        raise ValueError("Start Date is empty")
    start_clock = record.get("start time", "")
    all_day = _boolean(record.get("all day event", ""), "All day event") or not start_clock
    end_day = _date(record["end date"], "End Date") if record.get("end date") else None
    end_clock = record.get("end time", "")
    fields = EventFields(
        summary=subject,
        description=record.get("description", ""),
        location=record.get("location", ""),
    )
    if all_day:
        fields.start = start_day
        fields.end = end_day if end_day and end_day > start_day else start_day + timedelta(days=1)
    else:
        start = datetime.combine(start_day, _time(start_clock, "Start Time"))
        if end_clock:
            end = datetime.combine(end_day or start_day, _time(end_clock, "End Time"))
        elif end_day:
            end = datetime.combine(end_day, start.time())
        else:
            end = start
        if end < start:
            raise ValueError("the end is before the start")
        fields.start, fields.end = localize(start, zone), localize(end, zone)
    if end_day and all_day and end_day < start_day:
        raise ValueError("the end is before the start")
    if _boolean(record.get("reminder on/off", ""), "Reminder on/off") and record.get("reminder date"):
        reminder = datetime.combine(
            _date(record["reminder date"], "Reminder Date"),
            _time(record["reminder time"], "Reminder Time") if record.get("reminder time") else time(),
        )
        begin = fields.start if isinstance(fields.start, datetime) else datetime.combine(start_day, time())
        fields.alarm = reminder - begin.replace(tzinfo=None)
    fields.categories = [c.strip() for c in re.split(r"[;,]", record.get("categories", "")) if c.strip()]
    priority = record.get("priority", "").lower()
    if priority:
        if priority not in _PRIORITY_IN:
            raise ValueError(f"Priority: {record['priority']!r} is not High, Normal or Low")
        fields.priority = _PRIORITY_IN[priority]
    sensitivity = record.get("sensitivity", "").lower()
    if _boolean(record.get("private", ""), "Private") or sensitivity == "private":
        fields.klass = "PRIVATE"
    elif sensitivity == "confidential":
        fields.klass = "CONFIDENTIAL"
    elif sensitivity not in ("", "normal"):
        fields.extra.setdefault("outlook", {})["sensitivity"] = record["sensitivity"]
    show_as = record.get("show time as") or record.get("show time") or ""
    if show_as:
        if show_as not in _SHOW_AS:
            raise ValueError(f"Show time as: {show_as!r} is not 0 to 4")
        fields.transparent = show_as == "0"
        fields.busy_status = _SHOW_AS[show_as] if show_as != "2" else None
    kept = {c: record[c] for c in KEPT_COLUMNS if record.get(c)}
    if kept:
        fields.extra.setdefault("outlook", {}).update(kept)
    return fields


# --------------------------------------------------------------------------- export


def _us_date(value: date) -> str:
    return f"{value.month}/{value.day}/{value.year}"


def _us_time(value: date) -> str:
    if not isinstance(value, datetime):
        value = datetime.combine(value, time())
    hour = value.hour % 12 or 12
    return f"{hour}:{value.minute:02d}:{value.second:02d} {'AM' if value.hour < 12 else 'PM'}"


def _instances(text: str, fields: EventFields, horizon: datetime) -> Iterator[EventFields]:
    """The fields of an event, one per instance when it recurs (CSV cannot carry RRULE)."""
    if not fields.rrule:
        yield fields
        return
    begin = fields.start
    if begin is None:
        yield fields
        return
    # naive bounds are read in the event's own zone
    begin = begin.replace(tzinfo=None) if isinstance(begin, datetime) else datetime.combine(begin, time())
    windowed = window_calendar(parse_resource(text), begin - timedelta(days=1), horizon, MAX_ROWS_PER_EVENT + 1)
    occurrences = recurring_ical_events.of(windowed).between(begin, horizon)
    for count, occurrence in enumerate(occurrences):
        if count >= MAX_ROWS_PER_EVENT:
            break
        start = occurrence["DTSTART"].dt
        end = occurrence["DTEND"].dt if "DTEND" in occurrence else start
        yield replace(fields, start=start, end=end, rrule=None)


def _row(fields: EventFields, flavor: str, zone: str | None) -> list[str]:
    start, end = fields.start, fields.end
    assert start is not None
    if end is None:  # RFC 5545: a day without DTEND lasts the day; a time, an instant
        end = start + timedelta(days=1) if fields.all_day else start
    start, end = wall_clock(start, zone), wall_clock(end, zone)
    all_day = fields.all_day
    kept = fields.extra.get("outlook", {})
    if flavor == "timeslot":
        clock = (lambda v: "") if all_day else (lambda v: v.strftime("%H:%M:%S"))
        return [
            fields.summary, start.isoformat()[:10], clock(start), end.isoformat()[:10], clock(end),
            "TRUE" if all_day else "FALSE", ";".join(fields.categories),
            _SHOW_AS_OUT.get(fields.busy_status or "", "0" if fields.transparent else ""),
            fields.location, fields.description, fields.uid,
        ]  # fmt: skip
    clock = (lambda v: "") if all_day else _us_time
    reminder_on, reminder_date, reminder_time = "False", "", ""
    if fields.alarm is not None:
        moment: datetime
        if isinstance(fields.alarm, timedelta):
            base = start if isinstance(start, datetime) else datetime.combine(start, time())
            moment = base + fields.alarm
        else:
            shown = wall_clock(fields.alarm, zone)
            moment = shown if isinstance(shown, datetime) else datetime.combine(shown, time())
        reminder_on, reminder_date, reminder_time = "True", _us_date(moment), _us_time(moment)
    priority = {1: "High", 2: "High", 3: "High", 4: "High", 9: "Low", 8: "Low", 7: "Low", 6: "Low"}
    sensitivity = {"PRIVATE": "Private", "CONFIDENTIAL": "Confidential"}.get(
        fields.klass or "", kept.get("sensitivity", "Normal")
    )
    return [
        fields.summary, _us_date(start), clock(start), _us_date(end), clock(end),
        "True" if all_day else "False", reminder_on, reminder_date, reminder_time,
        kept.get("meeting organizer", ""), kept.get("required attendees", ""),
        kept.get("optional attendees", ""), kept.get("meeting resources", ""),
        kept.get("billing information", ""), ";".join(fields.categories), fields.description,
        fields.location, kept.get("mileage", ""), priority.get(fields.priority or 5, "Normal"),
        "True" if fields.klass == "PRIVATE" else "False", sensitivity,
        _SHOW_AS_OUT.get(fields.busy_status or "", "0" if fields.transparent else "2"),
    ]  # fmt: skip


class Writer:
    """CSV rows for the events (todos and journals have no place in a calendar CSV).

    ``timezone`` converts zoned times to that zone's wall clock (default: each event's own);
    recurring events are written one row per instance until ``horizon`` (default: a year ahead).
    """

    def __init__(self, flavor: str = "outlook", timezone: str | None = None, horizon: datetime | None = None) -> None:
        if flavor not in ("outlook", "timeslot"):
            raise ValueError(f"unknown CSV flavor {flavor!r}")
        self.flavor = flavor
        self.timezone = timezone
        self.horizon = horizon or datetime.now().replace(microsecond=0) + timedelta(days=365)
        self.buffer = io.StringIO()
        self.csv = csv.writer(
            self.buffer, quoting=csv.QUOTE_ALL if flavor == "outlook" else csv.QUOTE_MINIMAL, lineterminator="\r\n"
        )

    def _take(self) -> str:
        text = self.buffer.getvalue()
        self.buffer.seek(0)
        self.buffer.truncate()
        return text

    def begin(self) -> str:
        self.csv.writerow(TIMESLOT_HEADER if self.flavor == "timeslot" else OUTLOOK_HEADER)
        return self._take()

    def write(self, items: Sequence[ExportItem]) -> str:
        for item in items:
            fields = view(item.text)
            if fields.component != "VEVENT" or fields.start is None:
                continue
            for instance in _instances(item.text, fields, self.horizon):
                self.csv.writerow(_row(instance, self.flavor, self.timezone))
        return self._take()

    def end(self) -> str:
        return ""
