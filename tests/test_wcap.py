"""The WCAP door: sessions, httpauth, import.wcap, Lightning's request sequence, every errno."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient
from icalendar import Calendar
from lxml import etree

from protocol.wcap import Errno
from server.app import create_app
from server.config import Config, load
from tests.helpers import Account, files_left, sample

SEED_BOUNDARY = "multipart/form-data;boundary=---------------------------33111928916708"
SMALL_ICS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"
    "BEGIN:VEVENT\r\nUID:jan\r\nDTSTART:20250110T100000Z\r\nDTEND:20250110T110000Z\r\nSUMMARY:January\r\nEND:VEVENT\r\n"
    "BEGIN:VEVENT\r\nUID:mar\r\nDTSTART:20250310T100000Z\r\nDTEND:20250310T110000Z\r\nSUMMARY:March\r\nEND:VEVENT\r\n"
    "BEGIN:VEVENT\r\nUID:weekly\r\nDTSTART:20241202T090000Z\r\nDTEND:20241202T093000Z\r\n"
    "RRULE:FREQ=WEEKLY;COUNT=20\r\nSUMMARY:Weekly\r\nEND:VEVENT\r\n"
    "BEGIN:VTODO\r\nUID:todo\r\nDUE:20250601T120000Z\r\nSUMMARY:June todo\r\nEND:VTODO\r\n"
    "END:VCALENDAR\r\n"
)


class Reply:
    def __init__(self, status: int, text: str, headers: Any) -> None:
        self.status, self.text, self.headers = status, text, headers

    @property
    def errnos(self) -> list[int]:
        return [int(n) for n in re.findall(r"X-NSCP-WCAP-ERRNO[:>](-?\d+)", self.text)]

    @property
    def errno(self) -> int:
        return self.errnos[0]

    def value(self, name: str) -> str | None:
        match = re.search(rf"^{re.escape(name)}:(.*)\r$", self.text, re.M) or re.search(
            rf"<{re.escape(name)}>([^<]*)</", self.text
        )
        return match.group(1) if match else None

    def values(self, name: str) -> list[str]:
        return re.findall(rf"^{re.escape(name)}:(.*)\r$", self.text, re.M)

    def components(self, name: str = "VEVENT") -> list[Any]:
        return [c for cal in Calendar.from_ical(self.text, multiple=True) for c in cal.walk(name)]


Wcap = Callable[..., Awaitable[Reply]]


@pytest.fixture
def wcap(client: TestClient) -> Wcap:
    async def call(command: str, *, http: str = "GET", path: str = "/wcap/", data: Any = None, **params: Any) -> Reply:
        headers = params.pop("headers", {})
        query = {k.replace("_", "-") if k in ("fmt_out", "content_in", "component_type") else k: str(v)
                 for k, v in params.items()}  # fmt: skip
        response = await client.request(http, f"{path}{command}.wcap", params=query, data=data, headers=headers)
        text = await response.text()
        if response.status == 200:
            assert text, "a WCAP reply is never empty"
            assert response.headers["Cache-Control"] == "no-cache" and response.headers["Pragma"] == "no-cache"
        return Reply(response.status, text, response.headers)

    return call


@pytest.fixture
async def session(wcap: Wcap, alice: Account) -> str:
    reply = await wcap("login", user="alice", password="correct horse")
    assert reply.errno == 0
    return reply.value("X-NSCP-WCAP-SESSION-ID")  # type: ignore[return-value]


async def upload(wcap: Wcap, content: bytes | str, field: str = "file", **params: Any) -> Reply:
    form = FormData()
    form.add_field(field, content.encode() if isinstance(content, str) else content, filename="in.ics")
    return await wcap("import", http="POST", data=form, **params)


async def summaries(wcap: Wcap, session: str, **params: Any) -> set[str]:
    reply = await wcap("fetchcomponents_by_range", id=session, recurring=1, **params)
    assert reply.errno == 0, reply.text
    return {str(c["SUMMARY"]) for name in ("VEVENT", "VTODO") for c in reply.components(name)}


# --------------------------------------------------------------------------- transport


async def test_routes_formats_and_unknown_commands(wcap: Wcap, session: str) -> None:
    for path in ("/", "/wcap/"):
        reply = await wcap("version", path=path, fmt_out="text/calendar")
        assert reply.value("X-NSCP-WCAPVERSION") == "3.0.0" and reply.errno == 0
    xml = await wcap("version", fmt_out="text/xml")
    root = etree.fromstring(xml.text.encode())
    assert root.tag == "iCalendar" and root.find("iCal/X-NSCP-WCAPVERSION").text == "3.0.0"
    assert (await wcap("version", fmt_out="text/json")).errno == 58
    assert (await wcap("frobnicate", id=session)).errno == 52
    posted = await wcap("gettime", http="POST", data={"id": session, "fmt-out": "text/calendar"})
    assert posted.errno == 0 and re.fullmatch(r"\d{8}T\d{6}Z", posted.value("X-NSCP-WCAPTIME") or "")


async def test_login_logout_and_check_id(wcap: Wcap, alice: Account) -> None:
    reply = await wcap("login", user="alice", password="correct horse")
    names = re.findall(r"^(X-NSCP-WCAP-[A-Z-]+):", reply.text, re.M)
    assert names == ["X-NSCP-WCAP-SESSION-ID", "X-NSCP-WCAP-USER-ID", "X-NSCP-WCAP-CALENDAR-ID", "X-NSCP-WCAP-ERRNO"]
    assert reply.value("X-NSCP-WCAP-USER-ID") == "alice" and reply.value("X-NSCP-WCAP-CALENDAR-ID") == "alice"
    session = reply.value("X-NSCP-WCAP-SESSION-ID")
    assert (await wcap("check_id", id=session)).value("X-NSCP-WCAP-CHECK-ID") == "1"
    assert (await wcap("login", user="alice", password="wrong")).errno == 1
    assert (await wcap("login", user="nobody", password="x")).errno == 1
    assert (await wcap("logout", id=session, fmt_out="text/xml")).errno == -1
    assert (await wcap("check_id", id=session)).value("X-NSCP-WCAP-CHECK-ID") == "0"
    assert (await wcap("get_calprops", id=session)).errno == 1
    assert (await wcap("get_calprops", id="made-up")).errno == 1
    assert (await wcap("get_calprops")).errno == 1


async def test_sessions_expire_when_idle(aiohttp_client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = load(None, {("server", "data"): str(tmp_path / "d"), ("wcap", "session_timeout"): 1}, {})
    client = await aiohttp_client(create_app(config))
    await client.post("/v1/users", json={"username": "eve", "password": "correct horse"})
    login = await (await client.get("/login.wcap", params={"user": "eve", "password": "correct horse"})).text()
    session = re.search(r"SESSION-ID:(\S+)", login).group(1)
    text = await (await client.get("/gettime.wcap", params={"id": session})).text()
    assert "X-NSCP-WCAP-ERRNO:0" in text
    import asyncio

    await asyncio.sleep(2.1)
    text = await (await client.get("/gettime.wcap", params={"id": session})).text()
    assert "X-NSCP-WCAP-ERRNO:1" in text


async def test_login_is_throttled(wcap: Wcap, alice: Account) -> None:
    """Guesses are slowed, the owner is not locked out (issue 12: blocking refused the right
    password too); a username and its e-mail are one account, not twice the guesses."""
    baseline = 0.0  # how long an attempt takes here, unslowed (measured, not assumed)
    for login in ("alice", "alice@example.org") * 5:
        started = time.monotonic()
        assert (await wcap("login", user=login, password="guess")).errno == 1
        baseline = baseline or time.monotonic() - started
    started = time.monotonic()
    assert (await wcap("login", user="alice", password="correct horse")).errno == 0
    assert time.monotonic() - started >= baseline + 0.9  # the 11th attempt waited its turn
    assert (await wcap("login", user="bob", password="guess")).errno == 1  # other names are not slowed


async def test_httpauth_uses_basic_credentials(wcap: Wcap, alice: Account) -> None:
    good = "Basic " + base64.b64encode(b"alice:correct horse").decode()
    reply = await wcap("get_calprops", httpauth=1, headers={"Authorization": good})
    assert reply.errno == 0 and reply.value("X-NSCP-CALPROPS-RELATIVE-CALID") == "alice"
    for headers in ({}, {"Authorization": "Basic " + base64.b64encode(b"alice:nope").decode()}):
        reply = await wcap("get_calprops", httpauth=1, headers=headers)
        assert reply.status == 401 and reply.headers["WWW-Authenticate"].startswith("Basic")


# --------------------------------------------------------------------------- import.wcap


async def test_the_seed_request_imports_both_events(
    client: TestClient, wcap: Wcap, session: str, alice: Account, config: Config
) -> None:
    """The page's own example: doubled slash, path calid, and delimiters that do not match
    the declared boundary."""
    root = str(client.make_url("/")).rstrip("/")
    response = await client.session.post(
        f"{root}/wcap//import.wcap?id={session}&calid=/home/alice/calendar/&dtstart=0&dtend=0",
        data=sample("seed004_body.txt"),
        headers={"Content-type": SEED_BOUNDARY},
    )
    text = await response.text()
    assert response.status == 200 and "X-NSCP-WCAP-ERRNO:0" in text, text
    assert "X-ALMANAC-IMPORT-CREATED:2" in text
    assert await summaries(wcap, session) == {"Weekly QA Meeting", "Weekly QA Meeting 2"}
    floating = [c for c in (await wcap("fetchevents_by_id", id=session, uid="random-uid002")).components()]
    assert floating[0]["DTSTART"].to_ical() == b"20020106T100000"  # the floating time stays floating
    assert "random-uid001" in await alice.export("ical")  # one store: the REST door sees it at once
    assert files_left(config.data_dir) == []  # the body and file on disk are removed


async def test_httpauth_import_without_a_session(wcap: Wcap, alice: Account) -> None:
    good = "Basic " + base64.b64encode(b"alice:correct horse").decode()
    reply = await upload(wcap, SMALL_ICS, httpauth=1, calid="alice", headers={"Authorization": good})
    assert reply.errno == 0
    assert "January" in await alice.export("ical")


async def test_upload_field_and_calid_forms(wcap: Wcap, session: str, alice: Account) -> None:
    await wcap("createcalendar", id=session, calid="alice:work", name="Work")
    for calid in ("alice", "alice:work", "mailto:alice@example.org", "/home/alice/work/"):
        reply = await upload(wcap, SMALL_ICS, field="Upload", id=session, calid=calid)
        assert reply.errno == 0, (calid, reply.text)
    assert await summaries(wcap, session, calid="alice:work") == {"January", "March", "Weekly", "June todo"}


async def test_range_keeps_only_what_overlaps(wcap: Wcap, session: str) -> None:
    reply = await upload(wcap, SMALL_ICS, id=session, dtstart="20250301T000000Z", dtend="20250401T000000Z")
    assert reply.errno == 0 and reply.value("X-ALMANAC-IMPORT-DISCARDED") == "2"
    # March falls inside; the weekly series (Dec 2 + 19 weeks: until mid April) overlaps too
    assert await summaries(wcap, session) == {"March", "Weekly"}
    reply = await upload(wcap, SMALL_ICS, id=session, dtstart="20250501T000000Z", dtend="0")
    assert reply.value("X-ALMANAC-IMPORT-CREATED") == "1"  # only the June todo


BAD_IMPORTS: dict[str, tuple[dict[str, Any], bytes | None]] = {
    "bad dtstart": ({"dtstart": "yesterday"}, None),
    "dtstart after dtend": ({"dtstart": "20250201T000000Z", "dtend": "20250101T000000Z"}, None),
    "wrong content-in": ({"content_in": "text/xml"}, None),
    "not iCalendar": ({}, sample("outlook.csv")),
    "garbage bytes": ({}, bytes(range(256)) * 20),
    "invalid UTF-8": ({}, SMALL_ICS.replace("January", "Janu\udcffary").encode("utf-8", "surrogateescape")),
    "a 10 MB line": ({}, b"BEGIN:VCALENDAR\r\n" + b"X" * 10_000_000 + b"\r\nEND:VCALENDAR\r\n"),
    "truncated": ({}, SMALL_ICS[:200].encode()),
}


@pytest.mark.parametrize("case", list(BAD_IMPORTS))
async def test_bad_import_arguments_are_errno_77_and_change_nothing(
    wcap: Wcap, session: str, alice: Account, case: str, config: Config
) -> None:
    params, content = BAD_IMPORTS[case]
    reply = await upload(wcap, content if content is not None else SMALL_ICS, id=session, **params)
    assert reply.status == 200 and reply.errno == 77, reply.text[:300]
    assert await summaries(wcap, session) == set()
    assert files_left(config.data_dir) == []


async def test_import_transport_errors_are_errno_77(client: TestClient, wcap: Wcap, session: str) -> None:
    no_file = await wcap("import", http="POST", data={"calid": "alice"}, id=session)
    assert no_file.errno == 77
    by_get = await wcap("import", id=session)
    assert by_get.errno == 77
    response = await client.post(
        "/wcap/import.wcap",
        params={"id": session},
        data=SMALL_ICS.encode(),
        headers={"Content-Type": "multipart/form-data"},
    )
    assert "X-NSCP-WCAP-ERRNO:77" in await response.text()  # no boundary


async def test_an_upload_over_the_limit_is_refused(aiohttp_client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = load(None, {("server", "data"): str(tmp_path / "d"), ("limits", "max_upload_bytes"): 300}, {})
    client = await aiohttp_client(create_app(config))
    await client.post("/v1/users", json={"username": "eve", "password": "correct horse"})
    auth = {"Authorization": "Basic " + base64.b64encode(b"eve:correct horse").decode()}
    form = FormData()
    form.add_field("file", SMALL_ICS.encode(), filename="big.ics")
    response = await client.post("/import.wcap", params={"httpauth": "1"}, data=form, headers=auth)
    text = await response.text()
    assert "X-NSCP-WCAP-ERRNO:77" in text and "limit of 300 bytes" in text
    fetched = await client.get("/fetchcomponents_by_range.wcap", params={"httpauth": "1"}, headers=auth)
    assert "BEGIN:VEVENT" not in await fetched.text()


async def test_unknown_and_foreign_calendars(wcap: Wcap, session: str, bob: Account) -> None:
    assert (await upload(wcap, SMALL_ICS, id=session, calid="nobody")).errno == 29
    assert (await upload(wcap, SMALL_ICS, id=session, calid="alice:nothing")).errno == 29
    assert (await upload(wcap, SMALL_ICS, id=session, calid="bob")).errno == 28
    assert "January" not in await bob.export("ical")
    reply = await wcap("get_calprops", id=session, calid="alice;bob;nobody")
    assert reply.errnos == [0, 28, 29]
    assert (await wcap("fetchcomponents_by_range", id=session, calid="bob")).errno == 28


# --------------------------------------------------------------------------- Lightning


async def test_lightning_request_sequence(wcap: Wcap, alice: Account) -> None:
    """What Lightning's WCAP provider sends, in its order (reference section 7)."""
    version = await wcap("version", path="/", fmt_out="text/calendar")
    assert int(version.value("X-NSCP-WCAPVERSION").split(".")[0]) >= 3
    login = await wcap("login", path="/", fmt_out="text/calendar", user="alice", password="correct horse")
    session = login.value("X-NSCP-WCAP-SESSION-ID")
    common = {"path": "/", "appid": "mozilla-calendar", "id": session}
    prefs = await wcap("get_userprefs", **common, fmt_out="text/xml", userid="alice")
    assert prefs.errno == 0 and prefs.value("X-NSCP-WCAP-PREF-icsCalendar") == "alice"
    assert prefs.value("X-NSCP-WCAP-PREF-mail") == "alice@example.org"
    assert (await wcap("gettime", **common, fmt_out="text/calendar")).errno == 0
    zones = await wcap("get_all_timezones", **common, fmt_out="text/calendar", tzid="Europe/Berlin")
    assert zones.errno == 0 and "TZID:Europe/Berlin" in zones.text
    calprops = await wcap("get_calprops", **common, fmt_out="text/xml", calid="alice")
    ical = etree.fromstring(calprops.text.encode()).find("iCal")
    assert ical.findtext("X-NSCP-CALPROPS-RELATIVE-CALID") == "alice"
    assert ical.findtext("X-NSCP-CALPROPS-PRIMARY-OWNER") == "alice"
    fetch_params = {"relativealarm": 1, "compressed": 1, "recurring": 1, "emailorcalid": 1, "fmt_out": "text/calendar"}
    empty = await wcap("fetchcomponents_by_range", **common, **fetch_params, dtstart="20250101T000000Z",
                       dtend="20250201T000000Z", calid="alice")  # fmt: skip
    assert empty.errno == 0 and empty.components() == []
    store_params = {"calid": "alice", "replace": 1, "fetch": 1, **fetch_params}
    stored = await wcap(
        "storeevents", **common, **store_params, uid="lightning-1", storetype=1, mod=4, method=1,
        dtstart="20250115T090000Z", dtend="20250115T100000Z", isAllDay=0, summary="Dentist",
        desc="Bring the card", location="Main St", categories="Health;Private", icsClass="PRIVATE",
        status=0, transparent=0, alarmStart="-PT15M", alarmEmails="alice@example.org",
        attendees="PARTSTAT=ACCEPTED^ROLE=REQ-PARTICIPANT^CN=Bob^mailto:bob@example.org",
    )  # fmt: skip
    assert stored.errno == 0, stored.text
    events = stored.components()
    assert len(events) == 1 and str(events[0]["SUMMARY"]) == "Dentist"  # exactly one component back
    assert events[0].walk("VALARM")[0]["TRIGGER"].to_ical() == b"-PT15M"
    assert "mailto:bob@example.org" in str(events[0]["ATTENDEE"])
    again = await wcap("storeevents", **common, **store_params, uid="lightning-1", storetype=1, summary="x",
                       dtstart="20250115T090000Z")  # fmt: skip
    assert again.errno == 63
    fetched = await wcap("fetchevents_by_id", **common, **fetch_params, calid="alice", uid="lightning-1")
    assert [str(e["LOCATION"]) for e in fetched.components()] == ["Main St"]
    modified = await wcap("storeevents", **common, **store_params, uid="lightning-1", storetype=2, mod=4,
                          summary="Dentist (moved)", dtstart="20250116T090000Z", dtend="20250116T100000Z")  # fmt: skip
    event = modified.components()[0]
    assert str(event["SUMMARY"]) == "Dentist (moved)" and str(event["LOCATION"]) == "Main St"
    missing = await wcap("storeevents", **common, **store_params, uid="nope", storetype=2, summary="x")
    assert missing.errno == 62
    ranged = await wcap("fetchcomponents_by_range", **common, **fetch_params, dtstart="20250101T000000Z",
                        dtend="20250201T000000Z", calid="alice")  # fmt: skip
    assert [str(e["UID"]) for e in ranged.components()] == ["lightning-1"]
    deleted = await wcap("deleteevents_by_id", **common, calid="alice", uid="lightning-1", mod=4, rid=0,
                         fmt_out="text/xml")  # fmt: skip
    assert deleted.errno == 0 and "Delete successful" in deleted.text
    gone = await wcap("fetchevents_by_id", **common, **fetch_params, calid="alice", uid="lightning-1")
    assert gone.errno == 59
    assert (await wcap("fetchtodos_by_id", **common, **fetch_params, calid="alice", uid="lightning-1")).errno == 59
    assert (await wcap("logout", path="/", id=session, fmt_out="text/xml")).errno == -1
    expired = await wcap("get_calprops", **common, fmt_out="text/xml", calid="alice")
    assert expired.errno == 1  # Lightning logs in again on errno 1
    relogin = await wcap("login", path="/", user="alice", password="correct horse")
    assert relogin.errno == 0 and relogin.value("X-NSCP-WCAP-SESSION-ID") != session


