"""Copy a whole store into an empty one, on any database (``run.py migrate-store``): every
row with its id, so hrefs, ETags, sync tokens, sessions and imports (with their undo data)
keep working; then compare what both hold, table by table (rows and a content hash)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from storage.sql import SQLStore
from storage.sql.database import Row, Tx

#: every table in an order that satisfies the foreign keys: its columns (as both backends
#: have them; a test checks them against the schemas) and the columns that order its rows
TABLES: dict[str, tuple[tuple[str, ...], str]] = {
    "users": (
        ("id", "username", "email", "password_hash", "is_admin", "created_at", "updated_at", "prefs", "cutype",
         "source", "display_name"),
        "id",
    ),
    "calendars": (
        ("id", "uuid", "owner_id", "slug", "name", "description", "color", "timezone", "components",
         "sync_revision", "is_default", "props", "created_at", "updated_at"),
        "id",
    ),
    "imports": (
        ("id", "user_id", "calendar_id", "door", "format", "filename", "options", "status", "progress", "created",
         "updated", "unchanged", "discarded", "calendars_created", "errors", "warnings", "created_at", "updated_at",
         "finished_at", "message", "total", "error_count", "runner", "lease_until"),
        "id",
    ),
    "objects": (
        ("id", "calendar_id", "href", "uid", "etag", "component", "ical", "start_utc", "end_utc", "recurring",
         "summary", "class", "import_id", "span_count", "created_at", "modified_at", "modified_by",
         "schedule_tag"),
        "id",
    ),
    "changes": (("calendar_id", "href", "uid", "revision", "deleted", "changed_at", "changed_by"), "calendar_id, href"),
    "tokens": (("id", "user_id", "token_hash", "created_at"), "id"),
    "sessions": (("id", "user_id", "kind", "session_hash", "created_at", "expires_at"), "id"),
    "import_items": (
        ("import_id", "calendar_id", "href", "uid", "action", "previous_ical", "previous_etag"),
        "import_id, calendar_id, href",
    ),
    "import_upload_pieces": (("import_id", "piece", "data"), "import_id, piece"),
    "grants": (
        ("id", "calendar_id", "grantee_id", "level", "state", "granted_by", "created_at", "updated_at", "slug",
         "props", "follows_group"),
        "id",
    ),
    "feeds": (("calendar_id", "token_hash", "busy_only", "created_at", "token"), "calendar_id"),
    "login_failures": (("key", "at"), "key, at"),
    "signup_invitations": (("id", "code_hash", "email", "created_at", "expires_at", "used_by"), "id"),
    "login_turns": (("key", "turn"), "key"),
    "schedule_inbox": (("id", "user_id", "name", "uid", "method", "ical", "created_at"), "id"),
    "mail_queue": (
        ("id", "organizer_id", "dedupe", "recipient", "message", "state", "attempts", "next_attempt", "runner",
         "lease_until", "error", "created_at", "sent_at"),
        "id",
    ),
    "imip_tokens": (("token", "organizer_id", "attendee", "uid"), "token"),
}  # fmt: skip
#: rows read and written at a time (a piece of an upload is 1 MiB at most)
BATCH = {"import_upload_pieces": 8, "objects": 500}


@dataclass(slots=True)
class Copied:
    """One table after the copy: its rows and content hash in the source and the target."""

    table: str
    rows: int
    target_rows: int
    digest: str
    target_digest: str

    @property
    def same(self) -> bool:
        return (self.rows, self.digest) == (self.target_rows, self.target_digest)


async def _pages(read: Callable[[str, Sequence[Any]], Any], table: str) -> Any:
    """The rows of a table in order, a batch at a time."""
    columns, order = TABLES[table]
    size = BATCH.get(table, 2000)
    offset = 0
    while True:
        rows: list[Row] = await read(
            f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order} LIMIT ? OFFSET ?", (size, offset)
        )
        if rows:
            yield rows
        if len(rows) < size:
            return
        offset += size


def _canonical(row: Row) -> bytes:
    return json.dumps([value.hex() if isinstance(value, bytes) else value for value in row]).encode()


async def _summary(store: SQLStore, table: str) -> tuple[int, str]:
    count, digest = 0, hashlib.sha256()
    async for rows in _pages(store.db.all, table):
        count += len(rows)
        for row in rows:
            digest.update(_canonical(row))
    return count, digest.hexdigest()


async def empty(store: SQLStore) -> bool:
    for table in TABLES:
        if await store.db.one(f"SELECT 1 FROM {table} LIMIT 1") is not None:
            return False
    return True


async def copy_store(source: SQLStore, target: SQLStore, say: Callable[[str], None] = lambda _: None) -> list[Copied]:
    """Copy everything from ``source`` into ``target`` in one transaction of the target (all or
    nothing); ValueError when the target holds anything. Returns each table's comparison."""
    if not await empty(target):
        raise ValueError("the target store is not empty: migrate-store only fills an empty one")
    async with target.db.transaction() as tx:
        for table, (columns, _) in TABLES.items():
            insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
            copied = 0
            async for rows in _pages(source.db.all, table):
                await tx.many(insert, [tuple(row) for row in rows])
                copied += len(rows)
            say(f"{table}: {copied} rows")
        await _copy_spans(source, target, tx)
        await target.db.after_copy(tx, [table for table, (columns, _) in TABLES.items() if columns[0] == "id"])
    results = []
    for table in TABLES:
        (rows, digest), (target_rows, target_digest) = await _summary(source, table), await _summary(target, table)
        results.append(Copied(table, rows, target_rows, digest, target_digest))
    return results


async def _copy_spans(source: SQLStore, target: SQLStore, tx: Tx) -> None:
    """The time-range index, object by object, each database in its own form."""
    async for rows in _pages(source.db.all, "calendars"):
        for calendar in rows:
            spans: dict[int, list[tuple[int, int, bool]]] = {}
            for object_id, start, end, exact in await source.db.read_spans(calendar[0]):
                spans.setdefault(object_id, []).append((start, end, bool(exact)))
            await target.db.write_spans(tx, [(calendar[0], object_id, 0, found) for object_id, found in spans.items()])
