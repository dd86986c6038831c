"""The store on each database: migrations, sync revisions and the change log, atomic imports,
and the conformance of each backend to the Store interface."""

from __future__ import annotations

import asyncio
import fcntl
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from protocol.formats import decode, parse
from server.services.calendars import object_write
from storage import store_for
from storage.errors import Conflict, Gone, PreconditionFailed, StoreUnavailable
from storage.model import Detail, ImportTarget, JobStatus, NewCalendar, NewImport, ObjectWrite
from storage.postgres import database as postgres_database
from storage.sql import SQLStore
from storage.sqlite import database as sqlite_database
from storage.sqlite.lock import ProcessLock
from tests.helpers import ROOT, kept_upload, sample, stream


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


# --------------------------------------------------------------------------- the Store interface
# What every backend must do alike, asserted through the interface alone (no SQL).


def write(
    uid: str, href: str | None = None, spans: tuple[tuple[int, int, bool], ...] = ((100, 200, True),)
) -> ObjectWrite:
    """A minimal object: the store keeps what it is given (parsing is not its business)."""
    return ObjectWrite(href or f"{uid}.ics", uid, f'"{uid}-{len(spans)}"', "VEVENT", f"UID:{uid}", 100, 200, False,
                       uid, None, spans)  # fmt: skip


async def calendar_of(store: SQLStore) -> int:
    user = await store.create_user("u", None, "hash")
    return (await store.create_calendar(NewCalendar(uuid="c", owner_id=user.id, slug="c", name="C"))).id


async def test_conformance_objects_preconditions_and_uids(store: SQLStore) -> None:
    calendar = await calendar_of(store)
    made, created = await store.put_object(calendar, write("a"))
    assert created and made.etag == '"a-1"' and (await store.get_object(calendar, uid="a")) == made
    with pytest.raises(Conflict):  # the UID is held by another href
        await store.put_object(calendar, write("a", href="other.ics"))
    with pytest.raises(PreconditionFailed):
        await store.put_object(calendar, write("a"), create_only=True)
    with pytest.raises(PreconditionFailed):
        await store.put_object(calendar, write("a"), if_etag='"stale"')
    assert (await store.put_object(calendar, write("a"), if_etag='"a-1"'))[1] is False
    assert (await store.put_object(calendar, write("a"), if_etag="*"))[1] is False  # If-Match: * (any)
    with pytest.raises(PreconditionFailed):  # but something must be there
        await store.put_object(calendar, write("new"), if_etag="*")
    assert await store.delete_object(calendar, "a.ics", if_etag="*") is not False
    assert await store.get_object(calendar, href="a.ics") is None
    assert await store.delete_object(calendar, "a.ics") is False  # gone already: nothing changes
    revision = (await store.get_calendar(calendar)).sync_revision  # type: ignore[union-attr]
    assert revision == 4  # put, put, put, delete: the refused writes and the no-op took no revision


async def test_conformance_changes_in_revision_order_and_pages(store: SQLStore) -> None:
    calendar = await calendar_of(store)
    for uid in ("b", "a", "c"):
        await store.put_object(calendar, write(uid))
    await store.move_object(calendar, "b.ics", calendar, write("b", href="b2.ics"))
    changes = await store.changes_since(calendar, 0)
    assert [(c.href, c.revision, c.deleted) for c, _ in changes] == [
        ("a.ics", 2, False), ("c.ics", 3, False), ("b.ics", 4, True), ("b2.ics", 5, False),
    ]  # fmt: skip
    page = await store.changes_since(calendar, 2, limit=1)
    rest = await store.changes_since(calendar, page[-1][0].revision, page[-1][0].href)
    assert [c.href for c, _ in page + rest] == ["c.ics", "b.ics", "b2.ics"]
    assert [c.href for c in await store.deleted_since([calendar], None, None)] == ["b.ics"]
    assert await store.uid_etags(calendar, ["a", "b", "zz"]) == {"a": '"a-1"', "b": '"b-1"'}
    assert await store.calendar_size(calendar) == len("UID:a") + len("UID:c") + len("UID:b")


