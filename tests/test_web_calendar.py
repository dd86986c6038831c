"""The calendar on the web (issue 29): month, week and agenda views in the viewer's zone, events
created and changed on the page (one occurrence, this and the following ones, all) as CalDAV
then sees them, shares' levels, search, calendars and the account managed, feeds, sign-up."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from server.app import create_app
from server.config import Config
from server.http import SERVICES
from tests.helpers import basic

SERIES = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
    "BEGIN:VEVENT\r\nUID:standup\r\nDTSTAMP:20261201T000000Z\r\n"
    "DTSTART;TZID=Europe/Berlin:20261207T093000\r\nDURATION:PT15M\r\nRRULE:FREQ=DAILY;COUNT=5\r\n"
    "SUMMARY:Stand-up\r\nLOCATION:Room 4\r\nEND:VEVENT\r\n"
    "BEGIN:VEVENT\r\nUID:offsite\r\nDTSTAMP:20261201T000000Z\r\nDTSTART;VALUE=DATE:20261209\r\n"
    "DTEND;VALUE=DATE:20261212\r\nSUMMARY:Offsite\r\nEND:VEVENT\r\n"
    "BEGIN:VEVENT\r\nUID:late\r\nDTSTAMP:20261201T000000Z\r\nDTSTART:20261208T230000Z\r\n"
    "DTEND:20261209T010000Z\r\nSUMMARY:Late call\r\nDESCRIPTION:Dial in\\, then wait for the\r\n  lighthouse keeper\r\n"
    "BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT5M\r\nDESCRIPTION:x\r\nEND:VALARM\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def split_series() -> dict[str, str]:
    """SERIES as one resource per UID."""
    head, *parts = SERIES.removesuffix("END:VCALENDAR\r\n").split("BEGIN:VEVENT")
    texts = {}
    for part in parts:
        uid = part.split("UID:", 1)[1].split("\r\n", 1)[0]
        texts[uid] = f"{head}BEGIN:VEVENT{part}END:VCALENDAR\r\n"
    return texts


class Browser:
    """A signed-in web session (its own cookies) and the CSRF token its forms carry."""

    def __init__(self, http: aiohttp.ClientSession, server: TestServer, name: str) -> None:
        self.http, self.server, self.name, self.csrf = http, server, name, ""

    def url(self, path: str) -> Any:
        return self.server.make_url(path)

    async def page(self, path: str, status: int = 200) -> str:
        async with self.http.get(self.url(path)) as response:
            text = await response.text()
            assert response.status == status, text
            found = re.search(r'data-csrf="([0-9a-f]+)"', text)
            self.csrf = found.group(1) if found else self.csrf
            return text

    async def post(self, path: str, status: int = 303, **fields: Any) -> aiohttp.ClientResponse:
        data = aiohttp.FormData([("csrf", self.csrf)])
        for key, value in fields.items():
            for each in value if isinstance(value, list) else [value]:
                data.add_field(key, str(each))
        response = await self.http.post(self.url(path), data=data, allow_redirects=False)
        assert response.status == status, await response.text()
        return response


@asynccontextmanager
async def signed_in(server: TestServer, name: str, *, sign_up: bool = True) -> AsyncIterator[Browser]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        if sign_up:
            await http.post(server.make_url("/v1/users"), json={"username": name, "password": "correct horse",
                                                                "email": f"{name}@example.org"})  # fmt: skip
        await http.post(server.make_url("/app/signin"), data={"username": name, "password": "correct horse"})
        browser = Browser(http, server, name)
        await browser.page("/app/calendar")
        yield browser


async def caldav(server: TestServer, method: str, path: str, user: str = "alice", **kwargs: Any) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http:
        headers = {**basic(user), **kwargs.pop("headers", {})}
        async with http.request(method, server.make_url(path), headers=headers, **kwargs) as response:
            return response.status, await response.text()


async def put(server: TestServer, text: str, uid: str, user: str = "alice", slug: str = "calendar") -> None:
    status, body = await caldav(server, "PUT", f"/dav/calendars/{user}/{slug}/{uid}.ics", user=user, data=text)
    assert status == 201, body


def shown(page: str) -> list[str]:
    """The occurrences a view lists: their time label and title."""
    found = re.findall(r'<span class="time">([^<]*)</span> (?:<a [^>]*>)?([^<]+)', page)
    return [f"{time} {title.strip()}".strip() for time, title in found]


def calendar_uuid(page: str) -> str:
    return re.search(r'<option value="([0-9a-f-]{36})"', page).group(1)  # type: ignore[union-attr]


async def objects(server: TestServer, user: str = "alice") -> dict[str, str]:
    """The calendar's objects as a CalDAV client fetches them: href -> text."""
    body = (
        '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/>'
        '<C:calendar-data/></D:prop><C:filter><C:comp-filter name="VCALENDAR"/></C:filter></C:calendar-query>'
    )
    status, text = await caldav(server, "REPORT", f"/dav/calendars/{user}/calendar/", user=user, data=body,
                                headers={"Depth": "1"})  # fmt: skip
    assert status == 207, text
    hrefs = re.findall(r"<D:href>([^<]+)</D:href>", text)
    datas = re.findall(r"<C:calendar-data[^>]*>(.*?)</C:calendar-data>", text, re.S)
    return dict(zip(hrefs, datas, strict=True))


