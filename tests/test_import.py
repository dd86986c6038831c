"""POST /v1/import/: every way the seed sends a file, every status it documents."""

from __future__ import annotations

import json

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient

from server.config import Config, load
from server.http import SERVICES
from tests.helpers import Account, files_left, groups, sample, seed_body

SEED_UIDS = {
    "07a45e5b-1d1e-4f41-ad36-4c15ca9150d6",
    "775f2ad2-3ef4-4b00-b31a-30a5f1c1b12a",
    "5a77d85e-a2f0-41a6-a19e-c62ccfcf68ab",
    "c634b65e-dff4-4724-bbb1-1c2a528b93c8",
    "49084ef4-b9da-4e1e-9a82-a4bc6d5cfff2",
}


async def slots(account: Account) -> list[dict]:
    response = await account.get("/v1/me/slots")
    assert response.status == 200
    return await response.json()


async def test_seed_request_verbatim_imports_five_events(client: TestClient, alice: Account) -> None:
    """The seed's curl: JSON array of lines, doubled slash in the URL, Accept: text/plain."""
    root = str(client.make_url("/")).rstrip("/")
    response = await client.session.post(
        f"{root}//v1/import/",
        data=json.dumps(seed_body()),
        headers={**alice.headers, "Content-Type": "application/json", "Accept": "text/plain"},
    )
    assert response.status == 200
    assert await response.read() == b""
    assert response.headers["Content-Type"].startswith("application/json")
    found = await slots(alice)
    assert {s["uid"] for s in found} == SEED_UIDS
    imports = (await groups(alice))["Imports"]
    assert imports["slotCount"] == 5
    assert all(s["slotGroupUuids"] == [imports["id"]] for s in found)
    titled = {s["title"]: s for s in found}
    assert titled["Slot title 20"]["startDate"] == "2019-09-21T20:44:02.000Z"
    assert titled["Slot title 20"]["visibility"] == "public"


@pytest.mark.parametrize("how", ["multipart", "json-string", "urlencoded", "raw", "lines-without-endings"])
async def test_file_sent_every_way(alice: Account, how: str, config: Config) -> None:
    text = "".join(seed_body()["file"])
    if how == "multipart":
        form = FormData()
        form.add_field("file", text.encode(), filename="slots.ics", content_type="text/calendar")
        response = await alice.post("/v1/import/", data=form)
    elif how == "json-string":
        response = await alice.post("/v1/import", json={"file": text})
    elif how == "urlencoded":
        response = await alice.post("/v1/import/", data={"file": text})
    elif how == "raw":
        response = await alice.post("/v1/import/", data=text.encode(), headers={"Content-Type": "text/calendar"})
    else:
        lines = [line.rstrip("\r\n") for line in seed_body()["file"]]
        response = await alice.post("/v1/import/", json={"file": lines})
    assert response.status == 200, await response.text()
    assert {s["uid"] for s in await slots(alice)} == SEED_UIDS
    assert files_left(config.data_dir) == []  # an uploaded file is not left behind


async def test_import_into_a_group_and_json_summary(alice: Account) -> None:
    group = await alice.create_group("Work")
    response = await alice.post(
        "/v1/import/", json={"file": seed_body()["file"], "group": group["id"]}, headers={"Accept": "application/json"}
    )
    assert response.status == 200
    summary = await response.json()
    assert summary["created"] == 5 and summary["group"] == group["id"] and summary["format"] == "ics"
    listed = await (await alice.get(f"/v1/groups/{group['id']}/slots")).json()
    assert len(listed) == 5
    assert "Imports" not in await groups(alice)


async def test_reimport_updates_instead_of_duplicating(alice: Account) -> None:
    body = seed_body()
    assert (await alice.post("/v1/import/", json=body)).status == 200
    changed = [line.replace("Slot title 20", "Slot title 20 (moved)") for line in body["file"]]
    response = await alice.post("/v1/import/", json={"file": changed}, headers={"Accept": "application/json"})
    summary = await response.json()
    assert (summary["created"], summary["updated"], summary["unchanged"]) == (0, 1, 4)
    found = await slots(alice)
    assert len(found) == 5
    assert "Slot title 20 (moved)" in {s["title"] for s in found}