async def test_conformance_time_ranges_are_exact(store: SQLStore) -> None:
    calendar = await calendar_of(store)
    await store.put_object(calendar, write("span", spans=((100, 200, True),)))
    await store.put_object(calendar, write("point", spans=((300, 300, True),)))  # no length
    await store.put_object(calendar, write("rough", spans=((400, 500, False),)))

    async def hits(start: int, end: int) -> list[tuple[str, bool]]:
        return [(o.uid, exact) for o, exact in await store.objects_in_range([calendar], start, end)]

    assert await hits(199, 300) == [("span", True)]  # [100, 200) overlaps; the point at 300 is not in
    assert await hits(200, 301) == [("point", True)]
    assert await hits(300, 300) == []  # an empty range holds no point
    assert await hits(150, 150) == [("span", True)]  # but lies inside a span
    assert await hits(450, 460) == [("rough", False)]  # inexact: the caller checks the text
    assert await hits(0, 1000) == [("span", True), ("point", True), ("rough", False)]
    assert await hits(0, 1000) == await hits(0, 1000)
    assert [o.uid for o, _ in await store.objects_in_range([calendar], 0, 1000, limit=1)] == ["span"]
    ids = {uid: (await store.get_object(calendar, uid=uid)).id for uid in ("span", "point", "rough")}  # type: ignore[union-attr]
    later = await store.objects_in_range([calendar], 0, 1000, after_id=ids["span"])  # the next page
    assert [o.uid for o, _ in later] == ["point", "rough"]
    spans = await store.spans_in_range([calendar], 0, 1000)
    assert spans.pop(ids["point"]) in ([(300, 300, True)], [(300, 301, True)])  # PostgreSQL's [s, s + 1)
    assert spans == {ids["span"]: [(100, 200, True)], ids["rough"]: [(400, 500, False)]}
    assert await store.spans_in_range([calendar], 200, 300) == {}


async def test_conformance_changes_say_who_changed_what_and_when(store: SQLStore) -> None:
    """The change log a sync reads: each change with its calendar, href, UID, revision, whether it
    deleted, when and by whom; with the object as it is now (its text, or only its listing)."""
    calendar = await calendar_of(store)
    writer, deleter = [await store.create_user(name, None, "hash") for name in ("w", "d")]
    await store.put_object(calendar, replace(write("a"), by=writer.id))
    await store.put_object(calendar, write("b"))
    assert await store.delete_object(calendar, "b.ics", by=deleter.id)
    [(first, a), (second, gone)] = await store.changes_since(calendar, 0)
    assert (first.calendar_id, first.href, first.uid, first.revision, first.deleted, first.changed_by) == (
        calendar, "a.ics", "a", 1, False, writer.id,
    )  # fmt: skip
    assert (second.href, second.uid, second.revision, second.deleted) == ("b.ics", "b", 3, True)
    assert second.changed_by == deleter.id
    assert first.changed_at[:2] == "20" and first.changed_at.endswith("Z") and gone is None
    assert a is not None and (a.uid, a.etag, a.ical) == ("a", '"a-1"', "UID:a")
    [(_, listed), _] = await store.changes_since(calendar, 0, detail=Detail.LISTED)
    assert listed is not None and (listed.href, listed.etag, listed.ical, listed.text_size) == ("a.ics", '"a-1"', "", 5)
    window = (first.changed_at, second.changed_at)
    assert [c.href for c in await store.deleted_since([calendar], *window)] == ["b.ics"]
    assert await store.deleted_since([calendar], None, "2000-01-01T00:00:00.000Z") == []  # until: before it
    assert await store.deleted_since([calendar], "2999-01-01T00:00:00.000Z", None) == []  # since: after it
    assert [o.uid for o in await store.modified_objects([calendar], a.modified_at, a.modified_at)] == ["a"]
    assert await store.modified_objects([calendar], None, "2000-01-01T00:00:00.000Z") == []