async def test_views_in_the_viewers_zone(server: TestServer) -> None:
    async with signed_in(server, "alice") as alice:
        await put(server, SERIES.split("BEGIN:VEVENT\r\nUID:offsite", maxsplit=1)[0] + "END:VCALENDAR\r\n", "standup")
        offsite = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT" + SERIES.split("BEGIN:VEVENT")[2]
        await put(server, offsite.split("BEGIN:VEVENT\r\nUID:late")[0] + "END:VCALENDAR\r\n", "offsite")
        late = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT" + SERIES.split("BEGIN:VEVENT")[3]
        await put(server, late, "late")
        await alice.post("/app/account/timezone", timezone="America/New_York")
        week = shown(await alice.page("/app/calendar?view=week&date=2026-12-08"))
        # 09:30 in Berlin is 03:30 in New York; the late call (23:00 UTC) is 18:00 there, on the 8th
        assert week.count("03:30 Stand-up") == 5
        assert "18:00 Late call" in week
        agenda = await alice.page("/app/calendar?view=agenda&date=2026-12-07")
        days = re.split(r"<h2", agenda)[1:]
        assert [d.count("Offsite") for d in days if "December" in d] == [0, 0, 1, 1, 1]  # three days, as dates
        assert "all day" in agenda and "Room 4" in agenda
        month = shown(await alice.page("/app/calendar?view=month&date=2026-12-01"))
        assert month.count("03:30 Stand-up") == 5
        # without the account's zone, the browser's (the script's cookie) decides
        await alice.post("/app/account/timezone", timezone="")
        alice.http.cookie_jar.update_cookies({"almanac_tz": "Asia/Tokyo"})
        week = shown(await alice.page("/app/calendar?view=week&date=2026-12-08"))
        assert "17:30 Stand-up" in week and "08:00 Late call" in week
        # a calendar hidden stays hidden
        uuid = calendar_uuid(await alice.page("/app/events/new"))
        await alice.post("/app/calendar/shown", back="/app/calendar")
        assert shown(await alice.page("/app/calendar?view=week&date=2026-12-08")) == []
        await alice.post("/app/calendar/shown", shown=uuid, back="/app/calendar")
        assert shown(await alice.page("/app/calendar?view=week&date=2026-12-08"))


