"""Which instances a window holds (protocol/ical/windows.py), at its edges: RFC 4791 9.9's overlap rule
for instances and index bounds, the index-bounds shortcuts that spare a parse, the exact check
behind them, and the windowed copy of a series every door expands with (``window_calendar``),
against recurring-ical-events walking the whole series."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import recurring_ical_events
from icalendar import Calendar, Timezone

from protocol.ical import walk
from protocol.ical.resources import block_spans
from protocol.ical.values import FLOATING_SLACK, MAX_EPOCH, epoch, parse_resource
from protocol.ical.walk import (
    Bounds,
    _fixed_steps,
    _fixed_walk,
    _last_start,
    local_rule,
    rule_never_matches,
    timing,
    timing_bounds,
    timing_instances,
)
from protocol.ical.windows import clearly_overlaps, in_window, in_window_bounds, instances, overlaps, window_calendar

NEW_YORK = Timezone.from_tzid("America/New_York").to_ical().decode()  # west of UTC: its wall clock is behind
HOUR = 3600


def resource(*components: str, zones: str = "") -> str:
    body = "".join(components)
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{zones}{body}END:VCALENDAR\r\n"


def component(name: str, *lines: str) -> str:
    every = (f"BEGIN:{name}", "UID:w", "DTSTAMP:20250101T000000Z", *lines, f"END:{name}")
    return "".join(f"{line}\r\n" for line in every)


def utc(text: str) -> datetime:
    return datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def test_an_instance_overlaps_a_window_as_rfc_4791_says() -> None:
    """[begin, finish) overlaps [low, high) when begin < high and finish > low; one of no
    length when low <= begin < high. Unknown bounds reach the end of time."""
    cases = {
        (20, 25, 20, 30): True,
        (10, 20, 20, 30): False,  # ends where the window starts
        (10, 21, 20, 30): True,
        (30, 40, 20, 30): False,  # starts where it ends
        (29, 40, 20, 30): True,
        (20, 20, 20, 30): True,  # no length, at the start
        (15, 15, 20, 30): False,  # no length, before
        (30, 30, 20, 30): False,  # no length, at the end
        (None, None, 20, 30): True,
        (None, 20, 20, 30): False,
        (30, None, 20, 30): False,
    }
    for (begin, finish, low, high), inside in cases.items():
        assert in_window_bounds(begin, finish, low, high) is inside, (begin, finish, low, high)


def test_index_bounds_clearly_overlap_only_without_their_floating_slack() -> None:
    """An object's index bounds are widened by FLOATING_SLACK either side (a floating time may
    be any zone's); they clearly overlap a window only when they still do without it."""
    start, end = 100 * HOUR, 101 * HOUR
    assert clearly_overlaps(start - FLOATING_SLACK, end + FLOATING_SLACK, start, end)  # exactly the window
    assert not clearly_overlaps(end - FLOATING_SLACK, end + HOUR + FLOATING_SLACK, start, end)  # begins at its end
    assert not clearly_overlaps(start - HOUR - FLOATING_SLACK, start + FLOATING_SLACK, start, end)  # ends at start
    assert not clearly_overlaps(start + 2 * HOUR - FLOATING_SLACK, start + 3 * HOUR + FLOATING_SLACK, start, end)
    assert clearly_overlaps(None, None, start, end) and clearly_overlaps(None, end + FLOATING_SLACK, start, end)


def test_index_bounds_decide_without_a_parse_when_they_can() -> None:
    """in_window reads the text only when the bounds cannot tell: an object that ends by the
    window's start or begins at its end is out, a plain one whose bounds clearly overlap is in
    (the text here would not even parse)."""
    start, end = 100 * HOUR, 101 * HOUR
    unreadable = "not iCalendar"
    assert not in_window(unreadable, start - HOUR, start, False, start, end)
    assert not in_window(unreadable, start - HOUR, start, True, start, end)
    assert not in_window(unreadable, end, end + HOUR, False, start, end)
    assert in_window(unreadable, start - FLOATING_SLACK, end + FLOATING_SLACK, False, start, end)
    with pytest.raises(ValueError):
        in_window(unreadable, start - FLOATING_SLACK, end + FLOATING_SLACK, True, start, end)  # a series: exactly