async def test_recurring_occurrences_override_and_delete(wcap: Wcap, session: str) -> None:
    base = {"id": session, "fmt_out": "text/calendar", "fetch": 1}
    stored = await wcap("storeevents", **base, uid="series", storetype=1, dtstart="20250106T090000Z",
                        dtend="20250106T100000Z", rrules='"FREQ=WEEKLY;COUNT=4"', summary="Sync")  # fmt: skip
    assert stored.errno == 0, stored.text
    moved = await wcap("storeevents", **base, uid="series", mod=1, rid="20250113T090000Z",
                       dtstart="20250113T140000Z", dtend="20250113T150000Z", summary="Sync (moved)")  # fmt: skip
    assert moved.errno == 0 and str(moved.components()[0]["SUMMARY"]) == "Sync (moved)"
    expanded = await wcap("fetchcomponents_by_range", id=session, dtstart="20250101T000000Z", dtend="20250201T000000Z")
    starts = sorted(e["DTSTART"].to_ical().decode() for e in expanded.components())
    assert starts == ["20250106T090000Z", "20250113T140000Z", "20250120T090000Z", "20250127T090000Z"]
    one = await wcap("fetchevents_by_id", id=session, uid="series", rid="20250120T090000Z")
    assert [e["RECURRENCE-ID"].to_ical() for e in one.components()] == [b"20250120T090000Z"]
    cancel = await wcap("deleteevents_by_id", id=session, uid="series", mod=1, rid="20250120T090000Z")
    assert cancel.errno == 0
    after = await wcap("fetchcomponents_by_range", id=session, dtstart="20250101T000000Z", dtend="20250201T000000Z")
    assert len(after.components()) == 3
    masters = await wcap("fetchcomponents_by_range", id=session, recurring=1)
    assert "EXDATE:20250120T090000Z" in masters.text and masters.text.count("BEGIN:VEVENT") == 2


