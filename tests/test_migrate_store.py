"""``run.py migrate-store``: an embedded store moved into another (SQLite or PostgreSQL) keeps
everything its clients know: hrefs, ETags, sync tokens, sessions, imports that can be undone."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp.test_utils import TestClient
from lxml import etree

from server.app import create_app
from server.config import Config, load
from storage import sqlite_url, store_for
from storage.sql import SQLStore
from storage.sql.copy import TABLES
from tests.helpers import CAL, EVENT, NS, basic, run, sample

SYNC = (
    '<D:sync-collection xmlns:D="DAV:"><D:sync-token>{}</D:sync-token><D:sync-level>1</D:sync-level>'
    "<D:prop><D:getetag/></D:prop></D:sync-collection>"
)


async def sync(client: TestClient, token: str = "") -> tuple[dict[str, str], str]:
    """href -> ETag of what changed after ``token`` (404 for deletions), and the new token."""
    response = await client.request("REPORT", CAL, data=SYNC.format(token), headers={**basic("alice"), "Depth": "1"})
    assert response.status == 207, await response.text()
    root = etree.fromstring(await response.read())
    changed = {
        r.findtext("D:href", namespaces=NS): r.findtext(".//D:getetag", namespaces=NS) or "gone"
        for r in root.findall("D:response", NS)
    }
    return changed, str(root.findtext("D:sync-token", namespaces=NS))


async def test_a_filled_store_moves_and_its_clients_do_not_notice(
    aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path, store_url: str
) -> None:
    source = load(None, {("server", "data"): str(tmp_path / "embedded")}, environ={})
    old = await aiohttp_client(create_app(source))
    body = {"username": "alice", "password": "correct horse", "email": "alice@example.org"}
    made = await (await old.post("/v1/users", json=body)).json()
    token = {"Authorization": f"Token token={made['authToken']}"}
    for name in ("one", "two", "three"):
        put = await old.put(f"{CAL}{name}.ics", data=EVENT.format(uid=name, summary=name), headers=basic("alice"))
        assert put.status == 201
    assert (await old.delete(f"{CAL}two.ics", headers=basic("alice"))).status == 204
    form = {"file": sample("recurring.ics").decode(), "group": made["myCalendarUuid"]}
    imported = await old.post("/v1/import/", data=form, headers=token)
    assert imported.status == 200
    [job] = await (await old.get("/v1/imports", headers=token)).json()
    before, sync_token = await sync(old)
    await old.close()

    moved = run("migrate-store", "--from", sqlite_url(source.data_dir / "almanac.sqlite3"), "--to", store_url)
    assert moved.returncode == 0, moved.stderr
    assert "every table holds the same rows in both stores" in moved.stdout
    again = run("migrate-store", "--from", sqlite_url(source.data_dir / "almanac.sqlite3"), "--to", store_url)
    assert again.returncode == 1 and "not empty" in again.stderr  # never writes into a filled store

    target = load(None, {("server", "data"): str(tmp_path / "moved"), ("store", "url"): store_url}, environ={})
    new = await aiohttp_client(create_app(target))
    assert (await new.get("/v1/me", headers=token)).status == 200  # the same token
    assert (await sync(new))[0] == before  # the same hrefs and ETags
    assert (await sync(new, sync_token))[0] == {}  # the client's sync token: nothing new
    put = await new.put(f"{CAL}four.ics", data=EVENT.format(uid="four", summary="four"), headers=basic("alice"))
    assert put.status == 201
    assert list((await sync(new, sync_token))[0]) == [f"{CAL}four.ics"]
    week = (
        '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop>'
        '<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:time-range '
        'start="20250120T000000Z" end="20250127T000000Z"/></C:comp-filter></C:comp-filter></C:filter>'
        "</C:calendar-query>"
    )
    found = await new.request("REPORT", CAL, data=week, headers={**basic("alice"), "Depth": "1"})
    assert b"weekly" in await found.read()  # the time-range index came along
    assert (await new.delete(f"/v1/imports/{job['id']}", headers=token)).status == 204  # its undo data too
    assert (await new.get(f"{CAL}weekly@example.org.ics", headers=basic("alice"))).status == 404


async def test_the_copy_knows_every_column(config: Config) -> None:
    """A migration that adds a column must add it to the copy (or migrate-store would drop it)."""
    store = store_for(config.store_url)
    assert isinstance(store, SQLStore)
    await store.open()
    try:
        for table, (columns, _) in TABLES.items():
            if store.db.backend == "sqlite":
                found = [row[1] for row in await store.db.all(f"PRAGMA table_info({table})")]
            else:
                rows = await store.db.all(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                    "AND table_schema = current_schema() ORDER BY ordinal_position",
                    (table,),
                )
                found = [row[0] for row in rows if row[0] != "seq"]  # import_items' write order
            assert sorted(found) == sorted(columns), table
    finally:
        await store.close()
