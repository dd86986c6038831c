"""The store on each database: migrations, sync revisions and the change log, atomic imports."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from protocol.formats import decode, parse
from server.services.calendars import object_write
from storage import store_for
from storage.model import ImportTarget, NewCalendar, NewImport
from storage.sql import SQLStore
from tests.helpers import ROOT, sample


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[SQLStore]:
    store = store_for(store_url)
    assert isinstance(store, SQLStore)
    await store.open()
    yield store
    await store.close()


def migrations(backend: str) -> list[int]:
    """Every migration file of a backend, by its number: a new one needs no test edited."""
    return sorted(int(p.name.split("_")[0]) for p in (ROOT / "storage/migrations" / backend).glob("*.sql"))


async def test_migrations_apply_once(store_url: str) -> None:
    for _ in range(2):
        store = store_for(store_url)
        assert isinstance(store, SQLStore)
        await store.open()
        try:
            versions = [row[0] for row in await store.db.all("SELECT version FROM schema_migrations")]
            assert versions == migrations(store.db.backend)
            if store.db.backend == "sqlite":
                assert (await store.db.one("PRAGMA journal_mode"))[0] == "wal"
        finally:
            await store.close()


async def test_import_bumps_the_revision_once_and_logs_changes(store: SQLStore) -> None:
    user = await store.create_user("u", None, "hash")
    calendar = await store.create_calendar(NewCalendar(uuid="c1", owner_id=user.id, slug="cal", name="Cal"))
    writes = [object_write(r) for r in parse(decode(sample("recurring.ics"))).resources]
    target = ImportTarget(user.id, calendar.id)
    job = await store.create_import(NewImport(user.id, "cli", "ics", None, calendar.id, status="in_progress"))
    assert await store.import_batch(job.id, target, writes, 50) == (5, 0, 0)
    assert (await store.get_calendar(calendar.id)).sync_revision == 1  # type: ignore[union-attr]
    assert await store.import_batch(job.id, target, writes, 100) == (0, 0, 5)  # nothing changed
    assert (await store.get_calendar(calendar.id)).sync_revision == 1  # type: ignore[union-attr]
    recorded = await store.get_import(job.id)
    assert recorded is not None and (recorded.created, recorded.unchanged, recorded.progress) == (5, 5, 100)
    assert tuple(await store.db.one("SELECT COUNT(*), MAX(revision) FROM changes")) == (5, 1)
    assert {tuple(row) for row in await store.db.all("SELECT action, previous_ical FROM import_items")} == {
        ("created", None)
    }


async def test_slugs_are_made_unique_and_names_found(store: SQLStore) -> None:
    user = await store.create_user("u", None, "hash")
    first = await store.create_calendar(NewCalendar(uuid="a", owner_id=user.id, slug="work", name="Work"))
    second = await store.create_calendar(NewCalendar(uuid="b", owner_id=user.id, slug="work", name="Work 2"))
    assert (first.slug, second.slug) == ("work", "work-2")
    assert (await store.find_calendar_by_name(user.id, "Work 2")).uuid == "b"


async def test_deleting_a_user_removes_everything_of_theirs(store: SQLStore) -> None:
    user = await store.create_user("u", "u@example.org", "hash")
    calendar = await store.create_calendar(NewCalendar(uuid="c", owner_id=user.id, slug="c", name="C"))
    writes = [object_write(r) for r in parse(decode(sample("google.ics"))).resources]
    job = await store.create_import(NewImport(user.id, "cli", "ics", None, calendar.id, status="in_progress"))
    await store.import_batch(job.id, ImportTarget(user.id, calendar.id), writes, 100)
    await store.add_token(user.id, "h")
    assert await store.delete_user(user.id)
    for table in ("calendars", "objects", "spans", "changes", "tokens", "imports", "import_items"):
        assert (await store.db.one(f"SELECT COUNT(*) FROM {table}"))[0] == 0, table


async def test_spans_follow_their_objects(store: SQLStore) -> None:
    """Every write replaces an object's index spans; deletes remove them (SQLite's R*Tree has no cascade)."""
    user = await store.create_user("u", None, "hash")
    calendar = await store.create_calendar(NewCalendar(uuid="c", owner_id=user.id, slug="c", name="C"))
    writes = [object_write(r) for r in parse(decode(sample("recurring.ics"))).resources]
    job = await store.create_import(NewImport(user.id, "cli", "ics", None, calendar.id, status="in_progress"))
    await store.import_batch(job.id, ImportTarget(user.id, calendar.id), writes, 100)

    async def count() -> int:
        return int((await store.db.one("SELECT COUNT(*) FROM spans"))[0])

    total = sum(len(w.spans) for w in writes)
    assert await count() == total
    weekly = await store.get_object(calendar.id, uid="weekly@example.org")
    hits = await store.objects_in_range([calendar.id], 1737370800, 1737374400)  # 2025-01-20 11:00-12:00 UTC
    assert [o.uid for o, _ in hits] == []  # the moved instance starts at 13:00
    moved = await store.objects_in_range([calendar.id], 1737378000, 1737381600)
    assert [o.uid for o, exact in moved] == ["weekly@example.org"] and moved[0][1]
    assert await store.delete_object(calendar.id, weekly.href)
    assert await count() == total - len(next(w for w in writes if w.uid == "weekly@example.org").spans)
    assert await store.delete_calendar(calendar.id)
    assert await count() == 0