async def test_todos_and_component_types(wcap: Wcap, session: str) -> None:
    todo = await wcap("storetodos", id=session, uid="t1", storetype=1, due="20250601T120000Z", summary="Taxes",
                      percent=50, status=5, fetch=1)  # fmt: skip
    assert todo.errno == 0 and str(todo.components("VTODO")[0]["STATUS"]) == "IN-PROCESS"
    assert (await upload(wcap, SMALL_ICS, id=session)).errno == 0
    todos = await wcap("fetchcomponents_by_range", id=session, component_type="todo", recurring=1)
    assert {str(t["UID"]) for t in todos.components("VTODO")} == {"t1", "todo"} and not todos.components()
    assert (await wcap("fetchtodos_by_id", id=session, uid="t1")).errno == 0
    assert (await wcap("fetchevents_by_id", id=session, uid="t1")).errno == 59
    pending = await wcap("fetchcomponents_by_range", id=session, compstate="REQUEST-NEEDS-ACTION")
    assert pending.errno == 0 and "BEGIN:V" not in pending.text.replace("BEGIN:VCALENDAR", "")
    assert (await wcap("fetchcomponents_by_range", id=session, tzid="Mars/Olympus")).errno == 18
    assert (await wcap("fetchcomponents_by_range", id=session, dtstart="soon")).errno == 60


