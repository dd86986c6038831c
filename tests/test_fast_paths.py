"""The fast paths of issue 17 against the ways they replace: a listing's responses written as
text against lxml's, an expand made from the index's spans against the parsed expansion, and a
conditional GET answered from the ETag alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from aiohttp.test_utils import TestClient
from hypothesis import example, given, settings
from hypothesis import strategies as st
from lxml import etree

from protocol import dav
from protocol.caldav.data import expand_utc
from protocol.caldav.query import MAX_INSTANCES, TimeRange
from protocol.dav import APPLE, CALDAV, DAV, tag
from protocol.ical.busy import busy_from_spans, busy_periods, merged
from protocol.ical.resources import resource_from_calendar
from protocol.ical.values import epoch, parse_resource
from protocol.ical.windows import expand_spans
from protocol.ical.windows import instances as windowed
from server.caldav.members import MemberText
from server.caldav.props import DavResource, Kind, answer
from server.http import etag_condition, etag_matches
from server.urls import object_href
from storage.model import Calendar, CalendarObject, User
from tests.helpers import Account, basic

USER = User(1, "alice", None, "", False, "2024-01-01T00:00:00", "2024-01-01T00:00:00")
CALENDAR = Calendar(1, "c", 1, "work", "Work", "", "", None, "VEVENT,VTODO", 0, False, {}, "", "")
#: every property an object has, one only calendars have, and some nobody has
NAMES = [tag(DAV, n) for n in ("getetag", "getcontenttype", "getcontentlength", "getlastmodified", "creationdate",
                               "resourcetype", "displayname", "nope")]  # fmt: skip
NAMES += [tag(CALDAV, "calendar-data"), tag(APPLE, "calendar-color"), "{urn:x&y}z", "{}bare"]
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


def tree(element: etree._Element) -> tuple[object, ...]:
    """An element as what it means: Clark names, text and children (prefixes aside)."""
    return (element.tag, element.text or "", tuple(tree(child) for child in element))


def parsed(responses: str) -> tuple[object, ...]:
    return tree(etree.fromstring((dav.MULTISTATUS_START + responses + dav.multistatus_end()).encode()))


@settings(max_examples=300, deadline=None)
@given(
    name=st.text("abc-_.~!$&'()*+,;=:@%20", min_size=1, max_size=20),
    etag=TEXT,
    ical=TEXT,
    data=st.none() | TEXT,
    component=st.sampled_from(["VEVENT", "VTODO"]),
    names=st.lists(st.sampled_from(NAMES), unique=True, max_size=8),
)
def test_member_text_is_what_lxml_writes(
    name: str, etag: str, ical: str, data: str | None, component: str, names: list[str]
) -> None:
    found = CalendarObject(7, 1, name, "u", etag, component, ical, None, None, False, "", None, None,
                           "2024-01-02T03:04:05", "2024-02-03T04:05:06")  # fmt: skip
    resource = DavResource(Kind.OBJECT, USER, USER, CALENDAR, found, data)
    href = f"/dav/calendars/alice/work/{name}"
    expected = dav.responses_text([answer(href, resource, names)])
    assert parsed(MemberText(names, "prop")(href, resource)) == parsed(expected)


#: what a listing asks for, with Schedule-Tag (which not every object has)
PAGE_NAMES = [tag(DAV, n) for n in ("getetag", "getcontenttype", "getcontentlength", "getlastmodified", "creationdate",
                                    "displayname", "nope")] + [tag(CALDAV, "schedule-tag"), "{urn:x&y}z"]  # fmt: skip
PLAIN = st.text('0123456789abcdef"', max_size=20)


@settings(max_examples=300, deadline=None)
@given(
    members=st.lists(
        st.tuples(st.text("abc-_.~!$&'()*+,;=:@%20", min_size=1, max_size=12), PLAIN | TEXT, st.none() | PLAIN),
        max_size=6,
    ),
    names=st.lists(st.sampled_from(PAGE_NAMES), unique=True, max_size=6),
    slug=st.sampled_from(["work", "my%20work", "a&b"]),
)
def test_a_page_of_members_is_what_lxml_writes(
    members: list[tuple[str, str, str | None]], names: list[str], slug: str
) -> None:
    """A page written through the template (plain values, canonical names) or member by member
    (anything else) says what each member's own response says."""
    page = [CalendarObject(number, 1, name, "u", etag, "VEVENT", "", None, None, False, "", None, None,
                           "2024-01-02T03:04:05", f"2024-02-03T04:05:{number:02}", None, schedule_tag, 40 + number)
            for number, (name, etag, schedule_tag) in enumerate(members)]  # fmt: skip
    base = f"/dav/calendars/alice/{slug}/"
    expected = "".join(
        dav.responses_text([answer(object_href(base, found.href), DavResource(Kind.OBJECT, USER, USER, CALENDAR, found),
                                   names)])
        for found in page
    )  # fmt: skip
    written = MemberText(names, "prop").page(base, page, DavResource(Kind.OBJECT, USER, USER, CALENDAR))
    assert parsed(written) == parsed(expected)


ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", None]


