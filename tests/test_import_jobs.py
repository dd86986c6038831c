"""Imports as jobs: POST /v1/imports queues them for the workers, failures are recorded with
their lines and leave nothing behind, and a restart rolls back what a stopped server left."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from protocol.formats import decode, parse
from server.app import create_app
from server.config import Config
from server.http import SERVICES
from server.services import Services, build
from server.services.calendars import object_write
from server.services.imports import ImportRequest, Upload
from server.services.imports import files as import_files
from storage.model import ImportTarget, NewImport
from tests.helpers import EVENT, Account, basic, files_left, sample
from tests.helpers import groups as calendars

BAD_ICS = sample("recurring.ics").replace(b"DTSTART:20250210T083000", b"DTSTART:not-a-date", 1)


def form(file: bytes, filename: str = "calendar.ics", **fields: str) -> aiohttp.FormData:
    data = aiohttp.FormData()
    data.add_field("file", file, filename=filename, content_type="application/octet-stream")
    for name, value in fields.items():
        data.add_field(name, value)
    return data


async def finished(account: Account, job: dict[str, Any]) -> dict[str, Any]:
    """Poll the status as a client would, then return the import."""
    for _ in range(200):
        status = await (await account.get(f"/v1/imports/{job['id']}/status")).json()
        if status["status"] in ("complete", "failed"):
            return await (await account.get(f"/v1/imports/{job['id']}")).json()
        await asyncio.sleep(0.05)
    raise AssertionError(f"import {job['id']} did not finish")


async def test_post_queues_a_job_that_the_workers_run(alice: Account) -> None:
    default = alice.data["myCalendarUuid"]
    response = await alice.post("/v1/imports", data=form(sample("recurring.ics"), calendar=default))
    assert response.status == 202, await response.text()
    job = await response.json()
    assert response.headers["Location"] == f"/v1/imports/{job['id']}/status"
    assert job["status"] in ("queued", "in_progress", "complete") and job["filename"] == "calendar.ics"
    assert job["calendar"]["id"] == default and job["options"] == {"create_calendars": True}
    assert job["type"] == "ics"  # detected when it was accepted
    done = await finished(alice, job)
    assert (done["status"], done["progress"], done["entries_created"], done["door"]) == ("complete", 100, 5, "rest")
    details = await (await alice.get(f"/v1/imports/{job['id']}/details")).json()
    assert details["entries_imported"] == 5 and details["line_errors"] == []
    assert [g["slotCount"] for g in (await calendars(alice)).values() if g["id"] == default] == [5]


async def test_create_calendars_follows_the_file_or_the_chosen_calendar(alice: Account) -> None:
    default = alice.data["myCalendarUuid"]
    made = await finished(alice, await (await alice.post("/v1/imports", data=form(sample("google.ics")))).json())
    assert made["calendars"] == 1 and (await calendars(alice))["Family"]["description"] == "Birthdays and school"
    kept = form(sample("google.ics"), calendar=default, create_calendars="false")
    into = await finished(alice, await (await alice.post("/v1/imports", data=kept)).json())
    assert into["calendars"] == 0 and into["entries_created"] == made["entries_created"]
    # Timeslot groups name calendars too
    slots = b'[{"title": "Run", "start": "2025-03-01T08:00:00Z", "groups": [{"name": "Sport"}]},' \
            b' {"title": "Swim", "start": "2025-03-02T08:00:00Z", "group": "Sport"},' \
            b' {"title": "Read", "start": "2025-03-03T08:00:00Z"}]'  # fmt: skip
    job = await finished(alice, await (await alice.post("/v1/imports", data=form(slots, "s.json"))).json())
    assert (job["type"], job["calendars"], job["entries_created"]) == ("timeslot", 2, 3)
    found = await calendars(alice)
    assert found["Sport"]["slotCount"] == 2 and found["Imports"]["slotCount"] == 1


@pytest.mark.parametrize(
    ("body", "fields", "status", "field", "code"),
    [
        (None, {"type": "ics"}, 422, "file", "missing_field"),
        (b"hello, world", {}, 422, "file", "invalid_file"),
        (b"Subject;Start Date\r\nx;1/2/2025\r\n", {"field_delimiter": ":"}, 422, "field_delimiter",
         "invalid_field_delimiter"),
        (b"BEGIN:VCALENDAR\r\n", {"type": "vcard"}, 422, "type", "invalid"),
        (b"BEGIN:VCALENDAR\r\n", {"calendar": "not-a-uuid"}, 422, "calendar", "invalid"),
        (b"BEGIN:VCALENDAR\r\n", {"calendar": "00000000-0000-4000-8000-000000000000"}, 422, "calendar", "missing"),
        (b"BEGIN:VCALENDAR\r\n", {"dtstart": "yesterday"}, 422, "dtstart", "invalid"),
        (b"BEGIN:VCALENDAR\r\n", {"create_calendars": "maybe"}, 422, "create_calendars", "invalid"),
    ],
)  # fmt: skip
async def test_refusals_in_the_drafts_error_format(
    alice: Account, config: Config, body: bytes | None, fields: dict[str, str], status: int, field: str, code: str
) -> None:
    data = form(body, **fields) if body is not None else aiohttp.FormData({**fields, "note": "no file"})
    if body is None:
        data._is_multipart = True  # a multipart form without its file
    response = await alice.post("/v1/imports", data=data)
    assert response.status == status, await response.text()
    answer = await response.json()
    assert answer["errors"] == [{"resource": "Import", "field": field, "code": code}] and answer["message"]
    assert await (await alice.get("/v1/imports")).json() == []  # nothing was recorded
    assert files_left(config.data_dir) == []  # nor kept of the upload


async def test_a_body_that_is_not_multipart_is_a_400(alice: Account) -> None:
    response = await alice.post("/v1/imports", json={"file": "BEGIN:VCALENDAR"})
    assert response.status == 400
    assert (await response.json())["errors"][0]["code"] == "invalid_content_type"


async def test_a_file_over_the_limit_is_too_large(aiohttp_client: Any, config: Config) -> None:
    small = await aiohttp_client(create_app(replace(config, max_upload_bytes=1000)))
    account = await small.post("/v1/users", json={"username": "zed", "password": "correct horse"})
    headers = {"Authorization": f"Token token={(await account.json())['authToken']}"}
    response = await small.post("/v1/imports", data=form(b"BEGIN:VCALENDAR\r\n" + b"X" * 2000), headers=headers)
    assert response.status == 413
    assert (await response.json())["errors"] == [{"resource": "Import", "field": "file", "code": "too_large"}]
    assert files_left(config.data_dir) == []  # the part written so far is gone


async def test_a_bad_line_fails_the_job_with_its_line_and_writes_nothing(alice: Account) -> None:
    job = await finished(alice, await (await alice.post("/v1/imports", data=form(BAD_ICS))).json())
    assert (job["status"], job["type"], job["entries"], job["calendars"]) == ("failed", "ics", 0, 0)
    assert "nothing was imported" in job["message"]
    details = await (await alice.get(f"/v1/imports/{job['id']}/details")).json()
    [error] = details["line_errors"]
    assert error["line"] > 1 and "DTSTART" in error["error"]
    assert "Imports" not in await calendars(alice)
    assert (await alice.delete(f"/v1/imports/{job['id']}")).status == 422  # nothing to undo
    # on request, the valid entries go in and the bad line is reported; that import can be undone
    skipping = await (await alice.post("/v1/imports", data=form(BAD_ICS, skip_invalid="true"))).json()
    partial = await finished(alice, skipping)
    assert (partial["status"], partial["entries_created"], partial["entries_discarded"]) == ("complete", 4, 1)
    details = await (await alice.get(f"/v1/imports/{partial['id']}/details")).json()
    assert details["line_errors"] == [error] and details["entries_imported"] == 4
    assert (await calendars(alice))["Imports"]["slotCount"] == 4
    assert (await alice.delete(f"/v1/imports/{partial['id']}")).status == 204
    assert "Imports" not in await calendars(alice)
    broken = BAD_ICS.replace(b"END:VEVENT", b"END:VTODO", 1)  # the structure breaks: nothing at all
    refused = await finished(alice, await (await alice.post("/v1/imports", data=form(broken, skip_invalid="1"))).json())
    assert (refused["status"], refused["entries"]) == ("failed", 0)
    # the synchronous doors record their failures too
    assert (await alice.post("/v1/import/", data={"file": BAD_ICS.decode()})).status == 422
    listed = await (await alice.get("/v1/imports?status=failed")).json()
    assert [j["door"] for j in listed] == ["rest"] * 3 and listed[0]["id"] > refused["id"]


async def test_a_file_of_bad_lines_lists_the_first_and_counts_them_all(
    alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("protocol.formats.LISTED", 2)
    rows = "".join(f"Row {n};13/45/2025;9:00 AM;10:00 AM\r\n" for n in range(5))
    csv = f"Subject;Start Date;Start Time;End Time\r\nGood;1/2/2025;9:00 AM;10:00 AM\r\n{rows}".encode()
    preview = await (await alice.post("/v1/imports", data=form(csv, "bad.csv", dry_run="true"))).json()
    assert (len(preview["line_errors"]), preview["line_error_count"]) == (2, 5)
    job = await finished(alice, await (await alice.post("/v1/imports", data=form(csv, "bad.csv"))).json())
    assert job["message"] == "the file has 5 invalid entries: nothing was imported (the first 2 problems are listed)"
    details = await (await alice.get(f"/v1/imports/{job['id']}/details")).json()
    assert [e["line"] for e in details["line_errors"]] == [3, 4] and details["line_error_count"] == 5
    skipped = await finished(
        alice, await (await alice.post("/v1/imports", data=form(csv, "bad.csv", skip_invalid="1"))).json()
    )
    assert (skipped["status"], skipped["entries_created"], skipped["entries_discarded"]) == ("complete", 1, 5)
    details = await (await alice.get(f"/v1/imports/{skipped['id']}/details")).json()
    assert (len(details["line_errors"]), details["line_error_count"]) == (2, 5)


async def test_dry_run_previews_and_records_nothing(client: TestClient, alice: Account, config: Config) -> None:
    default = alice.data["myCalendarUuid"]
    uid = "weekly@example.org"
    own = EVENT.format(uid=uid, summary="Mine")
    assert (await client.put(f"/dav/calendars/alice/calendar/{uid}.ics", data=own, headers=basic("alice"))).status
    response = await alice.post("/v1/imports?dry_run=true", data=form(sample("recurring.ics"), calendar=default))
    assert response.status == 200, await response.text()
    preview = await response.json()
    assert (preview["entries_created"], preview["entries_updated"], preview["line_errors"]) == (4, 1, [])
    bad = await (await alice.post("/v1/imports", data=form(BAD_ICS, dry_run="1"))).json()
    assert bad["entries_created"] == 4 and len(bad["line_errors"]) == 1 and bad["calendars_created"] == ["Imports"]
    assert await (await alice.get("/v1/imports")).json() == []
    assert files_left(config.data_dir) == []  # neither the uploads nor what was staged


# --------------------------------------------------------------------------- restart and rollback


async def services_on(config: Config) -> Services:
    services = build(config)
    await services.store.open()
    return services


async def test_a_restart_rolls_back_the_interrupted_and_runs_the_queued(config: Config) -> None:
    first = await services_on(config)
    user = await first.users.create("carol", "correct horse")
    [calendar] = await first.calendars.of(user)
    mine = parse(decode(sample("recurring.ics"))).resources[0]
    await first.objects.put(user, calendar, mine)
    before = {o.uid: o.etag for o in await first.store.list_objects([calendar.id])}
    # a server stopped half-way through an import: one batch written (one event replaced, the
    # rest new, one calendar made), then nothing
    interrupted = await first.store.create_import(
        NewImport(user.id, "rest", "ics", "x.ics", calendar.id, status="in_progress")
    )
    writes = [object_write(r) for r in parse(decode(sample("recurring.ics"))).resources]
    edited = replace(mine, text=mine.text.replace("SUMMARY:", "SUMMARY:Imported ", 1))
    changed = [object_write(edited) if w.uid == mine.uid else w for w in writes]
    await first.store.import_batch(interrupted.id, ImportTarget(user.id, calendar.id), changed, 40)
    made = first.calendars.new_calendar(user, "Half")
    await first.store.import_batch(interrupted.id, ImportTarget(user.id, create=made), writes[:1], 50)
    queued = await first.imports.submit(user, ImportRequest("rest", calendar=None), Upload.of(sample("google.ics")))
    first.imports.spool.mkdir(parents=True, exist_ok=True)
    for stray in ("upload-x1", "body-x2", "staged-x3", "7.part"):  # files of requests cut off by the kill
        (first.imports.spool / stray).write_bytes(b"BEGIN:VCALENDAR")
    await first.store.close()  # "killed": the workers never ran

    second = await services_on(config)
    await second.imports.start()
    await second.imports.idle()
    try:
        rolled = await second.store.get_import(interrupted.id)
        assert rolled is not None and rolled.status == "failed" and "server stopped" in (rolled.message or "")
        assert {o.uid: o.etag for o in await second.store.list_objects([calendar.id])} == before
        assert await second.store.find_calendar_by_name(user.id, "Half") is None
        ran = await second.store.get_import(queued.id)
        assert ran is not None and (ran.status, ran.created) == ("complete", 3)
        assert not any(second.imports.spool.iterdir())  # the waiting file is gone once it ran, the strays at once
    finally:
        await second.imports.stop()
        await second.store.close()


async def test_a_failure_while_writing_leaves_nothing(
    client: TestClient, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = client.app[SERVICES]
    monkeypatch.setattr(import_files, "BATCH", 1)
    real, calls = services.store.import_batch, []

    async def failing(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        return await real(*args, **kwargs)

    monkeypatch.setattr(services.store, "import_batch", failing)
    job = await finished(alice, await (await alice.post("/v1/imports", data=form(sample("google.ics")))).json())
    assert job["status"] == "failed" and "disk full" in job["message"]
    assert set(await calendars(alice)) == {"Calendar"}  # the calendar it made went with its events