def test_the_exact_check_behind_the_bounds() -> None:
    """What the bounds leave open: an event of no length at the window's start is inside; a
    floating event whose slack reaches into the window but whose hours do not is outside."""
    start, end = datetime(2030, 1, 1, 8, tzinfo=UTC), datetime(2030, 1, 1, 9, tzinfo=UTC)
    instant = resource(component("VEVENT", "DTSTART:20300101T080000Z"))
    assert in_window(instant, epoch(start), epoch(start), False, epoch(start), epoch(end))
    floating = resource(component("VEVENT", "DTSTART:20300101T100000", "DTEND:20300101T110000"))
    ten, eleven = epoch(datetime(2030, 1, 1, 10, tzinfo=UTC)), epoch(datetime(2030, 1, 1, 11, tzinfo=UTC))
    low, high = ten - FLOATING_SLACK, eleven + FLOATING_SLACK
    assert not in_window(floating, low, high, False, epoch(start), epoch(end))
    assert in_window(floating, low, high, False, epoch(start), epoch(end) + 2 * HOUR)


@pytest.mark.parametrize(
    ("lines", "window", "inside"),
    [
        (("DTSTART:20300101T090000Z", "DTEND:20300101T100000Z"), ("20300101T080000Z", "20300101T090000Z"), False),
        (("DTSTART:20300101T070000Z", "DTEND:20300101T080000Z"), ("20300101T080000Z", "20300101T090000Z"), False),
        (("DTSTART:20300101T070000Z", "DTEND:20300101T080001Z"), ("20300101T080000Z", "20300101T090000Z"), True),
        (("DTSTART:20300101T075959Z",), ("20300101T080000Z", "20300101T090000Z"), False),  # no length, before
        (("DTSTART:20300101T080000Z",), ("20300101T080000Z", "20300101T090000Z"), True),  # no length, at the start
    ],
)
def test_overlaps_at_the_edges_of_a_window(lines: tuple[str, ...], window: tuple[str, str], inside: bool) -> None:
    assert overlaps(resource(component("VEVENT", *lines)), utc(window[0]), utc(window[1])) is inside


def test_todos_have_instances_in_a_window_too() -> None:
    """A recurring todo is found far from its start, and one without any date is in every
    window (RFC 4791 9.9)."""
    start, end = utc("20300101T000000Z"), utc("20300102T000000Z")
    series = component("VTODO", "DTSTART:20250101T090000Z", "DUE:20250101T100000Z", "RRULE:FREQ=DAILY")
    assert overlaps(resource(series), start, end)
    assert overlaps(resource(component("VTODO", "SUMMARY:some day")), start, end)


#: series, each in a window far from its start: (the series' lines, its zones, window start, end)
SERIES = {
    "west of UTC, with an EXDATE in the window": (
        ("DTSTART;TZID=America/New_York:20250106T100000", "DTEND;TZID=America/New_York:20250106T110000",
         "RRULE:FREQ=DAILY", "EXDATE;TZID=America/New_York:20260302T100000"),
        NEW_YORK, "20260301T153000Z", "20260306T000000Z",  # 10:30 in New York: the 1 March one is under way
    ),
    "floating": (("DTSTART:20250106T100000", "DURATION:PT1H", "RRULE:FREQ=WEEKLY;BYDAY=MO,TH"), "",
                 "20260301T000000Z", "20260320T000000Z"),
    "all day, with a count": (("DTSTART;VALUE=DATE:20250101", "RRULE:FREQ=MONTHLY;COUNT=20"), "",
                              "20260601T000000Z", "20270101T000000Z"),  # past its end in August 2026
    "of no length, one at the window's start": (("DTSTART:20250101T120000Z", "RRULE:FREQ=DAILY"), "",
                                                "20260301T120000Z", "20260304T120000Z"),
    "a todo with a due time": (("DTSTART:20250101T090000Z", "DUE:20250101T100000Z", "RRULE:FREQ=DAILY;INTERVAL=2"),
                               "", "20260301T000000Z", "20260308T000000Z"),
}  # fmt: skip


