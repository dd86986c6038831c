"""What real clients and exports send (issue 13): folds anywhere, recurrences as RFC 5545 and
RFC 4791 read them, and replies that carry what the RFCs require."""

from __future__ import annotations

import re

import aiohttp
from aiohttp.test_utils import TestClient

from protocol import formats
from protocol.ical.resources import timezone_text
from protocol.ical.values import parse_resource, unfold
from tests.helpers import Account, basic

CAL = "/dav/calendars/alice/calendar/"
CALDAV = 'xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"'


def calendar(*lines: str) -> str:
    body = "".join(f"{line}\r\n" for line in lines)
    return (
        f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n{body}END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


async def report(client: TestClient, body: str) -> str:
    response = await client.request("REPORT", CAL, data=body, headers={**basic("alice"), "Depth": "1"})
    text = await response.text()
    assert response.status in (200, 207), text
    return text


FOLDED = calendar(
    "UID:folded",
    "DTSTAMP:20250101T000000Z",
    "DTSTART:20250110T100000Z",
    "DTEND:20250110T110000Z",
    "RRULE:FREQ=DAILY;COUNT=2",
    'ATTENDEE;CN="X";ROLE=REQ-PARTICIPA',
    " NT;RSVP=TRUE:mailto:x@example.org",
)


async def test_a_line_folded_inside_its_parameters_is_taken(client: TestClient, alice: Account) -> None:
    """A. RFC 5545 3.1: a fold may fall anywhere; Apple, Google and khal fold inside parameters."""
    assert (await client.put(CAL + "folded.ics", data=FOLDED, headers=basic("alice"))).status == 201
    stored = await (await client.get(CAL + "folded.ics", headers=basic("alice"))).text()
    assert 'ATTENDEE;CN="X";ROLE=REQ-PARTICIPA\r\n NT;RSVP=TRUE:mailto:x@example.org\r\n' in stored  # as written
    twin = FOLDED.replace("UID:folded", "UID:folded-2")
    imported = await alice.post("/v1/import/", json={"file": twin, "group": alice.data["myCalendarUuid"]})
    assert imported.status == 200, await imported.text()
    expanded = await report(
        client,
        f"<C:calendar-query {CALDAV}><D:prop><C:calendar-data>"
        '<C:expand start="20250111T000000Z" end="20250112T000000Z"/></C:calendar-data></D:prop>'
        '<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        '<C:time-range start="20250111T000000Z" end="20250112T000000Z"/></C:comp-filter></C:comp-filter>'
        "</C:filter></C:calendar-query>",
    )
    assert expanded.count("RECURRENCE-ID:20250111T100000Z") == 2 and "mailto:x@example.org" in expanded


async def test_free_busy_counts_duration_of_recurring_events(client: TestClient, alice: Account) -> None:
    """C. DTSTART 15:00Z, DURATION PT1H, RRULE DAILY COUNT=3: three busy hours, not instants."""
    event = calendar("UID:fb", "DTSTAMP:20250101T000000Z", "DTSTART:20250110T150000Z", "DURATION:PT1H",
                     "RRULE:FREQ=DAILY;COUNT=3")  # fmt: skip
    assert (await client.put(CAL + "fb.ics", data=event, headers=basic("alice"))).status == 201
    busy = await report(
        client,
        f'<C:free-busy-query {CALDAV}><C:time-range start="20250110T000000Z" end="20250115T000000Z"/>'
        "</C:free-busy-query>",
    )
    assert re.findall(r"FREEBUSY;FBTYPE=BUSY:(\S+)", busy) == [
        f"202501{day}T150000Z/202501{day}T160000Z" for day in (10, 11, 12)
    ]
    login = await (await client.get("/login.wcap", params={"user": "alice", "password": "correct horse"})).text()
    session = login.split("X-NSCP-WCAP-SESSION-ID:")[1].split("\r\n")[0]
    params = {"id": session, "calid": "alice", "dtstart": "20250110T000000Z", "dtend": "20250115T000000Z"}
    wcap = await (await client.get("/get_freebusy.wcap", params=params)).text()
    assert "FREEBUSY;FBTYPE=BUSY:20250111T150000Z/20250111T160000Z" in wcap


async def test_an_open_start_in_a_zone_west_of_utc_is_no_overflow(client: TestClient, alice: Account) -> None:
    """D. A time-range with an end and no start, a C:timezone at -05:00, a recurring event: 500."""
    event = calendar("UID:r", "DTSTAMP:20250101T000000Z", "DTSTART:20250101T100000", "DTEND:20250101T110000",
                     "RRULE:FREQ=DAILY;COUNT=5")  # fmt: skip
    assert (await client.put(CAL + "r.ics", data=event, headers=basic("alice"))).status == 201
    zone = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VTIMEZONE\r\nTZID:America/New_York\r\n"
        "BEGIN:STANDARD\r\nDTSTART:19701101T020000\r\nTZOFFSETFROM:-0400\r\nTZOFFSETTO:-0500\r\nEND:STANDARD\r\n"
        "END:VTIMEZONE\r\nEND:VCALENDAR\r\n"
    )
    found = await report(
        client,
        f"<C:calendar-query {CALDAV}><D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="
        '"VCALENDAR"><C:comp-filter name="VEVENT"><C:time-range end="20250103T000000Z"/></C:comp-filter>'
        f"</C:comp-filter></C:filter><C:timezone>{zone}</C:timezone></C:calendar-query>",
    )
    assert f"{CAL}r.ics" in found