async def test_tzidout_and_xml_components(wcap: Wcap, session: str) -> None:
    await upload(wcap, SMALL_ICS, id=session)
    zoned = await wcap("fetchevents_by_id", id=session, uid="jan", tzidout="Europe/Berlin")
    assert zoned.components()[0]["DTSTART"].to_ical() == b"20250110T110000"
    assert "TZID=Europe/Berlin" in zoned.text
    xml = await wcap("fetchevents_by_id", id=session, uid="jan", fmt_out="text/xml")
    event = etree.fromstring(xml.text.encode()).find("iCal/EVENT")
    assert event.findtext("UID") == "jan" and event.findtext("START") == "20250110T100000Z"


async def test_calendar_management(wcap: Wcap, session: str, alice: Account, bob: Account) -> None:
    made = await wcap("createcalendar", id=session, calid="alice:work", name="Work", subscribe=1)
    assert made.errno == 0 and made.value("X-NSCP-CALPROPS-RELATIVE-CALID") == "alice:work"
    assert (await wcap("createcalendar", id=session, calid="alice:work")).errno == 25
    assert (await wcap("createcalendar", id=session, calid="alice:Bad Name!")).errno == 30
    assert (await wcap("createcalendar", id=session, calid="bob:mine")).errno == 28
    groups = {g["name"] for g in (await (await alice.get("/v1/me/calendars")).json())["result"]}
    assert "Work" in groups  # the same calendar is a REST group
    owned = await wcap("list", id=session)
    assert owned.values("X-S1CS-CALPROPS-OWNED-CALENDAR") == ["alice", "alice:work"]
    renamed = await wcap("set_calprops", id=session, calid="alice:work", name="Office", tzid="Europe/Berlin")
    assert (
        renamed.value("X-NSCP-CALPROPS-NAME") == "Office" and renamed.value("X-NSCP-CALPROPS-TZID") == "Europe/Berlin"
    )
    found = await wcap("search_calprops", id=session, **{"search-string": "off"}, name=1)
    assert found.values("X-NSCP-CALPROPS-RELATIVE-CALID") == ["alice:work"]
    assert (await wcap("unsubscribe_calendars", id=session, calid="alice:work")).errno == 0
    assert (await wcap("subscribe_calendars", id=session, calid="bob")).errno == 28
    assert (await wcap("deletecalendar", id=session, calid="alice")).errno == 11  # the default stays
    assert (await wcap("deletecalendar", id=session, calid="alice:work")).errno == 0
    assert (await wcap("deletecalendar", id=session, calid="alice:work")).errno == 29
    assert (await wcap("list_subscribed", id=session)).values("X-S1CS-CALPROPS-SUBSCRIBED-CALENDAR") == ["alice"]


