"""The access matrix (issue 16), generated: every level Bob may have on Alice's calendar (none,
freebusy, read, read-write, admin, revoked; and Alice herself, the owner) times every operation
of every door. Each operation says the least level it needs; the test asserts it succeeds
exactly from that level on, and that a refused one shows nothing of the calendar's events and
changes nothing."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from server.app import SERVICES
from server.services import Services
from server.services.access import Level
from tests.helpers import Account, basic

SECRET = "Secret plan"
EVENT = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n"
    "DTSTAMP:20261201T000000Z\r\nDTSTART:20261202T100000Z\r\nDTEND:20261202T110000Z\r\nSUMMARY:{summary}\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n"
)
QUERY = (
    '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><C:calendar-data/></D:prop>'
    '<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"/></C:comp-filter></C:filter>'
    "</C:calendar-query>"
)
MULTIGET = (
    '<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><C:calendar-data/></D:prop>'
    "<D:href>{base}plan.ics</D:href></C:calendar-multiget>"
)
SYNC = (
    '<D:sync-collection xmlns:D="DAV:"><D:sync-token/><D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop>'
    "</D:sync-collection>"
)
FREEBUSY = (
    '<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav">'
    '<C:time-range start="20261201T000000Z" end="20261210T000000Z"/></C:free-busy-query>'
)
SHARE = (
    '<CS:share xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><CS:set><D:href>mailto:carol@example.org'
    "</D:href><CS:read/></CS:set></CS:share>"
)
#: the levels Bob may have (OWNER: the operations are Alice's own), and "revoked"
LEVELS = ["none", "freebusy", "read", "read-write", "admin", "revoked", "owner"]
NEEDED = {"none": Level.NONE, "revoked": Level.NONE, "owner": Level.OWNER}


@dataclass
class World:
    client: TestClient
    services: Services
    actor: str  #: who acts: bob, or alice for the owner's row
    account: Account
    base: str  #: the calendar's CalDAV path as the actor reaches it
    calid: str
    uuid: str
    wcap: str  #: the actor's WCAP session

    async def dav(self, method: str, path: str, body: str = "", **headers: str) -> tuple[int, str]:
        response = await self.client.request(method, path, data=body, headers={**basic(self.actor), **headers})
        return response.status, await response.text()

    async def wcap_call(self, command: str, **params: str) -> tuple[int, str]:
        response = await self.client.get(f"/wcap/{command}.wcap", params={"id": self.wcap, **params})
        text = await response.text()
        match = re.search(r"X-NSCP-WCAP-ERRNO:(-?\d+)", text)
        return (200 if match and match.group(1) == "0" else 403), text

    async def rest(self, method: str, path: str, **kwargs: Any) -> tuple[int, str]:
        response = await self.client.request(method, path, headers=self.account.headers, **kwargs)
        return response.status, await response.text()


Op = Callable[[World], Awaitable[tuple[int, str]]]


@dataclass(frozen=True)
class Operation:
    name: str
    needs: Level
    run: Op
    #: what a success shows: a refusal must not show it (None: nothing to look for)
    shows_secret: bool = False


def ok(status: int) -> bool:
    return 200 <= status < 300


async def propfind_members(w: World) -> tuple[int, str]:
    status, text = await w.dav("PROPFIND", w.base, Depth="1")
    return (status if "plan.ics" in text else 403), text


async def import_and_undo(w: World) -> tuple[int, str]:
    lines = EVENT.format(uid="imported", summary="Imported").splitlines(True)
    status, text = await w.rest("POST", "/v1/import/", json={"file": lines, "group": w.uuid})
    if not ok(status):
        return status, text
    _, jobs = await w.rest("GET", "/v1/imports")
    job = re.search(r'"id":\s*(\d+)', jobs)
    assert job is not None
    return await w.rest("DELETE", f"/v1/imports/{job.group(1)}")


async def wcap_import(w: World) -> tuple[int, str]:
    form = aiohttp.FormData()
    form.add_field("file", EVENT.format(uid="by-wcap", summary="By WCAP import"), filename="in.ics")
    response = await w.client.post("/wcap/import.wcap", params={"id": w.wcap, "calid": w.calid}, data=form)
    text = await response.text()
    return (200 if response.headers.get("X-NSCP-WCAP-ERRNO") == "0" else 403), text


async def web(w: World, method: str, path: str, **form: str) -> tuple[int, str]:
    await w.client.post("/app/signin", data={"username": w.actor, "password": "correct horse"}, allow_redirects=False)
    page = await (await w.client.get("/app/")).text()
    csrf = re.search(r'data-csrf="([0-9a-f]+)"', page)
    assert csrf is not None
    data = {"csrf": csrf.group(1), **form} if method == "POST" else None
    response = await w.client.request(method, path, data=data, allow_redirects=False)
    return (200 if response.status == 303 else response.status), await response.text()


#: in order: reads, then writes that keep the event, then managing, then what removes things
OPERATIONS = [
    Operation("CalDAV PROPFIND calendar", Level.FREEBUSY, lambda w: w.dav("PROPFIND", w.base, Depth="0")),
    Operation("CalDAV PROPFIND members", Level.READ, propfind_members),
    Operation("CalDAV GET", Level.READ, lambda w: w.dav("GET", w.base + "plan.ics"), shows_secret=True),
    Operation("CalDAV REPORT calendar-query", Level.READ, lambda w: w.dav("REPORT", w.base, QUERY, Depth="1"), True),
    Operation("CalDAV REPORT multiget", Level.READ, lambda w: w.dav(
        "REPORT", w.base, MULTIGET.format(base=w.base)), True),
    Operation("CalDAV REPORT sync-collection", Level.READ, lambda w: w.dav("REPORT", w.base, SYNC)),
    Operation("CalDAV REPORT multiget on an object", Level.READ, lambda w: w.dav(
        "REPORT", w.base + "plan.ics", MULTIGET.format(base=w.base), Depth="0"), True),
    Operation("CalDAV REPORT calendar-query on an object", Level.READ, lambda w: w.dav(
        "REPORT", w.base + "plan.ics", QUERY, Depth="0"), True),
    Operation("CalDAV REPORT free-busy-query", Level.FREEBUSY, lambda w: w.dav("REPORT", w.base, FREEBUSY)),
    Operation("WCAP get_calprops", Level.FREEBUSY, lambda w: w.wcap_call("get_calprops", calid=w.calid)),
    Operation("WCAP get_freebusy", Level.FREEBUSY, lambda w: w.wcap_call(
        "get_freebusy", calid=w.calid, dtstart="20261201T000000Z", dtend="20261210T000000Z")),
    Operation("WCAP fetchcomponents_by_range", Level.READ, lambda w: w.wcap_call(
        "fetchcomponents_by_range", calid=w.calid), True),
    Operation("WCAP export", Level.READ, lambda w: w.wcap_call("export", calid=w.calid), True),
    Operation("REST group", Level.FREEBUSY, lambda w: w.rest("GET", f"/v1/groups/{w.uuid}")),
    Operation("REST members", Level.FREEBUSY, lambda w: w.rest("GET", f"/v1/groups/{w.uuid}/members")),
    Operation("REST slots", Level.READ, lambda w: w.rest("GET", f"/v1/groups/{w.uuid}/slots"), True),
    Operation("REST export", Level.READ, lambda w: w.rest("POST", "/v1/export/ical", json={"group": w.uuid}), True),
    Operation("web export", Level.READ, lambda w: web(w, "GET", f"/app/export?calendar={w.uuid}"), True),
    Operation("CalDAV PUT new", Level.READ_WRITE, lambda w: w.dav(
        "PUT", w.base + f"{w.actor}-new.ics", EVENT.format(uid=f"{w.actor}-new", summary="New"))),
    Operation("CalDAV PUT over", Level.READ_WRITE, lambda w: w.dav(
        "PUT", w.base + "plan.ics", EVENT.format(uid="plan", summary=SECRET + " moved"))),
    Operation("WCAP storeevents", Level.READ_WRITE, lambda w: w.wcap_call(
        "storeevents", calid=w.calid, summary="Stored", dtstart="20261203T100000Z", dtend="20261203T110000Z")),
    Operation("REST create slot", Level.READ_WRITE, lambda w: w.rest("POST", "/v1/slots", json={
        "title": "Slot", "startDate": "2026-12-04T10:00:00Z", "endDate": "2026-12-04T11:00:00Z",
        "slotGroups": [w.uuid]})),
    Operation("REST import and undo", Level.READ_WRITE, import_and_undo),
    Operation("WCAP import", Level.READ_WRITE, wcap_import),
    # a calendar's own properties are its owner's and admins' (a sharee's display name is their
    # own: Apple's per-user properties, issue 26.11)
    Operation("CalDAV PROPPATCH", Level.ADMIN, lambda w: w.dav(
        "PROPPATCH", w.base, '<D:propertyupdate xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set>'
        "<D:prop><C:calendar-description>Renamed</C:calendar-description></D:prop></D:set></D:propertyupdate>")),
    Operation("CalDAV PROPPATCH own name", Level.FREEBUSY, lambda w: w.dav(
        "PROPPATCH", w.base, '<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:displayname>Mine</D:displayname>'
        "</D:prop></D:set></D:propertyupdate>")),
    Operation("REST invite a member", Level.ADMIN, lambda w: w.rest(
        "POST", f"/v1/groups/{w.uuid}/members", json={"invitees": ["carol"]})),
    Operation("REST members may post", Level.ADMIN, lambda w: w.rest(
        "PATCH", f"/v1/groups/{w.uuid}", json={"membersCanPost": False})),
    Operation("CalDAV POST share", Level.ADMIN, lambda w: w.dav("POST", w.base, SHARE)),
    Operation("WCAP set_calprops", Level.ADMIN, lambda w: w.wcap_call("set_calprops", calid=w.calid, name="By WCAP")),
    Operation("REST rename group", Level.ADMIN, lambda w: w.rest(
        "PATCH", f"/v1/groups/{w.uuid}", json={"name": "By REST"})),
    Operation("web sharing page", Level.ADMIN, lambda w: web(w, "GET", f"/app/calendars/{w.uuid}/sharing")),
    Operation("web share", Level.ADMIN, lambda w: web(
        w, "POST", f"/app/calendars/{w.uuid}/share", user="carol", level="freebusy")),
    Operation("web public feed", Level.OWNER, lambda w: web(w, "POST", f"/app/calendars/{w.uuid}/feed", action="busy")),
    Operation("WCAP deleteevents_by_id", Level.READ_WRITE, lambda w: w.wcap_call(
        "deleteevents_by_id", calid=w.calid, uid="other")),
    Operation("CalDAV MOVE", Level.READ_WRITE, lambda w: w.dav(
        "MOVE", w.base + "plan.ics", Destination=w.base + "moved.ics")),
    Operation("CalDAV DELETE", Level.READ_WRITE, lambda w: w.dav("DELETE", w.base + "moved.ics")),
    Operation("REST delete group", Level.OWNER, lambda w: w.rest("DELETE", f"/v1/groups/{w.uuid}")),
]  # fmt: skip


async def snapshot(services: Services, calendar_id: int) -> Any:
    """What a refused operation must leave as it was: the calendar, its objects and grants."""
    calendar = await services.store.get_calendar(calendar_id)
    objects = sorted((o.href, o.etag) for o in await services.store.list_objects([calendar_id]))
    grants = [(g.grantee_id, g.level, g.state) for g in await services.store.grants_of(calendar_id)]
    feed = await services.store.feed_of(calendar_id)
    return calendar and (calendar.name, calendar.sync_revision), objects, grants, feed


@pytest.mark.parametrize("level", LEVELS)
async def test_access_matrix(client: TestClient, alice: Account, bob: Account, signup: Any, level: str) -> None:
    await signup("carol")
    services: Services = client.app[SERVICES]
    group = await alice.create_group("Work")
    put = await client.put(
        "/dav/calendars/alice/work/plan.ics", data=EVENT.format(uid="plan", summary=SECRET), headers=basic("alice")
    )
    other = await client.put(
        "/dav/calendars/alice/work/other.ics", data=EVENT.format(uid="other", summary=SECRET), headers=basic("alice")
    )
    assert put.status == other.status == 201
    users = {u.username: u for u in await services.users.all()}
    calendar = await services.calendars.get(users["alice"], group["id"])
    base = "/dav/calendars/alice/work/"
    if level not in ("none", "owner"):
        grant = await services.access.share(
            users["alice"], calendar, users["bob"], "read" if level == "revoked" else level
        )
        await services.access.answer(users["bob"], grant, accept=True)
        base = f"/dav/calendars/bob/{grant.slug}/"
        if level == "revoked":
            await services.access.revoke(users["alice"], calendar, grant)
    actor = "alice" if level == "owner" else "bob"
    login = await client.get("/wcap/login.wcap", params={"user": actor, "password": "correct horse"})
    session = re.search(r"X-NSCP-WCAP-SESSION-ID:(\S+)", await login.text())
    assert session is not None
    world = World(
        client, services, actor, alice if actor == "alice" else bob, base, "alice:work", group["id"], session.group(1)
    )
    needed = NEEDED.get(
        level, Level.grantable(level) if level in ("freebusy", "read", "read-write", "admin") else Level.NONE
    )
    outcomes = []
    for operation in OPERATIONS:
        before = await snapshot(services, calendar.id)
        status, text = await operation.run(world)
        allowed = needed >= operation.needs and needed > Level.NONE
        outcomes.append((operation.name, ok(status), allowed))
        if not ok(status):
            assert SECRET not in text, f"{operation.name} refused but showed an event"
            assert await snapshot(services, calendar.id) == before, f"{operation.name} refused but changed something"
        elif operation.shows_secret:
            assert SECRET in text, f"{operation.name} did not show the event"
    wrong = [(name, "allowed" if done else "refused") for name, done, allowed in outcomes if done != allowed]
    assert not wrong, f"{level}: {wrong}"
