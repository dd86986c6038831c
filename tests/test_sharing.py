"""Issue 16 at every door: Alice shares one calendar with Bob read-only and another read-write;
Bob accepts; his CalDAV client, WCAP session and REST token see exactly what the grants say; his
writes reach Alice; Alice revokes and Bob's next sync says so; the public feed serves a
subscribing client and stops when its address is made anew."""

from __future__ import annotations

import json
import re
import urllib.request
from datetime import UTC, datetime
from typing import Any

import caldav
import pytest
from aiohttp.test_utils import TestClient
from lxml import etree

from server.app import SERVICES
from server.services import Services
from server.services.errors import Forbidden
from tests.helpers import LIVE_PASSWORD, LIVE_USER, TB_CALENDAR_PROPS, TB_MULTIGET, TB_SYNC, Account, basic, propfind

NS = {"D": "DAV:", "C": "urn:ietf:params:xml:ns:caldav"}
CAL_PATH = "/dav/calendars/alice/calendar/"
EVENT = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n"
    "DTSTAMP:20261201T000000Z\r\nDTSTART:20261202T100000Z\r\nDTEND:20261202T110000Z\r\nSUMMARY:{summary}\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n"
)
PRIVILEGES = (
    '<D:propfind xmlns:D="DAV:"><D:prop><D:displayname/><D:owner/><D:current-user-privilege-set/>'
    "<D:sync-token/></D:prop></D:propfind>"
)
SYNC = (
    '<D:sync-collection xmlns:D="DAV:"><D:sync-token>{}</D:sync-token><D:sync-level>1</D:sync-level>'
    "<D:prop><D:getetag/></D:prop></D:sync-collection>"
)


async def home(client: TestClient, name: str) -> dict[str, Any]:
    """The calendars in a user's CalDAV home: href -> (owner href, privileges, sync token)."""
    response = await client.request(
        "PROPFIND", f"/dav/calendars/{name}/", data=PRIVILEGES, headers={**basic(name), "Depth": "1"}
    )
    assert response.status == 207
    found = {}
    for item in etree.fromstring(await response.read()).findall("D:response", NS)[1:]:
        privileges = {etree.QName(p).localname for p in item.findall(".//D:privilege/*", NS)}
        owner = item.findtext(".//D:owner/D:href", namespaces=NS)
        found[item.findtext("D:href", namespaces=NS)] = (
            owner,
            privileges,
            item.findtext(".//D:sync-token", namespaces=NS),
        )
    return found


async def share(owner: Account, name: str, member: Account, **policy: Any) -> dict[str, Any]:
    group = await owner.create_group(name, **policy)
    invited = await owner.post(f"/v1/groups/{group['id']}/members", json={"invitees": [member.data["id"]]})
    assert invited.status == 201, await invited.text()
    assert (await invited.json())["related"][0]["state"] == "invited"
    return group