async def test_expanded_calendar_data_has_version_and_prodid(client: TestClient, alice: Account) -> None:
    """I. RFC 5545 3.6: every VCALENDAR holds VERSION and PRODID, expanded ones too."""
    assert (await client.put(CAL + "folded.ics", data=FOLDED, headers=basic("alice"))).status == 201
    expanded = await report(
        client,
        f"<C:calendar-query {CALDAV}><D:prop><C:calendar-data>"
        '<C:expand start="20250110T000000Z" end="20250112T000000Z"/></C:calendar-data></D:prop>'
        '<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        '<C:time-range start="20250110T000000Z" end="20250112T000000Z"/></C:comp-filter></C:comp-filter>'
        "</C:filter></C:calendar-query>",
    )
    data = re.search(r"<C:calendar-data>(.*?)</C:calendar-data>", expanded, re.S)
    assert data is not None and "VERSION:2.0" in data.group(1) and "PRODID:" in data.group(1)


async def test_sync_without_properties_gives_each_member_a_status(client: TestClient, alice: Account) -> None:
    """J. RFC 4918 14.24: a response is an href with a status or with propstats, never alone."""
    assert (await client.put(CAL + "folded.ics", data=FOLDED, headers=basic("alice"))).status == 201
    synced = await report(
        client, '<D:sync-collection xmlns:D="DAV:"><D:sync-token/><D:sync-level>1</D:sync-level><D:prop/>'
        "</D:sync-collection>"
    )  # fmt: skip
    assert f"<D:href>{CAL}folded.ics</D:href><D:status>HTTP/1.1 200 OK</D:status>" in synced


async def test_the_smaller_refusals_say_what_rfc_4791_and_4918_say(client: TestClient, alice: Account) -> None:
    headers = basic("alice")
    freebusy = FOLDED.replace("VEVENT", "VFREEBUSY")
    put = await client.put(CAL + "fb.ics", data=freebusy, headers=headers)
    assert put.status == 403 and "supported-calendar-component" in await put.text()
    no_depth = await client.request("PROPFIND", CAL, headers=headers)  # no Depth is infinity (RFC 4918 9.1)
    assert no_depth.status == 403 and "propfind-finite-depth" in await no_depth.text()
    object_without_depth = await client.request("PROPFIND", "/dav/principals/alice/", headers=headers)
    assert object_without_depth.status == 207  # nothing below it: infinity is itself
    both = '<D:propfind xmlns:D="DAV:"><D:allprop/><D:propname/></D:propfind>'
    mixed = await client.request("PROPFIND", CAL, data=both, headers={**headers, "Depth": "0"})
    assert mixed.status == 400
    missing_parent = await client.request("MKCOL", "/dav/calendars/alice/nothing/sub/", headers=headers)
    assert missing_parent.status == 409
    inside = await client.request("MKCALENDAR", CAL + "sub/", headers=headers)
    assert inside.status == 403 and "calendar-collection-location-ok" in await inside.text()
    typed = await client.request(
        "MKCALENDAR", "/dav/calendars/alice/new/", data="{}", headers={**headers, "Content-Type": "application/json"}
    )
    assert typed.status == 415
    slash = await client.get("/.well-known/caldav/", allow_redirects=False)
    assert slash.status == 301


INVALID_FILTERS = {
    "an unknown element": "<C:foo/>",
    "an element of another namespace": "<D:href>x</D:href>",
    "is-not-defined with a time-range": '<C:is-not-defined/><C:time-range start="20250101T000000Z"/>',
    "two time-ranges": '<C:time-range start="20250101T000000Z"/><C:time-range end="20260101T000000Z"/>',
    "a text-match outside a prop-filter": "<C:text-match>x</C:text-match>",
    "a time-range and a text-match": '<C:prop-filter name="DTSTART"><C:time-range start="20250101T000000Z"/>'
    "<C:text-match>x</C:text-match></C:prop-filter>",
    "negate-condition neither yes nor no": '<C:prop-filter name="SUMMARY">'
    '<C:text-match negate-condition="maybe">x</C:text-match></C:prop-filter>',
    "a prop-filter without a name": "<C:prop-filter/>",
    "a param-filter with a time-range": '<C:prop-filter name="ATTENDEE"><C:param-filter name="PARTSTAT">'
    '<C:time-range start="20250101T000000Z"/></C:param-filter></C:prop-filter>',
}
ZONE = "<C:timezone>{}</C:timezone>"
INVALID_ZONES = {
    "not iCalendar": "garbage",
    "a bare VTIMEZONE": "BEGIN:VTIMEZONE\r\nTZID:X\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\n"
    "TZOFFSETFROM:+0100\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE",
    "no VTIMEZONE": "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nEND:VEVENT\r\nEND:VCALENDAR",
    "an unreadable offset": "BEGIN:VCALENDAR\r\nBEGIN:VTIMEZONE\r\nTZID:X\r\nBEGIN:STANDARD\r\n"
    "DTSTART:19700101T000000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:banana\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
    "END:VCALENDAR",
}