def walked(calendar: Calendar, start: datetime, end: datetime) -> list[tuple[object, object]]:
    """Each instance's start and end (or due) as recurring-ical-events gives them."""
    found = recurring_ical_events.of(calendar, components=["VEVENT", "VTODO"]).between(start, end)
    return sorted((c.decoded("DTSTART"), c.decoded("DTEND" if "DTEND" in c else "DUE", None)) for c in found)


@pytest.mark.parametrize("name", SERIES)
def test_a_windowed_series_has_the_windows_instances_and_no_more(name: str) -> None:
    """window_calendar's copy of a series gives the instances the whole series has in the
    window (zone, exclusions, count, a todo's due time kept), with UNTIL at the last of them,
    and at most ``limit`` of them."""
    lines, zones, low, high = SERIES[name]
    kind = "VTODO" if any(line.startswith("DUE") for line in lines) else "VEVENT"
    calendar = parse_resource(resource(component(kind, *lines), zones=zones))
    start, end = utc(low), utc(high)
    expected = walked(calendar, start, end)
    assert len(expected) >= 3, expected
    windowed = window_calendar(calendar, start, end, 100)
    assert walked(windowed, start, end) == expected
    [series] = windowed.walk(kind)
    until = series["RRULE"]["UNTIL"][0]
    last = expected[-1][0]
    assert until == (last.astimezone(UTC) if isinstance(last, datetime) and last.tzinfo else last)
    assert "COUNT" not in series["RRULE"]
    limited = window_calendar(calendar, start, end, 2)
    assert walked(limited, start, end) == expected[:2]


def test_instances_carry_the_zones_they_use() -> None:
    """The instances of a zoned series come with its VTIMEZONE (RFC 5545 3.6.5), even those of
    a window that begins in the middle of one."""
    lines, zones, low, high = SERIES["west of UTC, with an EXDATE in the window"]
    text = instances(resource(component("VEVENT", *lines), zones=zones), utc(low), utc(high), 3)
    assert text.count("BEGIN:VTIMEZONE") == 1 and "TZID:America/New_York" in text
    starts = [c.decoded("DTSTART") for c in parse_resource(text).walk("VEVENT")]
    assert [s.date() for s in starts] == [date(2026, 3, d) for d in (1, 3, 4)]  # the 2nd excluded
    assert all(s.hour == 10 and str(s.tzinfo) == "America/New_York" for s in starts)


@pytest.mark.parametrize("zone", [None, "America/New_York", "Asia/Tokyo"])
@pytest.mark.parametrize(("day", "low", "high"), [
    ("00010102", datetime(1, 1, 1, tzinfo=UTC), datetime(1, 1, 11, tzinfo=UTC)),
    ("99991228", datetime(9999, 12, 20, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, tzinfo=UTC)),
])  # fmt: skip
def test_instances_at_the_ends_of_time(zone: str | None, day: str, low: datetime, high: datetime) -> None:
    """A window at either end of the dates Python holds, read on a wall clock west or east of
    UTC, is no overflow: the instances of a floating series, a zoned series and a single event
    come."""
    asker = ZoneInfo(zone) if zone else None
    for lines, zones in (
        ([f"DTSTART:{day}T100000", "DURATION:PT1H", "RRULE:FREQ=DAILY;COUNT=3"], ""),
        ([f"DTSTART;TZID=America/New_York:{day}T100000", "DURATION:PT1H", "RRULE:FREQ=DAILY;COUNT=3"],
         NEW_YORK),
        ([f"DTSTART:{day}T100000Z", "DURATION:P1D"], ""),
    ):  # fmt: skip
        found = instances(resource(component("VEVENT", *lines), zones=zones), low, high, 10, asker)
        assert found.count("BEGIN:VEVENT") >= 1, (zone, lines)


