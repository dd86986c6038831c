"""The format codecs on their own: detection, line-numbered errors, quirks, bounds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from protocol import events, formats
from protocol.formats import ExportItem, ParseOptions, UnknownFormat, decode, detect, parse
from protocol.ical.values import href_for_uid
from protocol.ical.windows import overlaps
from tests.helpers import sample


def test_detection_tolerates_bom_and_leading_whitespace() -> None:
    assert detect("\ufeff \r\n\tBEGIN:VCALENDAR\r\n") == "ics"
    # X-WR-* properties are written by Apple, Outlook and feeds alike: only Google's PRODID says Google
    assert detect("BEGIN:VCALENDAR\r\nX-WR-CALNAME:Family\r\nBEGIN:VEVENT") == "ics"
    assert detect("BEGIN:VCALENDAR\r\nPRODID:-//Google Inc//Google Calendar 70.9054//EN\r\nBEGIN:VEVENT") == "google"
    assert detect('  [{"uid": 1}]') == "timeslot"
    assert detect('"Subject","Start Date"\r\n') == "outlook"
    assert detect("Subject;Start Date\r\n") == "outlook"
    for text in ("", "hello", "<xml/>"):
        with pytest.raises(UnknownFormat):
            detect(text)


def test_decode_reports_the_line_of_a_bad_byte() -> None:
    with pytest.raises(formats.EncodingProblem) as problem:
        decode(b"line one\nline two\nbad \xff here\n")
    assert problem.value.line == 3
    assert decode("\ufeffé".encode()) == "é"
    assert decode("é\r\n".encode("utf-16")) == "é\r\n"


def test_google_file_is_made_standard() -> None:
    result = parse(decode(sample("google.ics")))
    assert result.format == "google" and not result.errors
    assert (result.calendar_name, result.calendar_description, result.calendar_timezone) == (
        "Family", "Birthdays and school", "Europe/Berlin",
    )  # fmt: skip
    by_uid = {r.uid: r for r in result.resources}
    evening = events.view(by_uid["63dhaee7e9pgtht3l4s8uvh2be@google.com"].text)
    assert evening.tzid == "Europe/Berlin"  # X-WR-TIMEZONE applied to the UTC time
    assert evening.start == datetime(2024, 9, 19, 16, tzinfo=UTC)  # the same instant
    assert evening.location == "School, Main Street 1"
    school = by_uid["5k2j1h0g9f8d7s6a5p4o3i2u1y@google.com"]
    assert school.text.count("EXDATE") == 2  # repeated EXDATE lines both kept
    assert school.end is None and school.recurring  # open-ended weekly rule
    assert not overlaps(school.text, datetime(2024, 9, 4, 5, tzinfo=UTC), datetime(2024, 9, 4, 6, tzinfo=UTC))
    assert overlaps(school.text, datetime(2024, 9, 9, 5, tzinfo=UTC), datetime(2024, 9, 9, 6, tzinfo=UTC))
    assert href_for_uid("63dhaee7e9pgtht3l4s8uvh2be@google.com") == "63dhaee7e9pgtht3l4s8uvh2be@google.com.ics"


def test_recurrence_bounds_and_overrides_kept_together() -> None:
    result = parse(decode(sample("recurring.ics")))
    by_uid = {r.uid: r for r in result.resources}
    weekly = by_uid["weekly@example.org"]
    assert weekly.text.count("BEGIN:VEVENT") == 2 and "BEGIN:VTIMEZONE" in weekly.text
    assert weekly.start == int(datetime(2025, 1, 6, 8, tzinfo=UTC).timestamp())
    assert weekly.end == int(datetime(2025, 4, 1, 8, tzinfo=UTC).timestamp())  # the RDATE is the last
    assert by_uid["forever@example.org"].end is None
    assert by_uid["todo@example.org"].component == "VTODO"
    moved = datetime(2025, 1, 20, 13, 30, tzinfo=UTC)
    assert overlaps(weekly.text, moved, moved.replace(minute=45))
    assert not overlaps(weekly.text, moved.replace(hour=8, minute=30), moved.replace(hour=8, minute=45))


def test_ics_errors_carry_lines_and_fields() -> None:
    text = (
        "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:one\r\nSUMMARY:No start\r\nEND:VEVENT\r\n"
        "BEGIN:VEVENT\r\nUID:two\r\nDTSTART:20250101\r\nDTEND:20250101T100000Z\r\nEND:VEVENT\r\n"
        "BEGIN:VEVENT\r\nUID:three\r\nDTSTART:2025-01-01\r\nEND:VEVENT\r\n"
        "BEGIN:VFREEBUSY\r\nUID:fb\r\nEND:VFREEBUSY\r\nEND:VCALENDAR\r\n"
    )
    result = parse(text)
    assert [(e.line, e.error) for e in result.errors][:2] == [
        (2, "VEVENT has no DTSTART"),
        (6, "DTSTART and DTEND must both be dates or both date-times"),
    ]
    assert result.errors[0].fields == ["UID:one", "SUMMARY:No start"]
    assert result.errors[2].line == 11
    assert result.warnings[0].line == 15 and result.discarded == 1
    broken = parse("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nEND:VTODO\r\n")
    assert broken.errors[0].line == 4 and "does not close BEGIN:VEVENT" in broken.errors[0].error


def test_duplicate_uids_and_missing_uids() -> None:
    twice = "BEGIN:VEVENT\r\nUID:same\r\nDTSTART:20250101T100000Z\r\nEND:VEVENT\r\n"
    result = parse(f"BEGIN:VCALENDAR\r\n{twice}{twice}END:VCALENDAR\r\n")
    # issue 13: two versions of one component are a repair (the newest kept), reported on the other
    assert not result.errors and [r.uid for r in result.resources] == ["same"]
    assert (
        result.warnings[0].line == 6
        and "older version (SEQUENCE 0) of the VEVENT on line 2" in result.warnings[0].error
    )
    nouid = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART:20250101T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    first, second = parse(nouid).resources[0], parse(nouid).resources[0]
    assert first.uid == second.uid and first.uid.startswith("almanac-")  # re-import updates


def test_outlook_csv_keeps_minutes_and_everything_else() -> None:
    result = parse(decode(sample("outlook.csv")))
    assert not result.errors
    review = events.view(result.resources[0].text)
    assert (review.start, review.end) == (datetime(2025, 3, 14, 14, 30), datetime(2025, 3, 14, 16, 15))
    assert review.categories == ["Work", "Review"] and review.priority == 1
    assert review.extra["outlook"]["required attendees"] == "Ada Lovelace;Alan Turing"
    assert str(review.alarm) == "-1 day, 23:45:00"  # 15 minutes before
    holiday = events.view(result.resources[1].text)
    assert holiday.all_day and holiday.klass == "PRIVATE" and holiday.busy_status == "OOF"
    assert str(holiday.end) == "2025-07-15"
    zoned = parse(decode(sample("outlook.csv")), options=ParseOptions(timezone="America/New_York"))
    assert events.view(zoned.resources[0].text).tzid == "America/New_York"


def test_timeslot_csv_variant() -> None:
    result = parse(decode(sample("timeslot_outlook.csv")))
    lunch = events.view(result.resources[0].text)
    assert (lunch.start, lunch.end) == (datetime(2025, 5, 6, 12, 30), datetime(2025, 5, 6, 13, 45))
    assert lunch.location == "Canteen"  # an empty Description does not drop the row
    conference = events.view(result.resources[1].text)
    assert conference.all_day and str(conference.end) == "2025-06-13"


def test_csv_semicolon_delimiter_and_row_errors() -> None:
    text = (
        "Subject;Start Date;Start Time;End Time\r\nA;1/2/2025;9:00 AM;10:30 AM\r\n"
        ";1/2/2025;;\r\nC;1/2/2025;10 o'clock;\r\n"
    )
    result = parse(text)
    assert [(e.line, e.error) for e in result.errors] == [
        (3, "Subject is empty"),
        (4, 'Start Time: "10 o\'clock" is not a time (h:mm:ss AM/PM or HH:MM)'),
    ]
    assert result.errors[0].fields == ["", "1/2/2025", "", ""]


def test_line_errors_past_the_first_thousand_are_counted_not_kept() -> None:
    bad = "".join(f"Row {n};13/45/2025;9:00 AM;10:00 AM\r\n" for n in range(formats.LISTED + 500))
    result = parse("Subject;Start Date;Start Time;End Time\r\nA;1/2/2025;9:00 AM;10:30 AM\r\n" + bad)
    assert len(result.errors) == formats.LISTED and result.errors[-1].line == formats.LISTED + 2
    assert (result.error_count, result.bad_entries, len(result.resources)) == (formats.LISTED + 500,) * 2 + (1,)
    # an entry with several problems is one bad entry
    event = "BEGIN:VEVENT\r\nUID:x\r\nDTSTART:tomorrow\r\nRRULE:FREQ=NEVER\r\nEND:VEVENT"
    twice = parse(f"BEGIN:VCALENDAR\r\n{event}\r\nEND:VCALENDAR\r\n")
    assert (twice.error_count, twice.bad_entries) == (len(twice.errors), 1) and twice.error_count > 1


def test_timeslot_json_keeps_unknown_keys_and_notes() -> None:
    result = parse(decode(sample("timeslot_full.json")))
    assert not result.errors
    exported = json.loads("".join(formats.dump("timeslot", [ExportItem(result.resources[0].text)])))[0]
    original = json.loads(sample("timeslot_full.json"))[0]
    for key in ("uid", "title", "visibility", "start", "end", "media", "notes", "settings"):
        assert exported[key] == original[key], key
    assert exported["location"] == original["location"]


def test_limits_are_enforced_before_storing() -> None:
    text = "".join(f"BEGIN:VEVENT\r\nUID:{n}\r\nDTSTART:20250101T100000Z\r\nEND:VEVENT\r\n" for n in range(5))
    result = parse(f"BEGIN:VCALENDAR\r\n{text}END:VCALENDAR\r\n", options=ParseOptions(max_components=3))
    assert "more than 3 components" in result.errors[-1].error


@pytest.mark.parametrize("name", ["recurring.ics", "google.ics"])
def test_instances_match_recurring_ical_events(name: str) -> None:
    """The fast text-based expansion gives the instances the library gives."""
    import itertools

    import recurring_ical_events
    from icalendar import Calendar

    from protocol.ical.values import OBJECT_COMPONENTS, parse_resource
    from protocol.ical.windows import instances

    def key(component: object) -> str:
        rid = component.get("RECURRENCE-ID")  # type: ignore[attr-defined]
        return f"{component['DTSTART'].dt}|{rid.dt if rid else ''}|{component.get('SUMMARY')}"  # type: ignore[index]

    windows = [(datetime(2024, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
               (datetime(2025, 1, 13, tzinfo=UTC), datetime(2025, 1, 21, tzinfo=UTC))]  # fmt: skip
    for resource in parse(decode(sample(name))).resources:
        for start, end in windows:
            ours = Calendar.from_ical(instances(resource.text, start, end, 5000))
            theirs = recurring_ical_events.of(parse_resource(resource.text), components=sorted(OBJECT_COMPONENTS))
            expected = sorted(key(c) for c in itertools.islice(theirs.between(start, end), 5000))
            assert sorted(key(c) for c in ours.walk() if c.name in OBJECT_COMPONENTS) == expected, resource.uid


def test_encoding_is_checked_in_chunks_with_the_line_of_a_bad_byte() -> None:
    data = b"line one\nline two\nbad \xc3 here\n"
    for size in (1, 2, 7, 1000):
        with pytest.raises(formats.EncodingProblem) as problem:
            formats.encoding_of(data[i : i + size] for i in range(0, len(data), size))
        assert problem.value.line == 3, size
    assert formats.encoding_of([b"a\nb"]) == ("utf-8-sig", 2)
    assert formats.encoding_of(["é\r\n".encode("utf-16")]) == ("utf-16", 2)


class Source:
    """A ``Lines`` source that counts the pieces it has handed out, in ``size``-character pieces."""

    def __init__(self, text: str, size: int | None = None) -> None:
        self.text, self.size, self.read = text, size, 0

    def __call__(self) -> Iterator[str]:
        pieces = (
            formats.lines_of(self.text)()
            if self.size is None
            else (self.text[i : i + self.size] for i in range(0, len(self.text), self.size))
        )
        for piece in pieces:
            self.read += 1
            yield piece


def test_icalendar_is_read_as_a_stream_and_overrides_find_their_series() -> None:
    event = "BEGIN:VEVENT\r\nUID:e{n}\r\nDTSTART:20250101T100000Z\r\nSUMMARY:Event {n}\r\nEND:VEVENT\r\n"
    series = (
        "BEGIN:VEVENT\r\nUID:series\r\nDTSTART:20250106T090000Z\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\n"
        "SUMMARY:Weekly\r\nEND:VEVENT\r\n"
    )
    moved = (
        "BEGIN:VEVENT\r\nUID:se\r\n ries\r\nRECURRENCE-ID:20250113T090000Z\r\nDTSTART:20250113T150000Z\r\n"
        "SUMMARY:Moved\r\nEND:VEVENT\r\n"
    )
    text = "BEGIN:VCALENDAR\r\n" + series + "".join(event.format(n=n) for n in range(200)) + moved + "END:VCALENDAR\r\n"
    source = Source(text)
    result = formats.ParseResult("ics")
    stream = formats.read(source, "ics", ParseOptions(), result)
    first = next(stream)
    lines = text.count("\r\n")
    assert first.uid == "e0" and source.read < lines + 20  # the first pass, and a few lines of the second
    rest = list(stream)
    assert not result.errors and len(rest) == 200 and source.read == 2 * lines
    [weekly] = [r for r in rest if r.uid == "series"]
    assert "SUMMARY:Moved" in weekly.text and "SUMMARY:Weekly" in weekly.text and weekly.line == 2


def test_a_uid_used_twice_far_apart_keeps_the_newest_version() -> None:
    event = "BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTART:20250101T100000Z\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\n"
    text = (
        "BEGIN:VCALENDAR\r\n"
        + event.format(uid="a", summary="S")
        + event.format(uid="b", summary="S")
        + event.format(uid="a", summary="S")
        + "END:VCALENDAR\r\n"
    )
    result = parse(text)
    assert [(r.uid, r.line) for r in result.resources] == [("b", 7), ("a", 2)]  # the same version: the first kept
    assert not result.errors and [w.line for w in result.warnings] == [12]
    newer = text.replace(
        "SUMMARY:S\r\nEND:VEVENT\r\nEND:VCALENDAR", "SUMMARY:New\r\nSEQUENCE:2\r\nEND:VEVENT\r\nEND:VCALENDAR"
    )
    result = parse(newer)
    [a] = [r for r in result.resources if r.uid == "a"]
    assert "SUMMARY:New" in a.text and "SUMMARY:S" not in a.text and [w.line for w in result.warnings] == [2]


def test_timeslot_json_is_read_in_pieces_of_any_size() -> None:
    slots = [
        {"uid": f"u{n}", "title": f"Slot {n}", "start": "2024-01-01T10:00:00.000Z", "end": "2024-01-01T11:00:00.000Z"}
        for n in range(30)
    ]
    minified, pretty = json.dumps(slots), json.dumps(slots, indent=1)
    for text, size in ((minified, 1), (minified, 13), (minified, None), (pretty, 5), (pretty, None)):
        result = formats.ParseResult("timeslot")
        uids = [r.uid for r in formats.read(Source(text, size), "timeslot", ParseOptions(), result)]
        assert uids == [f"u{n}" for n in range(30)] and not result.errors, size
    broken = (
        '[{"uid": "a", "title": "A", "start": "2024-01-01T10:00:00Z", "end": "2024-01-01T11:00:00Z"},\n 12,\n {"x": ]'
    )
    for size in (1, 4, None):
        result = formats.ParseResult("timeslot")
        assert [r.uid for r in formats.read(Source(broken, size), "timeslot", ParseOptions(), result)] == ["a"]
        assert [(e.line, e.error) for e in result.errors] == [
            (2, "a slot must be an object, not int"),
            (3, "invalid JSON: Expecting value"),
        ]
        assert result.stopped


def test_outlook_csv_after_blank_lines_keeps_its_line_numbers() -> None:
    text = "\r\n\r\nSubject,Start Date,Start Time\r\nA,2024-01-05,10:00\r\nB,someday,10:00\r\n"
    result = parse(text)
    assert [r.uid for r in result.resources][:1] and [r.line for r in result.resources] == [4]
    assert [e.line for e in result.errors] == [5]