async def test_invalid_filters_and_zones_are_refused_with_their_precondition(
    client: TestClient, alice: Account
) -> None:
    """RFC 4791 7.8, 9.7, 9.8: a filter the grammar does not allow is ``valid-filter``, a
    C:timezone that is not a VCALENDAR with one readable VTIMEZONE ``valid-calendar-data``."""

    async def query(inner: str, zone: str = "") -> tuple[int, str]:
        body = (
            f"<C:calendar-query {CALDAV}><D:prop><D:getetag/></D:prop><C:filter>"
            f'<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">{inner}</C:comp-filter></C:comp-filter>'
            f"</C:filter>{zone}</C:calendar-query>"
        )
        response = await client.request("REPORT", CAL, data=body, headers={**basic("alice"), "Depth": "1"})
        return response.status, await response.text()

    for label, inner in INVALID_FILTERS.items():
        status, text = await query(inner)
        assert status == 403 and "valid-filter" in text, label
    for label, zone in INVALID_ZONES.items():
        status, text = await query("", ZONE.format(zone))
        assert status == 403 and "valid-calendar-data" in text, label
    good = '<C:prop-filter name="SUMMARY"><C:text-match negate-condition="yes">x</C:text-match></C:prop-filter>'
    berlin = f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{timezone_text('Europe/Berlin')}END:VCALENDAR"
    assert (await query(good, ZONE.format(berlin)))[0] == 207


def expand_query(start: str, end: str, component: str = "VEVENT") -> str:
    return (
        f"<C:calendar-query {CALDAV}><D:prop><C:calendar-data>"
        f'<C:expand start="{start}" end="{end}"/></C:calendar-data></D:prop>'
        f'<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="{component}">'
        f'<C:time-range start="{start}" end="{end}"/></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>'
    )


def instances_in(reply: str) -> list[str]:
    """The expanded components of a multistatus, unescaped."""
    return re.findall(r"BEGIN:V(?:EVENT|TODO)\n(.*?)END:V", reply.replace("&#13;", ""), re.S)


async def test_an_rdate_period_keeps_its_own_length(client: TestClient, alice: Account) -> None:
    """G. RDATE;VALUE=PERIOD 10:00-13:00 is three hours long, whatever the master's length."""
    event = calendar("UID:period", "DTSTAMP:20250101T000000Z", "DTSTART:20250110T090000Z", "DTEND:20250110T100000Z",
                     "RDATE;VALUE=PERIOD:20250112T100000Z/20250112T130000Z")  # fmt: skip
    assert (await client.put(CAL + "period.ics", data=event, headers=basic("alice"))).status == 201
    [instance] = instances_in(await report(client, expand_query("20250112T120000Z", "20250112T123000Z")))
    assert "DTSTART:20250112T100000Z" in instance and "DTEND:20250112T130000Z" in instance
    # icalendar's issue_1633: a master without DTEND, an RDATE period of dates: one day long
    no_end = calendar("UID:no-end", "DTSTAMP:20250101T000000Z", "DTSTART:19970101T180000Z",
                      "RDATE;VALUE=PERIOD:19970101/19970102")  # fmt: skip
    assert (await client.put(CAL + "no-end.ics", data=no_end, headers=basic("alice"))).status == 201
    [day, _] = instances_in(await report(client, expand_query("19970101T000000Z", "19970201T000000Z")))
    assert "DTSTART:19970101T000000Z" in day and "DTEND:19970102T000000Z" in day


async def test_a_recurring_todo_with_only_a_due_date_expands(client: TestClient, alice: Account) -> None:
    """L. A VTODO with DUE and no DTSTART recurs from its DUE."""
    todo = calendar("UID:due", "DTSTAMP:20250101T000000Z", "DUE:19920101T100000Z", "RRULE:FREQ=YEARLY;COUNT=40",
                    "SUMMARY:pay").replace("VEVENT", "VTODO")  # fmt: skip
    assert (await client.put(CAL + "due.ics", data=todo, headers=basic("alice"))).status == 201
    [instance] = instances_in(await report(client, expand_query("20250101T000000Z", "20250102T000000Z", "VTODO")))
    assert "DUE:20250101T100000Z" in instance and "RECURRENCE-ID:20250101T100000Z" in instance


async def test_an_override_carrying_a_rule_is_one_instance(client: TestClient, alice: Account) -> None:
    """K. An overridden instance is that one instance (RFC 5545 3.8.4.4), whatever it carries."""
    master = ["UID:k", "DTSTAMP:20250101T000000Z", "DTSTART:20250110T100000Z", "DTEND:20250110T110000Z",
              "RRULE:FREQ=DAILY;COUNT=10"]  # fmt: skip
    override = ["UID:k", "DTSTAMP:20250101T000000Z", "RECURRENCE-ID:20250112T100000Z", "DTSTART:20250112T140000Z",
                "DTEND:20250112T150000Z", "RRULE:FREQ=DAILY;COUNT=5", "SUMMARY:moved"]  # fmt: skip
    both = calendar(*master).replace(
        "END:VCALENDAR", "BEGIN:VEVENT\r\n" + "\r\n".join(override) + "\r\nEND:VEVENT\r\nEND:VCALENDAR"
    )
    assert (await client.put(CAL + "k.ics", data=both, headers=basic("alice"))).status == 201
    [moved] = instances_in(await report(client, expand_query("20250112T000000Z", "20250113T000000Z")))
    assert "DTSTART:20250112T140000Z" in moved and "RRULE" not in moved
    [later] = instances_in(await report(client, expand_query("20250114T000000Z", "20250115T000000Z")))
    assert "DTSTART:20250114T100000Z" in later and "moved" not in later