async def test_shared_calendars_at_every_door(client: TestClient, alice: Account, bob: Account) -> None:
    work = await share(alice, "Work", bob)  # members read
    team = await share(alice, "Team", bob, membersCanPost=True)  # members read and write
    put = await client.put(
        "/dav/calendars/alice/work/plan.ics", data=EVENT.format(uid="plan", summary="Plan"), headers=basic("alice")
    )
    assert put.status == 201
    # invited, not yet accepted: Bob sees the invitations and nothing of the calendars
    mine = {g["name"]: g for g in (await (await bob.get("/v1/me/calendars")).json())["result"]}
    assert mine["Work"]["membershipState"] == "invited" and not mine["Work"]["showInSchedule"]
    assert list(await home(client, "bob")) == ["/dav/calendars/bob/calendar/"]
    assert (await bob.get(f"/v1/groups/{work['id']}/slots")).status == 404
    for group in (work, team):
        accepted = await bob.post(f"/v1/groups/{group['id']}/accept")
        assert accepted.status == 200 and (await accepted.json())["membershipState"] == "active"

    # CalDAV: both in Bob's home under names of their own, with the rights they give
    calendars = await home(client, "bob")
    owner, rights, _ = calendars["/dav/calendars/bob/alice-work/"]
    assert owner == "/dav/principals/alice/" and "read" in rights and not rights & {"write", "write-content", "bind"}
    owner, rights, _ = calendars["/dav/calendars/bob/alice-team/"]
    assert "write-content" in rights and "write-properties" not in rights
    got = await client.get("/dav/calendars/bob/alice-work/plan.ics", headers=basic("bob"))
    assert got.status == 200 and "SUMMARY:Plan" in await got.text()
    refused = await client.put(
        "/dav/calendars/bob/alice-work/mine.ics", data=EVENT.format(uid="mine", summary="Mine"), headers=basic("bob")
    )
    assert refused.status == 403 and b"need-privileges" in await refused.read()
    deleted = await client.delete("/dav/calendars/bob/alice-work/plan.ics", headers=basic("bob"))
    assert deleted.status == 403
    written = await client.put(
        "/dav/calendars/bob/alice-team/bob.ics", data=EVENT.format(uid="bob-1", summary="Bob's"), headers=basic("bob")
    )
    assert written.status == 201
    slots = await (await alice.get(f"/v1/groups/{team['id']}/slots")).json()
    assert [s["title"] for s in slots] == ["Bob's"]  # Bob's write is in Alice's calendar
    services: Services = client.app[SERVICES]
    shared = await services.store.get_calendar_by_uuid(team["id"])
    assert shared is not None
    [written] = await services.store.list_objects([shared.id])
    assert written.modified_by == bob.data["id"]  # each change records who made it
    [(change, _)] = await services.store.changes_since(written.calendar_id, 0)
    assert change.changed_by == bob.data["id"]
    principal = await client.request("PROPFIND", "/dav/principals/alice/", headers={**basic("bob"), "Depth": "0"})
    assert principal.status == 207  # the owner of a calendar shared with him

    # REST: the group shows its members; Bob's own colour for it is his alone
    members = await (await bob.get(f"/v1/groups/{work['id']}/members")).json()
    assert [(m["username"], m["membershipState"]) for m in members["members"]] == [
        ("alice", "active"),
        ("bob", "active"),
    ]
    shown = await (await bob.get(f"/v1/groups/{work['id']}")).json()
    assert shown["membershipState"] == "active" and shown["memberCount"] == 2
    recoloured = await bob.patch(f"/v1/groups/{work['id']}/members", json={"settings": {"color": "#FF0000"}})
    assert recoloured.status == 200
    assert (await (await alice.get(f"/v1/groups/{work['id']}")).json())["color"] != "FF0000"
    assert (await bob.patch(f"/v1/groups/{work['id']}", json={"name": "Mine now"})).status == 403

    # WCAP: alice:work reads, refuses writes with errno 28; alice:team takes them
    login = await client.get("/wcap/login.wcap", params={"user": "bob", "password": "correct horse"})
    session = re.search(r"X-NSCP-WCAP-SESSION-ID:(\S+)", await login.text()).group(1)  # type: ignore[union-attr]
    fetched = await client.get("/wcap/fetchcomponents_by_range.wcap", params={"id": session, "calid": "alice:work"})
    assert "X-NSCP-WCAP-ERRNO:0" in (text := await fetched.text()) and "SUMMARY:Plan" in text
    store = {"id": session, "summary": "By WCAP", "dtstart": "20261203T100000Z", "dtend": "20261203T110000Z"}
    stored = await client.get("/wcap/storeevents.wcap", params={**store, "calid": "alice:work"})
    assert "X-NSCP-WCAP-ERRNO:28" in await stored.text()
    stored = await client.get("/wcap/storeevents.wcap", params={**store, "calid": "alice:team"})
    assert "X-NSCP-WCAP-ERRNO:0" in await stored.text()

    # Alice takes Work back: it leaves Bob's home, and his next sync of it says it is gone
    _, _, token = (await home(client, "bob"))["/dav/calendars/bob/alice-work/"]
    kicked = await alice.delete(f"/v1/groups/{work['id']}/members/{bob.data['id']}")
    assert kicked.status == 200
    assert "/dav/calendars/bob/alice-work/" not in await home(client, "bob")
    sync = await client.request(
        "REPORT", "/dav/calendars/bob/alice-work/", data=SYNC.format(token), headers={**basic("bob"), "Depth": "1"}
    )
    assert sync.status == 404
    assert (await bob.get(f"/v1/groups/{work['id']}/slots")).status == 404
    fetched = await client.get("/wcap/fetchcomponents_by_range.wcap", params={"id": session, "calid": "alice:work"})
    assert "X-NSCP-WCAP-ERRNO:28" in await fetched.text()


async def web_session(client: TestClient, name: str) -> str:
    """Sign ``name`` in to the web pages (the client keeps the cookie); the CSRF token."""
    await client.post("/app/signin", data={"username": name, "password": "correct horse"}, allow_redirects=False)
    page = await client.get("/app/")
    return re.search(r'data-csrf="([0-9a-f]+)"', await page.text()).group(1)  # type: ignore[union-attr]


