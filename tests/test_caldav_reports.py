"""CalDAV reports, calendar management and Thunderbird's request sequence, replayed byte for byte
from the reference (calendar/providers/caldav in comm-central)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, get_args

import pytest
from aiohttp.test_utils import TestClient
from lxml import etree
from yarl import URL

from protocol.caldav.query import CALENDAR_REPORTS, Report
from server.caldav.props import REPORTS
from server.caldav.reports import HANDLERS
from server.services.calendars import CalendarService
from tests.helpers import (
    CAL,
    EVENT,
    NS,
    TB_CALENDAR_PROPS,
    TB_MULTIGET,
    TB_SYNC,
    XML,
    Account,
    basic,
    propfind,
    report,
    responses,
    seed_body,
)


async def put_event(client: TestClient, uid: str, summary: str = "x", *lines: str, path: str = CAL) -> str:
    text = EVENT.format(uid=uid, summary=summary)
    if lines:
        text = text.replace("SUMMARY:", "".join(f"{line}\r\n" for line in lines) + "SUMMARY:")
    response = await client.put(f"{path}{uid}.ics", data=text, headers={**basic("alice"), "If-None-Match": "*"})
    assert response.status == 201, await response.text()
    return response.headers["ETag"]


async def test_thunderbird_session(client: TestClient, alice: Account) -> None:
    # per-calendar startup: the calendar PROPFIND, then OPTIONS on the parent
    start = await client.request("PROPFIND", CAL, data=TB_CALENDAR_PROPS, headers={**basic("alice"), "Depth": "0"})
    assert start.status == 207
    props = etree.fromstring(await start.read())
    reports = [etree.QName(r).localname for r in props.findall(".//D:supported-report/D:report/*", NS)]
    assert "sync-collection" in reports and "calendar-multiget" in reports
    assert props.find(".//C:supported-calendar-component-set/C:comp[@name='VTODO']", NS) is not None
    options = await client.options("/dav/calendars/alice/", headers=basic("alice"))
    assert options.status == 200 and "calendar-auto-schedule" in options.headers["DAV"]  # invitations: the server's
    # first sync: empty token, Depth 1 and sync-level 1
    for n in range(150):
        await put_event(client, f"tb-{n:03}")
    first = await report(client, CAL, TB_SYNC.format(token=""))
    members = responses(first)
    assert len(members) == 150
    assert all(r.findtext(".//D:getcontenttype", namespaces=NS).startswith("text/calendar") for r in members.values())
    token = first.findtext("D:sync-token", namespaces=NS)
    # multiget in batches of 100, with a missing href answered 404
    hrefs = [*sorted(members), f"{CAL}gone.ics"]
    for batch in (hrefs[:100], hrefs[100:]):
        body = TB_MULTIGET.format(hrefs="".join(f"<D:href>{h}</D:href>" for h in batch))
        got = responses(await report(client, CAL, body))
        assert list(got) == batch
        for href, item in got.items():
            if href.endswith("gone.ics"):
                assert item.findtext("D:status", namespaces=NS) == "HTTP/1.1 404 Not Found"
            else:
                assert item.findtext(".//D:getetag", namespaces=NS)
                assert "BEGIN:VEVENT" in item.findtext(".//C:calendar-data", namespaces=NS)
    # a new item: PUT with If-None-Match, then the one-item multiget Thunderbird always sends
    etag = await put_event(client, "tb-new", "New")
    one = responses(await report(client, CAL, TB_MULTIGET.format(hrefs=f"<D:href>{CAL}tb-new.ics</D:href>")))
    assert one[f"{CAL}tb-new.ics"].findtext(".//D:getetag", namespaces=NS) == etag
    # a conflicting PUT (stale etag) and DELETE with If-Match
    stale = await client.put(
        f"{CAL}tb-new.ics", data=EVENT.format(uid="tb-new", summary="y"), headers={**basic("alice"), "If-Match": '"x"'}
    )
    assert stale.status == 412
    assert (await client.delete(f"{CAL}tb-000.ics", headers={**basic("alice"), "If-Match": '"x"'})).status == 412
    assert (await client.delete(f"{CAL}tb-000.ics", headers={**basic("alice"), "If-Match": etag})).status == 412
    assert (await client.head(f"{CAL}tb-000.ics", headers=basic("alice"))).status == 200
    assert (await client.delete(f"{CAL}tb-001.ics", headers=basic("alice"))).status == 204
    # the next sync reports exactly the change and the deletion
    changes = await report(client, CAL, TB_SYNC.format(token=token))
    found = responses(changes)
    assert set(found) == {f"{CAL}tb-new.ics", f"{CAL}tb-001.ics"}
    assert found[f"{CAL}tb-001.ics"].findtext("D:status", namespaces=NS) == "HTTP/1.1 404 Not Found"
    again = await report(client, CAL, TB_SYNC.format(token=changes.findtext("D:sync-token", namespaces=NS)))
    assert responses(again) == {}
    # without sync: getctag, then Depth 1 with the etags
    ctag = (await propfind(client, CAL, "<CS:getctag/>")).findtext(".//CS:getctag", namespaces=NS)
    listing = await propfind(client, CAL, "<D:getcontenttype/><D:resourcetype/><D:getetag/>", "1")
    assert ctag and len(listing.findall("D:response", NS)) == 1 + 150


async def test_sync_limit_truncates_with_507_and_bad_tokens_are_403(client: TestClient, alice: Account) -> None:
    for n in range(5):
        await put_event(client, f"s-{n}")
    limited = '<D:sync-collection xmlns:D="DAV:"><D:sync-token>{}</D:sync-token><D:sync-level>1</D:sync-level>'
    limited += "<D:limit><D:nresults>2</D:nresults></D:limit><D:prop><D:getetag/></D:prop></D:sync-collection>"
    seen: list[str] = []
    token = ""
    for _ in range(5):
        page = await report(client, CAL, limited.format(token))
        token = page.findtext("D:sync-token", namespaces=NS)
        items = responses(page)
        truncated = items.pop(CAL, None)
        seen += list(items)
        if truncated is None:
            break
        assert truncated.findtext("D:status", namespaces=NS) == "HTTP/1.1 507 Insufficient Storage"
    assert sorted(seen) == [f"{CAL}s-{n}.ics" for n in range(5)]
    assert responses(await report(client, CAL, limited.format(token))) == {}
    for bad in ("nonsense", "urn:almanac:sync:00000000-0000-0000-0000-000000000000:1", token + "999"):
        refused = await client.request(
            "REPORT", CAL, data=limited.format(bad), headers={**basic("alice"), **XML, "Depth": "1"}
        )
        body = await refused.read()
        assert refused.status == 403 and b"valid-sync-token" in body, bad


async def test_calendar_query_time_range_expand_and_free_busy(client: TestClient, alice: Account) -> None:
    await put_event(client, "weekly", "Weekly", "RRULE:FREQ=WEEKLY;COUNT=10")
    await put_event(client, "single", "Single")
    query = (
        '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/>'
        '<C:calendar-data>{data}</C:calendar-data></D:prop><C:filter><C:comp-filter name="VCALENDAR">'
        '<C:comp-filter name="VEVENT"><C:time-range start="20250116T000000Z" end="20250118T000000Z"/>'
        "</C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"
    )
    plain = responses(await report(client, CAL, query.format(data="")))
    assert list(plain) == [f"{CAL}weekly.ics"]
    assert "RRULE" in plain[f"{CAL}weekly.ics"].findtext(".//C:calendar-data", namespaces=NS)
    expand = '<C:expand start="20250116T000000Z" end="20250118T000000Z"/>'
    expanded = responses(await report(client, CAL, query.format(data=expand)))[f"{CAL}weekly.ics"]
    data = expanded.findtext(".//C:calendar-data", namespaces=NS)
    assert "RRULE" not in data and "RECURRENCE-ID:20250117T100000Z" in data and data.count("BEGIN:VEVENT") == 1
    busy = await client.request(
        "REPORT",
        CAL,
        data='<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav"><C:time-range start="20250110T000000Z" '
        'end="20250118T000000Z"/></C:free-busy-query>',
        headers={**basic("alice"), **XML, "Depth": "1"},
    )
    text = await busy.text()
    assert busy.status == 200 and busy.headers["Content-Type"].startswith("text/calendar")
    assert text.count("FREEBUSY;FBTYPE=BUSY:20250110T100000Z/20250110T110000Z") == 1  # both events, merged
    assert "FREEBUSY;FBTYPE=BUSY:20250117T100000Z/20250117T110000Z" in text
    unknown = await client.request("REPORT", CAL, data='<D:acl-principal-prop-set xmlns:D="DAV:"/>',
                                   headers={**basic("alice"), **XML})  # fmt: skip
    assert unknown.status == 403 and b"supported-report" in await unknown.read()


async def test_mkcalendar_proppatch_and_dead_properties(client: TestClient, alice: Account) -> None:
    body = (
        '<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>'
        '<D:displayname>Tasks</D:displayname><C:supported-calendar-component-set><C:comp name="VTODO"/>'
        "</C:supported-calendar-component-set></D:prop></D:set></C:mkcalendar>"
    )
    made = await client.request("MKCALENDAR", "/dav/calendars/alice/tasks/", data=body, headers=basic("alice"))
    assert made.status == 201
    again = await client.request("MKCALENDAR", "/dav/calendars/alice/tasks/", headers=basic("alice"))
    assert again.status == 405
    event = await client.put("/dav/calendars/alice/tasks/e.ics", data=EVENT.format(uid="e", summary="x"),
                             headers=basic("alice"))  # fmt: skip
    assert event.status == 403 and b"supported-calendar-component" in await event.read()
    patch = (
        '<D:propertyupdate xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:A="http://apple.com/ns/ical/" '
        'xmlns:X="urn:example:x"><D:set><D:prop><D:displayname>My tasks</D:displayname>'
        "<A:calendar-color>#FF0000FF</A:calendar-color><A:calendar-order>3</A:calendar-order>"
        "<C:calendar-description>Things to do</C:calendar-description><X:flavour>mint</X:flavour></D:prop></D:set>"
        "</D:propertyupdate>"
    )
    patched = await client.request("PROPPATCH", "/dav/calendars/alice/tasks/", data=patch, headers=basic("alice"))
    assert patched.status == 207 and b"200 OK" in await patched.read()
    props = await propfind(
        client,
        "/dav/calendars/alice/tasks/",
        '<D:displayname/><A:calendar-color xmlns:A="http://apple.com/ns/ical/"/><C:calendar-description/>'
        '<A:calendar-order xmlns:A="http://apple.com/ns/ical/"/><X:flavour xmlns:X="urn:example:x"/>',
    )
    assert props.findtext(".//D:displayname", namespaces=NS) == "My tasks"
    assert props.findtext(".//{http://apple.com/ns/ical/}calendar-color") == "#FF0000FF"
    assert props.findtext(".//{http://apple.com/ns/ical/}calendar-order") == "3"
    assert props.findtext(".//{urn:example:x}flavour") == "mint"
    # a protected property fails the whole update (403, the rest 424) and changes nothing
    protected = patch.replace("<D:displayname>My tasks</D:displayname>", "<D:getetag>x</D:getetag>")
    protected = protected.replace("mint", "lime")
    refused = await client.request("PROPPATCH", "/dav/calendars/alice/tasks/", data=protected, headers=basic("alice"))
    text = await refused.text()
    assert "403 Forbidden" in text and "424 Failed Dependency" in text
    flavour = await propfind(client, "/dav/calendars/alice/tasks/", '<X:flavour xmlns:X="urn:example:x"/>')
    assert flavour.findtext(".//{urn:example:x}flavour") == "mint"
    # the calendar made over CalDAV is a Timeslot group too; deleting it over CalDAV removes it
    assert "My tasks" in [g["name"] for g in (await (await alice.get("/v1/me/calendars")).json())["result"]]
    assert (await client.delete("/dav/calendars/alice/tasks/", headers=basic("alice"))).status == 204
    assert "My tasks" not in [g["name"] for g in (await (await alice.get("/v1/me/calendars")).json())["result"]]
    mkcol = (
        '<D:mkcol xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop><D:resourcetype>'
        "<D:collection/><C:calendar/></D:resourcetype></D:prop></D:set></D:mkcol>"
    )
    assert (
        await client.request("MKCOL", "/dav/calendars/alice/col/", data=mkcol, headers=basic("alice"))
    ).status == 201
    plain = await client.request("MKCOL", "/dav/calendars/alice/plain/", headers=basic("alice"))
    assert plain.status == 403


async def test_move_and_copy(client: TestClient, alice: Account) -> None:
    await client.request("MKCALENDAR", "/dav/calendars/alice/work/", headers=basic("alice"))
    await put_event(client, "m1", "Moving")
    base = "http://localhost/dav/calendars/alice/"
    copied = await client.request(
        "COPY", f"{CAL}m1.ics", headers={**basic("alice"), "Destination": f"{base}work/m1.ics"}
    )
    assert copied.status == 201
    clash = await client.request("COPY", f"{CAL}m1.ics", headers={**basic("alice"), "Destination": f"{CAL}m2.ics"})
    assert clash.status == 409 and b"no-uid-conflict" in await clash.read()
    keep = await client.request(
        "MOVE", f"{CAL}m1.ics", headers={**basic("alice"), "Destination": f"{base}work/m1.ics", "Overwrite": "F"}
    )
    assert keep.status == 412
    moved = await client.request("MOVE", f"{CAL}m1.ics", headers={**basic("alice"), "Destination": f"{CAL}renamed.ics"})
    assert moved.status == 201
    assert (await client.get(f"{CAL}m1.ics", headers=basic("alice"))).status == 404
    assert "SUMMARY:Moving" in await (await client.get(f"{CAL}renamed.ics", headers=basic("alice"))).text()
    foreign = await client.request(
        "MOVE", f"{CAL}renamed.ics", headers={**basic("alice"), "Destination": "/dav/calendars/bob/calendar/x.ics"}
    )
    assert foreign.status == 409


async def test_at_sign_and_its_escape_are_two_names(client: TestClient, alice: Account) -> None:
    literal = await client.put(f"{CAL}a@b.ics", data=EVENT.format(uid="at-1", summary="literal"),
                               headers=basic("alice"))  # fmt: skip
    encoded_url = URL(f"http://{client.host}:{client.port}{CAL}a%40b.ics", encoded=True)  # yarl decodes %40
    encoded = await client.session.put(encoded_url, data=EVENT.format(uid="at-2", summary="encoded"),
                                       headers=basic("alice"))  # fmt: skip
    assert literal.status == encoded.status == 201
    assert "literal" in await (await client.get(f"{CAL}a@b.ics", headers=basic("alice"))).text()
    assert "encoded" in await (await client.session.get(encoded_url, headers=basic("alice"))).text()
    assert "literal" in await (await client.get(f"{CAL}%61@b.ics", headers=basic("alice"))).text()  # %61 is "a"


def said(response: Any) -> dict[str, Any]:
    """What a response says of each property: its text and children, or its status."""
    found: dict[str, Any] = {}
    for propstat in response.findall("D:propstat", NS):
        status = propstat.findtext("D:status", namespaces=NS)
        for prop in propstat.find("D:prop", NS):
            found[prop.tag] = (prop.text or "", [child.tag for child in prop]) if status.endswith("200 OK") else status
    return found


@pytest.mark.parametrize(
    "asked",
    [
        "<D:prop><D:getetag/></D:prop>",  # what most clients list
        "<D:prop><D:getcontenttype/><D:resourcetype/><D:getetag/></D:prop>",  # Thunderbird's
        "<D:prop><D:getetag/><D:getcontentlength/><D:getlastmodified/><D:creationdate/><C:schedule-tag/>"
        "<D:displayname/></D:prop>",
        "<D:allprop/>",
    ],
)
async def test_a_listing_says_what_each_member_says(client: TestClient, alice: Account, asked: str) -> None:
    """Each member of a PROPFIND Depth 1 (read as a listing reads it, only the columns the
    asked properties need) has the values the member's own PROPFIND gives."""
    for uid in ("one", "two", "a&b"):
        await put_event(client, uid)
    # a meeting Alice organizes: a scheduling object, with a Schedule-Tag
    meeting = EVENT.format(uid="meeting", summary="x").replace(
        "END:VEVENT", "ORGANIZER:mailto:alice@example.org\r\nATTENDEE:mailto:zed@elsewhere.example\r\nEND:VEVENT"
    )
    assert (await client.put(f"{CAL}meeting.ics", data=meeting, headers=basic("alice"))).status == 201
    body = f'<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">{asked}</D:propfind>'

    async def members(path: str, depth: str) -> dict[str, Any]:
        reply = await client.request("PROPFIND", path, data=body, headers={**basic("alice"), "Depth": depth})
        assert reply.status == 207
        return responses(etree.fromstring(await reply.read()))

    listed = await members(CAL, "1")
    assert len(listed) == 5
    for href, response in listed.items():
        if href != CAL:
            assert said(response) == said((await members(href, "0"))[href]), href