async def test_expand_places_all_day_instances_in_the_querys_zone(client: TestClient, alice: Account) -> None:
    """H. RFC 4791 9.9: dates are floating, placed in the query's C:timezone. At Los Angeles,
    2028-10-18 06:00-07:00Z is still October 17."""
    event = calendar("UID:days", "DTSTAMP:20250101T000000Z", "DTSTART;VALUE=DATE:20281015",
                     "DTEND;VALUE=DATE:20281016", "RRULE:FREQ=DAILY;COUNT=10")  # fmt: skip
    assert (await client.put(CAL + "days.ics", data=event, headers=basic("alice"))).status == 201
    los_angeles = timezone_text("America/Los_Angeles")
    zone = f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{los_angeles}END:VCALENDAR\r\n"
    query = expand_query("20281018T060000Z", "20281018T070000Z").replace(
        "</C:filter>", f"</C:filter><C:timezone>{zone}</C:timezone>"
    )
    [instance] = instances_in(await report(client, query))
    assert "RECURRENCE-ID;VALUE=DATE:20281017" in instance


async def test_plain_intent_is_repaired_and_said(client: TestClient, alice: Account) -> None:
    """Repairs: DTEND with DURATION keeps DTEND, COUNT with UNTIL keeps UNTIL (each a warning on
    an import; a PUT stores the repaired object); COUNT=0 is refused with its line."""
    both_ends = calendar("UID:ends", "DTSTAMP:20250101T000000Z", "DTSTART:20250110T100000Z",
                         "DTEND:20250110T110000Z", "DURATION:PT2H")  # fmt: skip
    assert (await client.put(CAL + "ends.ics", data=both_ends, headers=basic("alice"))).status == 201
    stored = await (await client.get(CAL + "ends.ics", headers=basic("alice"))).text()
    assert "DTEND:20250110T110000Z" in stored and "DURATION" not in stored
    counted = calendar("UID:count", "DTSTAMP:20250101T000000Z", "DTSTART:20250110T100000Z",
                       "RRULE:FREQ=DAILY;COUNT=3;UNTIL=20250111T100000Z")  # fmt: skip
    imported = await alice.post("/v1/import/", json={"file": counted})
    assert imported.status == 200, await imported.text()
    [job] = await (await alice.get("/v1/imports")).json()
    details = await (await alice.get(f"/v1/imports/{job['id']}/details")).json()
    assert "COUNT dropped, UNTIL kept" in details["warnings"][0]["error"]
    zero = counted.replace("COUNT=3;UNTIL=20250111T100000Z", "COUNT=0")
    refused = await alice.post("/v1/import/", json={"file": zero})
    assert refused.status == 422 and "COUNT=0" in (await refused.json())["errors"][0]["error"]


async def test_an_override_this_and_future_moves_every_later_instance(client: TestClient, alice: Account) -> None:
    """F. RECURRENCE-ID;RANGE=THISANDFUTURE applies to its instance and every later one (RFC 5545
    3.8.4.4): from January 13 on the series is at 14:00, two hours long, called "later"."""
    master = calendar("UID:f", "DTSTAMP:20250101T000000Z", "DTSTART:20250110T100000Z", "DTEND:20250110T110000Z",
                      "RRULE:FREQ=DAILY;COUNT=10", "SUMMARY:early")  # fmt: skip
    future = ("BEGIN:VEVENT\r\nUID:f\r\nDTSTAMP:20250101T000000Z\r\nRECURRENCE-ID;RANGE=THISANDFUTURE:20250113T100000Z"
              "\r\nDTSTART:20250113T140000Z\r\nDTEND:20250113T160000Z\r\nSUMMARY:later\r\nEND:VEVENT\r\n")  # fmt: skip
    both = master.replace("END:VCALENDAR", future + "END:VCALENDAR")
    assert (await client.put(CAL + "f.ics", data=both, headers=basic("alice"))).status == 201
    [moved] = instances_in(await report(client, expand_query("20250115T130000Z", "20250115T160000Z")))
    assert "DTSTART:20250115T140000Z" in moved and "RECURRENCE-ID:20250115T100000Z" in moved and "later" in moved
    assert instances_in(await report(client, expand_query("20250115T100000Z", "20250115T110000Z"))) == []
    [before] = instances_in(await report(client, expand_query("20250112T100000Z", "20250112T110000Z")))
    assert "early" in before


def with_override(master: str, *override: str) -> str:
    return master.replace(
        "END:VCALENDAR", "BEGIN:VEVENT\r\n" + "\r\n".join(override) + "\r\nEND:VEVENT\r\nEND:VCALENDAR"
    )