@st.composite
def events(draw: st.DrawFn) -> str:
    """One VEVENT, zoned or UTC, with DTEND or DURATION, maybe a weekly or daily rule with
    exceptions, maybe an alarm."""
    zone = draw(st.sampled_from(ZONES))
    start = datetime(2024, 1, 1) + timedelta(minutes=draw(st.integers(0, 60 * 24 * 120)) * 15)
    length = timedelta(minutes=draw(st.integers(0, 96)) * 15)
    stamp = start.strftime("%Y%m%dT%H%M%S")
    times = [f"DTSTART;TZID={zone}:{stamp}" if zone else f"DTSTART:{stamp}Z"]
    if draw(st.booleans()):
        end = (start + length).strftime("%Y%m%dT%H%M%S")
        times.append(f"DTEND;TZID={zone}:{end}" if zone else f"DTEND:{end}Z")
    else:
        times.append(f"DURATION:PT{int(length.total_seconds()) // 60}M")
    rule = draw(st.sampled_from(["", "RRULE:FREQ=WEEKLY;COUNT=30", "RRULE:FREQ=DAILY;INTERVAL=3;COUNT=50",
                                 "RRULE:FREQ=WEEKLY;BYDAY=MO,TH"]))  # fmt: skip
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN", "BEGIN:VEVENT", "UID:e@x",
             "DTSTAMP:20240101T000000Z", *times, "SUMMARY:A & <b>"]  # fmt: skip
    if rule:
        lines.append(rule)
        if draw(st.booleans()):
            skipped = (start + timedelta(days=7)).strftime("%Y%m%dT%H%M%S")
            lines.append(f"EXDATE;TZID={zone}:{skipped}" if zone else f"EXDATE:{skipped}Z")
    if draw(st.booleans()):
        lines += ["BEGIN:VALARM", "ACTION:DISPLAY", "DESCRIPTION:soon", "TRIGGER:-PT15M", "END:VALARM"]
    return "\r\n".join([*lines, "END:VEVENT", "END:VCALENDAR", ""])


@st.composite
def all_day_events(draw: st.DrawFn) -> str:
    """One all-day VEVENT: one day or several (DTEND or DURATION in days or weeks, or neither),
    maybe a rule."""
    first = datetime(2024, 1, 1) + timedelta(days=draw(st.integers(0, 200)))
    days = draw(st.integers(1, 9))
    ending = draw(st.sampled_from(["DTEND", "DAYS", "WEEKS", ""]))
    times = [f"DTSTART;VALUE=DATE:{first:%Y%m%d}"]
    if ending == "DTEND":
        times.append(f"DTEND;VALUE=DATE:{first + timedelta(days=days):%Y%m%d}")
    elif ending:
        times.append(f"DURATION:P{days}D" if ending == "DAYS" else f"DURATION:P{days}W")
    rule = draw(st.sampled_from(["", "", "RRULE:FREQ=WEEKLY;COUNT=5"]))
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN", "BEGIN:VEVENT", "UID:d@x",
             "DTSTAMP:20240101T000000Z", *times, *([rule] if rule else []), "SUMMARY:A & <b>"]  # fmt: skip
    return "\r\n".join([*lines, "END:VEVENT", "END:VCALENDAR", ""])