async def test_public_feed_serves_a_subscriber_until_made_anew(client: TestClient, alice: Account) -> None:
    await client.put(
        "/dav/calendars/alice/calendar/a.ics", data=EVENT.format(uid="a", summary="Secret plan"), headers=basic("alice")
    )
    [group] = [g for g in (await (await alice.get("/v1/me/calendars")).json())["result"]]
    csrf = await web_session(client, "alice")
    page = await client.post(f"/app/calendars/{group['id']}/feed", data={"csrf": csrf, "action": "full"})
    url = re.search(r'id="feed-url">https?://[^/]+(/feeds/[^<]+)<', await page.text()).group(1)  # type: ignore[union-attr]
    client.session.cookie_jar.clear()  # a subscribing client has no session
    feed = await client.get(url)
    assert feed.status == 200 and "SUMMARY:Secret plan" in await feed.text()
    assert feed.headers["Content-Type"].startswith("text/calendar")
    again = await client.get(url, headers={"If-None-Match": feed.headers["ETag"]})
    assert again.status == 304
    csrf = await web_session(client, "alice")
    page = await client.post(f"/app/calendars/{group['id']}/feed", data={"csrf": csrf, "action": "busy"})
    busy_url = re.search(r'id="feed-url">https?://[^/]+(/feeds/[^<]+)<', await page.text()).group(1)  # type: ignore[union-attr]
    client.session.cookie_jar.clear()
    assert (await client.get(url)).status == 404  # the old address stopped at once
    busy = await (await client.get(busy_url)).text()
    assert "SUMMARY:Busy" in busy and "Secret plan" not in busy and "DTSTART:20261202T100000Z" in busy
    csrf = await web_session(client, "alice")
    await client.post(f"/app/calendars/{group['id']}/feed", data={"csrf": csrf, "action": "off"})
    assert (await client.get(busy_url)).status == 404


async def wcap_login(client: TestClient, name: str) -> str:
    login = await client.get("/wcap/login.wcap", params={"user": name, "password": "correct horse"})
    return re.search(r"X-NSCP-WCAP-SESSION-ID:(\S+)", await login.text()).group(1)  # type: ignore[union-attr]


async def wcap(client: TestClient, command: str, **params: str) -> str:
    return await (await client.get(f"/wcap/{command}.wcap", params=params)).text()


async def test_wcap_access_control_entries_are_grants(client: TestClient, alice: Account, bob: Account) -> None:
    me, him = await wcap_login(client, "alice"), await wcap_login(client, "bob")
    made = await wcap(client, "createcalendar", id=me, calid="alice:work", name="Work", acl="bob^a^rf^g;@^a^f^g")
    assert "X-NSCP-WCAP-ERRNO:0" in made
    props = await wcap(client, "get_calprops", id=me, calid="alice:work")
    entries = re.findall(r"X-NSCP-CALPROPS-ACCESS-CONTROL-ENTRY:(\S+)", props)
    assert entries == ["@@o^a^RSF^g", "@@o^c^WDEIC^g", "@^a^f^g"]  # Bob's is an invitation until he answers
    # everyone may see free/busy at once; Bob reads once he subscribes (WCAP's way of accepting)
    busy = await wcap(
        client, "get_freebusy", id=him, calid="alice:work", dtstart="20261201T000000Z", dtend="20261210T000000Z"
    )
    assert "X-NSCP-WCAP-ERRNO:0" in busy
    assert "X-NSCP-WCAP-ERRNO:28" in await wcap(client, "fetchcomponents_by_range", id=him, calid="alice:work")
    assert "X-NSCP-WCAP-ERRNO:0" in await wcap(client, "subscribe_calendars", id=him, calid="alice:work")
    assert "X-NSCP-WCAP-ERRNO:0" in await wcap(client, "fetchcomponents_by_range", id=him, calid="alice:work")
    assert "alice:work" in await wcap(client, "list_subscribed", id=him)
    assert "alice:work" in await wcap(client, "search_calprops", id=him, **{"search-string": "work"})
    props = await wcap(client, "get_calprops", id=me, calid="alice:work")
    assert "bob^a^rf^g" in props
    # the same ACL in another spelling: write and delete make it read-write
    changed = await wcap(client, "set_calprops", id=me, calid="alice:work", acl="bob^a^r^g;bob^c^wd^g")
    assert "X-NSCP-WCAP-ERRNO:0" in changed and "bob^a^rfwd^g" in changed and "@^a^f^g" not in changed
    stored = await wcap(
        client, "storeevents", id=him, calid="alice:work", summary="Bob's", dtstart="20261203T100000Z",
        dtend="20261203T110000Z",
    )  # fmt: skip
    assert "X-NSCP-WCAP-ERRNO:0" in stored
    # entries that do not map are refused whole, and nothing changes
    for refused in ("bob^a^r^d", "@example.org^a^r^g", "bob^a^x^g", "nobody^a^r^g", "bob^a^r", "bob^p^r^g"):
        reply = await wcap(client, "set_calprops", id=me, calid="alice:work", acl=f"@^a^r^g;{refused}")
        assert "X-NSCP-WCAP-ERRNO:77" in reply, refused
    assert "bob^a^rfwd^g" in await wcap(client, "get_calprops", id=me, calid="alice:work")
    assert "@^a^r" not in await wcap(client, "get_calprops", id=me, calid="alice:work")
    # Bob may not manage it; an empty ACL takes every grant back
    assert "X-NSCP-WCAP-ERRNO:28" in await wcap(client, "set_calprops", id=him, calid="alice:work", acl="")
    assert "X-NSCP-WCAP-ERRNO:0" in await wcap(client, "set_calprops", id=me, calid="alice:work", acl="")
    assert "X-NSCP-WCAP-ERRNO:28" in await wcap(client, "fetchcomponents_by_range", id=him, calid="alice:work")
    assert "alice:work" not in await wcap(client, "list_subscribed", id=him)