async def test_of_several_versions_of_an_event_the_newest_is_kept(client: TestClient, alice: Account) -> None:
    """Repair: two masters of one UID are two versions of it (RFC 5546 2.1.5): the highest
    SEQUENCE wins, then the latest DTSTAMP; the other is a warning with its line."""
    old = ["UID:v", "DTSTART:20250110T100000Z", "SUMMARY:old"]
    new = ["UID:v", "DTSTART:20250110T120000Z", "SUMMARY:new", "SEQUENCE:4", "DTSTAMP:20250101T000000Z"]
    text = with_override(calendar(*old, "SEQUENCE:3", "DTSTAMP:20250105T000000Z"), *new)
    assert (await client.put(CAL + "v.ics", data=text, headers=basic("alice"))).status == 201
    stored = await (await client.get(CAL + "v.ics", headers=basic("alice"))).text()
    assert "SUMMARY:new" in stored and "SUMMARY:old" not in stored
    stamped = with_override(calendar(*old, "UID:w", "DTSTAMP:20250105T000000Z").replace("UID:v\r\n", ""),
                            "UID:w", "DTSTART:20250110T120000Z", "SUMMARY:new", "DTSTAMP:20250101T000000Z")  # fmt: skip
    imported = await alice.post("/v1/import/", json={"file": stamped, "group": alice.data["myCalendarUuid"]})
    assert imported.status == 200, await imported.text()
    [job] = await (await alice.get("/v1/imports")).json()
    details = await (await alice.get(f"/v1/imports/{job['id']}/details")).json()
    assert [w["line"] for w in details["warnings"]] == [10] and "older version" in details["warnings"][0]["error"]
    found = instances_in(await report(client, expand_query("20250110T000000Z", "20250111T000000Z")))
    [event] = [instance for instance in found if "UID:w" in instance]
    assert "SUMMARY:old" in event  # the later DTSTAMP, though first in the file


async def test_a_tzid_on_a_utc_time_is_dropped(client: TestClient, alice: Account) -> None:
    """Repair: DTSTART;TZID=America/New_York:...T150000Z is 15:00 UTC (icalendar alone reads 15:00 New York)."""
    text = calendar("UID:z", "DTSTAMP:20250101T000000Z", "DTSTART;TZID=America/New_York:20250110T150000Z",
                    "DTEND;TZID=America/New_York:20250110T160000Z")  # fmt: skip
    assert (await client.put(CAL + "z.ics", data=text, headers=basic("alice"))).status == 201
    [event] = instances_in(await report(client, expand_query("20250110T150000Z", "20250110T153000Z")))
    assert "DTSTART:20250110T150000Z" in event and "TZID" not in event


async def test_an_override_of_another_value_type_replaces_its_instance(client: TestClient, alice: Account) -> None:
    """Repair: Exchange's DATE-TIME RECURRENCE-ID on an all-day series (and the reverse) means
    the instance of that day: it is moved once, never shown twice."""
    days = calendar("UID:d", "DTSTAMP:20250101T000000Z", "DTSTART;VALUE=DATE:20250110", "DTEND;VALUE=DATE:20250111",
                    "RRULE:FREQ=DAILY;COUNT=5")  # fmt: skip
    moved = ["UID:d", "DTSTAMP:20250101T000000Z", "RECURRENCE-ID;TZID=Europe/Berlin:20250112T000000",
             "DTSTART;VALUE=DATE:20250113", "DTEND;VALUE=DATE:20250114", "SUMMARY:moved"]  # fmt: skip
    assert (await client.put(CAL + "d.ics", data=with_override(days, *moved), headers=basic("alice"))).status == 201
    found = instances_in(await report(client, expand_query("20250112T000000Z", "20250114T000000Z")))
    assert sorted(re.findall(r"DTSTART;VALUE=DATE:(\d+)", "".join(found))) == ["20250113", "20250113"]
    assert sum("moved" in instance for instance in found) == 1  # the 13th's own instance and the moved 12th
    timed = calendar("UID:t", "DTSTAMP:20250101T000000Z", "DTSTART;TZID=Europe/Berlin:20250110T090000",
                     "DTEND;TZID=Europe/Berlin:20250110T100000", "RRULE:FREQ=DAILY;COUNT=5")  # fmt: skip
    dated = ["UID:t", "DTSTAMP:20250101T000000Z", "RECURRENCE-ID;VALUE=DATE:20250112", "SUMMARY:late",
             "DTSTART;TZID=Europe/Berlin:20250112T150000", "DTEND;TZID=Europe/Berlin:20250112T160000"]  # fmt: skip
    assert (await client.put(CAL + "t.ics", data=with_override(timed, *dated), headers=basic("alice"))).status == 201
    [late] = instances_in(await report(client, expand_query("20250112T000000Z", "20250113T000000Z")))
    assert "late" in late and "RECURRENCE-ID:20250112T080000Z" in late