async def test_conformance_an_import_and_its_undo(store: SQLStore) -> None:
    """An import replaces or adds objects and remembers what it replaced; its undo removes what
    it added, puts back what it replaced, and says which it could not put back, and why."""
    owner = await store.create_user("u", None, "hash")
    importer = await store.create_user("v", None, "hash")
    calendar = (await store.create_calendar(NewCalendar(uuid="c", owner_id=owner.id, slug="c", name="C"))).id
    for uid in ("kept", "taken", "same", "other"):
        await store.put_object(calendar, write(uid))
    job = await store.create_import(NewImport(importer.id, "cli", "ics", None, calendar, status="in_progress"))
    batch = [
        replace(write("kept"), etag='"kept-2"', ical="UID:kept again"),
        replace(write("taken"), etag='"taken-2"'),
        replace(write("new"), href="kept.ics"),  # an href another object holds: the import picks another
        replace(write("fresh"), href="other.ics"),  # held by an object the batch does not name
        write("same"),  # as stored: left alone
    ]
    assert await store.import_batch(job.id, ImportTarget(owner.id, calendar), batch, 4) == (2, 2, 1)
    items, total = await store.import_items(job.id)
    assert total == 4
    assert {(i.uid, i.action, i.previous_ical, i.previous_etag) for i in items} == {
        ("kept", "updated", "UID:kept", '"kept-1"'), ("taken", "updated", "UID:taken", '"taken-1"'),
        ("new", "created", None, None), ("fresh", "created", None, None),
    }  # fmt: skip
    new, fresh = await store.get_object(calendar, uid="new"), await store.get_object(calendar, uid="fresh")
    assert new is not None and new.href != "kept.ics" and new.href.endswith(".ics")
    assert fresh is not None and fresh.href != "other.ics" and fresh.modified_by == importer.id
    assert {c.uid: c.changed_by for c, _ in await store.changes_since(calendar, 4)} == {
        "kept": importer.id, "taken": importer.id, "new": importer.id, "fresh": importer.id,
    }  # fmt: skip
    assert (await store.get_calendar(calendar)).sync_revision == 5  # type: ignore[union-attr]  # one for the batch

    assert await store.delete_object(calendar, "taken.ics")  # then its UID moves to another href
    await store.put_object(calendar, write("taken", href="elsewhere.ics"))
    gone = (await store.create_calendar(NewCalendar(uuid="g", owner_id=owner.id, slug="g", name="G"))).id
    assert await store.delete_calendar(gone)
    with pytest.raises(Gone):  # only a finished import is undone
        await store.undo_import(job.id, stream())
    await store.update_import(job.id, status=JobStatus.COMPLETE)
    restores = [(calendar, write("kept")), (calendar, write("taken")), (gone, write("lost"))]
    undone = await store.undo_import(job.id, stream(restores), message="undone by u", by=owner.id)
    assert undone.status == JobStatus.UNDONE
    assert undone.message == "undone by u; 2 replaced object(s) could not be put back (see the warnings)"
    assert undone.warnings == [
        {"line": None, "fields": ["taken", "taken.ics"],
         "error": "not put back: another object in its calendar now holds its UID"},
        {"line": None, "fields": ["lost", "lost.ics"], "error": "not put back: its calendar was deleted"},
    ]  # fmt: skip
    assert await store.get_object(calendar, uid="new") is None and await store.get_object(calendar, uid="fresh") is None
    assert (await store.get_object(calendar, uid="kept")).etag == '"kept-1"'  # type: ignore[union-attr]
    deleted = [c for c, _ in await store.changes_since(calendar, 0) if c.uid == "new"]
    assert [(c.deleted, c.changed_by) for c in deleted] == [(True, owner.id)]
    with pytest.raises(Gone):  # once
        await store.undo_import(job.id, stream(restores))


async def test_conformance_an_import_rolled_back_to_run_again_starts_from_nothing(store: SQLStore) -> None:
    """A job whose runner died is rolled back to the queue: what it wrote goes, its counts and
    items are forgotten, and the message says only what could not be put back."""
    owner = await store.create_user("u", None, "hash")
    made = NewCalendar(uuid="m", owner_id=owner.id, slug="m", name="Made")
    job = await store.create_import(NewImport(owner.id, "cli", "ics", None, None, status="in_progress"))
    await store.import_batch(job.id, ImportTarget(owner.id, create=made), [write("a"), write("b")], 2)
    await store.update_import(job.id, runner="worker-1", lease_until=99)
    gone = (await store.create_calendar(NewCalendar(uuid="g", owner_id=owner.id, slug="g", name="G"))).id
    assert await store.delete_calendar(gone)
    again = await store.undo_import(job.id, stream([(gone, write("lost"))]), expect=JobStatus.IN_PROGRESS,
                                    status=JobStatus.QUEUED)  # fmt: skip
    assert again.status == JobStatus.QUEUED
    assert again.message == "1 replaced object(s) could not be put back (see the warnings)"
    assert (again.progress, again.created, again.updated, again.unchanged, again.discarded) == (0, 0, 0, 0, 0)
    assert (again.calendars_created, again.finished_at, again.runner, again.lease_until) == ([], None, None, 0)
    assert await store.import_items(job.id) == ([], 0)
    assert await store.find_calendar_by_name(owner.id, "Made") is None