SHARE = '<CS:share xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/">{}</CS:share>'
CS_NS = {**NS, "CS": "http://calendarserver.org/ns/"}


async def test_apple_calendar_sharing_extension(client: TestClient, alice: Account, bob: Account) -> None:
    """CalendarServer sharing as Apple Calendar speaks it: CS:share, CS:invite, the sharee's
    notification collection, CS:invite-reply; a sharee may not share further."""
    calendar = "/dav/calendars/alice/calendar/"
    offer = "<CS:set><D:href>mailto:bob@example.org</D:href><CS:summary>Mine</CS:summary><CS:read-write/></CS:set>"
    shared = await client.post(calendar, data=SHARE.format(offer), headers=basic("alice"))
    assert shared.status == 200
    invite = '<D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><D:prop><CS:invite/><CS:allowed-sharing-modes/></D:prop></D:propfind>'
    found = etree.fromstring(
        await (await client.request("PROPFIND", calendar, data=invite, headers={**basic("alice"), "Depth": "0"})).read()
    )
    [user] = found.findall(".//CS:invite/CS:user", CS_NS)
    assert user.findtext("D:href", namespaces=CS_NS) == "mailto:bob@example.org"
    assert (
        user.find("CS:invite-noresponse", CS_NS) is not None and user.find("CS:access/CS:read-write", CS_NS) is not None
    )
    assert found.find(".//CS:allowed-sharing-modes/CS:can-be-shared", CS_NS) is not None
    # Bob finds the invitation where his principal says
    url_prop = '<D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><D:prop><CS:notification-URL/></D:prop></D:propfind>'
    principal = etree.fromstring(
        await (
            await client.request(
                "PROPFIND", "/dav/principals/bob/", data=url_prop, headers={**basic("bob"), "Depth": "0"}
            )
        ).read()
    )
    inbox = principal.findtext(".//CS:notification-URL/D:href", namespaces=CS_NS)
    assert inbox == "/dav/notifications/bob/"
    listing = etree.fromstring(
        await (await client.request("PROPFIND", inbox, headers={**basic("bob"), "Depth": "1"})).read()
    )
    [item] = [r.findtext("D:href", namespaces=CS_NS) for r in listing.findall("D:response", CS_NS)][1:]
    assert (await client.get(item, headers=basic("alice"))).status == 404  # not Alice's to read
    document = etree.fromstring(await (await client.get(item, headers=basic("bob"))).read())
    host = document.findtext(".//CS:hosturl/D:href", namespaces=CS_NS)
    assert (
        host == calendar and document.findtext(".//CS:organizer/D:href", namespaces=CS_NS) == "/dav/principals/alice/"
    )
    reply = (
        '<CS:invite-reply xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><D:href>mailto:bob@example.org</D:href>'
        f"<CS:invite-accepted/><CS:hosturl><D:href>{host}</D:href></CS:hosturl>"
        f"<CS:in-reply-to>{document.findtext('.//CS:uid', namespaces=CS_NS)}</CS:in-reply-to></CS:invite-reply>"
    )
    answered = await client.post("/dav/calendars/bob/", data=reply, headers=basic("bob"))
    assert answered.status == 200
    shared_as = etree.fromstring(await answered.read()).findtext("D:href", namespaces=CS_NS)
    assert shared_as == "/dav/calendars/bob/alice-calendar/" and shared_as in await home(client, "bob")
    assert (await client.post("/dav/calendars/bob/", data=reply, headers=basic("bob"))).status == 403  # answered
    listing = etree.fromstring(
        await (await client.request("PROPFIND", inbox, headers={**basic("bob"), "Depth": "1"})).read()
    )
    assert len(listing.findall("D:response", CS_NS)) == 1  # the invitation is no longer waiting
    # Bob may write but not share further; Alice takes it back
    further = await client.post(shared_as, data=SHARE.format(offer), headers=basic("bob"))
    assert further.status == 403 and b"need-privileges" in await further.read()
    removed = await client.post(
        calendar,
        data=SHARE.format("<CS:remove><D:href>/dav/principals/bob/</D:href></CS:remove>"),
        headers=basic("alice"),
    )
    assert removed.status == 200 and shared_as not in await home(client, "bob")
    unknown = await client.post(
        calendar,
        data=SHARE.format("<CS:set><D:href>mailto:nobody@example.org</D:href><CS:read/></CS:set>"),
        headers=basic("alice"),
    )
    assert unknown.status == 400


