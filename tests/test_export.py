"""POST /v1/export/{ical,google,outlook,timeslot}: the seeds' shapes and round-trip fidelity."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from aiohttp import FormData
from icalendar import Calendar

from tests.helpers import Account, sample, seed_body


async def import_file(account: Account, name: str, content: bytes, group: str | None = None) -> None:
    form = FormData()
    form.add_field("file", content, filename=name)
    if group:
        form.add_field("group", group)
    response = await account.post("/v1/import/", data=form)
    assert response.status == 200, await response.text()


async def test_seed_001_ical_export(alice: Account) -> None:
    assert (await alice.post("/v1/import/", json=seed_body())).status == 200
    response = await alice.post(
        "/v1/export/ical", data=b"", headers={"Content-Type": "application/json", "Accept": "text/plain"}
    )
    assert response.status == 200
    assert response.headers["Content-Disposition"] == 'attachment; filename="Timeslot-Export.ical"'
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["Content-Transfer-Encoding"] == "binary"
    assert response.headers["Cache-Control"] == "private"
    assert response.headers["ETag"].startswith('W/"')
    body = await response.text()
    assert body.startswith("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:")
    assert "CALSCALE:GREGORIAN\r\nMETHOD:PUBLISH\r\n" in body
    assert body.endswith("END:VCALENDAR\r\n")
    calendar = Calendar.from_ical(body)
    events = calendar.walk("VEVENT")
    assert len(events) == 5
    assert (
        "BEGIN:VEVENT\r\nDTSTAMP:20180319T195407Z\r\nUID:07a45e5b-1d1e-4f41-ad36-4c15ca9150d6\r\n"
        "DTSTART:20190921T204402\r\nDTEND:20191021T204402\r\nCLASS:PUBLIC\r\nDESCRIPTION:\r\n"
        "SUMMARY:Slot title 20\r\nEND:VEVENT\r\n"
    ) in body  # exactly as imported


async def test_seed_002_timeslot_export(alice: Account) -> None:
    assert (await alice.post("/v1/import/", json=seed_body())).status == 200
    response = await alice.post(
        "/v1/export/timeslot", data=b"", headers={"Content-Type": "application/json", "Accept": "application/json"}
    )
    assert response.status == 200
    assert response.headers["Content-Disposition"] == 'attachment; filename="Timeslot-Export.json"'
    assert response.headers["Content-Type"] == "application/json"
    slots = json.loads(await response.text())
    assert len(slots) == 5
    by_title = {s["title"]: s for s in slots}
    assert list(by_title["Slot title 24"])[:6] == ["uid", "title", "visibility", "start", "end", "location"]
    assert by_title["Slot title 24"] | {"groups": None} == {
        "uid": "49084ef4-b9da-4e1e-9a82-a4bc6d5cfff2",
        "title": "Slot title 24",
        "visibility": "public",
        "start": "2019-09-25T00:44:02.000Z",
        "end": "2019-10-25T00:44:02.000Z",
        "location": None,
        "groups": None,
    }
    assert by_title["Slot title 24"]["groups"][0]["name"] == "Imports"


async def test_outlook_export_is_the_real_outlook_csv(alice: Account) -> None:
    await import_file(alice, "outlook.csv", sample("outlook.csv"))
    response = await alice.post("/v1/export/outlook")
    assert response.headers["Content-Disposition"] == 'attachment; filename="Timeslot-Export.csv"'
    assert response.headers["Content-Type"].startswith("text/csv")
    text = await response.text()
    assert text.splitlines()[0] == sample("outlook.csv").decode().splitlines()[0]
    rows = list(csv.DictReader(io.StringIO(text)))
    review = next(r for r in rows if r["Subject"] == "Quarterly review")
    assert (review["Start Time"], review["End Time"]) == ("2:30:00 PM", "4:15:00 PM")  # minutes kept
    assert (review["Reminder on/off"], review["Reminder Time"]) == ("True", "2:15:00 PM")
    assert review["Required Attendees"] == "Ada Lovelace;Alan Turing"
    assert review["Description"] == 'Numbers, plans and "next steps"'
    assert review["Priority"] == "High"
    holiday = next(r for r in rows if r["Subject"] == "Holiday")
    assert (holiday["All day event"], holiday["Private"], holiday["Show time as"]) == ("True", "True", "3")
    flavor = await alice.post("/v1/export/outlook", json={"flavor": "timeslot"})
    assert (await flavor.text()).startswith("Subject,Start_Date,Start_Time,End_Date,End_Time,")


async def test_export_of_one_group_and_unknown_group(alice: Account, bob: Account) -> None:
    work = await alice.create_group("Work")
    await import_file(alice, "google.ics", sample("google.ics"), work["id"])
    assert (await alice.post("/v1/import/", json=seed_body())).status == 200
    text = await alice.export("ical", group=work["id"])
    assert len(Calendar.from_ical(text).walk("VEVENT")) == 3
    assert "NAME:Work" in text
    assert len(Calendar.from_ical(await alice.export("ical")).walk("VEVENT")) == 8
    google = await alice.export("google", group=work["id"])
    assert "X-WR-CALNAME:Work" in google
    for group in ("0b6e8f8e-0000-4000-8000-000000000000", work["id"]):
        response = await bob.post("/v1/export/ical", json={"group": group})
        assert response.status == 404
    assert (await alice.post("/v1/export/pdf")).status == 404


async def test_export_needs_a_token(alice: Account) -> None:
    response = await alice.client.post("/v1/export/ical")
    assert response.status == 401


def normalize(fmt: str, text: str) -> str:
    """What two exports of the same events share: drop the group each came from."""
    if fmt == "timeslot":
        return json.dumps([{k: v for k, v in s.items() if k != "groups"} for s in json.loads(text)], indent=1)
    return re.sub(r"(NAME|X-WR-CALNAME):.*\r\n", "", text)


@pytest.mark.parametrize("fmt", ["ical", "google", "outlook", "timeslot"])
async def test_export_import_export_gives_the_same_events(alice: Account, fmt: str) -> None:
    source = await alice.create_group("Source", timezone="Europe/Berlin")
    for name in ("google.ics", "recurring.ics", "outlook.csv", "timeslot_full.json", "timeslot.json"):
        await import_file(alice, name, sample(name), source["id"])
    first = await alice.export(fmt, group=source["id"])
    copy = await alice.create_group("Copy", timezone="Europe/Berlin")
    await import_file(alice, f"export.{fmt}", first.encode(), copy["id"])
    second = await alice.export(fmt, group=copy["id"])
    assert normalize(fmt, second) == normalize(fmt, first)


async def test_ical_round_trip_keeps_everything(alice: Account) -> None:
    await import_file(alice, "recurring.ics", sample("recurring.ics"))
    exported = Calendar.from_ical(await alice.export("ical"))
    weekly = [e for e in exported.walk("VEVENT") if str(e["UID"]) == "weekly@example.org"]
    assert len(weekly) == 2  # master and its overridden instance stay together
    master = next(e for e in weekly if "RECURRENCE-ID" not in e)
    assert master["DTSTART"].params["TZID"] == "Custom/Office"
    assert master["RRULE"].to_ical() == b"FREQ=WEEKLY;COUNT=10"
    assert "EXDATE" in master and "RDATE" in master and master.walk("VALARM")
    assert [str(tz["TZID"]) for tz in exported.walk("VTIMEZONE")] == ["Custom/Office"]
    allday = next(e for e in exported.walk("VEVENT") if str(e["UID"]) == "allday@example.org")
    assert allday["DTSTART"].to_ical() == b"20250301"
    assert exported.walk("VTODO")[0]["SUMMARY"] == "File taxes"


async def test_invalid_export_parameters_are_422(alice: Account) -> None:
    for kind, params in (("outlook", {"flavor": "excel"}), ("ical", {"timezone": "Mars/Olympus"})):
        response = await alice.post(f"/v1/export/{kind}", json=params)
        assert response.status == 422
        assert "error" in await response.json()
    response = await alice.post("/v1/export/ical", data=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status == 422