async def test_conformance_an_import_makes_its_calendar_once_and_its_undo_removes_it(store: SQLStore) -> None:
    owner = await store.create_user("u", None, "hash")
    made = NewCalendar(uuid="m", owner_id=owner.id, slug="m", name="Made")
    target = ImportTarget(owner.id, create=made)
    job = await store.create_import(NewImport(owner.id, "cli", "ics", None, None, status="in_progress"))
    await store.import_batch(job.id, target, [write("a")], 1)
    await store.import_batch(job.id, target, [write("b")], 2)  # the same calendar, found by name
    found = await store.get_import(job.id)
    assert found is not None and len(found.calendars_created) == 1 and found.calendar_id == found.calendars_created[0]
    assert (found.created, found.progress) == (2, 2)
    await store.update_import(job.id, status=JobStatus.COMPLETE)
    await store.undo_import(job.id, stream())
    assert await store.get_calendar(found.calendar_id) is None
    failed = await store.create_import(NewImport(owner.id, "cli", "ics", None, None, status="failed"))
    with pytest.raises(Gone):  # a batch of a job no longer running writes nothing
        await store.import_batch(failed.id, target, [write("c")], 1)
    assert await store.find_calendar_by_name(owner.id, "Made") is None


async def test_conformance_each_queued_import_is_claimed_once(store: SQLStore) -> None:
    user = await store.create_user("u", None, "hash")
    jobs = [
        await store.create_import(NewImport(user.id, "rest", "ics", None, None), upload=stream(b"x")) for _ in range(5)
    ]
    claims = await asyncio.gather(*(store.claim_import(f"runner-{n}", 10**10) for n in range(8)))
    claimed = [c.id for c in claims if c is not None]
    assert sorted(claimed) == [j.id for j in jobs]  # each once, none twice, none left
    assert await kept_upload(store, jobs[0].id) == b"x"
    assert await store.renew_lease(claimed[0], "someone else", 10**10) is False
    winner = next(c for c in claims if c is not None)
    assert await store.renew_lease(winner.id, winner.runner or "", 10) is True  # lapses at t=10
    taken = await store.claim_abandoned("rescuer", 10**10, now=11)
    assert taken is not None and (taken.id, taken.runner) == (winner.id, "rescuer")
    assert await store.claim_abandoned("rescuer", 10**10, now=11) is None  # the rest hold leases


async def test_conformance_sign_in_failures_and_turns(store: SQLStore) -> None:
    await store.add_login_failure(["k1", "k2"], at=100.0, forget_before=0.0)
    await store.add_login_failure(["k1"], at=150.0, forget_before=0.0)
    assert await store.login_failures(["k1", "k2", "k3"], since=120.0) == {"k1": 1, "k2": 0, "k3": 0}
    assert await store.take_turn("k1", now=200.0, spacing=2.0, latest=260.0) == 202.0
    assert await store.take_turn("k1", now=200.0, spacing=4.0, latest=260.0) == 206.0  # after the last turn
    assert await store.take_turn("k1", now=200.0, spacing=60.0, latest=260.0) is None  # too far: not booked
    assert await store.take_turn("k1", now=200.0, spacing=1.0, latest=260.0) == 207.0
    await store.clear_login_failures("k1")
    assert (await store.login_failures(["k1"], since=0.0))["k1"] == 0
    assert await store.take_turn("k1", now=300.0, spacing=1.0, latest=400.0) == 301.0


async def test_conformance_sessions_and_tokens(store: SQLStore) -> None:
    user = await store.create_user("Ada", "Ada@Example.org", "hash")
    assert (await store.find_user("ada@example.org")).id == user.id  # type: ignore[union-attr]
    assert (await store.find_user("ADA")).id == user.id  # type: ignore[union-attr]
    with pytest.raises(Conflict):
        await store.create_user("ada", None, "hash")  # names compare without case
    await store.add_token(user.id, "t")
    assert (await store.user_for_token("t")).id == user.id  # type: ignore[union-attr]
    await store.add_session(user.id, "wcap", "s", expires_at=2_000_000_000)
    assert await store.use_session("s", "web", now=1_000, timeout=60) is None  # another door's
    assert (await store.use_session("s", "wcap", now=1_000, timeout=60)).id == user.id  # type: ignore[union-attr]
    assert await store.use_session("s", "wcap", now=2_000_000_001, timeout=60) is None  # expired
    assert await store.delete_session("s", "wcap") and await store.delete_tokens(user.id) == 1


