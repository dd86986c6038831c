"""What the calendar pages read and write of a series, pure: occurrences read from the index's
spans agree with the expanded text (the fast path is an optimisation, never another answer), and
a series is edited as calendar programs do (one occurrence, this and the following, all)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from protocol.ical.agenda import _overlaps, _parsed, _quick, instance_key, key_value, occurrences
from protocol.ical.resources import resource_from_calendar
from protocol.ical.series import (
    CUSTOM,
    Repeat,
    end_before,
    exclude,
    override,
    repeat_of,
    repeat_rule,
    shift,
    split,
)
from protocol.ical.values import parse_resource
from storage.model import Spanned

START, END = datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 12, tzinfo=UTC)
PARIS = ZoneInfo("Europe/Paris")


def indexed(*lines: str) -> Spanned:
    """An event as the store's index gives it in the window."""
    text = "\r\n".join(["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//t//EN", *lines, "END:VCALENDAR", ""])
    resource = resource_from_calendar(parse_resource(text))
    low, high = int(START.timestamp()), int(END.timestamp())
    spans = [s for s in resource.spans if s[0] < high and (s[1] > low or s[0] == s[1] >= low)]
    return Spanned(1, 1, resource.uid, resource.component, resource.text, spans)


def seen(found: list) -> list[tuple]:  # type: ignore[type-arg]
    return sorted((o.start, o.end, o.summary, o.location, o.key) for o in found)


@settings(max_examples=60, deadline=None)
@given(
    day=st.integers(0, 40),
    minute=st.integers(0, 24 * 60 - 1),
    length=st.integers(0, 3 * 24 * 60),
    kind=st.sampled_from(["utc", "zoned", "weekly", "daily-count", "all-day", "days"]),
    summary=st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=30),
)
def test_occurrences_from_spans_agree_with_the_expanded_text(
    day: int, minute: int, length: int, kind: str, summary: str
) -> None:
    begin = START + timedelta(days=day, minutes=minute)
    finish = begin + timedelta(minutes=length)
    escaped = summary.replace("\\", "\\\\").replace(",", "\\,").replace(";", "\\;")
    times = {
        "utc": [f"DTSTART:{begin:%Y%m%dT%H%M%SZ}", f"DTEND:{finish:%Y%m%dT%H%M%SZ}"],
        "zoned": [f"DTSTART;TZID=Europe/Paris:{begin:%Y%m%dT%H%M%S}", f"DURATION:PT{length}M"],
        "weekly": [f"DTSTART;TZID=Europe/Paris:{begin:%Y%m%dT%H%M%S}", f"DURATION:PT{length}M",
                   "RRULE:FREQ=WEEKLY;BYDAY=MO,TH"],
        "daily-count": [f"DTSTART:{begin:%Y%m%dT%H%M%SZ}", f"DTEND:{finish:%Y%m%dT%H%M%SZ}",
                        "RRULE:FREQ=DAILY;COUNT=9"],
        "all-day": [f"DTSTART;VALUE=DATE:{begin:%Y%m%d}"],
        "days": [f"DTSTART;VALUE=DATE:{begin:%Y%m%d}",
                 f"DTEND;VALUE=DATE:{begin + timedelta(days=1 + length % 4):%Y%m%d}"],
    }[kind]  # fmt: skip
    item = indexed("BEGIN:VEVENT", "UID:u", "DTSTAMP:20260101T000000Z", *times, f"SUMMARY:{escaped}",
                   "LOCATION:Room\\, 4", "END:VEVENT")  # fmt: skip
    assume(item.spans)  # the index finds it in the window
    if length < 24 * 60 or kind in ("all-day", "days"):  # longer ones are inexact in the index
        assert _quick(item) is not None, kind  # none of these needs a parse
    shown, _ = occurrences([item], START, END, PARIS, 5000)
    parsed = [o for o in _parsed(item, START, END, PARIS, 5000) if _overlaps(o, START, END, PARIS)]
    assert seen(shown) == seen(parsed)


def test_instance_keys_name_their_recurrence_ids() -> None:
    moment = datetime(2026, 12, 10, 17, tzinfo=UTC)
    assert instance_key(moment.astimezone(PARIS)) == "1796922000" and key_value("1796922000") == moment
    assert instance_key(date(2026, 12, 24)) == "20261224" and key_value("20261224") == date(2026, 12, 24)


SERIES = "\r\n".join([
    "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//t//EN", "BEGIN:VEVENT", "UID:s", "DTSTAMP:20260101T000000Z",
    "DTSTART;TZID=Europe/Paris:20261207T090000", "DTEND;TZID=Europe/Paris:20261207T100000",
    "RRULE:FREQ=DAILY;COUNT=10", "EXDATE;TZID=Europe/Paris:20261209T090000", "SUMMARY:Daily", "END:VEVENT",
    "BEGIN:VEVENT", "UID:s", "DTSTAMP:20260101T000000Z", "RECURRENCE-ID;TZID=Europe/Paris:20261214T090000",
    "DTSTART;TZID=Europe/Paris:20261214T150000", "DTEND;TZID=Europe/Paris:20261214T160000", "SUMMARY:Moved",
    "END:VEVENT", "END:VCALENDAR", "",
])  # fmt: skip