def instances(text: str) -> list[list[tuple[str, bytes]]]:
    """The VEVENTs of an expanded resource as what they say, their order and spelling aside."""
    found = []
    for event in parse_resource(text).walk("VEVENT"):
        found.append(sorted((name, value.to_ical()) for name, value in event.items()))
    return sorted(found)


#: a day-long daily event whose instance ends where Lord Howe's clocks go back half an hour (found
#: by hypothesis in a CI run; and a day-long event across Berlin's change to summer time): a span's
#: length is not the instance's there
LORD_HOWE = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:e@x\r\n"
    "DTSTAMP:20240101T000000Z\r\nDTSTART;TZID=Australia/Lord_Howe:20240101T020000\r\n"
    "DTEND;TZID=Australia/Lord_Howe:20240102T020000\r\nSUMMARY:A & <b>\r\n"
    "RRULE:FREQ=DAILY;INTERVAL=3;COUNT=50\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


@settings(max_examples=200, deadline=None)
@given(text=events(), first=st.integers(0, 200), days=st.integers(1, 60))
@example(text=LORD_HOWE, first=36, days=60)
@example(text=LORD_HOWE.replace("Australia/Lord_Howe:20240101T020000", "Europe/Berlin:20240330T030000")
         .replace("Australia/Lord_Howe:20240102T020000", "Europe/Berlin:20240331T030000")
         .replace("RRULE:FREQ=DAILY;INTERVAL=3;COUNT=50\r\n", ""), first=30, days=60)  # fmt: skip
def test_expand_from_spans_is_the_parsed_expansion(text: str, first: int, days: int) -> None:
    resource = resource_from_calendar(parse_resource(text))
    low = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=first)
    high = low + timedelta(days=days)
    lo, hi = epoch(low), epoch(high)
    spans = [(s, e, x) for s, e, x in resource.spans if s < hi and (e > lo or (e == s and s >= lo))]
    fast = expand_spans(resource.text, spans, MAX_INSTANCES)
    if fast is None:  # nothing in the window, or an instance across a DST change: the parsed way answers
        assert not spans or not all(exact for _, _, exact in spans)
        return
    assert instances(fast) == instances(expand_utc(resource.text, TimeRange(low, high)))


def test_expand_from_spans_leaves_what_it_cannot_tell_to_parsing() -> None:
    head = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTAMP:20240101T000000Z\r\n"
    span = [(1_704_067_200, 1_704_070_800, True)]
    for lines in ("DTSTART;VALUE=DATE:20240101", "DTSTART:20240101T000000",  # all day, floating
                  "DTSTART:20240101T000000Z\r\nRDATE:20240108T000000Z",
                  "DTSTART:20240101T000000Z\r\nX-WHEN;TZID=Europe/Berlin:20240101T000000"):  # fmt: skip
        assert expand_spans(f"{head}{lines}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n", span, 10) is None
    plain = f"{head}DTSTART:20240101T000000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    assert expand_spans(plain, [(1_704_067_200, 1_704_070_800, False)], 10) is None  # an inexact span
    assert expand_spans(plain, span * 2, 10) is None  # one event, two instances: not what it knows
    assert expand_spans(plain.replace("END:VCALENDAR", "BEGIN:VTODO\r\nUID:b\r\nEND:VTODO\r\nEND:VCALENDAR"),
                        span, 10) is None  # fmt: skip


def test_an_entity_tag_is_read_without_its_weakness_and_quotes() -> None:
    """If-Match / If-None-Match name a tag quoted, perhaps weak (W/), perhaps spaced; a tag's own
    text keeps what lies inside its quotes (RFC 9110 8.8.3)."""
    assert etag_condition(None) is None
    for header, inner in (
        ('"abc"', "abc"), (' W/"abc" ', "abc"), ("abc", "abc"), ("W/abc", "abc"),  # quotes lost: read as meant
        ('W/"X1X"', "X1X"), ('"X1X"', "X1X"), ('"W/1"', "W/1"),
    ):  # fmt: skip
        assert etag_condition(header) == inner, header
    assert etag_matches("*", "abc") and etag_matches(" * ", "abc")
    assert etag_matches('"a",W/"abc"', "abc") and etag_matches('"a", "abc" ', "abc")
    assert not etag_matches('"a", "ab"', "abc") and not etag_matches("**", "abc")


