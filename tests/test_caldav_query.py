"""protocol/caldav: REPORT parsing, RFC 4791 filter matching and calendar-data shaping."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from protocol.caldav.data import freebusy_text, shape
from protocol.caldav.filters import matches
from protocol.caldav.query import CalendarData, CalendarQuery, TimeRange, Unsupported, parse_report
from protocol.dav import BadRequest
from protocol.ical.values import parse_resource

C = 'xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:D="DAV:"'


def wrap(*components: str) -> str:
    body = "".join(f"BEGIN:{c.split(':', 1)[0]}\r\n{c.split(':', 1)[1]}" for c in components)
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{body}END:VCALENDAR\r\n"


def component(kind: str, *lines: str) -> str:
    return (
        f"{kind}:UID:{kind.lower()}-1\r\nDTSTAMP:20250101T000000Z\r\n"
        + "".join(f"{x}\r\n" for x in lines)
        + (f"END:{kind}\r\n")
    )


def query(inner: str, props: str = "<D:getetag/>") -> CalendarQuery:
    body = f'<C:calendar-query {C}><D:prop>{props}</D:prop><C:filter><C:comp-filter name="VCALENDAR">{inner}'
    parsed = parse_report((body + "</C:comp-filter></C:filter></C:calendar-query>").encode())
    assert isinstance(parsed, CalendarQuery)
    return parsed


def hit(text: str, inner: str, zone: str | None = None) -> bool:
    return matches(query(inner).filter, parse_resource(text), ZoneInfo(zone) if zone else None)


def ranged(kind: str, start: str, end: str) -> str:
    return f'<C:comp-filter name="{kind}"><C:time-range start="{start}" end="{end}"/></C:comp-filter>'


@pytest.mark.parametrize(
    ("lines", "start", "end", "expected"),
    [
        # RFC 4791 9.9, VTODO: DTSTART + DURATION
        (("DTSTART:20250110T100000Z", "DURATION:PT1H"), "20250110T110000Z", "20250110T120000Z", True),
        (("DTSTART:20250110T100000Z", "DURATION:PT1H"), "20250110T110001Z", "20250110T120000Z", False),
        # DTSTART + DUE
        (("DTSTART:20250110T100000Z", "DUE:20250112T100000Z"), "20250111T000000Z", "20250111T010000Z", True),
        (("DTSTART:20250110T100000Z", "DUE:20250112T100000Z"), "20250112T100000Z", "20250113T000000Z", False),
        # DTSTART only
        (("DTSTART:20250110T100000Z",), "20250110T100000Z", "20250110T100001Z", True),
        (("DTSTART:20250110T100000Z",), "20250110T090000Z", "20250110T100000Z", False),
        # DUE only: the end of the range is inclusive
        (("DUE:20250110T100000Z",), "20250110T090000Z", "20250110T100000Z", True),
        (("DUE:20250110T100000Z",), "20250110T100000Z", "20250110T110000Z", False),
        # COMPLETED and CREATED
        (("COMPLETED:20250110T100000Z", "CREATED:20250101T100000Z"), "20250105T000000Z", "20250106T000000Z", True),
        (("COMPLETED:20250110T100000Z",), "20250110T100000Z", "20250110T100001Z", True),
        (("COMPLETED:20250110T100000Z",), "20250111T000000Z", "20250112T000000Z", False),
        (("CREATED:20250110T100000Z",), "20240101T000000Z", "20250110T100000Z", False),
        (("CREATED:20250110T100000Z",), "20240101T000000Z", "20250110T100001Z", True),
        # no dates at all: always in range
        ((), "20000101T000000Z", "20000102T000000Z", True),
    ],
)
def test_todo_time_range_rules(lines: tuple[str, ...], start: str, end: str, expected: bool) -> None:
    assert hit(wrap(component("VTODO", *lines)), ranged("VTODO", start, end)) is expected


def test_event_ranges_all_day_zero_length_and_recurrence() -> None:
    all_day = wrap(component("VEVENT", "DTSTART;VALUE=DATE:20250110"))
    assert hit(all_day, ranged("VEVENT", "20250110T230000Z", "20250111T000000Z"))
    assert not hit(all_day, ranged("VEVENT", "20250111T000000Z", "20250112T000000Z"))
    instant = wrap(component("VEVENT", "DTSTART:20250110T100000Z"))
    assert hit(instant, ranged("VEVENT", "20250110T100000Z", "20250110T110000Z"))
    assert not hit(instant, ranged("VEVENT", "20250110T090000Z", "20250110T100000Z"))
    series = wrap(
        component("VEVENT", "DTSTART:20250106T090000Z", "DTEND:20250106T100000Z", "RRULE:FREQ=WEEKLY"),
        component("VEVENT", "RECURRENCE-ID:20250113T090000Z", "DTSTART:20250115T090000Z", "DTEND:20250115T100000Z"),
    )
    assert hit(series, ranged("VEVENT", "20300107T000000Z", "20300108T000000Z"))  # a Monday in 2030
    assert not hit(series, ranged("VEVENT", "20250113T000000Z", "20250114T000000Z"))  # moved away
    assert hit(series, ranged("VEVENT", "20250115T000000Z", "20250116T000000Z"))  # moved here
    open_end = '<C:comp-filter name="VEVENT"><C:time-range start="20290101T000000Z"/></C:comp-filter>'
    assert hit(series, open_end)


def test_floating_times_follow_the_query_zone() -> None:
    floating = wrap(component("VEVENT", "DTSTART:20250110T090000", "DTEND:20250110T100000"))
    window = ranged("VEVENT", "20250110T080000Z", "20250110T083000Z")
    assert not hit(floating, window)
    assert hit(floating, window, "Europe/Berlin")  # 09:00 in Berlin is 08:00 UTC


def test_alarms_are_found_by_when_they_ring() -> None:
    event = component(
        "VEVENT", "DTSTART:20250110T100000Z", "DTEND:20250110T110000Z", "RRULE:FREQ=DAILY;COUNT=3",
        "BEGIN:VALARM", "ACTION:DISPLAY", "DESCRIPTION:x", "TRIGGER:-PT15M", "END:VALARM",
    )  # fmt: skip
    text = wrap(event)
    alarm = '<C:comp-filter name="VEVENT"><C:comp-filter name="VALARM"><C:time-range start="{}" end="{}"/>'
    alarm += "</C:comp-filter></C:comp-filter>"
    assert hit(text, alarm.format("20250112T094000Z", "20250112T095000Z"))  # the third day's alarm
    assert not hit(text, alarm.format("20250113T094000Z", "20250113T095000Z"))  # no fourth day


def test_text_match_collations_negation_and_parameters() -> None:
    text = wrap(
        component("VEVENT", "DTSTART:20250110T100000Z", "SUMMARY:Café Meeting", "CATEGORIES:Work,Hands",
                  "ATTENDEE;PARTSTAT=ACCEPTED:mailto:a@example.org")
    )  # fmt: skip

    def prop(name: str, inner: str) -> str:
        return f'<C:comp-filter name="VEVENT"><C:prop-filter name="{name}">{inner}</C:prop-filter></C:comp-filter>'

    assert hit(text, prop("SUMMARY", "<C:text-match>meeting</C:text-match>"))
    assert not hit(text, prop("SUMMARY", '<C:text-match collation="i;octet">meeting</C:text-match>'))
    assert not hit(text, prop("SUMMARY", "<C:text-match>CAFÉ</C:text-match>"))  # ascii-casemap folds A-Z only
    assert hit(text, prop("SUMMARY", '<C:text-match collation="i;unicode-casemap">CAFÉ</C:text-match>'))
    assert hit(text, prop("SUMMARY", '<C:text-match negate-condition="yes">lunch</C:text-match>'))
    assert hit(text, prop("CATEGORIES", "<C:text-match>hands</C:text-match>"))
    assert hit(text, prop("LOCATION", "<C:is-not-defined/>"))
    assert not hit(text, prop("SUMMARY", "<C:is-not-defined/>"))
    accepted = '<C:param-filter name="PARTSTAT"><C:text-match>accepted</C:text-match></C:param-filter>'
    assert hit(text, prop("ATTENDEE", accepted))
    assert not hit(text, prop("ATTENDEE", '<C:param-filter name="ROLE"/>'))
    assert hit(text, '<C:comp-filter name="VTODO"><C:is-not-defined/></C:comp-filter>')
    # no component type: the property is looked for in the resource's components
    assert hit(text, '<C:prop-filter name="CATEGORIES"><C:text-match>work</C:text-match></C:prop-filter>')


def test_bad_reports_name_their_precondition() -> None:
    with pytest.raises(Unsupported) as unsupported:
        query('<C:comp-filter name="VEVENT"><C:prop-filter name="SUMMARY"><C:text-match collation="x;y">a'
              "</C:text-match></C:prop-filter></C:comp-filter>")  # fmt: skip
    assert unsupported.value.condition.endswith("supported-collation")
    with pytest.raises(Unsupported) as bad_time:
        query('<C:comp-filter name="VEVENT"><C:time-range start="2025-01-01"/></C:comp-filter>')
    assert bad_time.value.condition.endswith("valid-filter")
    with pytest.raises(Unsupported):
        parse_report(b'<D:expand-property xmlns:D="DAV:"/>')
    with pytest.raises(BadRequest):
        parse_report(b'<D:sync-collection xmlns:D="DAV:"><D:limit><D:nresults>x</D:nresults></D:limit>'
                            b"</D:sync-collection>")  # fmt: skip


def test_expand_gives_utc_instances_with_overrides() -> None:
    text = wrap(
        "VTIMEZONE:TZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nTZOFFSETFROM:+0200\r\n"
        "TZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n",
        component("VEVENT", "DTSTART;TZID=Europe/Berlin:20250106T090000", "DTEND;TZID=Europe/Berlin:20250106T100000",
                  "RRULE:FREQ=DAILY;COUNT=5", "SUMMARY:Standup"),
        component("VEVENT", "RECURRENCE-ID;TZID=Europe/Berlin:20250107T090000",
                  "DTSTART;TZID=Europe/Berlin:20250107T120000", "DTEND;TZID=Europe/Berlin:20250107T130000",
                  "SUMMARY:Moved"),
    )  # fmt: skip
    window = TimeRange(datetime(2025, 1, 7, tzinfo=UTC), datetime(2025, 1, 9, tzinfo=UTC))
    expanded = parse_resource(shape(text, CalendarData(expand=window)))
    assert not expanded.walk("VTIMEZONE")
    events = expanded.walk("VEVENT")
    assert [(str(e["SUMMARY"]), e["DTSTART"].dt) for e in events] == [
        ("Moved", datetime(2025, 1, 7, 11, tzinfo=UTC)),
        ("Standup", datetime(2025, 1, 8, 8, tzinfo=UTC)),
    ]
    assert all("RRULE" not in e and e["RECURRENCE-ID"].to_ical().endswith(b"Z") for e in events)
    limited = parse_resource(shape(text, CalendarData(limit_recurrence=TimeRange(
        datetime(2025, 1, 9, tzinfo=UTC), datetime(2025, 1, 10, tzinfo=UTC)))))  # fmt: skip
    assert [str(e["SUMMARY"]) for e in limited.walk("VEVENT")] == ["Standup"]  # the override is outside


def test_partial_calendar_data_keeps_only_what_is_asked() -> None:
    text = wrap(component("VEVENT", "DTSTART:20250110T100000Z", "SUMMARY:Keep", "LOCATION:Drop"))
    props = (
        '<C:calendar-data><C:comp name="VCALENDAR"><C:prop name="VERSION"/><C:comp name="VEVENT">'
        '<C:prop name="UID"/><C:prop name="SUMMARY"/></C:comp></C:comp></C:calendar-data>'
    )
    data = query(ranged("VEVENT", "20250101T000000Z", "20260101T000000Z"), props).props.data
    assert data is not None
    shaped = shape(text, data)
    assert "SUMMARY:Keep" in shaped and "LOCATION" not in shaped and "PRODID" not in shaped


def test_freebusy_text_lists_periods_in_utc() -> None:
    window = TimeRange(datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 2, tzinfo=UTC))
    periods = [(datetime(2025, 1, 1, 9, tzinfo=UTC), datetime(2025, 1, 1, 10, tzinfo=UTC))]
    text = freebusy_text(periods, window, "-//x//EN")
    assert "FREEBUSY;FBTYPE=BUSY:20250101T090000Z/20250101T100000Z" in text and "DTSTART:20250101T000000Z" in text


def test_the_time_range_ends_of_a_timed_event() -> None:
    """Issue 32.6, RFC 4791 9.9: a VEVENT overlaps [start, end) when start < its end and end >
    its start; one of no length when start <= it < end. This is what floating events and
    series past the index's horizon are matched by (the index hides it for the rest)."""
    cases = {  # (DTEND or DURATION line, range start, range end): overlaps? Floating DTSTART 10:00
        ("DTEND:20250110T110000", "20250110T110000Z", "20250110T120000Z"): False,
        ("DTEND:20250110T110000", "20250110T105959Z", "20250110T120000Z"): True,
        ("DTEND:20250110T110000", "20250110T090000Z", "20250110T100000Z"): False,
        ("DTEND:20250110T110000", "20250110T090000Z", "20250110T100001Z"): True,
        ("DURATION:PT1H", "20250110T110000Z", "20250110T120000Z"): False,
        ("DURATION:PT1H", "20250110T105959Z", "20250110T110000Z"): True,
        ("", "20250110T100000Z", "20250110T100001Z"): True,  # no length: at its start
        ("", "20250110T090000Z", "20250110T100000Z"): False,
        ("", "20250110T100001Z", "20250110T110000Z"): False,
    }
    for (end, low, high), overlaps in cases.items():
        text = wrap(component("VEVENT", "DTSTART:20250110T100000", *([end] if end else [])))
        found = hit(
            text, f'<C:comp-filter name="VEVENT"><C:time-range start="{low}" end="{high}"/></C:comp-filter>', "UTC"
        )
        assert found is overlaps, (end, low, high)
    # a series' instance far past the index's horizon is matched on its text, by the same rule
    series = wrap(component("VEVENT", "DTSTART:20250110T100000Z", "DTEND:20250110T110000Z", "RRULE:FREQ=YEARLY"))
    for low, overlaps in (("20350110T110000Z", False), ("20350110T105959Z", True)):
        inner = f'<C:comp-filter name="VEVENT"><C:time-range start="{low}" end="20350110T120000Z"/></C:comp-filter>'
        assert hit(series, inner) is overlaps, low
