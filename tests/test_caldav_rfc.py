"""Issue 26.9: CalDAV as RFC 4791 and the third-party test suites say: a write keeps an object's
UID, free/busy says what is tentative, an object's own VTIMEZONE decides its times, reports on
objects and on the home, the PUT's media type, one kind of component per resource, no path
below a calendar, and an MKCALENDAR body read as XML when it is XML."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from aiohttp.test_utils import TestClient
from lxml import etree

from server.http import SERVICES
from server.services import Services
from tests.helpers import CAL, EVENT, NS, TB_MULTIGET, Account, basic, report, responses

CALENDAR = {"Content-Type": "text/calendar; charset=utf-8"}
QUERY = (
    '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/>{data}</D:prop>'
    '<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
    '<C:time-range start="{start}" end="{end}"/></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>'
)
EXPAND = '<C:calendar-data><C:expand start="{start}" end="{end}"/></C:calendar-data>'
FREE_BUSY = (
    '<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav"><C:time-range start="{start}" end="{end}"/>'
    "</C:free-busy-query>"
)


def event(uid: str, *lines: str) -> str:
    body = "".join(f"{line}\r\n" for line in lines)
    return EVENT.format(uid=uid, summary=uid).replace("END:VEVENT", body + "END:VEVENT")


async def wcap_session(client: TestClient) -> str:
    login = await (await client.get("/login.wcap", params={"user": "alice", "password": "correct horse"})).text()
    return login.split("X-NSCP-WCAP-SESSION-ID:")[1].split("\r\n")[0]


async def test_a_write_keeps_an_objects_uid(client: TestClient, alice: Account) -> None:
    """RFC 4791 5.3.2.1 no-uid-conflict: a PUT, a MOVE or a COPY with Overwrite: T onto a
    resource of another UID is 403 naming it, and changes nothing."""
    for name in ("a", "b"):
        assert (await client.put(f"{CAL}{name}.ics", data=event(name), headers=basic("alice"))).status == 201
    before = await (await client.get(f"{CAL}a.ics", headers=basic("alice"))).text()
    put = await client.put(f"{CAL}a.ics", data=event("other"), headers=basic("alice"))
    error = etree.fromstring(await put.read())
    assert put.status == 403 and error.find("C:no-uid-conflict", NS) is not None
    assert error.findtext(".//D:href", namespaces=NS) == f"{CAL}a.ics"
    for method in ("MOVE", "COPY"):
        moved = await client.request(
            method, f"{CAL}b.ics", headers={**basic("alice"), "Destination": f"{CAL}a.ics", "Overwrite": "T"}
        )
        assert moved.status == 403 and b"no-uid-conflict" in await moved.read(), method
    assert await (await client.get(f"{CAL}a.ics", headers=basic("alice"))).text() == before
    assert (await client.get(f"{CAL}b.ics", headers=basic("alice"))).status == 200
    same = await client.put(f"{CAL}a.ics", data=event("a", "LOCATION:here"), headers=basic("alice"))
    assert same.status == 204  # the same UID: a new version


async def test_free_busy_says_what_is_tentative_at_every_door(client: TestClient, alice: Account) -> None:
    """RFC 4791 7.10: STATUS:TENTATIVE is BUSY-TENTATIVE (CalDAV, WCAP get_freebusy, the busy feed)."""
    tentative = event("t", "STATUS:TENTATIVE").replace("T100000Z", "T120000Z").replace("T110000Z", "T130000Z")
    for name, text in (("c", event("c", "STATUS:CONFIRMED")), ("t", tentative)):
        assert (await client.put(f"{CAL}{name}.ics", data=text, headers=basic("alice"))).status == 201
    found = await client.request(
        "REPORT", CAL, data=FREE_BUSY.format(start="20250110T000000Z", end="20250111T000000Z"),
        headers={**basic("alice"), "Depth": "1"},
    )  # fmt: skip
    assert re.findall(r"FREEBUSY;FBTYPE=([A-Z-]+):(\S+)", await found.text()) == [
        ("BUSY", "20250110T100000Z/20250110T110000Z"),
        ("BUSY-TENTATIVE", "20250110T120000Z/20250110T130000Z"),
    ]
    params = {"id": await wcap_session(client), "calid": "alice", "dtstart": "20250110T000000Z",
              "dtend": "20250111T000000Z"}  # fmt: skip
    wcap = await (await client.get("/get_freebusy.wcap", params=params)).text()
    assert "FREEBUSY;FBTYPE=BUSY-TENTATIVE:20250110T120000Z/20250110T130000Z" in wcap
    assert "FREEBUSY;FBTYPE=BUSY:20250110T100000Z/20250110T110000Z" in wcap
    services: Services = client.app[SERVICES]  # the busy-times feed covers the days around today
    user = await services.users.get(alice.data["id"])
    assert user is not None
    [calendar] = await services.calendars.of(user)
    day = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y%m%d")
    soon = tentative.replace("20250110", day).replace("UID:t", "UID:soon")
    assert (await client.put(f"{CAL}soon.ics", data=soon, headers=basic("alice"))).status == 201
    token = await services.calendars.set_feed(user, calendar, on=True, busy_only=True)
    feed = await (await client.get(f"/feeds/{token}.ics")).text()
    assert f"DTSTART:{day}T120000Z" in feed and "STATUS:TENTATIVE" in feed and "SUMMARY:Busy (tentative)" in feed


OWN_ZONE = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VTIMEZONE\r\nTZID:America/New_York\r\n"
    "BEGIN:STANDARD\r\nDTSTART:19700101T000000\r\nTZOFFSETFROM:+0500\r\nTZOFFSETTO:+0500\r\nEND:STANDARD\r\n"
    "END:VTIMEZONE\r\nBEGIN:VEVENT\r\nUID:own\r\nDTSTAMP:20250101T000000Z\r\n"
    "DTSTART;TZID=America/New_York:20250110T100000\r\nDTEND;TZID=America/New_York:20250110T110000\r\n"
    "RRULE:FREQ=DAILY;COUNT=2\r\nSUMMARY:own rules\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


async def test_an_objects_own_vtimezone_decides_its_times_everywhere(client: TestClient, alice: Account) -> None:
    """A VTIMEZONE named America/New_York at +05:00 (not the database's -05:00): GET, queries,
    expansion, free/busy and WCAP all put 10:00 at 05:00 UTC."""
    assert (await client.put(f"{CAL}own.ics", data=OWN_ZONE, headers=basic("alice"))).status == 201
    got = await (await client.get(f"{CAL}own.ics", headers=basic("alice"))).text()
    tzid = re.search(r"DTSTART;TZID=\"?([^\":;]+)\"?:20250110T100000", got).group(1)  # type: ignore[union-attr]
    assert f"TZID:{tzid}\r\n" in got and "TZOFFSETTO:+0500" in got  # its VTIMEZONE goes with it
    at_five = {"start": "20250110T050000Z", "end": "20250110T060000Z"}
    hit = await report(client, CAL, QUERY.format(data="", **at_five))
    assert list(responses(hit)) == [f"{CAL}own.ics"]
    at_fifteen = {"start": "20250110T150000Z", "end": "20250110T160000Z"}  # where the database would put it
    assert list(responses(await report(client, CAL, QUERY.format(data="", **at_fifteen)))) == []
    expanded = await report(client, CAL, QUERY.format(data=EXPAND.format(**at_five), **at_five))
    assert "DTSTART:20250110T050000Z" in etree.tostring(expanded).decode()
    busy = await client.request(
        "REPORT", CAL, data=FREE_BUSY.format(start="20250110T000000Z", end="20250112T000000Z"),
        headers={**basic("alice"), "Depth": "1"},
    )  # fmt: skip
    assert re.findall(r"FREEBUSY;FBTYPE=BUSY:(\S+)", await busy.text()) == [
        "20250110T050000Z/20250110T060000Z", "20250111T050000Z/20250111T060000Z"
    ]  # fmt: skip
    params = {"id": await wcap_session(client), "calid": "alice", "dtstart": "20250110T050000Z",
              "dtend": "20250110T060000Z"}  # fmt: skip
    assert "UID:own" in await (await client.get("/fetchcomponents_by_range.wcap", params=params)).text()
    imported = await alice.post("/v1/import/", json={"file": OWN_ZONE.replace("UID:own", "UID:own-2")},
                                headers={"Accept": "application/json"})  # fmt: skip
    assert imported.status == 200
    [job, *_] = await (await alice.get("/v1/imports")).json()
    details = await (await alice.get(f"/v1/imports/{job['id']}/details")).json()
    assert "its own rules decide" in details["warnings"][0]["error"]


async def test_reports_on_an_object_and_on_the_home(client: TestClient, alice: Account) -> None:
    """RFC 4791 7.8/7.9: calendar-multiget and calendar-query may be sent to an object (the
    query then looks at it alone) and multiget to the home; other reports there are 403."""
    assert (await client.put(f"{CAL}one.ics", data=event("one"), headers=basic("alice"))).status == 201
    assert (await client.put(f"{CAL}two.ics", data=event("two"), headers=basic("alice"))).status == 201
    made = await client.request("MKCALENDAR", "/dav/calendars/alice/work/", headers=basic("alice"))
    assert made.status == 201
    assert (await client.put("/dav/calendars/alice/work/w.ics", data=event("w"), headers=basic("alice"))).status == 201
    hrefs = "".join(f"<D:href>{h}</D:href>" for h in (f"{CAL}one.ics", "/dav/calendars/alice/work/w.ics"))
    on_object = await report(client, f"{CAL}one.ics", TB_MULTIGET.format(hrefs=hrefs), depth="0")
    assert list(responses(on_object)) == [f"{CAL}one.ics", "/dav/calendars/alice/work/w.ics"]
    on_home = await report(client, "/dav/calendars/alice/", TB_MULTIGET.format(hrefs=hrefs), depth="0")
    assert "UID:w" in etree.tostring(on_home).decode() and "UID:one" in etree.tostring(on_home).decode()
    in_range = {"start": "20250110T000000Z", "end": "20250111T000000Z"}
    queried = await report(client, f"{CAL}one.ics", QUERY.format(data="<C:calendar-data/>", **in_range), depth="0")
    assert list(responses(queried)) == [f"{CAL}one.ics"]  # its calendar's two.ics is not looked at
    elsewhere = {"start": "20260110T000000Z", "end": "20260111T000000Z"}
    assert list(responses(await report(client, f"{CAL}one.ics", QUERY.format(data="", **elsewhere), depth="0"))) == []
    sync = (
        '<D:sync-collection xmlns:D="DAV:"><D:sync-token/><D:sync-level>1</D:sync-level><D:prop/></D:sync-collection>'
    )
    for path in (f"{CAL}one.ics", "/dav/calendars/alice/"):
        refused = await client.request("REPORT", path, data=sync, headers={**basic("alice"), "Depth": "0"})
        assert refused.status == 403 and b"supported-report" in await refused.read(), path
    assert (await client.request("REPORT", f"{CAL}one.ics", data=sync)).status == 401


async def test_what_a_put_may_hold(client: TestClient, alice: Account) -> None:
    """A PUT labelled as another format is supported-calendar-data; a VFREEBUSY beside the
    event is valid-calendar-object-resource (what GET returns is what was PUT, or a refusal)."""
    json = await client.put(
        f"{CAL}j.ics", data=event("j"), headers={**basic("alice"), "Content-Type": "application/json"}
    )
    assert json.status == 403 and b"supported-calendar-data" in await json.read()
    assert (await client.get(f"{CAL}j.ics", headers=basic("alice"))).status == 404
    assert (await client.put(f"{CAL}j.ics", data=event("j"), headers={**basic("alice"), **CALENDAR})).status == 201
    both = event("fb").replace(
        "END:VCALENDAR", "BEGIN:VFREEBUSY\r\nUID:fb-busy\r\nDTSTAMP:20250101T000000Z\r\nEND:VFREEBUSY\r\nEND:VCALENDAR"
    )
    refused = await client.put(f"{CAL}fb.ics", data=both, headers={**basic("alice"), **CALENDAR})
    assert refused.status == 403 and b"valid-calendar-object-resource" in await refused.read()
    assert (await client.get(f"{CAL}fb.ics", headers=basic("alice"))).status == 404


async def test_nothing_is_below_a_calendar_and_xml_is_read_as_xml(client: TestClient, alice: Account) -> None:
    """A path below a calendar's member answers 404 to every method but MKCOL/MKCALENDAR (which
    are refused as before); an MKCALENDAR whose XML body is labelled text/calendar makes it."""
    for method in ("PROPFIND", "GET", "DELETE", "PUT", "PROPPATCH", "REPORT"):
        response = await client.request(method, f"{CAL}example/", headers=basic("alice"))
        assert response.status == 404, method
    body = (
        '<?xml version="1.0" encoding="utf-8"?><C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        "<D:set><D:prop><D:displayname>Labelled oddly</D:displayname></D:prop></D:set></C:mkcalendar>"
    )
    made = await client.request("MKCALENDAR", "/dav/calendars/alice/odd/", data=body,
                                headers={**basic("alice"), **CALENDAR})  # fmt: skip
    assert made.status == 201, await made.text()
    not_xml = await client.request("MKCALENDAR", "/dav/calendars/alice/odder/", data=event("x"),
                                   headers={**basic("alice"), **CALENDAR})  # fmt: skip
    assert not_xml.status == 415