async def test_conditional_get_and_head(client: TestClient, alice: Account) -> None:
    """A GET whose If-None-Match names the ETag is 304 (with the ETag), any other is the text;
    HEAD tells the text's length without it."""
    url = "/dav/calendars/alice/calendar/a.ics"
    text = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTAMP:20240101T000000Z\r\n"
    text += "DTSTART:20240101T100000Z\r\nSUMMARY:Caf\u00e9\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    auth = basic("alice")
    async with client.put(url, data=text.encode(), headers=auth) as reply:
        etag = reply.headers["ETag"]
    for condition in (etag, f"W/{etag}", f'"other", {etag}', f'"other",{etag}', f" W/{etag} ", " * "):
        async with client.get(url, headers={**auth, "If-None-Match": condition}) as reply:
            assert reply.status == 304 and reply.headers["ETag"] == etag and await reply.read() == b""
    async with client.get(url, headers=auth) as reply:
        stored = await reply.read()
        assert reply.status == 200 and reply.headers["ETag"] == etag and b"SUMMARY:Caf\xc3\xa9" in stored
    async with client.get(url, headers={**auth, "If-None-Match": '"other"'}) as reply:
        assert reply.status == 200 and reply.headers["ETag"] == etag and await reply.read() == stored
    async with client.head(url, headers=auth) as reply:
        assert reply.status == 200 and reply.headers["ETag"] == etag
        assert reply.headers["Content-Length"] == str(len(stored))
        assert reply.headers["Content-Type"].startswith("text/calendar")
    async with client.get(
        "/dav/calendars/alice/calendar/missing.ics", headers={**auth, "If-None-Match": etag}
    ) as reply:
        assert reply.status == 404


@settings(max_examples=300, deadline=None)
@given(
    text=events() | all_day_events(),
    first=st.integers(0, 200),
    days=st.integers(1, 60),
    marks=st.lists(st.sampled_from(["TRANSP:TRANSPARENT", "TRANSP:OPAQUE", "STATUS:TENTATIVE", "STATUS:CANCELLED",
                                    "STATUS:CONFIRMED", "TRANSP;X-A=b:transparent"]), max_size=2,
                   unique_by=lambda mark: mark[:6]),  # each property once, as imports keep them
    zone=st.sampled_from([None, "Europe/Berlin", "Australia/Lord_Howe", "Pacific/Kiritimati"]),
)  # fmt: skip
def test_busy_time_from_spans_is_the_parsed_busy_time(
    text: str, first: int, days: int, marks: list[str], zone: str | None
) -> None:
    """Free/busy of an event the index tells everything of, or of one all-day event (its day on
    the asker's wall clock), is read from its spans (and its TRANSP, STATUS and date lines), not
    parsed: the same periods as parsing its instances gives."""
    text = text.replace("SUMMARY:A & <b>\r\n", "SUMMARY:A & <b>\r\n" + "".join(f"{m}\r\n" for m in marks))
    resource = resource_from_calendar(parse_resource(text))
    low = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=first)
    high = low + timedelta(days=days)
    lo, hi = epoch(low), epoch(high)
    spans = [(s, e, x) for s, e, x in resource.spans if s < hi and (e > lo or (e == s and s >= lo))]
    place = ZoneInfo(zone) if zone else None
    fast = busy_from_spans(resource.text, spans, low, high, place)
    if fast is None:
        assert not spans or not all(exact for _, _, exact in spans)
        assert not spans or "VALUE=DATE" not in resource.text or "RRULE" in resource.text  # one day: never parsed
        return
    parsed = busy_periods([windowed(resource.text, low, high, MAX_INSTANCES, place)], low, high, place)
    assert merged(fast) == merged(parsed)