async def test_a_weekly_event_made_changed_and_deleted_on_the_page(server: TestServer) -> None:
    async with signed_in(server, "alice") as alice:
        uuid = calendar_uuid(await alice.page("/app/events/new"))
        form = {"summary": "Yoga", "start_date": "2026-12-08", "start_time": "18:00", "end_date": "2026-12-08",
                "end_time": "19:00", "timezone": "Europe/Paris", "location": "Gym", "calendar": uuid,
                "repeat": "WEEKLY", "days": ["TU", "TH"], "ends": "count", "count": "6", "interval": "1"}  # fmt: skip
        made = await alice.post("/app/events", **form)
        event_id = made.headers["Location"].rsplit("#e", 1)[1]
        ((href, text),) = (await objects(server)).items()
        assert "RRULE:FREQ=WEEKLY;COUNT=6;BYDAY=TU,TH" in text and "DTSTART;TZID=Europe/Paris:20261208T180000" in text
        _, first = await caldav(server, "GET", href)
        # one occurrence moved (Thursday the 10th, 18:00 Paris = 17:00 UTC)
        at = 1796922000
        page = await alice.page(f"/app/events/{event_id}?at={at}")
        assert 'value="2026-12-10"' in page and "This occurrence" in page
        await alice.post(f"/app/events/{event_id}", **{**form, "at": at, "scope": "this", "summary": "Yoga (late)",
                                                       "start_date": "2026-12-10", "end_date": "2026-12-10",
                                                       "start_time": "20:00", "end_time": "21:00"})  # fmt: skip
        (text,) = (await objects(server)).values()
        assert "RECURRENCE-ID;TZID=Europe/Paris:20261210T180000" in text and "SUMMARY:Yoga (late)" in text
        assert "DTSTART;TZID=Europe/Paris:20261210T200000" in text
        _status, second = await caldav(server, "GET", href)
        assert second != first
        # this and the following from the 15th: a second series of the 4 left, the first ends before
        await alice.post(f"/app/events/{event_id}", **{**form, "at": 1797354000, "scope": "following",
                                                       "summary": "Pilates", "start_date": "2026-12-15",
                                                       "end_date": "2026-12-15"})  # fmt: skip
        texts = list((await objects(server)).values())
        assert len(texts) == 2
        old = next(t for t in texts if "SUMMARY:Yoga" in t)
        new = next(t for t in texts if "SUMMARY:Pilates" in t)
        assert "UNTIL=20261215T165959Z" in old and "COUNT" not in old.split("RRULE:")[1].split("\r\n")[0]
        assert "COUNT=4" in new and "DTSTART;TZID=Europe/Paris:20261215T180000" in new
        agenda = shown(await alice.page("/app/calendar?view=agenda&date=2026-12-07"))
        assert [a.split(" ", 1)[1] for a in agenda] == [
            "Yoga",
            "Yoga (late)",
            "Pilates",
            "Pilates",
            "Pilates",
            "Pilates",
        ]
        # the whole first series deleted, then one occurrence of the second
        await alice.post(f"/app/events/{event_id}/delete", scope="all", at=at)
        ((_href2, text),) = (await objects(server)).items()
        new_id = re.search(
            r'href="/app/events/(\d+)\?at=', await alice.page("/app/calendar?view=agenda&date=2026-12-07")
        )
        await alice.post(f"/app/events/{new_id.group(1)}/delete", scope="this", at=1797354000)  # type: ignore[union-attr]
        (text,) = (await objects(server)).values()
        assert "EXDATE;TZID=Europe/Paris:20261215T180000" in text
        assert len(shown(await alice.page("/app/calendar?view=agenda&date=2026-12-07"))) == 3
        # a bad form changes nothing and says why
        page = await (await alice.post("/app/events", status=400, **{**form, "end_date": "2026-12-01"})).text()
        assert "ends before it starts" in page
        assert len(await objects(server)) == 1