async def test_conformance_a_calendar_with_its_object_in_one_read(store: SQLStore) -> None:
    """What a GET reads: the owner's calendar by slug and its object by href, as the two reads
    alone give them (or the calendar without an object, or nothing)."""
    calendar = await calendar_of(store)
    owner = (await store.list_users())[0]
    made, _ = await store.put_object(calendar, write("one"))
    assert made == await store.get_object(calendar, href=made.href)  # what a PUT answers is what is kept
    saved, _ = await store.put_object(calendar, replace(write("one"), etag="two", summary="Two"))
    assert saved == await store.get_object(calendar, href=made.href) and saved.created_at == made.created_at
    alone = await store.get_calendar_by_slug(owner.id, "c")
    assert await store.calendar_with_object(owner.id, "c", saved.href) == (alone, saved)
    listed = await store.calendar_with_object(owner.id, "c", saved.href, detail=Detail.LISTED)
    assert listed == (alone, await store.get_object(calendar, href=saved.href, detail=Detail.LISTED))
    assert listed[1] is not None and listed[1].ical == "" and listed[1].size() == len(saved.ical.encode())
    assert await store.calendar_with_object(owner.id, "c", "other.ics") == (alone, None)
    assert await store.calendar_with_object(owner.id, "missing", saved.href) is None
    assert await store.calendar_with_object(owner.id + 1, "c", saved.href) is None


async def test_conformance_more_tasks_than_connections_all_get_one(store_url: str) -> None:
    """Connections are kept between uses (PostgreSQL), yet never held back from a task that
    waits: 40 reads and writes at once over a pool of two all finish, and the readiness probe
    still answers with every connection idle."""
    small = store_for(store_url, pool_size=2)
    assert isinstance(small, SQLStore)
    await small.open()
    try:
        calendar = await calendar_of(small)

        async def one(n: int) -> None:
            if n % 4 == 0:
                await small.put_object(calendar, write(f"crowd-{n}"))
            else:
                await small.list_objects([calendar])

        async with asyncio.timeout(20):
            await asyncio.gather(*(one(n) for n in range(40)))
            assert await small.readiness() is None
        assert len([o for o in await small.list_objects([calendar]) if o.uid.startswith("crowd-")]) == 10
    finally:
        await small.close()


async def test_conformance_writes_go_on_after_the_database_closed_the_connections(store: SQLStore) -> None:
    """PostgreSQL ends every connection of the store (a restart, a failover) while they are idle:
    the next writes and reads get fresh ones, none fails. (SQLite has no connection to lose.)"""
    calendar = await calendar_of(store)
    await asyncio.gather(*(store.list_objects([calendar]) for _ in range(6)))  # several connections kept
    if store.db.backend == "postgres":
        url = store.db.url  # type: ignore[attr-defined]
        admin = await asyncpg.connect(url)
        try:
            ended = await admin.fetchval(
                "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                "AND application_name = current_setting('application_name')"  # this test's: not a run beside it
            )
        finally:
            await admin.close()
        assert ended >= 2
        await asyncio.sleep(0.2)  # the ends reach this process
    for n in range(12):
        await store.put_object(calendar, write(f"after-{n}"))
    assert len(await store.list_objects([calendar])) == 12


async def test_conformance_a_write_cancelled_midway_leaves_nothing_held(store: SQLStore) -> None:
    """A task cancelled in the middle of a batch (a server stopping) leaves no transaction or
    lock behind: the next write to the same calendar goes through at once, and the batch is
    not half written."""
    calendar = await calendar_of(store)
    user = (await store.list_users())[0]
    job = await store.create_import(NewImport(user.id, "rest", "ics", None, calendar, status="in_progress"))
    # large texts, so that a batch's statements fill the connection's buffers while it is cut off
    text = "DESCRIPTION:" + "x" * 20_000
    writes = [replace(write(f"many-{n}"), ical=text) for n in range(2000)]
    for delay in (0.01, 0.03, 0.1, 0.3):
        batch = asyncio.create_task(store.import_batch(job.id, ImportTarget(user.id, calendar), writes, 50))
        await asyncio.sleep(delay)
        batch.cancel()
        outcome = (await asyncio.gather(batch, return_exceptions=True))[0]
        async with asyncio.timeout(5):  # nothing is held: not a row, not a connection mid-statement
            await store.put_object(calendar, write(f"after-{delay}"))
        many = [o for o in await store.list_objects([calendar]) if o.uid.startswith("many-")]
        if isinstance(outcome, asyncio.CancelledError):
            assert many == []  # cut off: none of the batch is there
            return
        assert len(many) == len(writes)  # done before the cancel came: all of it
    pytest.fail("no cancel came in the middle of a batch")