async def test_exdates_of_another_value_type_exclude_their_instance(client: TestClient, alice: Account) -> None:
    """Repair: EXDATE;VALUE=DATE on a timed series excludes that day's instance (read as DTSTART's type)."""
    text = calendar("UID:x", "DTSTAMP:20250101T000000Z", "DTSTART;TZID=Europe/Berlin:20250110T090000",
                    "RRULE:FREQ=DAILY;COUNT=5", "EXDATE;VALUE=DATE:20250111")  # fmt: skip
    assert (await client.put(CAL + "x.ics", data=text, headers=basic("alice"))).status == 201
    assert instances_in(await report(client, expand_query("20250111T000000Z", "20250112T000000Z"))) == []
    assert len(instances_in(await report(client, expand_query("20250112T000000Z", "20250113T000000Z")))) == 1


async def test_principal_search_answers_on_the_root_and_the_principals(
    client: TestClient, alice: Account, bob: Account
) -> None:
    """RFC 3744 9.4/9.5 on ``/`` (where Thunderbird and Apple Calendar send it), the principal
    collection and a principal: a caseless substring of a name or address; only principals the
    user may see (their own, until sharing)."""
    search = (
        '<D:principal-property-search xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" test="anyof">'
        "<D:property-search><D:prop><D:displayname/></D:prop><D:match>{}</D:match></D:property-search>"
        "<D:property-search><D:prop><C:calendar-user-address-set/></D:prop><D:match>{}</D:match></D:property-search>"
        "<D:prop><D:displayname/><C:calendar-home-set/></D:prop></D:principal-property-search>"
    )
    for path in ("/", "/dav/", "/dav/principals/", "/dav/principals/alice/"):
        found = await client.request("REPORT", path, data=search.format("LIC", "nobody"), headers=basic("alice"))
        text = await found.text()
        assert found.status == 207 and "/dav/calendars/alice/" in text, path
        assert text.count("<D:response>") == 1 and "<D:displayname>alice</D:displayname>" in text
    by_mail = await client.request("REPORT", "/", data=search.format("zzz", "EXAMPLE"), headers=basic("alice"))
    assert "/dav/principals/alice/" in await by_mail.text()
    hidden = await client.request("REPORT", "/", data=search.format("bob", "bob"), headers=basic("alice"))
    assert hidden.status == 207 and "bob" not in await hidden.text()  # no existence leak
    offered = await client.request(
        "REPORT", "/dav/principals/", data='<D:principal-search-property-set xmlns:D="DAV:"/>', headers=basic("alice")
    )
    assert offered.status == 200 and "<D:displayname/>" in await offered.text()
    listed = await client.request("PROPFIND", "/dav/principals/", headers={**basic("alice"), "Depth": "1"})
    assert listed.status == 207 and (await listed.text()).count("<D:response>") == 2
    wrong = await client.request("REPORT", "/", data="<D:foo xmlns:D='DAV:'/>", headers=basic("alice"))
    assert wrong.status == 400


async def test_a_series_whose_first_instances_in_a_window_are_excluded_is_found(
    client: TestClient, alice: Account
) -> None:
    """Found by recurring-ical-events' issue_4.ics: a weekly series with EXDATEs on the first
    instances of a window still has the later ones there (the walk counted excluded instances)."""
    text = calendar("UID:ex", "DTSTAMP:20250101T000000Z", "DTSTART;VALUE=DATE:20190124", "RRULE:FREQ=WEEKLY;BYDAY=TH",
                    "DTEND;VALUE=DATE:20190125", "EXDATE;VALUE=DATE:20190307,20190314")  # fmt: skip
    assert (await client.put(CAL + "ex.ics", data=text, headers=basic("alice"))).status == 201
    found = instances_in(await report(client, expand_query("20190301T000000Z", "20190407T000000Z")))
    assert [re.search(r"DTSTART;VALUE=DATE:(\d+)", i).group(1) for i in found] == ["20190321", "20190328", "20190404"]  # type: ignore[union-attr]


async def test_what_hypothesis_found_in_mutated_corpus_files(client: TestClient, alice: Account) -> None:
    """A property given twice with one value is kept once (SEQUENCE twice broke every later
    query of the calendar); twice with different values, or a VTIMEZONE whose TZID is given
    twice (icalendar raises AttributeError), is refused with the line: never a 500."""
    twice = calendar("UID:twice", "DTSTAMP:20250101T000000Z", "DTSTART:20250110T100000Z", "SEQUENCE:1", "SEQUENCE:1",
                     "RRULE:FREQ=DAILY;COUNT=3")  # fmt: skip
    assert (await client.put(CAL + "twice.ics", data=twice, headers=basic("alice"))).status == 201
    assert len(instances_in(await report(client, expand_query("20250110T000000Z", "20250113T000000Z")))) == 3
    different = twice.replace("SEQUENCE:1\r\nSEQUENCE:1", "SUMMARY:a\r\nSUMMARY:b")
    refused = await alice.post("/v1/import/", json={"file": different})
    assert refused.status == 422 and "SUMMARY appears more than once" in (await refused.json())["errors"][0]["error"]
    zone = timezone_text("Europe/London") or ""
    doubled = twice.replace("BEGIN:VEVENT", zone.replace("TZID:", "TZID:Europe/London\r\nTZID:", 1) + "BEGIN:VEVENT")
    put = await client.put(CAL + "zone.ics", data=doubled, headers=basic("alice"))
    assert put.status == 403 and "valid-calendar-data" in await put.text()
    imported = await alice.post("/v1/import/", json={"file": doubled})
    assert imported.status == 422 and "invalid VTIMEZONE" in (await imported.json())["errors"][0]["error"]