async def test_what_a_share_allows_on_the_page(server: TestServer) -> None:
    async with (
        signed_in(server, "alice") as alice,
        signed_in(server, "bob") as bob,
        signed_in(server, "carol") as carol,
    ):
        await put(server, SERIES.split("BEGIN:VEVENT\r\nUID:offsite", maxsplit=1)[0] + "END:VCALENDAR\r\n", "standup")
        uuid = calendar_uuid(await alice.page("/app/events/new"))
        await alice.page(f"/app/calendars/{uuid}/sharing")
        await alice.post(f"/app/calendars/{uuid}/share", user="bob", level="read")
        await alice.post(f"/app/calendars/{uuid}/share", user="carol", level="freebusy")
        for sharee in (bob, carol):
            await sharee.page("/app/")
            await sharee.post(f"/app/shared/{uuid}", answer="accept")
        week = await bob.page("/app/calendar?view=week&date=2026-12-08")
        event = re.search(r'href="(/app/events/(\d+)\?at=\d+)"', week)
        assert event and "Stand-up" in week and "(read only)" in week
        page = await bob.page(event.group(1))
        assert "Stand-up" in page and '<form method="post" action="/app/events' not in page and "Delete" not in page
        # a crafted change is refused by the service, and nothing changes
        before = await objects(server)
        await bob.post(f"/app/events/{event.group(2)}/delete", status=403, scope="all")
        assert await objects(server) == before
        # free/busy only: "Busy" blocks, nothing to open
        week = await carol.page("/app/calendar?view=week&date=2026-12-08")
        assert "Stand-up" not in week and week.count(">Busy<") + len(re.findall(r"</span> Busy", week)) >= 5
        assert "/app/events/" not in week.split('<section class="view')[1]
        assert (await carol.http.get(carol.url(event.group(1)))).status == 404
        # search reaches what a user may read: bob finds it by its place, carol does not
        assert "Stand-up" in await bob.page("/app/search?q=room+4")
        assert "0 results" in await carol.page("/app/search?q=room+4")


async def test_search_by_title_place_and_description(server: TestServer) -> None:
    async with signed_in(server, "alice") as alice:
        late = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT" + SERIES.split("BEGIN:VEVENT")[3]
        await put(server, late, "late")
        assert "Late call" in await alice.page("/app/search?q=LIGHTHOUSE+keeper")  # across a folded line
        assert "Late call" in await alice.page("/app/search?q=in%2C+then")  # an escaped comma
        assert "0 results" in await alice.page("/app/search?q=DISPLAY")  # not the alarm's words
        assert "2 to 200 characters" in await alice.page("/app/search?q=x")
        assert "2 to 200 characters" in await alice.page("/app/search?q=" + "x" * 201)


async def test_calendars_made_recoloured_and_deleted(server: TestServer) -> None:
    async with signed_in(server, "alice") as alice, signed_in(server, "bob") as bob:
        await alice.page("/app/")
        made = await alice.post("/app/calendars", name="Work", color="#aa3300", timezone="Europe/Oslo")
        uuid = made.headers["Location"].split("/")[3]
        css = await alice.page("/app/calendar.css")
        assert "{--c:#AA3300}" in css
        await alice.page(f"/app/calendars/{uuid}/settings")
        await alice.post(f"/app/calendars/{uuid}/settings", name="Work things", color="#112233", timezone="Europe/Oslo")
        assert "Work things" in await alice.page("/app/") and "{--c:#112233}" in await alice.page("/app/calendar.css")
        refused = await alice.post(f"/app/calendars/{uuid}/settings", status=400, name="x", timezone="Mars/Olympus")
        assert "not a known time zone" in await refused.text()
        await put(
            server,
            SERIES.split("BEGIN:VEVENT\r\nUID:offsite", maxsplit=1)[0] + "END:VCALENDAR\r\n",
            "standup",
            slug="work",
        )
        settings = await alice.page(f"/app/calendars/{uuid}/settings")
        assert "and its 1 event" in settings
        # a sharee picks a colour of their own; the owner's stays
        await alice.page(f"/app/calendars/{uuid}/sharing")
        await alice.post(f"/app/calendars/{uuid}/share", user="bob", level="read")
        await bob.page("/app/")
        await bob.post(f"/app/shared/{uuid}", answer="accept")
        cards = await bob.page("/app/")
        assert "Work things" in cards and "/dav/calendars/bob/" in cards
        await bob.post(f"/app/calendars/{uuid}/settings", color="#00ff00")
        assert "{--c:#00FF00}" in await bob.page("/app/calendar.css")
        assert "{--c:#00FF00}" not in await alice.page("/app/calendar.css")
        await bob.post(f"/app/calendars/{uuid}/delete", status=403, confirm="yes")  # only its owner
        # deleting needs the confirmation
        await alice.page(f"/app/calendars/{uuid}/settings")
        await alice.post(f"/app/calendars/{uuid}/delete", status=400)
        await alice.post(f"/app/calendars/{uuid}/delete", confirm="yes")
        assert "Work things" not in await alice.page("/app/")