async def test_userprefs(wcap: Wcap, session: str, bob: Account) -> None:
    changed = await wcap("set_userprefs", id=session, set_attrs="ceDefaultAlarmStart=PT10M")
    assert changed.value("X-NSCP-WCAP-PREF-ceDefaultAlarmStart") == "PT10M"
    assert (await wcap("set_userprefs", id=session, set_attrs="mail=x@y.z")).errno == 26
    assert (await wcap("get_userprefs", id=session, userid="bob")).errno == 44


async def test_lastmod_deleted_range_delete_freebusy_and_export(wcap: Wcap, session: str) -> None:
    assert (await upload(wcap, SMALL_ICS, id=session)).errno == 0
    recent = await wcap("fetchcomponents_by_lastmod", id=session, dtstart="20200101T000000Z", dtend="0")
    assert len(recent.components()) == 3
    free = await wcap("get_freebusy", id=session, dtstart="20250110T000000Z", dtend="20250111T000000Z",
                      fmt_out="text/xml")  # fmt: skip
    periods = [fb.text for fb in etree.fromstring(free.text.encode()).iter("FB")]
    assert periods == ["20250110T100000Z/20250110T110000Z"]
    exported = await wcap("export", id=session, **{"content-out": "text/calendar"})
    assert "attachment" in exported.headers["Content-Disposition"] and len(exported.components()) == 3
    removed = await wcap("deletecomponents_by_range", id=session, dtstart="20250301T000000Z", dtend="20250401T000000Z")
    assert removed.errno == 0
    assert await summaries(wcap, session) == {"January", "June todo"}
    tombstones = await wcap("fetch_deletedcomponents", id=session, dtstart="0", dtend="0")
    assert {str(c["UID"]) for c in tombstones.components()} == {"mar", "weekly"}


