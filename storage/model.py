"""Plain records the store reads and writes. No behaviour, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple


def now_iso(ago: timedelta = timedelta(0)) -> str:
    """The current UTC time (less ``ago``) as stored: ``2019-09-15T20:44:02.123Z``."""
    moment = datetime.now(UTC) - ago
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class Detail(StrEnum):
    """How much of each object a listing reads: everything (``TEXT``), what a listing shows
    (``LISTED``: ids, href, ETag, component, times, Schedule-Tag and the size of its text) or its ETag
    (``BRIEF``: ids, href, ETag and component). Each column left out makes a listing of
    thousands faster; the fields not read are left empty."""

    TEXT = "text"
    LISTED = "listed"
    BRIEF = "brief"


@dataclass(slots=True, frozen=True)
class User:
    id: int
    username: str
    email: str | None
    password_hash: str
    is_admin: bool
    created_at: str
    updated_at: str
    prefs: dict[str, Any] = field(default_factory=dict)
    #: what kind of calendar user (iCalendar's CUTYPE, RFC 6638 ``calendar-user-type``):
    #: INDIVIDUAL, ROOM or RESOURCE (the last two answer invitations on their own)
    cutype: str = "INDIVIDUAL"
    #: where the account lives: ``local`` (its password here) or ``ldap`` (the directory's)
    source: str = "local"
    #: the name people see (the directory's), where there is one
    display_name: str | None = None


@dataclass(slots=True)
class Change:
    """The latest change of one resource (a deletion leaves a tombstone). Not frozen, as
    ``CalendarObject``: a sync lists thousands."""

    calendar_id: int
    href: str
    uid: str
    revision: int
    deleted: bool
    changed_at: str
    changed_by: int | None = None  #: the user who made it


@dataclass(slots=True, frozen=True)
class Calendar:
    id: int
    uuid: str
    owner_id: int
    slug: str
    name: str
    description: str | None
    color: str | None
    timezone: str | None
    components: str  #: comma-separated component names it accepts
    sync_revision: int
    is_default: bool
    props: dict[str, Any]  #: dead properties and other door-specific settings
    created_at: str
    updated_at: str
    object_count: int | None = None  #: filled in by listings that count
    #: (user id, level) when the services found the calendar for a user it is shared with: what
    #: the grants allowed them then (never read from or written to the store)
    seen_by: tuple[int, str] | None = None


#: what a calendar accepts unless told otherwise
ALL_COMPONENTS = "VEVENT,VTODO,VJOURNAL"


@dataclass(slots=True, frozen=True)
class NewCalendar:
    """What a calendar is created from; the store picks a free slug based on ``slug``."""

    uuid: str
    owner_id: int
    slug: str
    name: str
    description: str | None = None
    color: str | None = None
    timezone: str | None = None
    components: str = ALL_COMPONENTS
    is_default: bool = False
    props: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class CalendarObject:
    """One calendar object as stored. Not frozen (treat it as a value all the same): a frozen
    dataclass sets each field through ``object.__setattr__``, and making the 10,000 of a
    listing took a third of its time."""

    id: int
    calendar_id: int
    href: str
    uid: str
    etag: str
    component: str
    ical: str
    start_utc: int | None
    end_utc: int | None
    recurring: bool
    summary: str
    klass: str | None
    import_id: int | None
    created_at: str
    modified_at: str
    modified_by: int | None = None  #: the user who wrote it last (None: unknown, or since deleted)
    #: a scheduling object resource's Schedule-Tag (RFC 6638 3.2.10), None for any other object
    schedule_tag: str | None = None
    #: the bytes of its text, where a listing read only that (its text, UID, summary and index
    #: fields are then empty)
    text_size: int | None = None

    def size(self) -> int:
        """The bytes of its text."""
        return self.text_size if self.text_size is not None else len(self.ical.encode())


@dataclass(slots=True, frozen=True)
class ObjectWrite:
    """One object to insert or replace, with everything the store indexes."""

    href: str
    uid: str
    etag: str
    component: str
    ical: str
    start_utc: int | None
    end_utc: int | None
    recurring: bool
    summary: str
    klass: str | None
    #: (start, end, exact) for the time-range index
    spans: tuple[tuple[int, int, bool], ...] = ()
    by: int | None = None  #: the user making the change
    schedule_tag: str | None = None  #: its Schedule-Tag, if it is a scheduling object resource

    def __reduce__(self) -> tuple[type[ObjectWrite], tuple[object, ...]]:
        """Pickled as its values: an import stages thousands, and dataclasses' own way is slow."""
        return ObjectWrite, (self.href, self.uid, self.etag, self.component, self.ical, self.start_utc,
                             self.end_utc, self.recurring, self.summary, self.klass, self.spans, self.by,
                             self.schedule_tag)  # fmt: skip


@dataclass(slots=True, frozen=True)
class ImportTarget:
    """Where an import writes: an existing calendar, or one found by name (made if missing)."""

    owner_id: int
    calendar_id: int | None = None
    create: NewCalendar | None = None


