"""Issue 13: two public corpora of real-world calendars (icalendar's and recurring-ical-events'
test calendars, found through the installed packages) through every door; tests/corpora.py
does the work and ``python -m tests.corpora`` prints the figures."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient
from icalendar import Calendar

from tests.corpora import CORPORA, REFERENCE_ERRORS, check_corpus, corpus_files, lost_properties
from tests.helpers import Account

#: icalendar says so when it reads a vendor-prefixed TZID (/mozilla.org/...), which the corpus holds on purpose
pytestmark = pytest.mark.filterwarnings("ignore:Timezone .* is a globally unique TZID")
NOTHING = "the calendar holds no events, todos or journals"  # free/busy or time zones only, or empty
#: every file refused whole, with its reason (the start of the first error): honest, and only
#: ever shorter. Most are fixtures of broken input on purpose (fuzz cases, truncated files, a
#: VEVENT without DTSTART, an RFC example of a property alone, free/busy or VTIMEZONE only).
REFUSED = {
    "icalendar": {
        "america_new_york_forward_reference.ics": "DTSTART appears more than once",
        "big_bad_calendar.ics": "VEVENT has no DTSTART",  # closed, then refused
        "bom_calendar.ics": NOTHING,
        "broken_dtstart.ics": "DTSTART: Expected datetime, date, or time",
        "broken_ical.ics": "Content line could not be parsed",
        "calendar_with_unicode.ics": NOTHING,
        "created_calendar_with_unicode_fields.ics": "VEVENT has no DTSTART",
        "empty.ics": NOTHING,
        "empty_RDATE.ics": NOTHING,
        "fuzz_testcase_0_char_in_component_name.ics": "not a recognisable calendar file",
        "fuzz_testcase_invalid_month.ics": "not a recognisable calendar file",
        "fuzz_testcase_vtimezone_lone_cr.ics": "not a recognisable calendar file",
        "invalid_duration.ics": "DURATION: Impractical iCalendar duration",
        "issue_104_broken_calendar.ics": "invalid content line (no colon)",
        "issue_1050_empty_calendar.ics": NOTHING,
        "issue_1050_multiple_calendars.ics": "VEVENT has no DTSTART",
        "issue_1050_timezone_only_calendar.ics": NOTHING,
        "issue_1050_uid_in_description.ics": "VEVENT has no DTSTART",
        "issue_1081_freebusy_comma_separated.ics": NOTHING,
        "issue_1081_invalid_rrule_freq.ics": "RRULE: Expected frequency",
        "issue_1081_invalid_start_and_end.ics": "DTSTART: Expected datetime, date, or time",
        "issue_1081_invalid_start_valid_end.ics": "DTSTART: Expected datetime, date, or time",
        "issue_1081_with_summary.ics": "VEVENT has no DTSTART",
        "issue_1238.ics": NOTHING,
        "issue_1549_binary_attachment.ics": "VEVENT has no DTSTART",
        "issue_1561_image_value.ics": "VEVENT has no DTSTART",
        "issue_1633_freebusy_with_dates.ics": NOTHING,
        "issue_178_component_with_invalid_name_represented.ics": "not a recognisable calendar file",
        "issue_178_custom_component_contains_other.ics": "not a recognisable calendar file",
        "issue_178_custom_component_inside_other.ics": NOTHING,
        "issue_27_multiple_periods_in_freebusy_multiple_freebusies.ics": NOTHING,
        "issue_27_multiple_periods_in_freebusy_one_freebusy.ics": NOTHING,
        "issue_322_expected_calendar.ics": "VEVENT has no DTSTART",
        "issue_722_missing_timezones.ics": "VEVENT has no DTSTART",
        "issue_798_freebusy.ics": NOTHING,
        "issue_798_related_to.ics": "VEVENT has no DTSTART",
        "issue_82_expected_output.ics": "not a recognisable calendar file",
        "multiple_timezones.ics": "RDATE holds a value that is not a date or date-time",
        "pacific_fiji.ics": "DTSTART appears more than once",
        "parsing_error_in_UTC_offset.ics": "invalid VTIMEZONE: Offset must be less than 24 hours",
        "pr_480_summary_with_colon.ics": "VEVENT has no DTSTART",  # closed, then refused
        "rfc_5545_RDATE_example.ics": "VEVENT has no DTSTART",
        "rfc_6868.ics": "VEVENT has no DTSTART",
        "rfc_7256_multi_value_parameters.ics": "VEVENT has no DTSTART",
        "rfc_7265_example_1.ics": NOTHING,
        "rfc_7529.ics": "RRULE is invalid: unknown parameter",
        "rfc_7953_3.ics": NOTHING,
        "rfc_7986_conferences.ics": "VEVENT has no DTSTART",
        "rfc_7986_image.ics": "VEVENT has no DTSTART",
        "rfc_7986_properties.ics": NOTHING,
        "rfc_9253_gap.ics": "VEVENT has no DTSTART",
        "rfc_9253_related_to.ics": "VEVENT has no DTSTART",
        "small_bad_calendar.ics": "VEVENT has no DTSTART",  # closed, then refused
        "time.ics": NOTHING,
        "timezone_same_start_and_offset.ics": "END:VCALENDARD does not close BEGIN:VCALENDAR",
    },
    "recurring-ical-events": {
        "bad_rrule_missing_until_event.ics": "RRULE is invalid: unknown parameter",
        "end_before_start_event.ics": "DTEND is before DTSTART",
        "issue_132_swapped_start_and_end.ics": "DTEND is before DTSTART",
        "issue_201_mixed_datetime_and_date.ics": "DTSTART and DTEND must both be dates or both date-times",
        "issue_201_test_matrix.ics": "END:VTOOD does not close BEGIN:VTODO",
        "no_events.ics": NOTHING,
    },
}


@pytest.mark.parametrize("corpus", sorted(CORPORA))
async def test_every_corpus_file_through_every_door(
    client: TestClient, signup: Callable[[str], Awaitable[Account]], corpus: str
) -> None:
    """No 5xx from any door; the refusals listed above and no other; CalDAV expand and WCAP
    fetch give the instances recurring-ical-events gives over three windows (except where the
    RFCs say otherwise: REFERENCE_ERRORS); every property survives export and re-import and a
    CalDAV GET; a file the import takes is taken by a CalDAV PUT per UID too."""
    report = await check_corpus(client, await signup("corpus"), corpus)
    print(report.summary())
    assert report.files == len(corpus_files(corpus)) > 90
    assert report.server_errors == []
    assert {
        name: reason
        for name, reason in report.refused.items()
        if not reason.startswith(REFUSED[corpus].get(name, "\0"))
    } == {}
    assert sorted(report.refused) == sorted(REFUSED[corpus])
    assert len(REFUSED["icalendar"]) <= 55  # issue 26.8: 62 before the quirks were repaired
    assert report.instances > 1000 and report.mismatches == {}
    assert set(report.explained) <= set(REFERENCE_ERRORS)
    assert report.lost == {} and report.put_refused == {} and report.reference_failed == []


def test_the_property_check_sees_a_lost_property() -> None:
    """The comparison the corpus test relies on finds a missing property and a changed value."""
    event = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTART:20250101T100000Z\r\n{}END:VEVENT\r\nEND:VCALENDAR\r\n"
    original = [Calendar.from_ical(event.format("X-KEEP;P=1:me\r\nSUMMARY:s\r\n"))]
    assert lost_properties(original, original) == []
    assert lost_properties(original, [Calendar.from_ical(event.format("SUMMARY:s\r\n"))]) == ["a: VEVENT.X-KEEP:me"]
    changed = [Calendar.from_ical(event.format("X-KEEP;P=1:me\r\nSUMMARY:t\r\n"))]
    assert lost_properties(original, changed) == ["a: VEVENT.SUMMARY:s"]
