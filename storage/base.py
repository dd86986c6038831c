"""The Store interface: one async method per operation; each method is one transaction."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from typing import Any

from storage.model import (
    Calendar,
    CalendarObject,
    Change,
    Detail,
    Feed,
    Grant,
    GrantChange,
    ImportFilter,
    ImportItem,
    ImportJob,
    ImportTarget,
    InboxItem,
    JobStatus,
    Mail,
    NewCalendar,
    NewImport,
    ObjectDelete,
    ObjectPut,
    ObjectWrite,
    Spanned,
    User,
)


class Store(ABC):
    """Where every door's data lives. Knows nothing of HTTP, formats or access rules."""

    @abstractmethod
    async def open(self) -> None:
        """Connect and apply pending migrations."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def free_bytes(self) -> int | None:
        """What the disk holding the store has left, where the store can tell (None: it cannot)."""

    @abstractmethod
    async def readiness(self) -> str | None:
        """None when the store answers (within seconds) and every migration is applied; else why not."""

    @abstractmethod
    def observe(self, timings: Callable[[str, float], None]) -> None:
        """Send the store's timings (kind, seconds) to ``timings``: ``wait`` for the writer or a
        connection before a write, ``write`` a transaction held, ``read`` a read."""

    # users -------------------------------------------------------------------------------

    @abstractmethod
    async def create_user(
        self, username: str, email: str | None, password_hash: str, is_admin: bool = False, **more: str | None
    ) -> User:
        """Raises Conflict when the username or e-mail is taken."""

    @abstractmethod
    async def get_user(self, user_id: int) -> User | None: ...

    @abstractmethod
    async def find_user(self, login: str) -> User | None:
        """A user by username or e-mail (case-insensitive)."""

    @abstractmethod
    async def list_users(self) -> list[User]: ...

    @abstractmethod
    async def update_user(self, user_id: int, **changes: Any) -> User | None: ...

    @abstractmethod
    async def delete_user(self, user_id: int) -> bool:
        """Delete a user with all their calendars, tokens, sessions and imports."""

    # failed sign-ins (counted for every process) ------------------------------------------

    @abstractmethod
    async def add_login_failure(self, keys: Sequence[str], at: float, forget_before: float) -> None:
        """Count a failed sign-in under each key (and forget failures older than ``forget_before``)."""

    @abstractmethod
    async def login_failures(self, keys: Sequence[str], since: float) -> dict[str, int]:
        """How many failures each key has had since then."""

    @abstractmethod
    async def take_turn(self, key: str, now: float, spacing: float, latest: float) -> float | None:
        """Atomically book the next turn of a key, ``spacing`` after the later of ``now`` and its
        last booked turn; None (nothing booked) when that turn would be after ``latest``."""

    @abstractmethod
    async def clear_login_failures(self, key: str) -> None: ...

    # tokens ------------------------------------------------------------------------------

    @abstractmethod
    async def add_token(self, user_id: int, token_hash: str) -> None: ...

    @abstractmethod
    async def user_for_token(self, token_hash: str) -> User | None: ...

    @abstractmethod
    async def delete_tokens(self, user_id: int, token_id: int | None = None) -> int:
        """Take back a user's API tokens (all, or the one with this id); how many."""

    @abstractmethod
    async def add_signup_invitation(self, code_hash: str, email: str | None, expires_at: int) -> None:
        """Keep an invitation to sign up (its code's hash, the address it is for, its expiry)."""

    @abstractmethod
    async def claim_signup_invitation(self, code_hash: str, now: int) -> tuple[bool, str | None]:
        """Take an unused, unexpired invitation for an account being made (no one else can);
        whether it was, and its address."""

    @abstractmethod
    async def settle_signup_invitation(self, code_hash: str, user_id: int | None) -> None:
        """A claimed invitation used by the account made (or given back: None)."""

    @abstractmethod
    async def list_tokens(self, user_id: int) -> list[tuple[int, str]]:
        """A user's API tokens: their ids and when each was issued (the tokens are kept hashed)."""

    # sessions ----------------------------------------------------------------------------

    @abstractmethod
    async def add_session(self, user_id: int, kind: str, session_hash: str, expires_at: int) -> None:
        """Store a session (and forget expired ones)."""

    @abstractmethod
    async def use_session(self, session_hash: str, kind: str, now: int, timeout: int) -> User | None:
        """The user of a live session of this kind (a WCAP id is no web session and the
        reverse), whose expiry moves to ``now + timeout``; None if expired or of another kind."""

    @abstractmethod
    async def delete_session(self, session_hash: str, kind: str) -> bool: ...

    # calendars ---------------------------------------------------------------------------

    @abstractmethod
    async def create_calendar(self, calendar: NewCalendar) -> Calendar:
        """Create a calendar; its slug is ``calendar.slug`` or that with a number added."""

    @abstractmethod
    async def get_calendar(self, calendar_id: int) -> Calendar | None: ...

    @abstractmethod
    async def get_calendar_by_uuid(self, uuid: str) -> Calendar | None: ...

    @abstractmethod
    async def get_calendar_by_slug(self, owner_id: int, slug: str) -> Calendar | None: ...

    @abstractmethod
    async def shared_calendar(self, user_id: int, slug: str) -> tuple[Calendar, Grant] | None:
        """The calendar an accepted grant to the user names ``slug`` in their home, with the grant."""

    @abstractmethod
    async def find_calendar_by_name(self, owner_id: int, name: str) -> Calendar | None: ...

    @abstractmethod
    async def list_calendars(self, owner_id: int) -> list[Calendar]:
        """The owner's calendars, default first, with ``object_count`` filled in."""

    @abstractmethod
    async def calendars_of(self, owner_ids: Sequence[int]) -> list[Calendar]:
        """Every calendar these users own (without object counts), by owner and id."""

    @abstractmethod
    async def update_calendar(self, calendar_id: int, **changes: Any) -> Calendar | None: ...

    @abstractmethod
    async def delete_calendar(self, calendar_id: int) -> bool: ...

    # objects -----------------------------------------------------------------------------

    @abstractmethod
    async def get_object(
        self, calendar_id: int, *, href: str | None = None, uid: str | None = None, detail: Detail = Detail.TEXT
    ) -> CalendarObject | None:
        """The object with this href or UID, as much of it as ``detail`` says."""

    @abstractmethod
    async def calendar_with_object(
        self, owner_id: int, slug: str, href: str, *, detail: Detail = Detail.TEXT
    ) -> tuple[Calendar, CalendarObject | None] | None:
        """``get_calendar_by_slug`` and that calendar's ``get_object`` by href, in one read."""

    @abstractmethod
    async def get_objects(self, calendar_id: int, hrefs: Sequence[str]) -> list[CalendarObject]:
        """The objects of a calendar with these hrefs (missing ones are left out)."""

    @abstractmethod
    async def changes_since(
        self,
        calendar_id: int,
        revision: int,
        after_href: str = "",
        *,
        limit: int | None = None,
        detail: Detail = Detail.TEXT,
    ) -> list[tuple[Change, CalendarObject | None]]:
        """Changes after ``revision`` (after ``(revision, after_href)`` when given) in that order,
        each with its object (None when deleted), as much of it as ``detail`` says."""

    @abstractmethod
    async def calendar_size(self, calendar_id: int) -> int:
        """Bytes of calendar data the calendar holds (its objects' UTF-8 text)."""

    @abstractmethod
    async def get_object_by_id(self, object_id: int) -> CalendarObject | None: ...

    @abstractmethod
    async def list_objects(
        self, calendar_ids: Sequence[int], *, after_id: int = 0, limit: int | None = None, detail: Detail = Detail.TEXT
    ) -> list[CalendarObject]:
        """Objects ordered by id, a page at a time (time ranges go through ``objects_in_range``),
        with as much of each as ``detail`` says."""

    @abstractmethod
    async def objects_in_range(
        self, calendar_ids: Sequence[int], start: int, end: int, *, after_id: int = 0, limit: int | None = None
    ) -> list[tuple[CalendarObject, bool]]:
        """Objects (by id) with an index span overlapping [start, end), and whether a span that
        matched is exact (False: the object's text must be checked)."""

    @abstractmethod
    async def spanned_in_range(self, calendar_ids: Sequence[int], start: int, end: int) -> list[Spanned]:
        """The objects with index spans overlapping [start, end), each with those spans and what
        free/busy reads of it (one query: no more of each object than that)."""

    @abstractmethod
    async def spans_in_range(
        self, calendar_ids: Sequence[int], start: int, end: int
    ) -> dict[int, list[tuple[int, int, bool]]]:
        """The index's spans overlapping [start, end) by object id: (start, end, exact) of each
        instance (a span of no length may read back one second long)."""

    @abstractmethod
    async def search_objects(self, calendar_ids: Sequence[int], text: str, limit: int) -> list[CalendarObject]:
        """Objects whose text (unfolded, commas and semicolons unescaped) holds ``text`` in any
        ASCII case, by their first start, at most ``limit``: candidates a search then reads."""

    @abstractmethod
    async def modified_objects(
        self, calendar_ids: Sequence[int], since: str | None, until: str | None
    ) -> list[CalendarObject]:
        """Objects last written in [since, until] (ISO times; None is unbounded)."""

    @abstractmethod
    async def deleted_since(self, calendar_ids: Sequence[int], since: str | None, until: str | None) -> list[Change]:
        """Tombstones of objects deleted in [since, until]."""

    @abstractmethod
    def iter_objects(self, calendar_ids: Sequence[int], batch: int = 500) -> AsyncIterator[CalendarObject]:
        """Every object of the calendars, read in batches (for exports)."""

    @abstractmethod
    def object_pages(
        self, calendar_ids: Sequence[int], batch: int | None = None, *, detail: Detail = Detail.TEXT
    ) -> AsyncIterator[list[CalendarObject]]:
        """Every object of the calendars, a page of ``batch`` at a time (for listings; None:
        the size the database reads best), as ``list_objects`` reads them."""

    @abstractmethod
    async def put_object(
        self, calendar_id: int, write: ObjectWrite, *, if_etag: str | None = None, create_only: bool = False
    ) -> tuple[CalendarObject, bool]:
        """Insert or replace by href; returns the object and whether it was created.

        Raises Conflict when the UID is held by another href, PreconditionFailed when
        ``if_etag`` does not match (``*`` matches any existing object) or ``create_only`` finds an existing object.
        """

    @abstractmethod
    async def delete_object(
        self, calendar_id: int, href: str, *, if_etag: str | None = None, by: int | None = None
    ) -> bool:
        """Delete an object (``by``: the user doing it, kept in the change log); False when it is
        not there."""

    @abstractmethod
    async def move_object(
        self,
        calendar_id: int,
        href: str,
        target_id: int,
        write: ObjectWrite,
        *,
        overwrite: bool = True,
        keep_source: bool = False,
    ) -> tuple[CalendarObject, bool]:
        """In one transaction, delete ``href`` (unless ``keep_source``: a copy) and put ``write``
        into ``target_id``; ``overwrite=False`` refuses (PreconditionFailed) an existing target.
        Gone when the source is gone; Conflict as for put_object."""

    # grants ------------------------------------------------------------------------------

    @abstractmethod
    async def put_grant(
        self,
        calendar_id: int,
        grantee_id: int | None,
        level: str,
        state: str,
        granted_by: int | None,
        slug: str | None = None,
    ) -> Grant:
        """Give (or change) the one grant of a calendar to this grantee (None: everyone). A new
        grant to a user gets ``slug``, or ``slug-2`` ... when the grantee has a calendar or
        grant of that name; a grant keeps its slug when changed."""

    @abstractmethod
    async def put_grants(
        self, calendar_id: int, changes: Sequence[GrantChange], calendar_changes: dict[str, Any] | None = None
    ) -> list[Grant]:
        """``put_grant`` for several grantees, and the calendar's own fields changed
        (``update_calendar``), all in one transaction: the grants as they are now, in order."""

    @abstractmethod
    async def set_grant_state(self, grant_id: int, state: str) -> Grant | None: ...

    @abstractmethod
    async def set_grant_props(self, grant_id: int, props: dict[str, Any]) -> Grant | None:
        """Replace the grantee's own settings of a grant."""

    @abstractmethod
    async def get_grant(self, grant_id: int) -> Grant | None: ...

    @abstractmethod
    async def related_users(self, user_id: int, states: Sequence[str]) -> list[User]:
        """The users who share a calendar with this user, or with whom this user shares one
        (grants in these states)."""

    # public feeds ------------------------------------------------------------------------

    @abstractmethod
    async def set_feed(
        self, calendar_id: int, token_hash: str | None, busy_only: bool = False, token: str | None = None
    ) -> Feed | None:
        """Turn a calendar's feed on at a new secret (the old one stops at once), or off (None)."""

    @abstractmethod
    async def feed_of(self, calendar_id: int) -> Feed | None: ...

    @abstractmethod
    async def feed_calendar(self, token_hash: str) -> tuple[Feed, Calendar] | None:
        """The feed with this secret, and its calendar."""

    @abstractmethod
    async def grants_of(self, calendar_id: int) -> list[Grant]:
        """A calendar's grants, oldest first."""

    @abstractmethod
    async def grants_to(self, user_id: int, states: Sequence[str]) -> list[tuple[Grant, Calendar]]:
        """The grants to a user in these states (not those to everyone), with their calendars."""

    @abstractmethod
    async def grants_on(self, calendar_id: int, user_id: int) -> list[Grant]:
        """The grants of a calendar that name this user or everyone."""

    # imports -----------------------------------------------------------------------------

    @abstractmethod
    async def get_import(self, import_id: int) -> ImportJob | None: ...

    @abstractmethod
    async def list_imports(
        self, where: ImportFilter, *, offset: int = 0, limit: int = 30
    ) -> tuple[list[ImportJob], int]:
        """A page of imports, newest first, and how many match in all."""

    @abstractmethod
    async def import_items(
        self, import_id: int, *, action: str | None = None, offset: int = 0, limit: int | None = None
    ) -> tuple[list[ImportItem], int]:
        """A page of what an import wrote (in write order), and how many in all."""

    @abstractmethod
    async def import_calendars(self, import_id: int) -> list[int]:
        """The calendars an import wrote into (by their ids)."""

    @abstractmethod
    async def create_import(self, job: NewImport, upload: AsyncIterable[bytes] | None = None) -> ImportJob:
        """Record an import (queued, or in progress for a door that runs it at once), with the
        file a queued one waits with, given in pieces (in the same transaction)."""

    @abstractmethod
    async def update_import(self, import_id: int, **changes: Any) -> ImportJob:
        """Set fields of an import (status, progress, format, total, discarded, errors,
        warnings, message); a finished status stamps finished_at."""

    @abstractmethod
    async def save_upload(self, import_id: int, pieces: AsyncIterable[bytes]) -> None:
        """Keep a queued import's file, given in pieces, until it runs (any process may run it)."""

    @abstractmethod
    def upload_pieces(self, import_id: int) -> AsyncIterator[bytes]:
        """A queued import's file in the pieces it was kept in, read one at a time; none when
        it is not kept (an empty file is one empty piece)."""

    @abstractmethod
    async def drop_upload(self, import_id: int) -> None: ...

    @abstractmethod
    async def claim_import(self, runner: str, lease_until: int) -> ImportJob | None:
        """Take the oldest queued import (now in progress, leased to ``runner``), or None.
        Of processes claiming at once, each job goes to exactly one."""

    @abstractmethod
    async def claim_abandoned(
        self, runner: str, lease_until: int, now: int, *, of: str | None = None
    ) -> ImportJob | None:
        """Take over an import in progress whose lease lapsed before ``now`` (or that ``of``,
        this runner's earlier life, held), for rolling it back; None when there is none."""

    @abstractmethod
    async def renew_lease(self, import_id: int, runner: str, lease_until: int) -> bool:
        """Extend a lease; False when the runner no longer holds it (another took it over)."""

    @abstractmethod
    async def uid_etags(self, calendar_id: int, uids: Sequence[str]) -> dict[str, str]:
        """The ETag of each of these UIDs that the calendar holds (for an import's preview)."""

    @abstractmethod
    async def import_batch(
        self, import_id: int, target: ImportTarget, writes: Sequence[ObjectWrite], progress: int
    ) -> tuple[int, int, int]:
        """Write one batch of an import in progress (else Gone) in one transaction: find
        or make the target calendar (recording one it made), match by UID, create or replace,
        record what was replaced, bump the sync revision once, add to the import's counts and
        set its progress.
        Returns (created, updated, unchanged)."""

    @abstractmethod
    async def undo_import(
        self,
        import_id: int,
        restores: AsyncIterable[Sequence[tuple[int, ObjectWrite]]],
        *,
        expect: str = JobStatus.COMPLETE,
        status: str = JobStatus.UNDONE,
        message: str | None = None,
        by: int | None = None,
    ) -> ImportJob:
        """In one transaction: delete what the import created (edited since or not), put back
        ``restores`` (calendar id, the replaced version; a page at a time, one page in memory),
        remove the calendars it made that hold nothing else, and set its status. Gone unless its
        status was ``expect`` (``complete`` for an undo, ``in_progress`` for the rollback of a
        failed import; to ``queued`` again, it is as if it had never run: no counts, no items, no
        runner).

        It never stops half-way: a version that cannot be put back (its UID is now held by
        another object, or its calendar is gone) is left out and listed in the job's warnings."""

    # meetings ----------------------------------------------------------------------------

    @abstractmethod
    async def users_by_email(self, emails: Sequence[str]) -> dict[str, User]:
        """The users with these e-mail addresses, by their address in lower case."""

    @abstractmethod
    async def default_calendars(self, owner_ids: Sequence[int]) -> dict[int, Calendar]:
        """These users' default calendars (without their object counts), by owner."""

    @abstractmethod
    async def scheduled_copies(self, owner_ids: Sequence[int], uid: str) -> list[tuple[int, CalendarObject]]:
        """The objects with this UID in any calendar these users own (a meeting's copies), each
        with its owner's id."""

    @abstractmethod
    async def write_scheduled(
        self,
        steps: Sequence[ObjectPut | ObjectDelete],
        inbox: Sequence[InboxItem] = (),
        expire_before: str = "",
        mail: Sequence[Mail] = (),
    ) -> list[tuple[CalendarObject | None, bool]]:
        """In one transaction: every write and deletion (as ``put_object`` and ``delete_object``
        do them), the inbox items, after dropping their recipients' items delivered before
        ``expire_before`` (an ISO time), and the mail queued (one already queued with the same
        ``dedupe`` is not queued again). Per step, the object written (None for a deletion) and
        whether it was created (for a deletion: whether there was one). A PreconditionFailed
        says which step failed (its ``step``); nothing is then written."""

    @abstractmethod
    async def inbox(self, user_id: int, since: str = "") -> list[InboxItem]:
        """A user's scheduling inbox (items delivered from ``since`` on), oldest first."""

    @abstractmethod
    async def inbox_item(self, user_id: int, name: str, since: str = "") -> InboxItem | None: ...

    @abstractmethod
    async def delete_inbox_item(self, user_id: int, name: str) -> bool: ...

    @abstractmethod
    async def imip_token(self, organizer_id: int, attendee: str, uid: str, fresh: str) -> str:
        """The reply token of (organizer, attendee, meeting): the one it has, else ``fresh``."""

    @abstractmethod
    async def claim_mail(self, runner: str, now: int, lease_until: int) -> Mail | None:
        """The oldest queued mail due by ``now`` that no one holds, leased to ``runner`` until
        ``lease_until`` (one process across nodes gets it), its attempts counted; or None."""

    @abstractmethod
    async def mail_done(self, mail_id: int, runner: str, error: str | None, retry_at: int | None) -> None:
        """A claimed mail sent (``error`` None), to be tried again at ``retry_at``, or given up."""

    @abstractmethod
    async def imip_token_of(self, token: str) -> tuple[int, str, str] | None:
        """Whose a reply token is: (organizer id, attendee address, meeting UID), or None."""
