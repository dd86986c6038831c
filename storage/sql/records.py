"""How rows become records, and what every part of the SQL store shares: its database and
the update of one row."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import fields
from typing import Any, TypeVar

from storage.errors import Conflict, Gone
from storage.model import Calendar, CalendarObject, Detail, ImportJob, User, now_iso
from storage.sql.database import Database, Duplicate, Row, Tx

#: an object row's columns: CalendarObject's fields, by name and in order (``klass`` is ``class``)
OBJECT_FIELDS = tuple("class" if f.name == "klass" else f.name for f in fields(CalendarObject) if f.name != "text_size")
OBJECT_COLUMNS = ", ".join(OBJECT_FIELDS)
_RECURRING = OBJECT_FIELDS.index("recurring")
#: a calendar row's columns, by name and in the order of Calendar's fields
CALENDAR_COLUMNS = tuple(f.name for f in fields(Calendar) if f.name not in ("object_count", "seen_by"))
_IS_DEFAULT, _PROPS = CALENDAR_COLUMNS.index("is_default"), CALENDAR_COLUMNS.index("props")
CALENDAR_FIELDS = {"name", "description", "color", "timezone", "components", "is_default", "props", "slug"}
USER_FIELDS = {"username", "email", "password_hash", "is_admin", "prefs", "cutype", "source", "display_name"}
#: parameters per statement: SQLite's limit on host parameters is 999 on old builds
_CHUNK = 400
T = TypeVar("T")


def chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def marks(count: int) -> str:
    """``?, ?, ...``: the placeholders of an IN list."""
    return ",".join("?" * count)


def present(row: Row | None) -> Row:
    """A row a statement must have found (one written in the same transaction)."""
    if row is None:
        raise Gone("a row written in this transaction is gone")
    return row


#: which of a row's columns (by position) fill which fields, per record class, row shape and
#: converted fields: made once, as naming each column on a row is a search of its names
_PLANS: dict[tuple[type, tuple[str, ...], tuple[str, ...]], tuple[tuple[str, int], ...]] = {}


def record(cls: type[T], row: Row, **converted: Any) -> T:
    """A record from a row whose columns are named like the record's fields."""
    key = (cls, tuple(row.keys()), tuple(converted))
    plan = _PLANS.get(key)
    if plan is None:
        wanted = {f.name for f in fields(cls)} - set(converted)  # type: ignore[arg-type]
        first = {name: index for index, name in reversed(list(enumerate(key[1]))) if name in wanted}
        plan = _PLANS[key] = tuple(first.items())  # a name twice in a join: its first column, as row[name]
    return cls(**{name: row[index] for name, index in plan}, **converted)


def json_object(text: str) -> Any:
    """A JSON column's value; the usual empty object without parsing (read with every user and
    calendar: parsing it was a sixth of making one)."""
    return {} if text == "{}" else json.loads(text)


def user(row: Row) -> User:
    return record(User, row, is_admin=bool(row["is_admin"]), prefs=json_object(row["prefs"]))


def calendar(row: Row) -> Calendar:
    return record(Calendar, row, is_default=bool(row["is_default"]), props=json_object(row["props"]))


def calendar_at(values: Sequence[Any]) -> Calendar:
    """The calendar of values in the order of CALENDAR_COLUMNS (a row whose names others share)."""
    fields_ = list(values)
    fields_[_IS_DEFAULT] = bool(fields_[_IS_DEFAULT])
    fields_[_PROPS] = json_object(fields_[_PROPS])
    return Calendar(*fields_)


#: what a listing reads of an object, before the size of its text (see ``listed_object``);
#: a brief one reads the first five (``brief_object``)
LISTED_FIELDS = ("id", "calendar_id", "href", "etag", "component", "created_at", "modified_at", "schedule_tag")


@functools.cache
def object_reading(detail: Detail, size: str, prefix: str = "") -> tuple[str, Callable[[Any], CalendarObject]]:
    """The columns (each after ``prefix``) that read an object at ``detail``, and what makes the
    object of a row starting with them (``size``: the database's SQL for a text's bytes, ``{}``
    for the column)."""
    if detail is Detail.TEXT:
        return ", ".join(prefix + name for name in OBJECT_FIELDS), calendar_object
    if detail is Detail.LISTED:
        columns = ", ".join(prefix + name for name in LISTED_FIELDS)
        return f"{columns}, {size.format(prefix + 'ical')}", listed_object
    return ", ".join(prefix + name for name in LISTED_FIELDS[:5]), brief_object


def listed_object(row: Row | Sequence[Any]) -> CalendarObject:
    """The object of a row of LISTED_FIELDS and its text's size: what a listing shows of it (ids,
    href, ETag, component, times, Schedule-Tag and the size of its text); its text, UID,
    summary and index fields are left empty. Fewer columns make a listing of thousands several
    times faster."""
    return CalendarObject(row[0], row[1], row[2], "", row[3], row[4], "", None, None, False, "", None, None,
                          row[5], row[6], None, row[7], row[8])  # fmt: skip


def brief_object(row: Row | Sequence[Any]) -> CalendarObject:
    """The object of a row of the first five LISTED_FIELDS: its ids, href, ETag and component."""
    return CalendarObject(row[0], row[1], row[2], "", row[3], row[4], "", None, None, False, "", None, None, "", "")


def calendar_object(row: Row | Sequence[Any]) -> CalendarObject:
    """The object a row starting with OBJECT_COLUMNS holds. Those columns are the record's
    fields in order, so they are taken by position: this runs for every object a query returns."""
    values = list(row)[: len(OBJECT_FIELDS)]
    values[_RECURRING] = bool(values[_RECURRING])
    return CalendarObject(*values)


def job(row: Row) -> ImportJob:
    lists = ("options", "calendars_created", "errors", "warnings")
    return record(ImportJob, row, **{name: json.loads(row[name]) for name in lists})


class Tables:
    """A part of the store: its database, and the update of one row that several parts share."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def _update(
        self, table: str, row_id: int, changes: dict[str, Any], allowed: set[str], json_field: str
    ) -> None:
        """Set columns of one row (and updated_at); Conflict names the unique column hit."""
        if not changes:
            return
        try:
            async with self.db.transaction() as tx:
                await self._update_in(tx, table, row_id, changes, allowed, json_field)
        except Duplicate as error:
            raise Conflict(duplicated(error, "email", "username", "slug")) from None

    @staticmethod
    async def _update_in(
        tx: Tx, table: str, row_id: int, changes: dict[str, Any], allowed: set[str], json_field: str
    ) -> None:
        """``_update`` within a transaction."""
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"unknown {table} fields: {unknown}")
        if json_field in changes:
            changes = {**changes, json_field: json.dumps(changes[json_field])}
        values = [int(v) if isinstance(v, bool) else v for v in changes.values()]
        assignments = ", ".join(f"{name} = ?" for name in changes)
        await tx.run(f"UPDATE {table} SET {assignments}, updated_at = ? WHERE id = ?", (*values, now_iso(), row_id))


def duplicated(error: Duplicate, *columns: str) -> str:
    """Which of these columns a uniqueness error names (its constraint's name holds it)."""
    return next((column for column in columns if column in str(error)), "unique")