def paris(day: int, hour: int = 9) -> datetime:
    return datetime(2026, 12, day, hour, tzinfo=PARIS).astimezone(UTC)


def starts(calendar: object) -> list[str]:
    item = indexed(*calendar.to_ical().decode().split("\r\n")[3:-2])  # type: ignore[attr-defined]
    found, _ = occurrences([item], START, END, PARIS, 100)
    return [f"{o.start.astimezone(PARIS):%d %H}" for o in found]  # type: ignore[union-attr]


def test_one_occurrence_overridden_and_excluded() -> None:
    data = parse_resource(SERIES)
    assert override(data, paris(14)) is override(data, paris(14))  # the existing override
    instance = override(data, paris(10))
    assert str(instance["RECURRENCE-ID"].to_ical().decode()) == "20261210T090000"
    exclude(data, paris(11))
    assert starts(data) == ["07 09", "08 09", "10 09", "12 09", "13 09", "14 15", "15 09", "16 09"]


def test_this_and_the_following_ones() -> None:
    data = parse_resource(SERIES)
    follower = split(data, paris(12), "t")
    assert end_before(data, paris(12))
    assert starts(data) == ["07 09", "08 09", "10 09", "11 09"]
    # the 5 instances from the 12th on (the 9th was excluded before it: COUNT counts it), the override with them
    assert starts(follower) == ["12 09", "13 09", "14 15", "15 09", "16 09"]
    assert "COUNT=5" in follower.to_ical().decode() and follower.walk("VEVENT")[1]["UID"] == "t"
    assert not end_before(parse_resource(SERIES), paris(7))  # from the first: nothing is left


def test_all_of_them_moved_with_their_exceptions() -> None:
    data = parse_resource(SERIES)
    master = data.walk("VEVENT")[0]
    moved = master["DTSTART"].dt + timedelta(hours=2)
    master.pop("DTSTART")
    master.pop("DTEND")
    master.add("DTSTART", moved)
    master.add("DTEND", moved + timedelta(hours=1))
    shift(data, timedelta(hours=2))
    assert starts(data) == ["07 11", "08 11", "10 11", "11 11", "12 11", "13 11", "14 15", "15 11", "16 11"]


def test_an_all_day_series() -> None:
    data = parse_resource(SERIES.replace("DTSTART;TZID=Europe/Paris:20261207T090000", "DTSTART;VALUE=DATE:20261207")
                          .replace("DTEND;TZID=Europe/Paris:20261207T100000", "DTEND;VALUE=DATE:20261208")
                          .replace("EXDATE;TZID=Europe/Paris:20261209T090000", "EXDATE;VALUE=DATE:20261209")
                          .split("BEGIN:VEVENT\r\nUID:s\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID")[0]
                          + "END:VCALENDAR\r\n")  # fmt: skip
    override(data, date(2026, 12, 10))["SUMMARY"] = "Changed"
    exclude(data, date(2026, 12, 11))
    assert end_before(data, date(2026, 12, 13))
    text = data.to_ical().decode()
    assert "UNTIL=20261212" in text and "EXDATE;VALUE=DATE:20261211" in text.replace("\r\n ", "")
    assert "RECURRENCE-ID;VALUE=DATE:20261210" in text


def test_the_forms_repeat_rules() -> None:
    start = datetime(2026, 12, 8, 18, tzinfo=PARIS)
    weekly = Repeat("WEEKLY", days=["TH", "TU"], until=date(2027, 1, 31))
    rule = repeat_rule(weekly, start, PARIS)
    assert rule == "FREQ=WEEKLY;BYDAY=TU,TH;UNTIL=20270131T225959Z"
    assert repeat_of(rule, PARIS) == Repeat("WEEKLY", days=["TU", "TH"], until=date(2027, 1, 31))
    assert (
        repeat_rule(Repeat("MONTHLY", interval=2, count=6), date(2026, 12, 8), None)
        == "FREQ=MONTHLY;INTERVAL=2;COUNT=6"
    )
    assert (
        repeat_rule(Repeat("YEARLY", until=date(2030, 1, 1)), date(2026, 12, 8), None) == "FREQ=YEARLY;UNTIL=20300101"
    )
    assert repeat_rule(Repeat(), start, PARIS) is None
    assert repeat_of("FREQ=MONTHLY;BYDAY=2TU", None).frequency == CUSTOM  # kept as it is
    for wrong in (Repeat("HOURLY"), Repeat("DAILY", interval=0), Repeat("WEEKLY", days=["XX"]),
                  Repeat("DAILY", until=date(2026, 1, 1)), Repeat("DAILY", count=0)):  # fmt: skip
        try:
            repeat_rule(wrong, start, PARIS)
        except ValueError:
            continue
        raise AssertionError(f"{wrong} was accepted")