async def test_the_account(server: TestServer) -> None:
    async with signed_in(server, "alice") as alice:
        async with aiohttp.ClientSession() as http:
            signin = await http.post(
                server.make_url("/v1/users/signin"), json={"email": "alice", "password": "correct horse"}
            )
            token = (await signin.json())["authToken"]
        account = await alice.page("/app/account")
        ids = re.findall(r"/app/account/tokens/(\d+)/revoke", account)
        assert len(ids) == 2  # the sign-up's and this one
        for token_id in ids:
            await alice.post(f"/app/account/tokens/{token_id}/revoke")
        async with aiohttp.ClientSession() as http:
            me = await http.get(server.make_url("/v1/me"), headers={"Authorization": f"Token token={token}"})
            assert me.status == 401
        await alice.post("/app/account/email", email="ada@example.org")
        refused = await alice.post("/app/account/email", status=400, email="not an address")
        assert "not a valid e-mail" in await refused.text()
        wrong = await alice.post(
            "/app/account/password", status=400, current="nope", new="a new horse", again="a new horse"
        )
        assert "current password is not right" in await wrong.text()
        await alice.post("/app/account/password", current="correct horse", new="a new horse", again="a new horse")
        status, _ = await caldav(server, "PROPFIND", "/dav/", headers={"Depth": "0"})
        assert status == 401
        assert "ada@example.org" in await alice.page("/app/account")


async def test_feeds_keep_their_address_names_and_days(server: TestServer) -> None:
    async with signed_in(server, "alice") as alice:
        for uid, text in split_series().items():
            await put(server, text, uid)
        uuid = calendar_uuid(await alice.page("/app/events/new"))
        await alice.post(f"/app/calendars/{uuid}/settings", name="Family", color="#3366cc", timezone="Europe/Berlin")
        await alice.page(f"/app/calendars/{uuid}/sharing")
        await alice.post(f"/app/calendars/{uuid}/feed", status=200, action="full")
        page = await alice.page(f"/app/calendars/{uuid}/sharing")  # seen again later
        url = re.search(r'<code id="feed-url">([^<]+)</code>', page).group(1)  # type: ignore[union-attr]
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            feed = await response.text()
        assert "X-WR-CALNAME:Family" in feed and "X-WR-TIMEZONE:Europe/Berlin" in feed
        assert "X-APPLE-CALENDAR-COLOR:#3366CC" in feed and "REFRESH-INTERVAL" in feed
        assert "Late call" in feed and "VALARM" not in feed
        await alice.post(f"/app/calendars/{uuid}/feed", status=200, action="busy")
        page = await alice.page(f"/app/calendars/{uuid}/sharing")
        url = re.search(r'<code id="feed-url">([^<]+)</code>', page).group(1)  # type: ignore[union-attr]
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            busy = await response.text()
        if "20261209" in busy:  # within the feed's window (90 days back, 400 ahead)
            assert "DTSTART;VALUE=DATE:20261209" in busy and "DTEND;VALUE=DATE:20261212" in busy


async def test_the_log_never_shows_a_feed_token(server: TestServer, caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="almanac.access")
    async with aiohttp.ClientSession() as http, http.get(server.make_url("/feeds/abcdefghijklmnopqrstuv.ics")):
        pass
    logged = " ".join(r.getMessage() for r in caplog.records if r.name == "almanac.access")
    assert "/feeds/<secret>.ics" in logged and "abcdefghijklmnopqrstuv" not in logged


