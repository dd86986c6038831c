"""What must hold whatever a request sends: rollbacks and undos that always finish, work that
stays bounded and off the event loop, sessions that stay in their door, clean refusals."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from aiohttp.test_utils import TestClient

from protocol.formats import decode, parse
from server.config import Config
from server.http import SERVICES
from server.services import Services, build
from server.services.calendars import object_write
from storage.model import ImportTarget, NewImport
from storage.sql import SQLStore
from storage.sqlite.database import SQLiteDatabase
from tests.helpers import EVENT, Account, basic, probe_limit, while_probing

CAL = "/dav/calendars/alice/calendar/"


def event(uid: str, summary: str) -> str:
    return EVENT.format(uid=uid, summary=summary)


async def services_on(config: Config) -> Services:
    services = build(config)
    await services.store.open()
    return services


async def replace_then_move(services: Services, status: str) -> tuple[int, int]:
    """An import that replaced UID big-0 at pre-0.ics; then, through CalDAV, pre-0.ics deleted
    and UID big-0 written again as moved-0.ics. Returns (import id, calendar id)."""
    user = await services.users.create("alice", "correct horse")
    [calendar] = await services.calendars.of(user)
    original = parse(decode(event("big-0", "before").encode())).resources[0]
    await services.objects.put(user, calendar, original, href="pre-0.ics")
    job = await services.store.create_import(
        NewImport(user.id, "rest", "ics", "x.ics", calendar.id, status="in_progress")
    )
    imported = parse(decode(event("big-0", "imported").encode())).resources[0]
    await services.store.import_batch(job.id, ImportTarget(user.id, calendar.id), [object_write(imported)], 50)
    if status == "complete":
        await services.store.update_import(job.id, status="complete", progress=100)
    await services.objects.delete(user, calendar, "pre-0.ics")
    moved = parse(decode(event("big-0", "moved").encode())).resources[0]
    await services.objects.put(user, calendar, moved, href="moved-0.ics")
    return job.id, calendar.id


async def test_start_up_rolls_back_what_it_can_and_reports_the_rest(config: Config) -> None:
    first = await services_on(config)
    job_id, calendar_id = await replace_then_move(first, "in_progress")
    await first.store.close()  # killed in the middle of the import

    second = await services_on(config)
    try:
        await second.imports.start()  # raised storage.errors.Conflict before
        job = await second.store.get_import(job_id)
        assert job is not None and job.status == "failed"
        assert "could not be put back" in (job.message or "")
        assert [w["fields"] for w in job.warnings] == [["big-0", "pre-0.ics"]]
        [kept] = await second.store.list_objects([calendar_id])
        assert (kept.href, "SUMMARY:moved" in kept.ical) == ("moved-0.ics", True)
    finally:
        await second.imports.stop()
        await second.store.close()


async def test_undo_reports_what_it_cannot_put_back(client: TestClient, alice: Account) -> None:
    services: Services = client.app[SERVICES]
    await services.store.delete_user(alice.data["id"])
    job_id, _ = await replace_then_move(services, "complete")
    user = await services.store.find_user("alice")
    assert user is not None
    token = await services.users.issue_token(user)
    headers = {"Authorization": f"Token token={token}"}
    response = await client.delete(f"/v1/imports/{job_id}", headers=headers)
    assert response.status in (200, 204), await response.text()
    job = await (await client.get(f"/v1/imports/{job_id}", headers=headers)).json()
    assert job["status"] == "undone" and "could not be put back" in job["message"]
    details = await (await client.get(f"/v1/imports/{job_id}/details", headers=headers)).json()
    assert details["warnings"][0]["fields"] == ["big-0", "pre-0.ics"]
    moved = await client.get(CAL + "moved-0.ics", headers=basic("alice"))
    assert moved.status == 200 and "SUMMARY:moved" in await moved.text()


# --------------------------------------------------------------------------- bounded recurrence


async def test_an_every_second_slot_exports_in_bounded_time(client: TestClient, alice: Account) -> None:
    slot = {"title": "tick", "startDate": "2026-01-01T00:00:00Z", "endDate": "2026-01-01T00:00:01Z"}
    response = await alice.post("/v1/slots", json={**slot, "rrule": "FREQ=SECONDLY"})
    assert response.status == 201, await response.text()
    limit = await probe_limit(lambda: alice.get("/v1/me"))
    response, slowest = await while_probing(alice, alice.post("/v1/export/outlook", json={}))
    assert response.status == 200
    rows = (await response.text()).splitlines()
    assert len(rows) == 1 + 1000  # the header and the cap of rows per event
    assert slowest < limit


async def test_an_expand_far_from_the_series_start_walks_only_the_window(client: TestClient, alice: Account) -> None:
    tick = event("tick", "tick").replace("DTEND:20250110T110000Z", "DTEND:20250110T100001Z")
    tick = tick.replace("SUMMARY:tick", "SUMMARY:tick\r\nRRULE:FREQ=SECONDLY")
    assert (await client.put(CAL + "tick.ics", data=tick, headers=basic("alice"))).status == 201
    query = (
        '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><C:calendar-data>'
        '<C:expand start="20900101T000000Z" end="21900101T000000Z"/></C:calendar-data></D:prop>'
        '<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        '<C:time-range start="20900101T000000Z" end="21900101T000000Z"/>'
        "</C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"
    )
    headers = {**basic("alice"), "Depth": "1"}
    limit = await probe_limit(lambda: alice.get("/v1/me"))
    started = time.perf_counter()
    response, slowest = await while_probing(alice, client.request("REPORT", CAL, data=query, headers=headers))
    assert response.status == 207
    body = await response.text()
    assert time.perf_counter() - started < 10  # was 33 s
    assert "RECURRENCE-ID:20900101T000000Z" in body and slowest < limit


async def test_a_rule_that_matches_no_date_is_refused(client: TestClient, alice: Account) -> None:
    rule = "RRULE:FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30"
    never = event("never", "never").replace("SUMMARY:never", f"SUMMARY:never\r\n{rule}")
    response = await client.put(CAL + "never.ics", data=never, headers=basic("alice"))
    assert response.status == 403 and "valid-calendar-data" in await response.text()


# --------------------------------------------------------------------------- control characters


MULTIGET = (
    '<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/>'
    "<C:calendar-data/></D:prop><D:href>" + CAL + "nul.ics</D:href></C:calendar-multiget>"
)
SYNC = (
    '<D:sync-collection xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:sync-token/>'
    "<D:sync-level>1</D:sync-level><D:prop><D:getetag/><C:calendar-data/></D:prop></D:sync-collection>"
)


async def every_xml_reply_answers(client: TestClient) -> None:
    headers = {**basic("alice"), "Depth": "1"}
    for body in (MULTIGET, SYNC):
        response = await client.request("REPORT", CAL, data=body, headers=headers)
        assert response.status == 207, await response.text()
    login = await (await client.get("/login.wcap", params={"user": "alice", "password": "correct horse"})).text()
    session = login.split("X-NSCP-WCAP-SESSION-ID:")[1].split("\r\n")[0]
    params = {"id": session, "fmt-out": "text/xml", "dtstart": "0", "dtend": "0"}
    fetched = await client.get("/fetchcomponents_by_range.wcap", params=params)
    assert "<X-NSCP-WCAP-ERRNO>0</X-NSCP-WCAP-ERRNO>" in await fetched.text()


async def test_control_characters_are_removed_on_the_way_in(client: TestClient, alice: Account) -> None:
    put = await client.put(CAL + "nul.ics", data=event("nul", "tea\x00 at\x07 five"), headers=basic("alice"))
    assert put.status == 201
    stored = await (await client.get(CAL + "nul.ics", headers=basic("alice"))).text()
    assert "SUMMARY:tea at five\r\n" in stored
    imported = await alice.post(
        "/v1/import/", json={"file": event("bel", "ring\x07ring")}, headers={"Accept": "application/json"}
    )
    assert imported.status == 200, await imported.text()
    [job] = await (await alice.get("/v1/imports")).json()
    details = await (await alice.get(f"/v1/imports/{job['id']}/details")).json()
    assert details["warnings"][0]["line"] == 9 and "control characters removed" in details["warnings"][0]["error"]
    await every_xml_reply_answers(client)


async def test_a_stored_nul_does_not_break_any_reply(client: TestClient, alice: Account, backend: str) -> None:
    """Text written before control characters were refused (or by another program) is served.
    PostgreSQL cannot hold a NUL: there the store refuses it, and nothing is written."""
    services: Services = client.app[SERVICES]
    [calendar] = await services.calendars.of(await services.users.get_by_name("alice"))  # type: ignore[arg-type]
    resource = parse(decode(event("nul", "tea").encode())).resources[0]
    write = object_write(resource, "nul.ics")
    poisoned = replace(write, ical=write.ical.replace("tea", "t\x00ea"))
    if backend == "postgres":
        with pytest.raises(ValueError, match="NUL"):
            await services.store.put_object(calendar.id, poisoned)
        assert await services.store.get_object(calendar.id, href="nul.ics") is None
    else:
        await services.store.put_object(calendar.id, poisoned)
    await every_xml_reply_answers(client)


async def test_an_entity_stored_in_a_dead_property_does_not_break_propfind(client: TestClient, alice: Account) -> None:
    services: Services = client.app[SERVICES]
    [calendar] = await services.calendars.of(await services.users.get_by_name("alice"))  # type: ignore[arg-type]
    poisoned = '<!DOCTYPE p [<!ENTITY e "boom">]><Z:dead xmlns:Z="urn:z">&e;</Z:dead>'
    await services.store.update_calendar(calendar.id, props={"dead": {"{urn:z}dead": poisoned}})
    for path, depth in ((CAL, "0"), ("/dav/calendars/alice/", "1")):
        response = await client.request("PROPFIND", path, headers={**basic("alice"), "Depth": depth})
        assert response.status == 207, await response.text()


# --------------------------------------------------------------------------- sessions and headers


async def test_wcap_and_web_sessions_stay_in_their_door(client: TestClient, alice: Account) -> None:
    login = await (await client.get("/login.wcap", params={"user": "alice", "password": "correct horse"})).text()
    wcap_id = login.split("X-NSCP-WCAP-SESSION-ID:")[1].split("\r\n")[0]
    signin = await client.post(
        "/app/signin", data={"username": "alice", "password": "correct horse"}, allow_redirects=False
    )
    web_id = signin.cookies["almanac_session"].value
    client.session.cookie_jar.clear()
    as_cookie = await client.get("/app/", headers={"Cookie": f"almanac_session={wcap_id}"}, allow_redirects=False)
    assert as_cookie.status == 303 and "/app/signin" in as_cookie.headers["Location"]
    as_id = await (await client.get("/gettime.wcap", params={"id": web_id})).text()
    assert "X-NSCP-WCAP-ERRNO:1\r\n" in as_id


async def test_headers_say_nothing_of_the_stack_and_cookies_are_secure_behind_a_proxy(
    client: TestClient, alice: Account
) -> None:
    page = await client.get("/wcap/")
    assert page.headers["Server"] == "Almanac"
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert "'unsafe-inline'" not in page.headers["Content-Security-Policy"]
    signin = await client.post(
        "/app/signin",
        data={"username": "alice", "password": "correct horse"},
        headers={"X-Forwarded-Proto": "https"},
        allow_redirects=False,
    )
    assert signin.status == 303 and "Secure" in signin.headers["Set-Cookie"]


# --------------------------------------------------------------------------- a full disk


@contextlib.asynccontextmanager
async def full_disk(store: SQLStore) -> AsyncIterator[None]:
    """The store's disk full for large writes, as each database reports it: SQLite cannot grow
    its file (SQLITE_FULL); PostgreSQL answers SQLSTATE 53100 (disk_full), from a trigger."""
    if isinstance(store.db, SQLiteDatabase):
        # the limit is each connection's: the writer's thread's (transactions) and the loop's (groups)
        writer, loop_writer = store.db._writer, store.db._loop_writer
        assert writer is not None and loop_writer is not None
        pages = (await store.db.one("PRAGMA page_count"))[0]
        await writer.execute(f"PRAGMA max_page_count = {pages}")
        loop_writer.execute(f"PRAGMA max_page_count = {pages}")
        try:
            yield
        finally:
            await writer.execute("PRAGMA max_page_count = 1073741823")
            loop_writer.execute("PRAGMA max_page_count = 1073741823")
        return
    async with store.db.transaction() as tx:
        await tx.run(
            "CREATE FUNCTION full_disk() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF length(NEW.ical) > 50000 "
            "THEN RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full'; "
            "END IF; RETURN NEW; END $$"
        )
        await tx.run(
            "CREATE TRIGGER full_disk BEFORE INSERT OR UPDATE ON objects FOR EACH ROW EXECUTE FUNCTION full_disk()"
        )
    try:
        yield
    finally:
        async with store.db.transaction() as tx:
            await tx.run("DROP TRIGGER full_disk ON objects")


async def test_a_full_disk_refuses_writes_in_each_doors_language(client: TestClient, alice: Account) -> None:
    services: Services = client.app[SERVICES]
    assert (await client.put(CAL + "kept.ics", data=event("kept", "kept"), headers=basic("alice"))).status == 201
    big = event("big", "big").replace("SUMMARY:big", "SUMMARY:big\r\nDESCRIPTION:" + "x" * 70 + "\r\n " + "y" * 60_000)
    assert isinstance(services.store, SQLStore)
    async with full_disk(services.store):
        put = await client.put(CAL + "big.ics", data=big, headers=basic("alice"))
        assert put.status == 507
        slot = await alice.post("/v1/slots", json={"title": "x" * 200_000, "startDate": "2025-01-01T00:00:00Z"})
        assert slot.status == 507 and "full" in (await slot.json())["error"]
        stored = await client.post(
            "/storeevents.wcap",
            params={"httpauth": "1", "uid": "w", "dtstart": "20250101T000000Z", "dtend": "20250101T010000Z"},
            data={"desc": "d" * 200_000},
            headers=basic("alice"),
        )
        assert "X-NSCP-WCAP-ERRNO:14\r\n" in await stored.text()  # storeevents failed
        got = await client.get(CAL + "kept.ics", headers=basic("alice"))
        assert got.status == 200  # reads go on
    assert (await client.put(CAL + "big.ics", data=big, headers=basic("alice"))).status == 201


async def test_a_malformed_request_is_one_line_in_the_log(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    assert client.server.host is not None and client.server.port is not None
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    reply = await reader.read(100)
    writer.close()
    assert b" 400 Bad Request" in reply.split(b"\r\n")[0]
    records = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert records and all(r.levelno == logging.INFO and r.exc_info is None for r in records)
    assert "Error handling request" in records[0].getMessage()


@pytest.mark.parametrize("mistyped", [IndexError("No item with that key"), KeyError("span_countt")])
async def test_a_mistyped_column_is_a_500_in_the_log_not_a_quiet_404(
    client: TestClient,
    alice: Account,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    mistyped: Exception,
) -> None:
    """sqlite3.Row says IndexError and asyncpg KeyError for a column that is not there: a bug in
    the store must surface as one, never pass for a missing row (a 404 on a DELETE that deleted
    nothing, a restore skipped in an undo)."""
    services: Services = client.app[SERVICES]
    assert (await client.put(CAL + "kept.ics", data=event("kept", "kept"), headers=basic("alice"))).status == 201

    async def misread(*args: object) -> None:
        raise mistyped

    monkeypatch.setattr(type(services.store.db), "write_spans", misread)  # the delete's step after its read
    caplog.set_level(logging.ERROR)
    deleted = await client.delete(CAL + "kept.ics", headers=basic("alice"))
    assert deleted.status == 500
    assert [r.exc_info[0] for r in caplog.records if r.exc_info] == [type(mistyped)]
    monkeypatch.undo()
    assert (await client.get(CAL + "kept.ics", headers=basic("alice"))).status == 200  # nothing was deleted