@dataclass(slots=True)
class ImportJob:
    id: int
    user_id: int
    calendar_id: int | None
    door: str
    format: str | None
    filename: str | None
    options: dict[str, Any]
    status: str
    progress: int
    created: int
    updated: int
    unchanged: int
    discarded: int
    calendars_created: list[int]
    errors: list[dict[str, Any]]
    warnings: list[dict[str, Any]]
    created_at: str
    updated_at: str
    finished_at: str | None
    message: str | None = None  #: why it failed
    total: int = 0  #: objects it writes (known once the file is parsed)
    error_count: int = 0  #: all its line errors; ``errors`` lists the first ones
    runner: str | None = None  #: the process that holds its lease (runs it)
    lease_until: int = 0  #: epoch seconds; a lease not renewed by then is lost


class JobStatus(StrEnum):
    """Where an import is (stored and shown as its value)."""

    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    COMPLETE = "complete"
    FAILED = "failed"
    UNDONE = "undone"


#: an import in one of these states will not change again by itself
FINISHED = frozenset({JobStatus.COMPLETE, JobStatus.FAILED, JobStatus.UNDONE})


@dataclass(slots=True, frozen=True)
class NewImport:
    user_id: int
    door: str  #: rest, wcap, web or cli
    format: str | None  #: None: detected when it runs
    filename: str | None
    calendar_id: int | None  #: the calendar chosen; None: the default import group
    options: dict[str, Any] = field(default_factory=dict)
    status: str = JobStatus.QUEUED
    runner: str | None = None  #: for one run at once: the process running it, with its lease
    lease_until: int = 0


@dataclass(slots=True, frozen=True)
class ImportItem:
    """One object an import created or replaced (with the text it replaced, for undo)."""

    import_id: int
    calendar_id: int
    href: str
    uid: str
    action: str  #: "created" or "updated"
    previous_ical: str | None
    previous_etag: str | None


@dataclass(slots=True, frozen=True)
class ImportFilter:
    """Which imports a listing returns (None: any)."""

    user_id: int | None = None
    #: with ``user_id``: that user's imports, or those into one of these calendars (by anyone)
    or_into: tuple[int, ...] = ()
    format: str | None = None
    calendar_id: int | None = None
    status: str | None = None
    since: str | None = None  #: ISO date or time, inclusive
    until: str | None = None  #: ISO date (the whole day) or time, inclusive


@dataclass(slots=True, frozen=True)
class Grant:
    """Access to a calendar for one user (``grantee_id``) or every signed-in user (None)."""

    id: int
    calendar_id: int
    grantee_id: int | None
    level: str  #: freebusy, read, read-write or admin
    state: str  #: invited, active, refused, left or kicked
    granted_by: int | None
    created_at: str
    updated_at: str
    slug: str | None = None  #: the calendar's name in the grantee's home (None: a grant to everyone)
    props: dict[str, Any] = field(default_factory=dict)  #: the grantee's own settings (colour)
    #: given as a member of the group: its level follows the group's flags (otherwise it was
    #: given at this level explicitly, and keeps it)
    follows_group: bool = False


@dataclass(slots=True, frozen=True)
class GrantChange:
    """A calendar's grant to one grantee (None: every signed-in user) made or changed."""

    grantee_id: int | None
    level: str
    state: str
    granted_by: int | None
    follows_group: bool = False
    slug: str | None = None  #: a new grant's name in the grantee's home (made unique there)
    props: dict[str, Any] | None = None  #: the grantee's settings anew (None: as they are)


@dataclass(slots=True, frozen=True)
class Feed:
    """A calendar's public feed: a secret address to full details or busy times only (looked up
    by its token's hash)."""

    calendar_id: int
    busy_only: bool
    created_at: str
    #: the secret address's token, shown to the owner (None: made before it was kept)
    token: str | None = None


class Spanned(NamedTuple):
    """An object with its index spans in a range, and only what free/busy reads of it."""

    id: int
    calendar_id: int
    uid: str
    component: str
    ical: str
    spans: list[tuple[int, int, bool]]


@dataclass(slots=True, frozen=True)
class InboxItem:
    """An iTIP message delivered to a user's scheduling inbox (RFC 6638 4.1)."""

    user_id: int
    name: str  #: its href in the inbox collection
    uid: str
    method: str  #: REQUEST, REPLY or CANCEL
    ical: str
    created_at: str = ""
    id: int = 0


@dataclass(slots=True, frozen=True)
class ObjectPut:
    """One write of a scheduled change (see ``Store.write_scheduled``): as ``put_object``'s."""

    calendar_id: int
    write: ObjectWrite
    if_etag: str | None = None
    create_only: bool = False


@dataclass(slots=True, frozen=True)
class ObjectDelete:
    """One deletion of a scheduled change (see ``Store.write_scheduled``): as ``delete_object``'s."""

    calendar_id: int
    href: str
    if_etag: str | None = None
    by: int | None = None


@dataclass(slots=True, frozen=True)
class Mail:
    """An e-mail in the queue (iMIP): whom to, the whole message, how often it was tried.
    ``dedupe`` names the change it tells (the recipient and the iTIP text): queued once."""

    organizer_id: int
    dedupe: str
    recipient: str
    message: str
    attempts: int = 0
    id: int = 0