async def test_thunderbird_replay_on_shared_calendars(client: TestClient, alice: Account, bob: Account) -> None:
    """Thunderbird's own requests (tests/test_caldav_reports.py) from Bob on a calendar shared
    read-only and on one shared read-write: it reads the rights, syncs, fetches, writes."""
    for name, policy in (("Work", {}), ("Team", {"membersCanPost": True})):
        group = await share(alice, name, bob, **policy)
        assert (await bob.post(f"/v1/groups/{group['id']}/accept")).status == 200
        for n in range(3):
            text = EVENT.format(uid=f"tb-{n}", summary=f"{name} {n}")
            put = await client.put(f"/dav/calendars/alice/{name.lower()}/tb-{n}.ics", data=text, headers=basic("alice"))
            assert put.status == 201
    for slug, writable in (("alice-work", False), ("alice-team", True)):
        path = f"/dav/calendars/bob/{slug}/"
        start = await client.request("PROPFIND", path, data=TB_CALENDAR_PROPS, headers={**basic("bob"), "Depth": "0"})
        props = etree.fromstring(await start.read())
        rights = {etree.QName(p).localname for p in props.findall(".//D:current-user-privilege-set/D:privilege/*", NS)}
        assert ("write-content" in rights) is writable and "read" in rights  # Thunderbird marks it read-only so
        assert props.findtext(".//D:owner/D:href", namespaces=NS) == "/dav/principals/alice/"
        first = await client.request(
            "REPORT",
            path,
            data=TB_SYNC.format(token=""),
            headers={**basic("bob"), "Depth": "1", "Content-Type": "application/xml"},
        )
        members = etree.fromstring(await first.read())
        hrefs = sorted(r.findtext("D:href", namespaces=NS) for r in members.findall("D:response", NS))
        assert hrefs == [f"{path}tb-{n}.ics" for n in range(3)]
        body = TB_MULTIGET.format(hrefs="".join(f"<D:href>{h}</D:href>" for h in hrefs))
        got = await client.request("REPORT", path, data=body, headers={**basic("bob"), "Depth": "1"})
        assert (await got.text()).count("BEGIN:VEVENT") == 3
        put = await client.put(
            f"{path}tb-bob.ics", data=EVENT.format(uid="tb-bob", summary="From Thunderbird"),
            headers={**basic("bob"), "If-None-Match": "*"},
        )  # fmt: skip
        assert put.status == (201 if writable else 403)
    team = await (await alice.get("/v1/me/slots")).json()
    assert "From Thunderbird" in {s["title"] for s in team}