async def test_one_store_rest_import_is_fetched_by_wcap(wcap: Wcap, session: str, alice: Account) -> None:
    form = FormData()
    form.add_field("file", sample("google.ics"), filename="google.ics")
    assert (await alice.post("/v1/import/", data=form, headers={"Accept": "application/json"})).status == 200
    imports = await (await alice.get("/v1/me/calendars")).json()
    group = next(g for g in imports["result"] if g["name"] == "Imports")
    reply = await wcap("fetchcomponents_by_range", id=session, calid="alice:imports", dtstart="20240919T000000Z",
                       dtend="20240920T000000Z", recurring=1)  # fmt: skip
    assert reply.errno == 0 and "Parents evening" in {str(e["SUMMARY"]) for e in reply.components()}
    assert group["id"]


#: the errnos of the Sun/Oracle WCAP documentation that Almanac answers with (the reference's
#: table; Almanac's names drop the WCAP_ prefix, and 53 is Sun's NOT_FOUND, "DB write error")
SUN_ERRNOS = {
    -1: "LOGOUT", 0: "OK", 1: "LOGIN_FAILED", 6: "DELETE_EVENTS_BY_ID_FAILED", 8: "SETCALPROPS_FAILED",
    9: "FETCH_EVENTS_BY_ID_FAILED", 10: "CREATECALENDAR_FAILED", 11: "DELETECALENDAR_FAILED",
    13: "FETCHBYDATERANGE_FAILED", 14: "STOREEVENTS_FAILED", 15: "STORETODOS_FAILED",
    16: "DELETE_TODOS_BY_ID_FAILED", 17: "FETCH_TODOS_BY_ID_FAILED", 18: "FETCHCOMPONENTS_FAILED_BAD_TZID",
    21: "DELETECOMPONENTS_BY_RANGE_FAILED", 25: "CREATECALENDAR_ALREADY_EXISTS_FAILED", 26: "SET_USERPREFS_FAILED",
    28: "ACCESS_DENIED_TO_CALENDAR", 29: "CALENDAR_DOES_NOT_EXIST", 30: "ILLEGAL_CALID_NAME",
    35: "WRITE_IMPORT_FAILED", 36: "FETCH_BY_LAST_MODIFIED_FAILED", 38: "CALID_NOT_SPECIFIED",
    39: "GET_FREEBUSY_FAILED", 44: "USERPREFS_ACCESS_DENIED", 48: "DWP_CONNECTION_FAILED", 52: "BAD_COMMAND",
    53: "INTERNAL_ERROR", 55: "GETTIME_FAILED", 56: "FETCH_DELETEDCOMPONENTS_FAILED", 58: "NO_SUCH_FORMAT",
    59: "COMPONENT_NOT_FOUND", 60: "BAD_ARGUMENTS", 62: "MODIFY_NO_EVENT", 63: "CREATE_EXISTS", 76: "ACCESS_DENIED",
    77: "BAD_IMPORT_ARGUMENTS", 79: "ATTENDEE_NOT_ALLOWED_TO_REQUEST_ON_MODIFY",
}  # fmt: skip


