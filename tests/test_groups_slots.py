"""Groups (calendars) and slots (events) on the /v1 door, and isolation between users."""

from __future__ import annotations

from tests.helpers import Account, seed_body


async def test_group_lifecycle(alice: Account) -> None:
    group = await alice.create_group(
        "Work", description="Office things", defaultColor="3a87ad", timezone="Europe/Berlin"
    )
    assert (group["name"], group["description"], group["defaultColor"]) == ("Work", "Office things", "3A87AD")
    assert group["owner"]["username"] == "alice" and group["slotCount"] == 0
    shown = await (await alice.get(f"/v1/groups/{group['id']}")).json()
    assert shown["membershipState"] == "active" and shown["timezone"] == "Europe/Berlin"
    patched = await alice.patch(f"/v1/groups/{group['id']}", json={"name": "Job", "public": True})
    assert (await patched.json())["name"] == "Job" and (await patched.json())["public"] is True
    listed = (await (await alice.get("/v1/me/calendars")).json())["result"]
    assert {g["name"] for g in listed} == {"Calendar", "Job"}
    assert all(g["showInSchedule"] for g in listed)
    assert (await alice.delete(f"/v1/groups/{group['id']}")).status == 200
    assert (await alice.get(f"/v1/groups/{group['id']}")).status == 404


async def test_group_validation(alice: Account) -> None:
    assert (await alice.post("/v1/groups", json={})).status == 422
    assert (await alice.post("/v1/groups", json={"name": "X", "defaultColor": "bleu"})).status == 422
    named = await alice.post("/v1/groups", json={"name": "Named", "defaultColor": "blue"})
    assert named.status == 201 and (await named.json())["defaultColor"] == "0000FF"
    assert (await alice.post("/v1/groups", json={"name": "X", "timezone": "Mars/Olympus"})).status == 422
    default = alice.data["myCalendarUuid"]
    assert (await alice.delete(f"/v1/groups/{default}")).status == 422


async def test_slot_lifecycle_and_visibility(alice: Account) -> None:
    response = await alice.post(
        "/v1/slots",
        json={
            "title": "Dentist", "startDate": "2025-04-02T08:05:00.000Z", "endDate": "2025-04-02T08:50:00.000Z",
            "visibility": "friends", "location": {"name": "Clinic", "latitude": 52.5, "longitude": 13.4},
            "description": "Bring the card",
        },
    )  # fmt: skip
    assert response.status == 201, await response.text()
    created = await response.json()
    assert created["slotGroupUuids"] == [alice.data["myCalendarUuid"]]
    assert (created["title"], created["visibility"], created["startDate"]) == (
        "Dentist", "friends", "2025-04-02T08:05:00.000Z",
    )  # fmt: skip
    assert created["location"]["name"] == "Clinic" and created["location"]["latitude"] == 52.5
    ical = await alice.export("ical")
    assert "CLASS:FRIENDS" in ical and "GEO:52.5;13.4" in ical
    patched = await alice.patch(
        f"/v1/slots/{created['id']}", json={"title": "Dentist (moved)", "visibility": "private"}
    )
    assert patched.status == 200
    data = await patched.json()
    assert (data["title"], data["visibility"], data["description"]) == ("Dentist (moved)", "private", "Bring the card")
    assert data["startDate"] == created["startDate"] and data["etag"] != created["etag"]
    assert (await alice.get(f"/v1/slots/{created['id']}")).status == 200
    assert (await alice.delete(f"/v1/slots/{created['id']}")).status == 200
    assert (await alice.get(f"/v1/slots/{created['id']}")).status == 404