def test_a_folded_begin_line_keeps_the_made_uid_out_of_it() -> None:
    """Found by hypothesis: the UID made for a component without one went inside its BEGIN line
    when that line was folded, and the stored object could not be read back."""
    text = (
        "BEGIN:VCALENDAR\r\nB\r\n EGIN:VEVENT\r\nDTSTART:20130803T190000Z\r\nSUMMARY:x\r\nEND:VEVENT\r\n"
        "END:VCALENDAR\r\n"
    )
    [resource] = formats.parse(text).resources
    [event] = parse_resource(resource.text).walk("VEVENT")
    assert str(event["UID"]).startswith("almanac-") and str(event["SUMMARY"]) == "x"


def test_a_recurrence_id_that_is_no_date_is_refused_with_its_line() -> None:
    """Found by hypothesis (a value type swapped to TEXT): the reader raised AttributeError."""
    override = "BEGIN:VEVENT\r\nUID:a\r\nRECURRENCE-ID;VALUE=TEXT:20250102T100000Z\r\nDTSTART:20250102T120000Z\r\n"
    text = calendar("UID:a", "DTSTART:20250101T100000Z", "RRULE:FREQ=DAILY;COUNT=3").replace(
        "END:VCALENDAR", override + "END:VEVENT\r\nEND:VCALENDAR"
    )
    result = formats.parse(text)
    assert [(e.line, e.error) for e in result.errors] == [(9, "RECURRENCE-ID is not a valid date or date-time")]


QUIRKS = {  # issue 26.8: name -> (file text, what a warning of the import says)
    "apple-radius": (
        calendar("UID:q1", "DTSTART:20250110T100000Z", "X-APPLE-RADIUS=49.91307046514149"),
        "X-APPLE-RADIUS= where a colon belongs",
    ),
    "apple-location": (
        calendar(
            "UID:q2",
            "DTSTART:20250110T100000Z",
            'X-APPLE-STRUCTURED-LOCATION;VALUE=URI;X-ADDRESS="Wien";X-APPLE-MAPKIT-HANDLE=CAES;',
            "X-APPLE-RADIUS=49.91306091513493;X-APPLE-REFERENCEFRAME=1;X-TITLE=Home:geo:48.2,16.3",
        ),
        "X-APPLE-STRUCTURED-LOCATION goes on in a line without its leading space",
    ),
    "blank-lines": (
        calendar("UID:q3", "DTSTART", "", " :20250110T100000Z", "SUMMARY:Mozilla", "", "", " 's blank lines"),
        "blank lines inside a folded line",
    ),
    "text-after": (
        calendar("UID:q4", "DTSTART:20250110T100000Z") + "X-COMMENT:Cached from 2022-02-20\r\n",
        "text after END:VCALENDAR",
    ),
    "byday-spaces": (
        calendar("UID:q5", "DTSTART:20250110T100000Z", "RRULE:FREQ=DAILY;COUNT=5;BYDAY=MO, TU, WE, TH, FR"),
        "RRULE with spaces in its value",
    ),
    "empty-exdate": (
        calendar("UID:q6", "DTSTART;VALUE=DATE:20250110", "RRULE:FREQ=DAILY;COUNT=3", "EXDATE;VALUE=DATE:", "RDATE:"),
        "EXDATE with no value",
    ),
    "no-end": (
        calendar("UID:q7", "DTSTART:20250110T100000Z").removesuffix("END:VCALENDAR\r\n"),
        "ends without END:VCALENDAR",
    ),
}


async def test_the_quirks_of_real_files_are_repaired_at_every_door(client: TestClient, alice: Account) -> None:
    """Issue 26.8: each quirk whose intent is plain is taken by every door (REST and WCAP
    imports with a warning that gives its line, a CalDAV PUT), stored mended; a truncated
    component stays refused."""
    login = await (await client.get("/login.wcap", params={"user": "alice", "password": "correct horse"})).text()
    session = login.split("X-NSCP-WCAP-SESSION-ID:")[1].split("\r\n")[0]
    for name, (text, warned) in QUIRKS.items():
        imported = await alice.post("/v1/import/", json={"file": text}, headers={"Accept": "application/json"})
        assert imported.status == 200, (name, await imported.text())
        [job, *_] = await (await alice.get("/v1/imports")).json()
        details = await (await alice.get(f"/v1/imports/{job['id']}/details")).json()
        assert [w for w in details["warnings"] if warned in w["error"] and w["line"]], (name, details["warnings"])
        uid = re.search(r"UID:(\w+)", text).group(1)  # type: ignore[union-attr]
        again = text.replace(f"UID:{uid}", f"UID:{uid}-put")
        put = await client.put(f"{CAL}{name}.ics", data=again, headers=basic("alice"))
        assert put.status == 201, (name, await put.text())
        stored = await (await client.get(f"{CAL}{name}.ics", headers=basic("alice"))).text()
        assert stored.startswith("BEGIN:VCALENDAR") and stored.endswith("END:VCALENDAR\r\n"), name
        form = aiohttp.FormData()
        form.add_field("file", text.replace(f"UID:{uid}", f"UID:{uid}-wcap"), filename=f"{name}.ics")
        wcap = await client.post("/wcap/import.wcap", params={"id": session, "calid": "alice"}, data=form)
        assert "X-NSCP-WCAP-ERRNO:0" in await wcap.text(), name
    stored = await (await client.get(f"{CAL}byday-spaces.ics", headers=basic("alice"))).text()
    assert "BYDAY=MO,TU,WE,TH,FR" in stored
    stored = await (await client.get(f"{CAL}blank-lines.ics", headers=basic("alice"))).text()
    assert "DTSTART:20250110T100000Z" in unfold(stored) and "SUMMARY:Mozilla's blank lines" in unfold(stored)
    stored = await (await client.get(f"{CAL}apple-location.ics", headers=basic("alice"))).text()
    assert "X-APPLE-RADIUS=49.91306091513493;X-APPLE-REFERENCEFRAME=1;X-TITLE=Home:geo:48.2,16.3" in unfold(stored)
    cut = calendar("UID:cut", "DTSTART:20250110T100000Z").removesuffix("END:VEVENT\r\nEND:VCALENDAR\r\n")
    refused = await alice.post("/v1/import/", json={"file": cut})
    assert refused.status == 422 and "the file ends inside VEVENT" in await refused.text()