async def test_conformance_grants(store: SQLStore) -> None:
    calendar = await calendar_of(store)
    owner = (await store.list_users())[0]
    bob = await store.create_user("bob", None, "hash")
    invited = await store.put_grant(calendar, bob.id, "read", "invited", owner.id)
    everyone = await store.put_grant(calendar, None, "freebusy", "active", owner.id)
    changed = await store.put_grant(calendar, bob.id, "read-write", "invited", owner.id)  # the same grant
    assert changed.id == invited.id and changed.level == "read-write"
    assert [g.id for g in await store.grants_of(calendar)] == [invited.id, everyone.id]
    assert [g.id for g in await store.grants_on(calendar, bob.id)] == [invited.id, everyone.id]
    assert [(g.id, c.id) for g, c in await store.grants_to(bob.id, ["invited"])] == [(invited.id, calendar)]
    accepted = await store.set_grant_state(invited.id, "active")
    assert accepted is not None and accepted.state == "active"
    assert await store.grants_to(bob.id, ["invited"]) == []
    assert await store.delete_user(bob.id) and await store.grants_on(calendar, bob.id) == [everyone]


async def opened_at(store_url: str, monkeypatch: pytest.MonkeyPatch, *, sqlite: int, postgres: int) -> SQLStore:
    """A new store migrated only up to these versions (of its backend), as an older server left it."""
    module = sqlite_database if store_url.startswith("sqlite") else postgres_database
    every, last = module.migrations, sqlite if module is sqlite_database else postgres
    monkeypatch.setattr(module, "migrations", lambda backend: tuple(m for m in every(backend) if m[0] <= last))
    store = store_for(store_url)
    assert isinstance(store, SQLStore)
    await store.open()
    return store


async def reopened(store: SQLStore, store_url: str, monkeypatch: pytest.MonkeyPatch) -> SQLStore:
    """The store closed and opened again by this server, which applies the rest of the migrations."""
    await store.close()
    monkeypatch.undo()
    again = store_for(store_url)
    assert isinstance(again, SQLStore)
    await again.open()
    return again