async def test_sign_up_open_and_closed(aiohttp_server: Any, config: Config) -> None:
    opened = await aiohttp_server(create_app(config))
    async with aiohttp.ClientSession() as http:
        assert "/app/signup" in await (await http.get(opened.make_url("/app/signin"))).text()
        made = await http.post(opened.make_url("/app/signup"), data={"username": "dana", "password": "correct horse"})
        assert made.status == 200 and str(made.url).endswith("/app/calendar")
    closed = await aiohttp_server(create_app(replace(config, signup="closed")))
    async with aiohttp.ClientSession() as http:
        assert "/app/signup" not in await (await http.get(closed.make_url("/app/signin"))).text()
        assert (await http.get(closed.make_url("/app/signup"))).status == 404
        refused = await http.post(closed.make_url("/v1/users"), json={"username": "eve", "password": "correct horse"})
        assert refused.status == 403
    invited = await aiohttp_server(create_app(replace(config, signup="invitation")))
    code = await invited.app[SERVICES].users.invite("fay@example.org")
    async with aiohttp.ClientSession() as http:
        assert "/app/signup" not in await (await http.get(invited.make_url("/app/signin"))).text()
        assert (await http.get(invited.make_url("/app/signup"))).status == 404
        wrong = await http.post(invited.make_url("/v1/users"), json={"username": "fay", "password": "correct horse",
                                                                     "invitation": "not-the-code"})  # fmt: skip
        assert wrong.status == 422, await wrong.text()
        form = await http.get(invited.make_url(f"/app/signup?invitation={code}"))
        assert form.status == 200
        taken = {"username": "dana", "password": "correct horse", "invitation": code}  # dana exists: refused
        again = await http.post(invited.make_url(f"/app/signup?invitation={code}"), data=taken)
        assert again.status == 400 and "already taken" in await again.text()
        made = await http.post(invited.make_url(f"/app/signup?invitation={code}"), data={**taken, "username": "fay"})
        assert made.status == 200 and str(made.url).endswith("/app/calendar")  # the code was given back meanwhile
        fay = await invited.app[SERVICES].users.get_by_name("fay")
        assert fay is not None and fay.email == "fay@example.org"
        twice = await http.post(invited.make_url("/v1/users"), json={"username": "gus", "password": "correct horse",
                                                                     "invitation": code})  # fmt: skip
        assert twice.status == 422 and "used or expired" in await twice.text()


async def test_a_meeting_made_on_the_page_with_its_attendees_busy_times(server: TestServer) -> None:
    async with signed_in(server, "alice") as alice, signed_in(server, "bob") as bob:
        late = split_series()["late"]  # bob is busy 23:00-01:00 UTC, the night of the 8th
        await put(server, late, "late", user="bob")
        uuid = calendar_uuid(await alice.page("/app/events/new"))
        form = {"summary": "Planning", "start_date": "2026-12-08", "start_time": "10:00", "end_date": "2026-12-08",
                "end_time": "11:00", "timezone": "UTC", "calendar": uuid, "repeat": "", "ends": "never",
                "attendees": "bob@example.org\ncarol@elsewhere.example"}  # fmt: skip
        checked = await (await alice.post("/app/events", status=200, check="1", **form)).text()
        assert "not shared with you" in checked and "not a user here" in checked  # bob has not shared his
        assert await objects(server) == {}  # a check writes nothing
        bobs = calendar_uuid(await bob.page("/app/events/new"))
        await bob.page(f"/app/calendars/{bobs}/sharing")
        await bob.post(f"/app/calendars/{bobs}/share", user="alice", level="freebusy")
        await alice.page("/app/")
        await alice.post(f"/app/shared/{bobs}", answer="accept")
        checked = await (await alice.post("/app/events", status=200, check="1", **form)).text()
        assert re.search(r"bob@example.org</th><td>23:00–00:00", checked), checked  # cut at the day's end
        made = await alice.post("/app/events", **form)
        (text,) = (await objects(server)).values()
        assert "ORGANIZER:mailto:alice@example.org" in text and "mailto:bob@example.org" in text
        assert "Planning" in await bob.page("/app/invitations")  # delivered, as from any calendar program
        event_id = made.headers["Location"].rsplit("#e", 1)[1]
        page = await alice.page(f"/app/events/{event_id}")
        assert 'bob@example.org <span class="status">needs action</span>' in page
        # carol taken off the list: she is no longer asked
        await alice.post(f"/app/events/{event_id}", **{**form, "attendees": "bob@example.org"})
        (text,) = (await objects(server)).values()
        assert "carol" not in text and "mailto:bob@example.org" in text


