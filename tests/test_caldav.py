"""The CalDAV door's first part: discovery, PROPFIND, and objects with ETag preconditions."""

from __future__ import annotations

from aiohttp.test_utils import TestClient
from lxml import etree

from protocol.dav import APPLE, CALDAV, DAV, tag
from protocol.ical.resources import timezone_text
from server.caldav.props import LIVE, Kind
from tests.helpers import CAL, EVENT, NS, Account, basic, propfind, seed_body


async def test_discovery_like_thunderbird(client: TestClient, alice: Account) -> None:
    moved = await client.request("PROPFIND", "/.well-known/caldav", headers=basic("alice"), allow_redirects=False)
    assert moved.status == 301 and moved.headers["Location"] == "/dav/"
    root = await propfind(client, "/", "<D:current-user-principal/><D:resourcetype/>")
    principal = root.findtext(".//D:current-user-principal/D:href", namespaces=NS)
    assert principal == "/dav/principals/alice/"
    home = (await propfind(client, principal, "<C:calendar-home-set/>")).findtext(
        ".//C:calendar-home-set/D:href", namespaces=NS
    )
    assert home == "/dav/calendars/alice/"
    listing = await propfind(client, home, "<D:resourcetype/><D:displayname/><D:current-user-privilege-set/>", "1")
    calendars = [r for r in listing.findall("D:response", NS) if r.find(".//C:calendar", NS) is not None]
    assert [r.findtext("D:href", namespaces=NS) for r in calendars] == ["/dav/calendars/alice/calendar/"]
    assert listing.find(".//D:privilege/D:write", NS) is not None
    options = await client.options("/dav/calendars/alice/", headers=basic("alice"))
    assert options.status == 200 and "calendar-access" in options.headers["DAV"]
    assert "2" not in options.headers["DAV"].split(", ")  # no LOCK
    assert "calendar-auto-schedule" in options.headers["DAV"]  # the server schedules (docs/scheduling.md)


async def test_authentication_and_isolation(client: TestClient, alice: Account, bob: Account) -> None:
    response = await client.request("PROPFIND", "/dav/calendars/alice/", headers={"Depth": "0"})
    assert response.status == 401 and response.headers["WWW-Authenticate"].startswith("Basic")
    for path in ("/dav/principals/alice/", "/dav/calendars/alice/", "/dav/calendars/alice/calendar/"):
        response = await client.request("PROPFIND", path, headers={**basic("bob"), "Depth": "0"})
        assert response.status == 404, path
    put = await client.put(
        "/dav/calendars/alice/calendar/x.ics", data=EVENT.format(uid="x", summary="mine"), headers=basic("bob")
    )
    assert put.status == 404
    infinite = await client.request(
        "PROPFIND", "/dav/calendars/alice/", headers={**basic("alice"), "Depth": "infinity"}
    )
    assert infinite.status == 403 and b"propfind-finite-depth" in await infinite.read()


async def test_put_get_delete_with_etags(client: TestClient, alice: Account) -> None:
    path = "/dav/calendars/alice/calendar/tb-1.ics"
    create = {**basic("alice"), "If-None-Match": "*", "Content-Type": "text/calendar; charset=utf-8"}
    first = await client.put(path, data=EVENT.format(uid="tb-1", summary="Dentist"), headers=create)
    assert first.status == 201
    etag = first.headers["ETag"]
    again = await client.put(path, data=EVENT.format(uid="tb-1", summary="Dentist"), headers=create)
    assert again.status == 412
    got = await client.get(path, headers=basic("alice"))
    assert got.headers["ETag"] == etag and "SUMMARY:Dentist" in await got.text()
    assert got.headers["Content-Type"].startswith("text/calendar")
    stale = await client.put(
        path, data=EVENT.format(uid="tb-1", summary="x"), headers={**basic("alice"), "If-Match": '"0"'}
    )
    assert stale.status == 412
    updated = await client.put(
        path, data=EVENT.format(uid="tb-1", summary="Dentist (moved)"), headers={**basic("alice"), "If-Match": etag}
    )
    assert updated.status == 204 and updated.headers["ETag"] != etag
    clash = await client.put(
        "/dav/calendars/alice/calendar/other.ics", data=EVENT.format(uid="tb-1", summary="x"), headers=basic("alice")
    )
    clash_body = await clash.read()  # names the object that holds the UID (RFC 4791 5.3.2.1)
    assert clash.status == 409 and b"no-uid-conflict" in clash_body and f"<D:href>{path}<".encode() in clash_body
    invalid = await client.put("/dav/calendars/alice/calendar/bad.ics", data="hello", headers=basic("alice"))
    assert invalid.status == 403 and b"valid-calendar-data" in await invalid.read()
    two = (
        EVENT.format(uid="one", summary="x").replace("END:VCALENDAR\r\n", "")
        + EVENT.format(uid="two", summary="y")[EVENT.index("BEGIN:VEVENT") :]
    )
    several = await client.put("/dav/calendars/alice/calendar/two.ics", data=two, headers=basic("alice"))
    assert several.status == 403 and b"valid-calendar-object-resource" in await several.read()
    wrong_etag = await client.delete(path, headers={**basic("alice"), "If-Match": etag})
    assert wrong_etag.status == 412
    assert (await client.delete(path, headers=basic("alice"))).status == 204
    assert (await client.get(path, headers=basic("alice"))).status == 404
    assert (await client.delete(path, headers=basic("alice"))).status == 404