async def test_grants_made_before_flags_had_kinds_follow_only_what_the_flags_gave(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 26.2's migration: of the grants made before grants had kinds, only those that can
    have come from a group's flags follow them from now on; every other one keeps its level."""
    store = await opened_at(store_url, monkeypatch, sqlite=7, postgres=4)
    users = [await store.create_user(name, None, "x") for name in ("alice", "bob", "carol")]
    alice, bob, carol = (u.id for u in users)
    grants = {  # calendar's flags: [(grantee, level, follows them after the migration)]
        "plain": ({}, [(bob, "read", False), (None, "freebusy", False)]),
        "posting": ({"membersCanPost": True}, [(bob, "read-write", True), (carol, "freebusy", False)]),
        "inviting": ({"membersCanInvite": True}, [(bob, "admin", True), (carol, "read-write", False)]),
        "closed": ({"membersCanPost": False}, [(bob, "read", True)]),
        "public": ({"public": True}, [(None, "read", True), (bob, "read", False)]),
    }
    ids = {}
    for name, (props, given) in grants.items():
        calendar = await store.create_calendar(NewCalendar(f"uuid-{name}", alice, name, name, props=props))
        ids[name] = calendar.id
        async with store.db.transaction() as tx:
            for grantee, level, _ in given:
                await tx.run(
                    "INSERT INTO grants (calendar_id, grantee_id, level, state, granted_by, created_at, updated_at, "
                    "slug) VALUES (?, ?, ?, 'active', ?, '2026-01-01', '2026-01-01', ?)",
                    (calendar.id, grantee, level, alice, f"alice-{name}" if grantee else None),
                )
    store = await reopened(store, store_url, monkeypatch)
    try:
        for name, (_, given) in grants.items():
            found = {(g.grantee_id, g.level): g.follows_group for g in await store.grants_of(ids[name])}
            assert found == {(grantee, level): follows for grantee, level, follows in given}, name
    finally:
        await store.close()


async def test_conformance_an_upload_is_kept_and_read_in_pieces(store: SQLStore) -> None:
    """A queued file goes in and comes back a piece at a time, in order and byte for byte; an
    empty file is kept (one empty piece), not taken for a missing one; dropping it removes it."""
    user = await store.create_user("u", None, "hash")
    pieces = [bytes([n]) * (1 << 20) for n in range(3)] + [b"tail"]
    job = await store.create_import(NewImport(user.id, "rest", "ics", None, None), upload=stream(*pieces))
    assert [piece async for piece in store.upload_pieces(job.id)] == pieces
    empty = await store.create_import(NewImport(user.id, "rest", "ics", None, None), upload=stream(b""))
    assert await kept_upload(store, empty.id) == b""
    await store.drop_upload(job.id)
    assert await kept_upload(store, job.id) is None
    assert await kept_upload(store, empty.id) == b""


async def test_a_file_waiting_before_pieces_is_cut_into_pieces(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 27.5's migration: a queued file kept whole (SQLite 5 to 8, PostgreSQL 2 to 5) is
    kept in pieces of 1 MiB, byte for byte."""
    store = await opened_at(store_url, monkeypatch, sqlite=8, postgres=5)
    user = await store.create_user("u", None, "hash")
    files = {"big": bytes(range(256)) * (10 * 1024) + b"end", "exact": b"x" * (1 << 20), "empty": b""}
    ids = {}
    for name, data in files.items():
        ids[name] = (await store.create_import(NewImport(user.id, "rest", "ics", name, None))).id
        async with store.db.transaction() as tx:
            await tx.run("INSERT INTO import_uploads (import_id, data) VALUES (?, ?)", (ids[name], data))
    store = await reopened(store, store_url, monkeypatch)
    try:
        for name, data in files.items():
            pieces = [piece async for piece in store.upload_pieces(ids[name])]
            assert b"".join(pieces) == data, name
            assert [len(piece) for piece in pieces] == [
                len(data[i : i + (1 << 20)]) for i in range(0, max(len(data), 1), 1 << 20)
            ]
    finally:
        await store.close()


async def test_conformance_writes_at_once_are_each_answered_on_their_own(store: SQLStore) -> None:
    """Many writes at once (committed together on SQLite: one group, one transaction): each is
    answered on its own, a refused one refuses nothing else, and each is counted in the
    calendar's changes as if it had been alone."""
    calendar = await calendar_of(store)
    await store.put_object(calendar, write("taken"))
    before = (await store.get_calendar(calendar)).sync_revision  # type: ignore[union-attr]
    asked = [store.put_object(calendar, write(f"many-{n}")) for n in range(120)]
    asked.insert(40, store.put_object(calendar, write("taken"), create_only=True))  # already there
    asked.insert(80, store.put_object(calendar, write("taken", href="other.ics")))  # another href's UID
    outcomes = await asyncio.gather(*asked, return_exceptions=True)
    assert isinstance(outcomes[40], PreconditionFailed) and isinstance(outcomes[80], Conflict)
    written = [o for n, o in enumerate(outcomes) if n not in (40, 80)]
    assert all(isinstance(o, tuple) and o[1] for o in written), written[:3]
    assert sorted(o.uid for o, _ in written) == sorted(f"many-{n}" for n in range(120))  # type: ignore[union-attr]
    assert (await store.get_calendar(calendar)).sync_revision == before + 120  # type: ignore[union-attr]
    changes = await store.changes_since(calendar, before)
    assert len(changes) == 120 and len({c.revision for c, _ in changes}) == 120


async def test_sqlite_processes_take_turns_at_the_write_lock(tmp_path: Path) -> None:
    """The lock that orders the writers of several processes (two handles on it stand for two
    processes): one that waits is let in when the holder lets go, before the holder may take it
    again; a wait longer than the timeout is StoreUnavailable."""
    first, second = ProcessLock(tmp_path / "lock", 0.3), ProcessLock(tmp_path / "lock", 5)
    first.open()
    second.open()
    try:
        await first.acquire()
        waiting = asyncio.create_task(second.acquire())
        with open(tmp_path / "lock-queue", "a+b") as queue:  # until the second waits in the kernel
            for _ in range(500):
                try:
                    fcntl.flock(queue, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    fcntl.flock(queue, fcntl.LOCK_UN)
                    await asyncio.sleep(0.01)
                except BlockingIOError:
                    break
        first.release()
        assert not first._try()  # the second's turn
        await asyncio.wait_for(waiting, 5)
        with pytest.raises(StoreUnavailable, match="held the store's write lock"):
            await first.acquire()
        second.release()
        await first.acquire()
        first.release()
    finally:
        first.close()
        second.close()


async def test_sqlite_reads_run_on_the_loop_only_within_their_budget(tmp_path: Path) -> None:
    """A read by a key is answered on the event loop's own connection; one past the budget of
    SQLite steps (a listing of thousands) is interrupted there and answered whole by a reader
    thread, and its statement goes there at once the next time."""
    store = store_for(f"sqlite:///{tmp_path}/almanac.db")
    assert isinstance(store, SQLStore) and isinstance(store.db, sqlite_database.SQLiteDatabase)
    await store.open()
    try:
        calendar = await calendar_of(store)
        for n in range(0, 3000, 500):
            await asyncio.gather(*(store.put_object(calendar, write(f"many-{m}")) for m in range(n, n + 500)))
        assert (await store.get_object(calendar, href="many-7.ics")) is not None
        assert store.db._slow == set()  # the point reads stayed within the budget
        listed = await store.list_objects([calendar])
        assert sorted(o.uid for o in listed) == sorted(f"many-{m}" for m in range(3000))
        assert len(store.db._slow) == 1  # the listing went to a reader, and goes there from now on
        assert len(await store.list_objects([calendar])) == 3000
        for detail in (Detail.LISTED, Detail.BRIEF):  # a listing's pages fit the budget: all on the loop
            pages = [page async for page in store.object_pages([calendar], detail=detail)]
            assert {len(page) for page in pages} == {store.db.listing_page} and sum(map(len, pages)) == 3000
        assert len(store.db._slow) == 1
    finally:
        await store.close()


async def test_sqlite_listing_pages_are_range_reads(tmp_path: Path) -> None:
    """A page of a PROPFIND's listing (by object id) and of a sync-collection (by revision and
    href) is read from an index in its order: no scan of the whole calendar and no sort."""
    store = store_for(f"sqlite:///{tmp_path}/almanac.db")
    assert isinstance(store, SQLStore) and isinstance(store.db, sqlite_database.SQLiteDatabase)
    await store.open()
    try:
        calendar = await calendar_of(store)
        await store.put_object(calendar, write("a"))
        asked: list[tuple[str, list[object]]] = []
        read = store.db.all

        async def noted(sql: str, params: Sequence[object] = ()) -> list[Any]:
            asked.append((sql, list(params)))
            return await read(sql, params)

        store.db.all = noted  # type: ignore[method-assign]
        await store.list_objects([calendar], after_id=0, limit=1000, detail=Detail.LISTED)
        await store.changes_since(calendar, 0, "a.ics", limit=1000, detail=Detail.LISTED)
        store.db.all = read  # type: ignore[method-assign]
        for sql, params in asked:
            plan = " ".join(str(row[3]) for row in await store.db.all("EXPLAIN QUERY PLAN " + sql, params))
            assert "SEARCH" in plan and "TEMP B-TREE" not in plan, plan
    finally:
        await store.close()


async def test_conformance_a_bulk_import_refreshes_the_planners_statistics(store: SQLStore) -> None:
    """An import that wrote many objects tells the planner what the tables hold now (on
    PostgreSQL an ANALYZE: where autovacuum is off or behind, plans would go on treating a
    calendar of thousands as empty)."""
    user = await store.create_user("u", None, "hash")
    calendar = (await store.create_calendar(NewCalendar(uuid="c", owner_id=user.id, slug="c", name="C"))).id
    job = await store.create_import(NewImport(user.id, "cli", "ics", None, calendar, status="in_progress"))
    writes = [write(f"bulk-{n}") for n in range(1200)]
    assert await store.import_batch(job.id, ImportTarget(user.id, calendar), writes, 100) == (1200, 0, 0)
    done = await store.update_import(job.id, status=JobStatus.COMPLETE)
    assert done.status == JobStatus.COMPLETE and done.created == 1200
    if store.db.backend == "postgres":
        rows = await store.db.all("SELECT reltuples FROM pg_class WHERE oid = 'objects'::regclass")
        assert rows[0][0] >= 1000  # -1 until the table is analyzed