# --------------------------------------------------------------------------- series' bounds and rules
def bounds_of(*lines: str, zones: str = "") -> tuple[datetime | None, datetime | None]:
    """The index bounds of one event, as instants (None: open)."""
    [event] = parse_resource(resource(component("VEVENT", *lines), zones=zones)).walk("VEVENT")
    found = timing_bounds(timing(event))
    assert found.recurring is any(line.startswith(("RRULE", "RDATE")) for line in lines)

    def moment(value: int | None) -> datetime | None:
        return None if value is None else datetime.fromtimestamp(value, UTC)

    return moment(found.start), moment(found.end)


NY = "DTSTART;TZID=America/New_York:"
BOUNDS = {
    "a count of days": (("DTSTART:20300101T100000Z", "DURATION:PT1H", "RRULE:FREQ=DAILY;COUNT=3"),
                        "20300101T100000Z", "20300103T110000Z"),
    "the most instances indexed": (("DTSTART:20300101T100000Z", "DURATION:PT1H", "RRULE:FREQ=DAILY;COUNT=10000"),
                                   "20300101T100000Z", "20570518T110000Z"),
    "more than that: open": (("DTSTART:20300101T100000Z", "DURATION:PT1H", "RRULE:FREQ=DAILY;COUNT=10001"),
                             "20300101T100000Z", None),
    "until an instant": (("DTSTART:20300101T100000Z", "DURATION:PT1H", "RRULE:FREQ=DAILY;UNTIL=20300105T100000Z"),
                         "20300101T100000Z", "20300105T110000Z"),
    "until an instant, on a wall clock": ((f"{NY}20300101T100000", "DURATION:PT1H",
                                           "RRULE:FREQ=DAILY;UNTIL=20300105T150000Z"),
                                          "20300101T150000Z", "20300105T160000Z"),
    "until a wall-clock time": ((f"{NY}20300101T100000", "DURATION:PT1H", "RRULE:FREQ=DAILY;UNTIL=20300105T100000"),
                                "20300101T150000Z", "20300105T160000Z"),
    "until a day": (("DTSTART;VALUE=DATE:20300101", "RRULE:FREQ=DAILY;UNTIL=20300105"),
                    "20291231T100000Z", "20300107T140000Z"),  # floating: 14 hours either way
    "a count of weeks over a clock change": ((f"{NY}20300303T100000", "DURATION:PT1H", "RRULE:FREQ=WEEKLY;COUNT=3"),
                                             "20300303T150000Z", "20300317T150000Z"),
    "one event": (("DTSTART:20300101T100000Z", "DURATION:PT1H"), "20300101T100000Z", "20300101T110000Z"),
    "floating and endless": (("DTSTART:20300101T100000", "DURATION:PT1H", "RRULE:FREQ=DAILY"),
                             "20291231T200000Z", None),  # floating: 14 hours earlier
    "a period of its own": (("DTSTART:20300101T100000Z", "DURATION:PT1H",
                             "RDATE;VALUE=PERIOD:20300110T100000Z/20300110T150000Z"),
                            "20300101T100000Z", "20300110T150000Z"),
    "a count of months": (("DTSTART:20300131T100000Z", "DURATION:PT1H", "RRULE:FREQ=MONTHLY;COUNT=3"),
                          "20300131T100000Z", "20300531T110000Z"),  # February and April have no 31st
}  # fmt: skip


@pytest.mark.parametrize("name", BOUNDS)
def test_the_bounds_of_a_series_end_where_its_last_instance_does(name: str) -> None:
    """A bounded series is indexed up to the end of its last instance (UNTIL: no later than
    UNTIL, read in DTSTART's zone unless it says UTC; a date UNTIL includes its day); one of more
    instances than the index holds, or without an end, stays open."""
    lines, start, end = BOUNDS[name]
    zones = NEW_YORK if any(line.startswith(NY) for line in lines) else ""
    assert bounds_of(*lines, zones=zones) == (utc(start), None if end is None else utc(end))