async def test_patch_keeps_what_the_slot_api_does_not_show(alice: Account) -> None:
    ics = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:keep@example.org\r\n"
        "DTSTAMP:20250101T000000Z\r\nDTSTART:20250106T090000Z\r\nDTEND:20250106T100000Z\r\n"
        "RRULE:FREQ=WEEKLY;COUNT=4\r\nATTENDEE;CN=Ada:mailto:ada@example.org\r\nSUMMARY:Sync\r\n"
        "BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:Sync\r\nTRIGGER:-PT5M\r\nEND:VALARM\r\nEND:VEVENT\r\n"
        "END:VCALENDAR\r\n"
    )
    assert (await alice.post("/v1/import/", json={"file": ics})).status == 200
    slot = (await (await alice.get("/v1/me/slots")).json())[0]
    assert slot["rrule"] == "FREQ=WEEKLY;COUNT=4"
    response = await alice.patch(f"/v1/slots/{slot['id']}", json={"endDate": "2025-01-06T10:30:00Z"})
    assert response.status == 200
    ical = await alice.export("ical")
    assert "ATTENDEE;CN=Ada:mailto:ada@example.org" in ical and "TRIGGER:-PT5M" in ical
    assert "DTEND:20250106T103000Z" in ical and "RRULE:FREQ=WEEKLY;COUNT=4" in ical
    bad = await alice.patch(f"/v1/slots/{slot['id']}", json={"endDate": "2025-01-01T00:00:00Z"})
    assert bad.status == 422


async def test_slot_validation(alice: Account) -> None:
    for body in (
        {"startDate": "2025-01-01T00:00:00Z"},
        {"title": "x"},
        {"title": "x", "startDate": "yesterday"},
        {"title": "x", "startDate": "2025-01-02T00:00:00Z", "endDate": "2025-01-01T00:00:00Z"},
        {"title": "x", "startDate": "2025-01-01T00:00:00Z", "visibility": "everyone"},
    ):
        response = await alice.post("/v1/slots", json=body)
        assert response.status == 422, body


async def test_paged_and_ranged_slot_listing(alice: Account) -> None:
    assert (await alice.post("/v1/import/", json=seed_body())).status == 200
    page = await (await alice.get("/v1/me/slots", params={"limit": "2"})).json()
    assert len(page["data"]) == 2 and page["paging"]["after"] == page["data"][-1]["id"]
    rest = await (await alice.get("/v1/me/slots", params={"limit": "10", "after": str(page["paging"]["after"])})).json()
    assert len(rest["data"]) == 3 and rest["paging"]["after"] is None
    ranged = await alice.get(
        "/v1/me/slots", params={"earliest": "2019-10-22T00:00:00Z", "latest": "2019-10-23T00:00:00Z"}
    )
    titles = {s["title"] for s in (await ranged.json())["data"]}
    assert titles == {"Slot title 21", "Slot title 22", "Slot title 23", "Slot title 24"}


async def test_users_never_see_each_others_data(alice: Account, bob: Account) -> None:
    group = await alice.create_group("Private")
    assert (await alice.post("/v1/import/", json={**seed_body(), "group": group["id"]})).status == 200
    slot = (await (await alice.get("/v1/me/slots")).json())[0]
    for method, path in (
        ("get", f"/v1/groups/{group['id']}"),
        ("get", f"/v1/groups/{group['id']}/slots"),
        ("patch", f"/v1/groups/{group['id']}"),
        ("delete", f"/v1/groups/{group['id']}"),
        ("get", f"/v1/slots/{slot['id']}"),
        ("patch", f"/v1/slots/{slot['id']}"),
        ("delete", f"/v1/slots/{slot['id']}"),
    ):
        response = await getattr(bob, method)(path, json={"title": "mine now"} if method == "patch" else None)
        assert response.status == 404, (method, path)
    assert await (await bob.get("/v1/me/slots")).json() == []
    assert "Slot title" not in await bob.export("ical")
    slots_after = await (await alice.get(f"/v1/groups/{group['id']}/slots")).json()
    assert len(slots_after) == 5 and {s["title"] for s in slots_after} != {"mine now"}
    response = await bob.post(
        "/v1/slots", json={"title": "x", "startDate": "2025-01-01T00:00:00Z", "slotGroups": [group["id"]]}
    )
    assert response.status == 404


async def test_patch_with_a_stale_etag_is_412(alice: Account) -> None:
    response = await alice.post("/v1/slots", json={"title": "x", "startDate": "2025-01-01T10:00:00Z"})
    created = await response.json()
    stale = '"0000"'
    response = await alice.client.patch(
        f"/v1/slots/{created['id']}", json={"title": "y"}, headers={**alice.headers, "If-Match": stale}
    )
    assert response.status == 412
    fresh = f'"{created["etag"]}"'
    response = await alice.client.patch(
        f"/v1/slots/{created['id']}", json={"title": "y"}, headers={**alice.headers, "If-Match": fresh}
    )
    assert response.status == 200 and (await response.json())["title"] == "y"