async def test_one_store_with_the_other_doors(client: TestClient, alice: Account) -> None:
    calendar = "/dav/calendars/alice/calendar/"
    before = (await propfind(client, calendar, "<CS:getctag/>")).findtext(".//CS:getctag", namespaces=NS)
    put = await client.put(f"{calendar}caldav-1.ics", data=EVENT.format(uid="caldav-1", summary="From CalDAV"),
                           headers=basic("alice"))  # fmt: skip
    assert put.status == 201
    after = (await propfind(client, calendar, "<CS:getctag/>")).findtext(".//CS:getctag", namespaces=NS)
    assert after != before
    assert "From CalDAV" in await alice.export("ical")
    session = await (await client.get("/login.wcap", params={"user": "alice", "password": "correct horse"})).text()
    sid = session.split("SESSION-ID:")[1].split()[0]
    fetched = await (await client.get("/fetchcomponents_by_range.wcap", params={"id": sid, "recurring": "1"})).text()
    assert "SUMMARY:From CalDAV" in fetched
    assert (await alice.post("/v1/import/", json={**seed_body(), "group": alice.data["myCalendarUuid"]})).status == 200
    members = await propfind(client, calendar, "<D:getetag/><D:getcontenttype/>", "1")
    hrefs = {r.findtext("D:href", namespaces=NS) for r in members.findall("D:response", NS)}
    assert f"{calendar}07a45e5b-1d1e-4f41-ad36-4c15ca9150d6.ics" in hrefs and len(hrefs) == 7
    objects = [r for r in members.findall("D:response", NS) if r.findtext("D:href", namespaces=NS).endswith(".ics")]
    types = [r.findtext(".//D:getcontenttype", namespaces=NS) for r in objects]
    assert len(types) == 6 and all(t.startswith("text/calendar") for t in types)


async def test_every_live_property_is_served_where_declared(client: TestClient, alice: Account, backend: str) -> None:
    """The property registry is the door's truth: each live property is found on exactly the
    kinds of resource it names, and no PROPPATCH may set one that is not settable."""
    zone = f"BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//x//EN\n{timezone_text('Europe/Berlin')}END:VCALENDAR\n"
    patch = (
        f'<D:propertyupdate xmlns:D="DAV:" xmlns:C="{CALDAV}" xmlns:A="{APPLE}"><D:set><D:prop>'
        "<C:calendar-description>Work</C:calendar-description><A:calendar-color>#112233</A:calendar-color>"
        f"<C:calendar-timezone>{zone}</C:calendar-timezone>"
        "</D:prop></D:set></D:propertyupdate>"
    )
    assert (await client.request("PROPPATCH", CAL, data=patch, headers=basic("alice"))).status == 207
    # a meeting (alice organizes it): the object is a scheduling object resource, with a Schedule-Tag
    invited = "ORGANIZER:mailto:alice@example.org\r\nATTENDEE:mailto:zed@elsewhere.example\r\nEND:VEVENT"
    event = EVENT.format(uid="one", summary="One").replace("END:VEVENT", invited)
    assert (await client.put(f"{CAL}one.ics", data=event, headers=basic("alice"))).status == 201
    paths = {
        Kind.ROOT: "/dav/",
        Kind.PRINCIPALS: "/dav/principals/",
        Kind.PRINCIPAL: "/dav/principals/alice/",
        Kind.HOME: "/dav/calendars/alice/",
        Kind.CALENDAR: CAL,
        Kind.OBJECT: f"{CAL}one.ics",
        Kind.INBOX: "/dav/scheduling/alice/inbox/",
        Kind.OUTBOX: "/dav/scheduling/alice/outbox/",
    }
    assert set(paths) == set(Kind)  # a kind of resource added is a kind tested
    report_only = {tag(CALDAV, "calendar-data")}  # an object's text comes with GET or a report
    if backend == "postgres":  # which cannot say what its disk has left: omitted (RFC 4331)
        report_only.add(tag(DAV, "quota-available-bytes"))
    for kind, path in paths.items():
        for name, live in LIVE.items():
            body = f'<D:propfind xmlns:D="DAV:"><D:prop>{_element(name)}</D:prop></D:propfind>'
            response = await client.request("PROPFIND", path, data=body, headers={**basic("alice"), "Depth": "0"})
            status = etree.fromstring(await response.read()).findtext("D:response/D:propstat/D:status", namespaces=NS)
            assert (status == "HTTP/1.1 200 OK") == (kind in live.on and name not in report_only), (kind, name)
    for name, live in LIVE.items():
        if live.settable is None:
            body = f'<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop>{_element(name, "x")}</D:prop></D:set>'
            refused = await client.request("PROPPATCH", CAL, data=body + "</D:propertyupdate>", headers=basic("alice"))
            status = etree.fromstring(await refused.read()).findtext("D:response/D:propstat/D:status", namespaces=NS)
            assert status == "HTTP/1.1 403 Forbidden", name


def _element(name: str, text: str = "") -> str:
    qname = etree.QName(name)
    return f'<{qname.localname} xmlns="{qname.namespace}">{text}</{qname.localname}>'