def test_rules_of_fixed_steps_are_bounded_and_walked_without_dateutil(monkeypatch: pytest.MonkeyPatch) -> None:
    """SECONDLY to WEEKLY rules without BYxxx or UNTIL are whole steps from the first instance:
    their end and their instances are counted, not walked (dateutil would walk 10,000 of them)."""
    fixed = {
        "FREQ=DAILY": (timedelta(days=1), None),
        "FREQ=WEEKLY;INTERVAL=2;COUNT=5": (timedelta(days=14), 5),
        "FREQ=HOURLY;WKST=SU": (timedelta(hours=1), None),
        "FREQ=SECONDLY;INTERVAL=1;COUNT=1": (timedelta(seconds=1), 1),
        "FREQ=DAILY;INTERVAL=2;COUNT=3;WKST=MO": (timedelta(days=2), 3),
    }
    for rule, steps in fixed.items():
        assert _fixed_steps(rule) == steps, rule
    for rule in ("FREQ=MONTHLY", "FREQ=DAILY;BYDAY=MO", "FREQ=DAILY;UNTIL=20300101T000000Z", "FREQ=DAILY;WKST=XX",
                 "FREQ=DAILY;INTERVAL=0", "FREQ=DAILY;INTERVAL=x", "FREQ=DAILY;INTERVAL=\uff11", "FREQ=DAILY;COUNT=0",
                 "FREQ=DAILY;COUNT=y", "FREQ=DAILY;COUNT=\uff11", "COUNT=3", ""):  # fmt: skip
        assert _fixed_steps(rule) is None, rule
    monkeypatch.setattr(walk, "dateutil_rrule", None)  # any use of it fails
    assert _last_start(datetime(2030, 1, 1, 10), "FREQ=DAILY;COUNT=10000", 10_000) == datetime(2057, 5, 18, 10)
    [event] = parse_resource(resource(component("VEVENT", "DTSTART:20300101T100000Z", "DURATION:PT1H",
                                                "RRULE:FREQ=DAILY;COUNT=10000"))).walk("VEVENT")  # fmt: skip
    horizon, after = datetime(2041, 1, 1, tzinfo=UTC), utc("20400101T000000Z")
    spans, rest = timing_instances(timing(event), 3, horizon, after=after)
    assert [datetime.fromtimestamp(s, UTC) for s, _ in spans] == [utc(f"2040010{d}T100000Z") for d in (1, 2, 3)]
    assert rest == epoch(utc("20400104T100000Z"))  # the next one, not listed


@pytest.mark.parametrize("lines", [
    ("RRULE:FREQ=DAILY", "RRULE:FREQ=WEEKLY"), ("RRULE:FREQ=DAILY", "RDATE:20300110T100000Z"),
    ("RRULE:FREQ=DAILY", "EXDATE:20300102T100000Z"),
])  # fmt: skip
def test_other_series_are_walked_by_dateutil(lines: tuple[str, ...]) -> None:
    [event] = parse_resource(resource(component("VEVENT", "DTSTART:20300101T100000Z", "DURATION:PT1H", *lines))).walk(
        "VEVENT"
    )
    assert _fixed_walk(timing(event), datetime(2030, 1, 1, 10), None) is None
    [plain] = parse_resource(resource(component("VEVENT", "DTSTART:20300101T100000Z", "RRULE:FREQ=DAILY"))).walk(
        "VEVENT"
    )
    walk = _fixed_walk(timing(plain), datetime(2030, 1, 1, 10), None)
    assert walk is not None and [next(walk) for _ in range(2)] == [datetime(2030, 1, 1, 10), datetime(2030, 1, 2, 10)]