async def test_same_uid_may_live_in_several_groups(alice: Account) -> None:
    work = await alice.create_group("Work")
    home = await alice.create_group("Home")
    for group in (work, home):
        assert (await alice.post("/v1/import/", json={**seed_body(), "group": group["id"]})).status == 200
    found = await slots(alice)
    assert len(found) == 10
    assert len({s["id"] for s in found}) == 10


async def test_unknown_or_foreign_group_is_404_and_imports_nothing(alice: Account, bob: Account) -> None:
    bobs = await bob.create_group("Bob's")
    for group in ("7e0cf5b0-55d3-4a5e-9c39-3b0d58b0a5a1", bobs["id"]):
        response = await alice.post("/v1/import/", json={**seed_body(), "group": group})
        assert response.status == 404
        assert await response.json() == {"error": "group not found"}
    assert await slots(alice) == []
    assert await slots(bob) == []
    malformed = await alice.post("/v1/import/", json={**seed_body(), "group": "not-a-uuid"})
    assert malformed.status == 422


async def test_missing_or_empty_file_is_422(alice: Account) -> None:
    for body in ({}, {"file": ""}, {"file": []}, {"group": None}):
        response = await alice.post("/v1/import/", json=body)
        assert response.status == 422
        assert (await response.json())["error"] == "param is missing or the value is empty: file"
    wrong_type = await alice.post("/v1/import/", json={"file": 42})
    assert wrong_type.status == 422