def test_every_errno_is_the_number_suns_clients_know() -> None:
    """Issue 32: WCAP clients act on the numbers (Lightning re-logs in on 1, reads 28 per
    calendar): each errno Almanac answers with is the documentation's, no other, none twice."""
    assert {errno.value: errno.name for errno in Errno} == SUN_ERRNOS


# --------------------------------------------------------------------------- invitations


def partstat_of(text: str, who: str) -> str:
    calendar = Calendar.from_ical(text)
    lines = next(iter(calendar.walk("VEVENT")))["ATTENDEE"]
    line = next(a for a in (lines if isinstance(lines, list) else [lines]) if who in str(a))
    return str(line.params["PARTSTAT"])


async def test_wcap_invitations_reach_caldav_attendees_and_back(
    client: TestClient, wcap: Wcap, session: str, bob: Account
) -> None:
    """Lightning's WCAP provider invites (storeevents with attendees by calid, orgCalid,
    method=2); bob finds the invitation in his CalDAV calendar and through WCAP (compstate,
    X-S1CS-CALID, invitecount), answers through WCAP (method=4, his own line only), and alice's
    copy has his answer; her deleteevents_by_id cancels it everywhere."""
    auth = {"Authorization": "Basic " + base64.b64encode(b"bob:correct horse").decode()}
    stored = await wcap(
        "storeevents", id=session, calid="alice", uid="w1", storetype=1, mod=4, method=2, fetch=1, emailorcalid=1,
        dtstart="20270405T090000Z", dtend="20270405T100000Z", summary="Plan", orgCalid="alice",
        attendees="RSVP=TRUE^PARTSTAT=NEEDS-ACTION^ROLE=REQ-PARTICIPANT^CN=Bob^bob", fmt_out="text/calendar",
    )  # fmt: skip
    assert stored.errno == 0, stored.text
    copy = await client.get("/dav/calendars/bob/calendar/w1.ics", headers=auth)
    text = await copy.text()
    assert copy.status == 200 and "mailto:alice@example.org" in text and partstat_of(text, "bob@") == "NEEDS-ACTION"
    bobs = (await wcap("login", user="bob", password="correct horse")).value("X-NSCP-WCAP-SESSION-ID")
    fetch = {"id": bobs, "calid": "bob", "recurring": 1, "emailorcalid": 1, "fmt_out": "text/calendar"}
    pending = await wcap("fetchcomponents_by_range", **fetch, compstate="REQUEST-NEEDS-ACTION")
    [invitation] = pending.components()
    assert invitation["ORGANIZER"].params["X-S1CS-CALID"] == "alice"
    assert invitation["ATTENDEE"].params["X-S1CS-CALID"] == "bob"
    props = await wcap("get_calprops", id=bobs, calid="bob", invitecount=1, fmt_out="text/calendar")
    assert props.value("X-S1CS-CALPROPS-INVITATION-COUNT") == "1"
    answered = await wcap(
        "storeevents", id=bobs, calid="bob", uid="w1", storetype=2, mod=4, method=4, fetch=1,
        attendees="PARTSTAT=ACCEPTED^bob", fmt_out="text/calendar",
    )  # fmt: skip
    assert answered.errno == 0, answered.text
    assert [
        c["UID"] for c in (await wcap("fetchcomponents_by_range", **fetch, compstate="REPLY-ACCEPTED")).components()
    ]
    assert (await wcap("fetchcomponents_by_range", **fetch, compstate="REQUEST-NEEDS-ACTION")).components() == []
    organizer_copy = await wcap("fetchevents_by_id", id=session, calid="alice", uid="w1", fmt_out="text/calendar")
    assert partstat_of(organizer_copy.text, "bob@") == "ACCEPTED"
    mine = await wcap("fetchcomponents_by_range", id=session, calid="alice", compstate="REQUEST-COMPLETED")
    assert len(mine.components()) == 1  # every attendee answered
    cancelled = await wcap("deleteevents_by_id", id=session, calid="alice", uid="w1", mod=4, rid=0)
    assert cancelled.errno == 0
    assert (await client.get("/dav/calendars/bob/calendar/w1.ics", headers=auth)).status == 404