def test_until_in_utc_ends_a_wall_clock_series_at_that_instant() -> None:
    """UNTIL in UTC is an instant: a New York series until 14:59:59Z (9:59:59 there) has no
    instance at 10:00 that day (RFC 5545 3.3.10)."""
    text = resource(component("VEVENT", f"{NY}20300101T100000", "DURATION:PT1H",
                              "RRULE:FREQ=DAILY;UNTIL=20300105T145959Z"), zones=NEW_YORK)  # fmt: skip
    found = instances(text, utc("20300101T000000Z"), utc("20300201T000000Z"), 100)
    assert found.count("BEGIN:VEVENT") == 4
    assert local_rule("FREQ=DAILY;UNTIL=20300105T145959Z", ZoneInfo("America/New_York")) == (
        "FREQ=DAILY;UNTIL=20300105T095959"
    )
    assert local_rule("FREQ=DAILY;until=20300105t145959z", None) == "FREQ=DAILY;UNTIL=20300105T145959"
    assert local_rule("FREQ=DAILY;UNTIL=20300105T100000", None) == "FREQ=DAILY;UNTIL=20300105T100000"


RULES = {  # rule, first start, whether no date ever matches
    "no day parts": ("FREQ=DAILY", date(2030, 1, 1), False),
    "the 30th of February": ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", date(2030, 1, 1), True),
    "the 30th of February, counted": ("COUNT=5;FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", date(2030, 1, 1), True),
    "a leap day, until a year without one": ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;UNTIL=20250101T000000",
                                             date(2024, 3, 1), False),  # refused for its UNTIL elsewhere, not here
    "in lower case": ("freq=daily;bymonth=2;bymonthday=29;until=20250101t000000z", date(2024, 3, 1), False),
    "every fourth leap day": ("FREQ=YEARLY;INTERVAL=4;BYMONTH=2;BYMONTHDAY=29", datetime(2024, 2, 29, 10), False),
    "every fourth year, none of them leap": ("FREQ=YEARLY;INTERVAL=4;BYMONTH=2;BYMONTHDAY=29", date(2025, 1, 1), True),
    "invalid: refused elsewhere": ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30;FOO=1", date(2030, 1, 1), False),
}  # fmt: skip


@pytest.mark.parametrize("name", RULES)
def test_a_rule_that_picks_no_date_is_found(name: str) -> None:
    rule, start, never = RULES[name]
    assert rule_never_matches(rule, start) is never


def test_what_lies_at_a_windows_edges() -> None:
    """An instance that ends where the window starts, or starts where it ends, is outside; a
    todo without dates is in every window; instances of a resource of overrides only stop at
    the limit; two zones stay two zones."""
    low, high = utc("20300101T100000Z"), utc("20300101T120000Z")
    before = resource(component("VEVENT", "DTSTART:20300101T090000Z", "DTEND:20300101T100000Z", "RRULE:FREQ=WEEKLY"))
    after = resource(component("VEVENT", "DTSTART:20300101T120000Z", "DTEND:20300101T130000Z", "RRULE:FREQ=WEEKLY"))
    assert not overlaps(before, low, high) and not overlaps(after, low, high)
    assert overlaps(resource(component("VTODO", "SUMMARY:someday", "RRULE:FREQ=WEEKLY")), low, high)
    moved = "".join(
        component("VEVENT", f"RECURRENCE-ID:2030010{d}T100000Z", f"DTSTART:2030010{d}T110000Z", "DURATION:PT1H")
        for d in (1, 2, 3)
    )
    assert instances(resource(moved), utc("20300101T000000Z"), utc("20300201T000000Z"), 2).count("BEGIN:VEVENT") == 2
    tokyo = Timezone.from_tzid("Asia/Tokyo").to_ical().decode()
    two = resource(component("VEVENT", f"{NY}20300101T100000", "DTEND;TZID=Asia/Tokyo:20300102T010000"),
                   zones=NEW_YORK + tokyo)  # fmt: skip
    found = parse_resource(instances(two, low - timedelta(days=1), high + timedelta(days=1), 10))
    assert sorted(str(z["TZID"]) for z in found.walk("VTIMEZONE")) == ["America/New_York", "Asia/Tokyo"]