async def test_a_deleted_occurrence_stays_deleted_at_every_door(client: TestClient, alice: Account) -> None:
    """Issue 26.10: Google's and Thunderbird's exports after a user changed one occurrence and
    then deleted it: the newest master (SEQUENCE 2) excludes it, the older master and the
    override are still in the file. The occurrence is shown by no door; the import says so."""
    old = ["UID:weekly", "DTSTAMP:20250101T000000Z", "DTSTART:20250106T100000Z", "DTEND:20250106T110000Z",
           "RRULE:FREQ=WEEKLY;COUNT=4", "SUMMARY:weekly", "SEQUENCE:1"]  # fmt: skip
    changed = ["UID:weekly", "DTSTAMP:20250101T000000Z", "RECURRENCE-ID:20250113T100000Z",
               "DTSTART:20250113T150000Z", "DTEND:20250113T160000Z", "SUMMARY:moved", "SEQUENCE:1"]  # fmt: skip
    newest = [*old[:-1], "EXDATE:20250113T100000Z", "SEQUENCE:2"]
    text = with_override(with_override(calendar(*old), *changed), *newest)
    imported = await alice.post("/v1/import/", json={"file": text}, headers={"Accept": "application/json"})
    assert imported.status == 200, await imported.text()
    [job] = await (await alice.get("/v1/imports")).json()
    details = await (await alice.get(f"/v1/imports/{job['id']}/details")).json()
    assert [w["line"] for w in details["warnings"] if "EXDATE deletes" in w["error"]] == [13]  # the override
    assert (await client.put(CAL + "weekly-put.ics", data=text.replace("UID:weekly", "UID:weekly-put"),
                             headers=basic("alice"))).status == 201  # fmt: skip
    week = ("20250113T000000Z", "20250114T000000Z")
    assert instances_in(await report(client, expand_query(*week))) == []  # CalDAV, both copies
    login = await (await client.get("/login.wcap", params={"user": "alice", "password": "correct horse"})).text()
    session = login.split("X-NSCP-WCAP-SESSION-ID:")[1].split("\r\n")[0]
    params = {"id": session, "calid": "alice", "dtstart": week[0], "dtend": week[1], "recurring": "1"}
    fetched = await (await client.get("/fetchcomponents_by_range.wcap", params=params)).text()
    assert "X-NSCP-WCAP-ERRNO:0" in fetched and "moved" not in fetched and "UID:weekly" not in fetched
    stored = await (await client.get(CAL + "weekly-put.ics", headers=basic("alice"))).text()
    assert "RECURRENCE-ID" not in stored and "SUMMARY:moved" not in stored
    month = instances_in(await report(client, expand_query("20250101T000000Z", "20250201T000000Z")))
    assert [re.search(r"DTSTART:(\d+)", i).group(1) for i in month] == ["20250106", "20250120", "20250127"]  # type: ignore[union-attr]


async def test_a_day_long_event_across_the_clock_change_ends_at_its_own_end(client: TestClient, alice: Account) -> None:
    """Found by hypothesis (test_fast_paths.py): an event from 03:00 to 03:00 the next day in Berlin
    across the change to summer time lasts 23 hours; its index span said 24, so a query of the
    hour after its end found it and an expand wrote its end an hour late."""
    text = calendar("UID:dst", "DTSTAMP:20250101T000000Z", "DTSTART;TZID=Europe/Berlin:20300330T030000",
                    "DTEND;TZID=Europe/Berlin:20300331T030000")  # fmt: skip
    assert (await client.put(CAL + "dst.ics", data=text, headers=basic("alice"))).status == 201
    assert instances_in(await report(client, expand_query("20300331T013000Z", "20300331T020000Z"))) == []
    [instance] = instances_in(await report(client, expand_query("20300331T000000Z", "20300331T013000Z")))
    assert "DTEND:20300331T010000Z" in instance
