"""/v1/imports: every import is listed with its counts, details and what it wrote, and DELETE
takes it back atomically, in every door at once."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from server.http import SERVICES
from tests.helpers import CAL, EVENT, NS, TB_SYNC, Account, basic, report, responses, sample, seed_body

SEED_UID = "07a45e5b-1d1e-4f41-ad36-4c15ca9150d6"


async def test_list_show_details_entries_and_links(client: TestClient, alice: Account, bob: Account) -> None:
    default = alice.data["myCalendarUuid"]
    assert (await alice.post("/v1/import/", json={**seed_body(), "group": default})).status == 200
    form = {"file": sample("google.ics").decode()}
    assert (await alice.post("/v1/import/", data=form)).status == 200  # into a group named in the file
    listed = await alice.get("/v1/imports?per_page=1")
    jobs = await listed.json()
    assert listed.headers["X-Total-Count"] == "2" and len(jobs) == 1
    assert 'rel="next"' in listed.headers["Link"] and 'rel="last"' in listed.headers["Link"]
    newest = jobs[0]
    assert newest["status"] == "complete" and newest["door"] == "rest" and newest["entries"] > 0
    assert newest["calendars"] == 1 and newest["url"].endswith(f"/v1/imports/{newest['id']}")
    assert [j["type"] for j in await (await alice.get("/v1/imports?format=ics")).json()] == ["ics"]
    in_default = await (await alice.get(f"/v1/imports?calendar={default}")).json()
    assert len(in_default) == 1 and in_default[0]["calendar"]["id"] == default
    assert await (await alice.get("/v1/imports?from=2999-01-01")).json() == []
    first = in_default[0]["id"]
    assert await (await alice.get(f"/v1/imports/{first}/status")).json() == {"status": "complete", "percent": 100}
    details = await (await alice.get(f"/v1/imports/{first}/details")).json()
    assert details["entries_imported"] == 5 and details["line_errors"] == []
    entries = await (await alice.get(f"/v1/imports/{first}/entries")).json()
    assert len(entries) == 5 and {e["action"] for e in entries} == {"created"}
    assert f"{CAL}{SEED_UID}.ics" in {e["caldav_url"] for e in entries}
    made = await (await alice.get(f"/v1/imports/{newest['id']}/calendars")).json()
    assert len(made) == 1 and made[0]["caldav_url"].startswith("/dav/calendars/alice/")
    # someone else's import is not found, and neither is listed
    assert (await bob.get(f"/v1/imports/{first}")).status == 404
    assert (await bob.delete(f"/v1/imports/{first}")).status == 404
    assert await (await bob.get("/v1/imports")).json() == []
    assert (await bob.get("/v1/imports?user=alice")).status == 403  # only an administrator may
    users = client.app[SERVICES].users
    root = await users.issue_token(await users.create("root", "correct horse", is_admin=True))
    as_root = {"Authorization": f"Token token={root}"}
    listed = await client.get("/v1/imports?user=alice&format=ics", headers=as_root)
    assert [j["id"] for j in await listed.json()] == [first]
    assert (await client.get("/v1/imports?user=nobody", headers=as_root)).status == 422


async def test_undo_restores_every_door(client: TestClient, alice: Account) -> None:
    default = alice.data["myCalendarUuid"]
    own = EVENT.format(uid=SEED_UID, summary="Mine before the import")
    assert (await client.put(f"{CAL}{SEED_UID}.ics", data=own, headers=basic("alice"))).status == 201
    token = (await report(client, CAL, TB_SYNC.format(token=""))).findtext("D:sync-token", namespaces=NS)
    assert (await alice.post("/v1/import/", json={**seed_body(), "group": default})).status == 200
    job = (await (await alice.get("/v1/imports")).json())[0]
    assert (job["entries_created"], job["entries_updated"]) == (4, 1)
    # an imported event edited over CalDAV afterwards still goes with the import
    created = next(e for e in await (await alice.get(f"/v1/imports/{job['id']}/entries")).json()
                   if e["action"] == "created")  # fmt: skip
    edited = (await client.get(created["caldav_url"], headers=basic("alice"))).headers["ETag"]
    text = await (await client.get(created["caldav_url"], headers=basic("alice"))).text()
    put = await client.put(created["caldav_url"], data=text.replace("SUMMARY:", "SUMMARY:Edited "),
                           headers={**basic("alice"), "If-Match": edited})  # fmt: skip
    assert put.status == 204
    assert (await alice.delete(f"/v1/imports/{job['id']}")).status == 204
    assert (await (await alice.get(f"/v1/imports/{job['id']}/status")).json())["status"] == "undone"
    assert (await alice.delete(f"/v1/imports/{job['id']}")).status == 422  # once is enough
    # CalDAV: the replaced event is back as it was, the created ones are gone, the token moved
    restored = await (await client.get(f"{CAL}{SEED_UID}.ics", headers=basic("alice"))).text()
    assert "Mine before the import" in restored
    changes = responses(await report(client, CAL, TB_SYNC.format(token=token)))
    gone = [href for href, r in changes.items() if "404" in (r.findtext("D:status", namespaces=NS) or "")]
    assert len(gone) == 4 and created["caldav_url"] in gone
    # REST and WCAP show the same calendar
    exported = await alice.export("ical")
    assert exported.count("BEGIN:VEVENT") == 1 and "Mine before the import" in exported
    fetched = await (await client.get("/fetchcomponents_by_range.wcap", params={
        "httpauth": "1", "dtstart": "0", "dtend": "0", "recurring": "1"}, headers=basic("alice"))).text()  # fmt: skip
    assert fetched.count("BEGIN:VEVENT") == 1


async def test_undo_keeps_a_made_calendar_that_now_holds_other_events(client: TestClient, alice: Account) -> None:
    assert (await alice.post("/v1/import/", data={"file": sample("google.ics").decode()})).status == 200
    job = (await (await alice.get("/v1/imports")).json())[0]
    made = (await (await alice.get(f"/v1/imports/{job['id']}/calendars")).json())[0]
    mine = EVENT.format(uid="added-later", summary="Added by hand")
    assert (await client.put(f"{made['caldav_url']}added-later.ics", data=mine, headers=basic("alice"))).status == 201
    assert (await alice.delete(f"/v1/imports/{job['id']}")).status == 204
    left = await (await client.get(f"{made['caldav_url']}added-later.ics", headers=basic("alice"))).text()
    assert "Added by hand" in left
    # without the hand-made event the calendar would have gone with the import
    assert (await alice.post("/v1/import/", data={"file": sample("google.ics").decode()})).status == 200
    second = (await (await alice.get("/v1/imports")).json())[0]
    assert (await alice.delete(f"/v1/imports/{second['id']}")).status == 204
    names = [g["name"] for g in (await (await alice.get("/v1/me/calendars")).json())["result"]]
    assert names.count(made["name"]) == 1