def test_a_windowed_series_ends_in_utc_whatever_the_servers_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    """The UNTIL a windowed copy gets is written in UTC (RFC 5545 3.3.10 for a zoned DTSTART),
    also on a server whose own zone is not UTC."""
    text = resource(component("VEVENT", f"{NY}20300101T100000", "DURATION:PT1H", "RRULE:FREQ=DAILY;COUNT=10"),
                    zones=NEW_YORK)  # fmt: skip
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        windowed = window_calendar(parse_resource(text), utc("20300101T000000Z"), utc("20300103T200000Z"), 10)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert "RRULE:FREQ=DAILY;UNTIL=20300103T150000Z" in windowed.to_ical().decode()


def test_a_walk_skips_only_what_it_may() -> None:
    """Whole periods are skipped arithmetically only where each holds one instance: a counted
    rule of two days a week is walked from its start, and a count used up before the window
    leaves nothing in it."""
    twice = resource(component("VEVENT", "DTSTART:20300107T100000Z", "DURATION:PT1H",
                               "RRULE:FREQ=WEEKLY;BYDAY=MO,WE;COUNT=10"))  # fmt: skip
    found = instances(twice, utc("20300201T000000Z"), utc("20300301T000000Z"), 100)
    assert found.count("BEGIN:VEVENT") == 2  # February 4 and 6: the 9th and 10th
    used_up = resource(component("VEVENT", "DTSTART:20300101T100000Z", "DURATION:PT1H", "RRULE:FREQ=DAILY;COUNT=3"))
    assert instances(used_up, utc("20300105T000000Z"), utc("20300201T000000Z"), 100).count("BEGIN:VEVENT") == 0


@pytest.mark.parametrize(("lines", "exact"), [
    (("DTSTART:20300101T100000Z", "DURATION:PT1H"), True),
    (("DTSTART:20300101T100000Z", "DURATION:P1D"), True),
    (("DTSTART:20300101T100000Z", "DURATION:P2D"), False),  # may cross a clock change: the text decides
    (("DTSTART:20300101T100000", "DURATION:PT1H"), False),  # floating
    (("DTSTART;VALUE=DATE:20300101",), False),
    (("DTSTART:20300101T100000Z", "DURATION:PT1H", "RRULE:FREQ=DAILY;COUNT=2"), True),
    (("DTSTART:20300101T100000", "DURATION:PT1H", "RRULE:FREQ=DAILY;COUNT=2"), False),
    (("DTSTART:20300101T100000Z", "DURATION:PT1H", "RRULE:FREQ=DAILY;BYSETPOS=abc"), False),  # cannot be walked
    (("DTSTART;TZID=Europe/Berlin:20300301T100000", "DURATION:PT1H"), True),
    # the clocks go forward in it: its end in UTC is not its start plus a day
    (("DTSTART;TZID=Europe/Berlin:20300330T030000", "DTEND;TZID=Europe/Berlin:20300331T030000"), False),
    (("DTSTART;TZID=Europe/Berlin:20300331T013000", "DTEND;TZID=Europe/Berlin:20300331T033000"), False),
])  # fmt: skip
def test_index_spans_are_exact_only_where_the_times_are_unambiguous(lines: tuple[str, ...], exact: bool) -> None:
    [event] = parse_resource(resource(component("VEVENT", *lines))).walk("VEVENT")
    times = timing(event)
    spans = block_spans(times, timing_bounds(times), 100)
    assert spans and all(flag is exact for _, _, flag in spans), spans


def test_an_endless_series_is_indexed_400_days_ahead_then_left_to_the_text() -> None:
    """From its start when that is later than today (2090 here), else from today."""
    [event] = parse_resource(resource(component("VEVENT", "DTSTART:20900101T100000Z", "DURATION:PT1H",
                                                "RRULE:FREQ=DAILY"))).walk("VEVENT")  # fmt: skip
    times = timing(event)
    *days, tail = block_spans(times, timing_bounds(times), 10_000)
    assert len(days) == 401 and days[0] == (epoch(utc("20900101T100000Z")), epoch(utc("20900101T110000Z")), True)
    assert tail == (epoch(utc("20910206T100000Z")), MAX_EPOCH, False)  # the rest: checked on the text