BAD_FILES = {
    "empty-ish": (b"   \r\n", "the file is empty", 1),
    "binary garbage": (bytes(range(1, 200)) * 3, "not a recognisable calendar file", 1),
    "truncated ics": (
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTART:20250101T100000Z\r\n",
        "is it truncated?",
        3,
    ),
    "no DTSTART": (
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:a\r\nSUMMARY:x\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        "VEVENT has no DTSTART",
        3,
    ),
    "DTEND before DTSTART": (
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:ok\r\nDTSTART:20250101T100000Z\r\nEND:VEVENT\r\n"
        b"BEGIN:VEVENT\r\nUID:b\r\nDTSTART:20250101T100000Z\r\nDTEND:20250101T090000Z\r\nEND:VEVENT\r\n"
        b"END:VCALENDAR\r\n",
        "DTEND is before DTSTART",
        7,
    ),
    "CSV with unknown columns": (b"Subject,Start Date,Colour\r\nA,1/2/2025,red\r\n", "unknown columns: 'Colour'", 1),
    "CSV with a bad date": (
        b"Subject,Start Date,Start Time\r\nA,1/2/2025,9:00 AM\r\nB,31/31/2025,9:00 AM\r\n",
        "Start Date: '31/31/2025' is not a date",
        3,
    ),
    "JSON that is not an array": (b'{"uid": "a", "title": "x"}', "must be an array", 1),
    "JSON slot without a start": (
        b'[\n {"uid": "a", "title": "x", "start": "2019-09-15T20:44:02.000Z"},\n {"uid": "b", "title": "y"}\n]',
        "start: expected an ISO 8601 date-time",
        3,
    ),
    "invalid JSON": (b'[\n {"uid": "a",\n "title": }\n]', "invalid JSON", 3),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
async def test_bad_files_are_422_with_the_line_and_change_nothing(alice: Account, name: str) -> None:
    content, message, line = BAD_FILES[name]
    form = FormData()
    form.add_field("file", content, filename="bad")
    response = await alice.post("/v1/import/", data=form)
    assert response.status == 422, await response.text()
    body = await response.json()
    assert message in json.dumps(body), body
    assert body["line"] == line
    assert await slots(alice) == []
    assert "Imports" not in await groups(alice)  # not even the default group was made


async def test_invalid_utf8_is_403_with_the_line(alice: Account) -> None:
    content = (
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:a\r\nSUMMARY:Caf\xe9\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    form = FormData()
    form.add_field("file", content, filename="latin1.ics")
    response = await alice.post("/v1/import/", data=form)
    assert response.status == 403
    assert (await response.json())["line"] == 5
    # a JSON string with a lone surrogate is invalidly encoded too
    response = await alice.post(
        "/v1/import/",
        data=b'{"file": "BEGIN:VCALENDAR\\r\\nSUMMARY:\\udc80\\r\\n"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status == 403
    assert await slots(alice) == []


async def test_utf16_with_bom_and_leading_whitespace_are_accepted(alice: Account) -> None:
    text = "\ufeff  \r\n" + "".join(seed_body()["file"]).replace("Slot title 20", "Café")
    for data in (text.encode("utf-16"), text.encode("utf-8")):
        form = FormData()
        form.add_field("file", data, filename="x.ics")
        assert (await alice.post("/v1/import/", data=form)).status == 200
    assert "Café" in {s["title"] for s in await slots(alice)}


async def test_upload_over_the_limit_is_413(aiohttp_client, tmp_path, alice: Account) -> None:  # type: ignore[no-untyped-def]
    from server.app import create_app

    small = load(None, {("server", "data"): str(tmp_path / "small"), ("limits", "max_upload_bytes"): 1000}, {})
    client = await aiohttp_client(create_app(small))
    response = await client.post(
        "/v1/users", json={"username": "carol", "password": "correct horse", "email": "c@example.org"}
    )
    headers = {"Authorization": f"Token token={(await response.json())['authToken']}"}
    big = ("".join(seed_body()["file"]) * 3).encode()
    form = FormData()
    form.add_field("file", big, filename="big.ics")
    for data in (form, json.dumps({"file": big.decode()})):
        response = await client.post(
            "/v1/import/",
            data=data,
            headers={**headers, **({} if data is form else {"Content-Type": "application/json"})},
        )
        assert response.status == 413
        assert "limit of 1000 bytes" in (await response.json())["error"]
    listed = await client.get("/v1/me/slots", headers=headers)
    assert await listed.json() == []
    assert files_left(tmp_path / "small") == []


async def test_a_server_fault_is_500_and_nothing_is_half_imported(
    client: TestClient, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = client.app[SERVICES].store
    original = store._import_chunk
    calls = 0

    async def failing(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("disk on fire")
        return await original(*args, **kwargs)

    monkeypatch.setattr(store, "_import_chunk", failing)
    lines = "".join(seed_body()["file"])
    events = "".join(
        lines.split("METHOD:PUBLISH\r\n")[1].split("END:VCALENDAR")[0].replace("UID:", f"UID:{n}-") for n in range(200)
    )  # 1000 events: three chunks of the store's batches
    big = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n" + events + "END:VCALENDAR\r\n"
    response = await alice.post("/v1/import/", json={"file": big})
    assert response.status == 500
    assert await response.json() == {"error": "internal server error"}
    assert calls == 2
    assert await slots(alice) == []
    assert "Imports" not in await groups(alice)


@pytest.mark.parametrize(
    ("name", "count", "fmt"),
    [
        ("google.ics", 3, "google"),
        ("outlook.csv", 3, "outlook"),
        ("timeslot_outlook.csv", 2, "outlook"),
        ("timeslot.json", 2, "timeslot"),
        ("timeslot_full.json", 1, "timeslot"),
        ("recurring.ics", 5, "ics"),
    ],
)
async def test_every_format_imports(alice: Account, name: str, count: int, fmt: str) -> None:
    form = FormData()
    form.add_field("file", sample(name), filename=name)
    response = await alice.post("/v1/import/", data=form, headers={"Accept": "application/json"})
    assert response.status == 200, await response.text()
    summary = await response.json()
    assert (summary["created"], summary["format"]) == (count, fmt)
    assert len(await slots(alice)) == count