async def test_a_caldav_invitation_reaches_a_wcap_attendee(
    client: TestClient, wcap: Wcap, session: str, bob: Account
) -> None:
    meeting = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:c1\r\nDTSTAMP:20270101T000000Z\r\n"
        "DTSTART:20270406T090000Z\r\nDTEND:20270406T100000Z\r\nSUMMARY:From CalDAV\r\n"
        "ORGANIZER:mailto:bob@example.org\r\nATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:alice@example.org\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    auth = {
        "Authorization": "Basic " + base64.b64encode(b"bob:correct horse").decode(),
        "Content-Type": "text/calendar",
    }
    assert (await client.put("/dav/calendars/bob/calendar/c1.ics", data=meeting, headers=auth)).status == 201
    pending = await wcap("fetchcomponents_by_range", id=session, calid="alice", compstate="REQUEST-NEEDS-ACTION",
                         recurring=1, fmt_out="text/calendar")  # fmt: skip
    assert [str(c["SUMMARY"]) for c in pending.components()] == ["From CalDAV"]
    declined = await wcap("storeevents", id=session, calid="alice", uid="c1", storetype=2, method=4,
                          attendees="PARTSTAT=DECLINED^mailto:alice@example.org")  # fmt: skip
    assert declined.errno == 0, declined.text
    organizer_copy = await client.get("/dav/calendars/bob/calendar/c1.ics", headers=auth)
    assert partstat_of(await organizer_copy.text(), "alice@") == "DECLINED"


async def test_an_attendee_may_not_request_and_an_organizer_cancels_with_a_store(
    client: TestClient, wcap: Wcap, session: str, bob: Account
) -> None:
    """errno 79: an attendee storing their copy with method=2 (a request is the organizer's);
    method=8 from the organizer cancels the meeting (STATUS:CANCELLED in every copy)."""
    invite = {"calid": "alice", "uid": "w8", "storetype": 1, "method": 2, "dtstart": "20270407T090000Z",
              "dtend": "20270407T100000Z", "summary": "Review", "orgCalid": "alice",
              "attendees": "PARTSTAT=NEEDS-ACTION^bob"}  # fmt: skip
    assert (await wcap("storeevents", id=session, **invite)).errno == 0
    bobs = (await wcap("login", user="bob", password="correct horse")).value("X-NSCP-WCAP-SESSION-ID")
    refused = await wcap("storeevents", id=bobs, calid="bob", uid="w8", storetype=2, method=2, summary="Mine")
    assert refused.errno == Errno.ATTENDEE_NOT_ALLOWED_TO_REQUEST_ON_MODIFY
    assert (await wcap("storeevents", id=session, calid="alice", uid="w8", storetype=2, method=8)).errno == 0
    auth = {"Authorization": "Basic " + base64.b64encode(b"bob:correct horse").decode()}
    copy = await (await client.get("/dav/calendars/bob/calendar/w8.ics", headers=auth)).text()
    assert "STATUS:CANCELLED" in copy