def test_no_instance_that_reaches_into_a_window_is_skipped() -> None:
    """The walk starts near the window, never past an instance that reaches into it: instances
    longer than the rule's period, an hourly series on a wall clock five hours behind UTC, an
    instance of no length at the window's start, and an RDATE period of its own length."""
    window = (utc("20300301T110000Z"), utc("20300301T113000Z"))
    long = resource(component("VEVENT", "DTSTART:20300101T100000Z", "DURATION:P3D", "RRULE:FREQ=DAILY"))
    assert instances(long, *window, 100).count("BEGIN:VEVENT") == 3
    hourly = resource(component("VEVENT", f"{NY}20300101T000000", "DURATION:PT30M", "RRULE:FREQ=HOURLY"),
                      zones=NEW_YORK)  # fmt: skip
    assert instances(hourly, utc("20300301T110000Z"), utc("20300301T130000Z"), 100).count("BEGIN:VEVENT") == 2
    point = resource(component("VEVENT", "DTSTART:20300101T110000Z", "DURATION:PT0S", "RRULE:FREQ=DAILY"))
    assert instances(point, *window, 100).count("BEGIN:VEVENT") == 1
    [event] = parse_resource(resource(component("VEVENT", f"{NY}20300101T100000", "DURATION:PT1H",
                                                "RDATE;VALUE=PERIOD;TZID=America/New_York:20300110T100000/PT3H"),
                                      zones=NEW_YORK)).walk("VEVENT")  # fmt: skip
    spans, _ = timing_instances(timing(event), 10, utc("20310101T000000Z"))
    assert [end - start for start, end in spans] == [HOUR, 3 * HOUR]


def test_what_has_no_dates_or_cannot_be_walked() -> None:
    """A todo without dates is in every window (recurring or not); a rule dateutil cannot walk
    leaves its DTSTART alone as the one instance, at every door."""
    for lines, recurring in ((("SUMMARY:someday",), False), (("RRULE:FREQ=DAILY",), True)):
        [todo] = parse_resource(resource(component("VTODO", *lines))).walk("VTODO")
        assert timing_bounds(timing(todo)) == Bounds(None, None, recurring)
    broken = resource(component("VEVENT", "DTSTART:20300101T100000Z", "DURATION:PT1H", "RRULE:FREQ=DAILY;BYSETPOS=abc"))
    assert instances(broken, utc("20291201T000000Z"), utc("20300201T000000Z"), 10).count("BEGIN:VEVENT") == 1


def test_a_windowed_copy_leaves_overrides_and_zones_as_they_are() -> None:
    """Only a series' master is windowed: an override (even one that repeats the master's
    RRULE, as some writers do) and the VTIMEZONE stay as written."""
    master = component("VEVENT", f"{NY}20300101T100000", "DURATION:PT1H", "RRULE:FREQ=DAILY;COUNT=5")
    moved = component("VEVENT", "RECURRENCE-ID;TZID=America/New_York:20300102T100000", "DTSTART:20300102T150000Z",
                      "DURATION:PT1H", "RRULE:FREQ=DAILY;COUNT=5")  # fmt: skip
    calendar = parse_resource(resource(master, moved, zones=NEW_YORK))
    windowed = window_calendar(calendar, utc("20300102T000000Z"), utc("20300104T000000Z"), 10)
    assert [c.to_ical() for c in windowed.subcomponents[:1]] == [c.to_ical() for c in calendar.subcomponents[:1]]
    assert windowed.subcomponents[2].to_ical() == calendar.subcomponents[2].to_ical()
    assert "UNTIL" in windowed.subcomponents[1]["RRULE"]