async def test_head_and_a_304_carry_a_meetings_schedule_tag(client: TestClient, alice: Account) -> None:
    """HEAD and a GET answered 304 read no text, and still say the Schedule-Tag a GET says."""
    meeting = EVENT.format(uid="m", summary="x").replace(
        "END:VEVENT", "ORGANIZER:mailto:alice@example.org\r\nATTENDEE:mailto:zed@elsewhere.example\r\nEND:VEVENT"
    )
    assert (await client.put(f"{CAL}m.ics", data=meeting, headers=basic("alice"))).status == 201
    got = await client.get(f"{CAL}m.ics", headers=basic("alice"))
    head = await client.head(f"{CAL}m.ics", headers=basic("alice"))
    same = await client.get(f"{CAL}m.ics", headers={**basic("alice"), "If-None-Match": got.headers["ETag"]})
    assert same.status == 304
    assert got.headers["Schedule-Tag"] == head.headers.get("Schedule-Tag") == same.headers.get("Schedule-Tag")


async def test_an_initial_sync_covers_what_changes_while_it_is_written(
    client: TestClient, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An initial sync is a listing under the revision the calendar had when it came: an edit,
    a new object and a deletion made while its pages are written are all in the next sync."""
    for uid in ("kept", "edited", "removed"):
        await put_event(client, uid)
    pages = CalendarService.object_pages

    async def edited_meanwhile(self: CalendarService, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        async for page in pages(self, *args, **kwargs):
            yield page
            edit = await client.put(
                f"{CAL}edited.ics", data=EVENT.format(uid="edited", summary="y"), headers=basic("alice")
            )
            assert edit.status == 204
            await put_event(client, "new")
            assert (await client.delete(f"{CAL}removed.ics", headers=basic("alice"))).status == 204

    monkeypatch.setattr(CalendarService, "object_pages", edited_meanwhile)
    first = await report(client, CAL, TB_SYNC.format(token=""))
    assert set(responses(first)) == {f"{CAL}{uid}.ics" for uid in ("kept", "edited", "removed")}
    monkeypatch.undo()
    later = responses(await report(client, CAL, TB_SYNC.format(token=first.findtext("D:sync-token", namespaces=NS))))
    assert set(later) == {f"{CAL}{uid}.ics" for uid in ("edited", "new", "removed")}
    assert later[f"{CAL}removed.ics"].findtext("D:status", namespaces=NS) == "HTTP/1.1 404 Not Found"


async def test_imports_through_other_doors_move_the_sync_token(client: TestClient, alice: Account) -> None:
    first = await report(client, CAL, TB_SYNC.format(token=""))
    token = first.findtext("D:sync-token", namespaces=NS)
    assert (await alice.post("/v1/import/", json={**seed_body(), "group": alice.data["myCalendarUuid"]})).status == 200
    changed = await report(client, CAL, TB_SYNC.format(token=token))
    assert changed.findtext("D:sync-token", namespaces=NS) != token
    assert f"{CAL}07a45e5b-1d1e-4f41-ad36-4c15ca9150d6.ics" in responses(changed)
    await put_event(client, "dav-1", "Written over CalDAV")
    assert "Written over CalDAV" in await alice.export("timeslot")


async def test_reports_stay_inside_the_users_own_calendars(client: TestClient, alice: Account, bob: Account) -> None:
    await put_event(client, "private", "Alice only")
    body = TB_MULTIGET.format(hrefs=f"<D:href>{CAL}private.ics</D:href>")
    sneaky = await client.request("REPORT", CAL, data=body, headers={**basic("bob"), **XML})
    assert sneaky.status == 404
    bobs = await client.request("REPORT", "/dav/calendars/bob/calendar/", data=body, headers={**basic("bob"), **XML})
    item = responses(etree.fromstring(await bobs.read()))[f"{CAL}private.ics"]
    assert item.findtext("D:status", namespaces=NS) == "HTTP/1.1 404 Not Found"


def test_every_report_a_calendar_lists_has_a_reader_and_an_answer() -> None:
    """supported-report-set, the reader and the dispatcher are one table each way."""
    assert tuple(CALENDAR_REPORTS) == REPORTS and len(REPORTS) == len(get_args(Report))
    assert set(HANDLERS) == set(get_args(Report))