async def test_what_no_page_takes(server: TestServer) -> None:
    """Days beyond the calendar, instances that are none, forms that say nothing: a clear refusal
    or today, never a 500, and nothing written."""
    async with signed_in(server, "alice") as alice:
        for query in ("date=9999-12-31", "date=0001-01-01", "date=2026-13-45", "view=yearly", "date=" + "9" * 5000):
            for view in ("month", "week", "agenda"):
                await alice.page(f"/app/calendar?view={view}&{query}")
        await alice.page("/app/events/new?date=9999-12-31")
        await put(server, split_series()["standup"], "standup")
        event = re.search(r"/app/events/(\d+)", await alice.page("/app/calendar?view=agenda&date=2026-12-07"))
        assert event is not None
        for at in ("99999999999999999999", "-99999999999999", "abc", "20261399", "1796889601", "20261208"):
            await alice.page(f"/app/events/{event.group(1)}?at={at}", status=404)
            await alice.post(f"/app/events/{event.group(1)}/delete", status=400, at=at, scope="this")
        await alice.page("/app/events/99999999999999999", status=404)
        uuid = calendar_uuid(await alice.page("/app/events/new"))
        base = {"summary": "x", "start_date": "2026-12-08", "calendar": uuid}
        for wrong in ({"start_date": "9999-12-31", "allday": "1"}, {"start_date": "yesterday"},
                      {"timezone": "Mars/Base"}, {"start_time": "25:00"}, {"repeat": "HOURLY"},
                      {"repeat": "DAILY", "interval": "0"},
                      {"repeat": "WEEKLY", "days": "XX"}, {"attendees": "not an address"}, {"calendar": "nope"},
                      {"repeat": "DAILY", "ends": "count", "count": "many"}):  # fmt: skip
            refused = await alice.post("/app/events", status=400, **{**base, **wrong})
            assert 'class="error"' in await refused.text()
        assert len(await objects(server)) == 1


async def test_an_event_moved_to_another_calendar(server: TestServer) -> None:
    async with signed_in(server, "alice") as alice:
        await put(server, split_series()["late"], "late")
        await alice.page("/app/")
        made = await alice.post("/app/calendars", name="Work")
        work = made.headers["Location"].split("/")[3]
        event = re.search(r"/app/events/(\d+)", await alice.page("/app/calendar?view=agenda&date=2026-12-07"))
        assert event is not None
        page = await alice.page(f"/app/events/{event.group(1)}")
        values = dict(re.findall(r'<input [^>]*name="(\w+)" (?:type="\w+" )?value="([^"]*)"', page))
        values.update(re.findall(r'<textarea [^>]*name="(\w+)"[^>]*>([^<]*)</textarea>', page))  # as a browser sends
        await alice.post(f"/app/events/{event.group(1)}", **{**values, "summary": "Late call", "calendar": work})
        assert await objects(server) == {}  # gone from the first calendar, with its href
        status, text = await caldav(server, "GET", "/dav/calendars/alice/work/late.ics")
        assert status == 200 and "SUMMARY:Late call" in text and "DESCRIPTION:Dial in" in text.replace("\r\n ", "")