def api(url: str, path: str, body: dict[str, Any] | None = None, token: str | None = None) -> Any:
    """One JSON request to the REST door of a live server."""
    request = urllib.request.Request(
        url.rstrip("/") + "/v1" + path, data=json.dumps(body or {}).encode(), method="POST",
        headers={"Content-Type": "application/json", **({"Authorization": f"Token token={token}"} if token else {})},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read()
    return json.loads(text) if text else None


def when(day: int, summary: str) -> dict[str, Any]:
    return {"dtstart": datetime(2026, 12, day, 10, tzinfo=UTC), "dtend": datetime(2026, 12, day, 11, tzinfo=UTC),
            "summary": summary}  # fmt: skip


def test_python_caldav_on_shared_calendars(live_server: str) -> None:
    """python-caldav as Bob, against a server started as the README starts it: both shared
    calendars in his principal's list, reads of each, a write refused on the read-only one and
    kept on the read-write one, where Alice's client finds it."""
    bob = api(live_server, "/users", {"username": "bobcat", "password": "bob's secret 1", "email": "b@example.org"})
    owner = api(live_server, "/users/signin", {"username": LIVE_USER, "password": LIVE_PASSWORD})["authToken"]
    for name, can_post in (("Read only", False), ("Together", True)):
        group = api(live_server, "/groups", {"name": name, "membersCanPost": can_post, "invitees": [bob["id"]]}, owner)
        api(live_server, f"/groups/{group['id']}/accept", token=bob["authToken"])
    with caldav.DAVClient(url=live_server, username=LIVE_USER, password=LIVE_PASSWORD) as client:
        for calendar in client.principal().calendars():
            if calendar.get_display_name() in ("Read only", "Together"):
                calendar.save_event(**when(2, f"Owner's in {calendar.get_display_name()}"))
    with caldav.DAVClient(url=live_server, username="bobcat", password="bob's secret 1") as client:
        calendars = {c.get_display_name(): c for c in client.principal().calendars()}
        assert {"Read only", "Together"} <= set(calendars)
        for name in ("Read only", "Together"):
            assert [str(e.icalendar_component["SUMMARY"]) for e in calendars[name].events()] == [f"Owner's in {name}"]
        with pytest.raises(caldav.lib.error.AuthorizationError):
            calendars["Read only"].save_event(**when(3, "Bob's"))
        calendars["Together"].save_event(**when(3, "Bob's"))
    with caldav.DAVClient(url=live_server, username=LIVE_USER, password=LIVE_PASSWORD) as client:
        [together] = [c for c in client.principal().calendars() if c.get_display_name() == "Together"]
        summaries = sorted(str(e.icalendar_component["SUMMARY"]) for e in together.events())
        assert summaries == ["Bob's", "Owner's in Together"]


async def test_only_the_owner_changes_an_admins_grant_at_every_door(
    client: TestClient, signup: Any, alice: Account, bob: Account
) -> None:
    """Issue 26.1 and 26.3: Bob, an admin of Alice's group, may not lower Carol or Dave (admins
    too) through any door, and a CS:share that invites Erin and then names the owner changes
    nothing: each refusal in the door's words, the grants as they were."""
    carol, dave, erin = [await signup(name) for name in ("carol", "dave", "erin")]
    services: Services = client.app[SERVICES]
    users = {a.data["username"]: await services.users.get(a.data["id"]) for a in (alice, bob, carol, dave, erin)}
    group = await alice.create_group("Team", membersCanInvite=True)
    calendar = await services.store.get_calendar_by_uuid(group["id"])
    assert calendar is not None
    owner = users["alice"]
    assert owner is not None
    for name in ("bob", "dave"):  # admins as members
        [grant] = await services.access.invite(owner, calendar, [users[name]])  # type: ignore[list-item]
        await services.access.answer(users[name], grant, accept=True)  # type: ignore[arg-type]
    grant = await services.access.share(owner, calendar, users["carol"], "admin")  # an admin explicitly
    await services.access.answer(users["carol"], grant, accept=True)  # type: ignore[arg-type]

    async def grants() -> list[tuple[int | None, str, str, bool]]:
        return [(g.grantee_id, g.level, g.state, g.follows_group) for g in await services.store.grants_of(calendar.id)]

    before = await grants()
    session = await wcap_login(client, "bob")
    reply = await wcap(client, "set_calprops", id=session, calid="alice:team", acl="carol^a^f^g;dave^a^rfwds^g")
    assert "X-NSCP-WCAP-ERRNO:28" in reply and await grants() == before
    csrf = await web_session(client, "bob")
    page = await client.post(
        f"/app/calendars/{group['id']}/share", data={"csrf": csrf, "user": "carol", "level": "freebusy"}
    )
    assert "only the owner" in await page.text() and await grants() == before
    invited = await bob.post(f"/v1/groups/{group['id']}/members", json={"invitees": ["carol"]})
    assert invited.status == 403 and await grants() == before  # as a member she would follow the flags
    patched = await bob.patch(f"/v1/groups/{group['id']}", json={"membersCanInvite": False})
    assert patched.status == 403 and await grants() == before  # Dave would fall to read
    assert (await (await alice.get(f"/v1/groups/{group['id']}")).json())["membersCanInvite"] is True
    share_path = "/dav/calendars/bob/alice-team/"
    demote = SHARE.format("<CS:set><D:href>mailto:dave@example.org</D:href><CS:read/></CS:set>")
    refused = await client.post(share_path, data=demote, headers=basic("bob"))
    assert refused.status == 403 and b"need-privileges" in await refused.read() and await grants() == before
    # CS:share is all or nothing: Erin is not invited when the request goes on to name the owner
    for href, status in (("mailto:alice@example.org", 403), ("mailto:nobody@example.org", 400)):
        body = SHARE.format(
            "<CS:set><D:href>mailto:erin@example.org</D:href><CS:read/></CS:set>"
            f"<CS:set><D:href>{href}</D:href><CS:read/></CS:set>"
        )
        answer = await client.post("/dav/calendars/alice/team/", data=body, headers=basic("alice"))
        error = etree.fromstring(await answer.read())
        assert answer.status == status and error.tag == "{DAV:}error", href
        assert error.findtext(".//D:href", namespaces=NS) == href
        assert await grants() == before


def many_events(count: int, prefix: str) -> bytes:
    body = "".join(
        f"BEGIN:VEVENT\r\nUID:{prefix}-{n}\r\nDTSTAMP:20261201T000000Z\r\nDTSTART:20261202T{n % 24:02d}0000Z\r\n"
        f"DURATION:PT30M\r\nSUMMARY:{prefix} {n}\r\nEND:VEVENT\r\n"
        for n in range(count)
    )
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{body}END:VCALENDAR\r\n".encode()


async def test_a_revoked_writer_stops_at_once_and_the_owner_undoes_any_import(
    client: TestClient, signup: Any, alice: Account, bob: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 26.4: Bob (read-write) imports into Alice's calendar; Alice takes his access back
    after the job's first batch: the job fails ("access revoked") and leaves nothing. An import
    Bob finished is Alice's to see and undo (and her admins'), not another writer's; Bob,
    revoked, can no longer undo it himself."""
    carol, dave = await signup("carol"), await signup("dave")
    group = await alice.create_group("Team")
    services: Services = client.app[SERVICES]
    calendar = await services.store.get_calendar_by_uuid(group["id"])
    owner = await services.users.get(alice.data["id"])
    assert calendar is not None and owner is not None
    for account, level in ((bob, "read-write"), (carol, "read-write"), (dave, "admin")):
        member = await services.users.get(account.data["id"])
        await services.access.answer(member, await services.access.share(owner, calendar, member, level), True)  # type: ignore[arg-type]
    grant = await services.access.grant_to(await services.users.get(bob.data["id"]), calendar)  # type: ignore[arg-type]
    assert grant is not None
    batches = 0
    write_batch = services.store.import_batch

    async def revoking(*args: Any, **kwargs: Any) -> Any:
        nonlocal batches
        done = await write_batch(*args, **kwargs)
        batches += 1
        if batches == 1:
            await services.access.revoke(owner, calendar, grant)
        return done

    monkeypatch.setattr(services.store, "import_batch", revoking)
    refused = await bob.post(f"/v1/import/?group={group['id']}", data=many_events(2_000, "big"))
    assert refused.status == 403 and "access revoked" in await refused.text()
    assert batches == 1  # nothing written after the revocation
    assert await services.store.list_objects([calendar.id]) == []  # and the batch before it removed
    [job] = await (await alice.get("/v1/imports")).json()
    assert job["status"] == "failed" and "access revoked" in job["message"] and job["entries_created"] == 500
    monkeypatch.setattr(services.store, "import_batch", write_batch)

    him = await services.users.get(bob.data["id"])
    await services.access.answer(him, await services.access.share(owner, calendar, him, "read-write"), True)  # type: ignore[arg-type]
    done = await bob.post(
        f"/v1/import/?group={group['id']}", data=many_events(3, "small"), headers={"Accept": "application/json"}
    )
    assert done.status == 200, await done.text()
    [mine, _] = await (await bob.get("/v1/imports")).json()
    assert (await carol.get(f"/v1/imports/{mine['id']}")).status == 404  # another writer's: not hers
    assert mine["id"] not in [j["id"] for j in await (await carol.get("/v1/imports")).json()]
    for manager in (alice, dave):
        assert mine["id"] in [j["id"] for j in await (await manager.get("/v1/imports")).json()]
        assert (await manager.get(f"/v1/imports/{mine['id']}/entries")).status == 200
    await services.access.revoke(owner, calendar, grant)
    assert (await bob.delete(f"/v1/imports/{mine['id']}")).status == 403  # no longer his calendar to change
    await web_session(client, "alice")
    assert f'href="/app/imports/{mine["id"]}"' in await (await client.get("/app/imports")).text()
    undone = await dave.delete(f"/v1/imports/{mine['id']}")
    assert undone.status == 204, await undone.text()
    assert await services.store.list_objects([calendar.id]) == []


async def test_apple_calendar_sharing_as_apples_clients_use_it(
    client: TestClient, alice: Account, bob: Account
) -> None:
    """Issue 26.11: the DAV header says calendarserver-sharing; notifications name principals
    (the owner with a common name), sync with sync-collection and are put away with DELETE
    (the invitation stays answerable); a sharee sets their own name and colour of a calendar
    shared with them read-only, and nothing of the owner's."""
    options = await client.options("/dav/calendars/alice/calendar/", headers=basic("alice"))
    assert "calendarserver-sharing" in options.headers["DAV"].split(", ")
    offer = "<CS:set><D:href>mailto:bob@example.org</D:href><CS:read/></CS:set>"
    made = await client.request("MKCALENDAR", "/dav/calendars/alice/work/", headers=basic("alice"))
    assert made.status == 201
    assert (
        await client.post("/dav/calendars/alice/work/", data=SHARE.format(offer), headers=basic("alice"))
    ).status == 200
    inbox = "/dav/notifications/bob/"
    sync = SYNC  # with getetag
    first = await client.request("REPORT", inbox, data=sync.format(""), headers={**basic("bob"), "Depth": "1"})
    assert first.status == 207
    found = etree.fromstring(await first.read())
    [item] = [r.findtext("D:href", namespaces=CS_NS) for r in found.findall("D:response", CS_NS)]
    token = found.findtext("D:sync-token", namespaces=CS_NS)
    document = etree.fromstring(await (await client.get(item, headers=basic("bob"))).read())
    invite = document.find("CS:invite-notification", CS_NS)
    assert invite is not None and invite.get("shared-type") == "calendar"
    assert invite.findtext("D:href", namespaces=CS_NS) == "/dav/principals/bob/"
    assert document.findtext(".//CS:organizer/D:href", namespaces=CS_NS) == "/dav/principals/alice/"
    assert document.findtext(".//CS:organizer/CS:common-name", namespaces=CS_NS) == "alice"
    unchanged = await client.request("REPORT", inbox, data=sync.format(token), headers={**basic("bob"), "Depth": "1"})
    assert etree.fromstring(await unchanged.read()).findall("D:response", CS_NS) == []
    assert (await client.delete(item, headers=basic("alice"))).status == 404  # not hers
    assert (await client.delete(item, headers=basic("bob"))).status == 204
    listing = etree.fromstring(
        await (await client.request("PROPFIND", inbox, headers={**basic("bob"), "Depth": "1"})).read()
    )
    assert len(listing.findall("D:response", CS_NS)) == 1  # the collection only
    after = etree.fromstring(
        await (
            await client.request("REPORT", inbox, data=sync.format(token), headers={**basic("bob"), "Depth": "1"})
        ).read()
    )
    [gone] = after.findall("D:response", CS_NS)
    assert gone.findtext("D:href", namespaces=CS_NS) == item and "404" in (
        gone.findtext("D:status", namespaces=CS_NS) or ""
    )
    reply = (
        '<CS:invite-reply xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><CS:invite-accepted/>'
        "<CS:hosturl><D:href>/dav/calendars/alice/work/</D:href></CS:hosturl></CS:invite-reply>"
    )
    answered = await client.post("/dav/calendars/bob/", data=reply, headers=basic("bob"))
    assert answered.status == 200  # put away, still answerable
    assert (await client.delete(item, headers=basic("bob"))).status == 204  # answered: gone already
    assert (await client.delete(inbox + "invite-999999.xml", headers=basic("bob"))).status == 404
    shared = "/dav/calendars/bob/alice-work/"
    mine = (
        '<D:propertyupdate xmlns:D="DAV:" xmlns:A="http://apple.com/ns/ical/"><D:set><D:prop>'
        "<D:displayname>Alice at work</D:displayname><A:calendar-color>#00FF00</A:calendar-color>"
        "</D:prop></D:set></D:propertyupdate>"
    )
    patched = await client.request("PROPPATCH", shared, data=mine, headers=basic("bob"))
    assert patched.status == 207 and b"200 OK" in await patched.read()
    props = "<D:displayname/><A:calendar-color xmlns:A='http://apple.com/ns/ical/'/>"
    seen = await propfind(client, shared, props, user="bob")
    assert seen.findtext(".//D:displayname", namespaces=NS) == "Alice at work"
    assert (seen.findtext(".//{http://apple.com/ns/ical/}calendar-color") or "").upper().startswith("#00FF00")
    hers = await propfind(client, "/dav/calendars/alice/work/", props)
    assert hers.findtext(".//D:displayname", namespaces=NS) == "work"
    both = mine.replace(
        "</D:prop>",
        "<C:calendar-description xmlns:C='urn:ietf:params:xml:ns:caldav'>Mine</C:calendar-description></D:prop>",
    ).replace("Alice at work", "Other")
    refused = await client.request("PROPPATCH", shared, data=both, headers=basic("bob"))
    assert refused.status == 403 and b"need-privileges" in await refused.read()
    seen = await propfind(client, shared, props, user="bob")
    assert seen.findtext(".//D:displayname", namespaces=NS) == "Alice at work"  # all or nothing


async def test_a_feed_follows_its_calendar_and_only_the_owner_turns_it_on(
    client: TestClient, alice: Account, bob: Account
) -> None:
    """Issue 32.4: a subscriber's If-None-Match is 304 only while nothing changed; an event
    written, changed or removed, or the calendar renamed, gives a new ETag. Turning a feed on
    or off, or seeing its state, is the owner's alone at the service, whatever a door checks."""
    services: Services = client.app[SERVICES]
    owner, admin = await services.users.get(alice.data["id"]), await services.users.get(bob.data["id"])
    assert owner is not None and admin is not None
    [calendar] = await services.calendars.of(owner)
    await services.access.answer(admin, await services.access.share(owner, calendar, admin, "admin"), accept=True)
    for attempt in (
        services.calendars.set_feed(admin, calendar, on=True),
        services.calendars.set_feed(admin, calendar, on=False),
        services.calendars.feed_status(admin, calendar),
    ):
        with pytest.raises(Forbidden):
            await attempt
    assert await services.store.feed_of(calendar.id) is None
    token = await services.calendars.set_feed(owner, calendar, on=True)
    url = f"/feeds/{token}.ics"
    etag = (await client.get(url)).headers["ETag"]
    assert (await client.get(url, headers={"If-None-Match": etag})).status == 304
    changes = (
        lambda: client.put(CAL_PATH + "f.ics", data=EVENT.format(uid="f", summary="one"), headers=basic("alice")),
        lambda: client.put(CAL_PATH + "f.ics", data=EVENT.format(uid="f", summary="two"), headers=basic("alice")),
        lambda: client.delete(CAL_PATH + "f.ics", headers=basic("alice")),
        lambda: alice.patch(f"/v1/groups/{calendar.uuid}", json={"name": "Renamed"}),
    )
    for change in changes:
        assert (await change()).status < 300
        fresh = await client.get(url, headers={"If-None-Match": etag})
        assert fresh.status == 200 and fresh.headers["ETag"] != etag
        etag = fresh.headers["ETag"]
        assert (await client.get(url, headers={"If-None-Match": etag})).status == 304
