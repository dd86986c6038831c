"""CalendarService: the one path from every door to calendars and to many of their objects at
once (listings, queries, changes, exports, free/busy, feeds); one object at a time is
``server/services/objects.py``'s.

Every read and write names the user doing it and is checked against the access rule
(server/services/access.py: the owner, or the level of the user's grants; a calendar the user
may not see and an unknown one look the same: NotFound; ``need`` is the check the other services
ask too). ``object_write`` turns a parsed resource into the store write that records who made it.
"""

from __future__ import annotations

import asyncio
import re
import uuid as uuid_module
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime, tzinfo
from typing import Any

import webcolors

from protocol import formats
from protocol.events import valid_zone, zone_named
from protocol.formats import ExportItem, GroupInfo
from protocol.ical.busy import BusyPeriod, busy_by_calendar, merged
from protocol.ical.resources import Resource
from protocol.ical.values import MAX_EPOCH, MIN_EPOCH, epoch, etag_of, href_for_uid
from protocol.ical.windows import in_window
from server.services.access import AccessService, Level, State
from server.services.errors import Forbidden, Invalid, NameTaken, NotFound
from server.services.feeds import Feeds
from storage import base
from storage.model import (
    ALL_COMPONENTS,
    Calendar,
    CalendarObject,
    Change,
    Detail,
    Grant,
    ImportTarget,
    NewCalendar,
    ObjectWrite,
    User,
)

DEFAULT_SLUG = "calendar"
#: a calendar's name and description are this long at the most (characters)
MAX_NAME, MAX_DESCRIPTION = 255, 16_384
#: instances of one series a free/busy answer looks at, at most
MAX_BUSY_INSTANCES = 10_000
#: a group's settings for its members (Timeslot's): what update takes, and the prop each is kept in
POLICY = {"public": "public", "members_can_post": "membersCanPost", "members_can_invite": "membersCanInvite"}
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_COLOR = re.compile(r"^#?([0-9a-fA-F]{6}|[0-9a-fA-F]{8})$")


#: a calendar's setting (in its props) that its events never make its owner busy to others
#: (RFC 6638 ``schedule-calendar-transp``)
TRANSPARENT = "transparent"


def object_write(
    resource: Resource, href: str | None = None, by: int | None = None, schedule_tag: str | None = None
) -> ObjectWrite:
    """What the store needs to keep a parsed resource."""
    return ObjectWrite(
        href=href or href_for_uid(resource.uid),
        uid=resource.uid,
        etag=etag_of(resource.text),
        component=resource.component,
        ical=resource.text,
        start_utc=resource.start,
        end_utc=resource.end,
        recurring=resource.recurring,
        summary=resource.summary,
        klass=resource.klass,
        spans=tuple(resource.spans),
        by=by,
        schedule_tag=schedule_tag,
    )


def window(start: int | None, end: int | None) -> tuple[int, int]:
    """A query range with unbounded ends made finite."""
    low = max(start, MIN_EPOCH) if start is not None else MIN_EPOCH
    high = min(end, MAX_EPOCH) if end is not None else MAX_EPOCH
    return low, high


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:40] or "calendar"


def is_uuid(value: str) -> bool:
    return bool(_UUID.match(value))


def normalize_color(value: str | None) -> str | None:
    """``#RRGGBB`` (or ``#RRGGBBAA``) from ``RRGGBB``, ``#rrggbb`` or a CSS colour name; raises Invalid."""
    if value in (None, ""):
        return None
    match = _COLOR.match(str(value))
    if match:
        return "#" + match.group(1).upper()
    try:
        return webcolors.name_to_hex(str(value).strip().lower()).upper()
    except ValueError:
        raise Invalid(f"color {value!r} is not a hex colour like 3a87ad or a CSS colour name", field="color") from None


def checked_name(name: str) -> str:
    """A calendar's name without surrounding space; Invalid when empty or too long."""
    name = name.strip()
    if not name:
        raise Invalid("a calendar needs a name", field="name")
    if len(name) > MAX_NAME:
        raise Invalid(f"a calendar's name is {MAX_NAME} characters at most", field="name")
    return name


def checked_zone(timezone: object) -> None:
    """A calendar's time zone is one the server knows (or none); Invalid otherwise."""
    if timezone and not valid_zone(str(timezone)):
        raise Invalid(f"timezone {timezone!r} is not a known time zone", field="timezone")


def checked_description(description: object) -> None:
    if isinstance(description, str) and len(description) > MAX_DESCRIPTION:
        raise Invalid(f"a calendar's description is {MAX_DESCRIPTION} characters at most", field="description")


def group_info(calendar: Calendar) -> GroupInfo:
    return GroupInfo(
        uuid=calendar.uuid,
        name=calendar.name,
        description=calendar.description,
        public=bool(calendar.props.get("public")),
    )


def as_shared(calendar: Calendar, grant: Grant) -> Calendar:
    """A calendar as its grantee's home shows it: under the grant's name (its path), with the
    grantee's own display name and colour, and the level the grant gives them (``seen_by``)."""
    return replace(
        calendar, slug=grant.slug or calendar.slug, name=grant.props.get("name") or calendar.name,
        color=grant.props.get("color") or calendar.color, seen_by=(grant.grantee_id or 0, grant.level),
    )  # fmt: skip


class CalendarService(Feeds):
    def __init__(self, store: base.Store, access: AccessService) -> None:
        self.store = store
        self.access = access
        #: who a name is that no user here has yet (the account directory's ``lookup``)
        self.elsewhere: Callable[[str], Awaitable[User | None]] | None = None

    async def need(self, user: User, calendars: Sequence[Calendar], level: Level) -> None:
        """Refuse unless the user has ``level`` on every one of the calendars (NotFound for one
        they may not see, Forbidden for one they may see but not so). An owner may do
        everything, and a calendar this service found for the user carries the level the user
        had then (``seen_by``): neither needs a lookup. A refusal is always looked up afresh."""
        for calendar in calendars:
            if calendar.owner_id == user.id:
                continue
            seen = calendar.seen_by
            if seen is not None and seen[0] == user.id and Level.grantable(seen[1]) >= level:
                continue
            await self.access.require(user, calendar, level)

    async def _seen(self, user: User, calendar: Calendar, level: Level) -> Calendar:
        """The calendar, if the user has ``level`` on it, carrying their level."""
        if calendar.owner_id == user.id:
            return calendar
        found = await self.access.require(user, calendar, level)
        return replace(calendar, seen_by=(user.id, found.label))

    async def level(self, user: User, calendar: Calendar) -> Level:
        return await self.access.level(user, calendar)

    # calendars ---------------------------------------------------------------------------

    def new_calendar(
        self,
        user: User,
        name: str,
        *,
        description: str | None = None,
        color: str | None = None,
        timezone: str | None = None,
        public: bool = False,
        is_default: bool = False,
        slug: str | None = None,
        components: str | None = None,
        props: dict[str, object] | None = None,
    ) -> NewCalendar:
        name = checked_name(name)
        checked_description(description)
        checked_zone(timezone)
        return NewCalendar(
            uuid=str(uuid_module.uuid4()),
            owner_id=user.id,
            slug=slug or slugify(name),
            name=name,
            description=description,
            color=normalize_color(color),
            timezone=timezone,
            is_default=is_default,
            components=components or ALL_COMPONENTS,
            props={**(props or {}), **({"public": True} if public else {})},
        )

    async def create(self, user: User, name: str, **options: Any) -> Calendar:
        """A calendar (its slug made unique among the user's); ``options`` as ``new_calendar``
        takes them, and a group's settings for its members (``POLICY``)."""
        policy = {key: options.pop(key) for key in POLICY if key in options}
        made = await self.store.create_calendar(self.new_calendar(user, name, **options))
        return await self.update(user, made.uuid, **policy) if policy else made

    async def create_at(self, user: User, slug: str, name: str, **options: Any) -> Calendar:
        """A calendar with exactly this slug (the name in its CalDAV path or WCAP calid);
        NameTaken when the user has one, also when another request made it meanwhile."""
        if await self.find(user, slug) is not None:
            raise NameTaken(f"a calendar named {slug} exists")
        made = await self.create(user, name, slug=slug, **options)
        if made.slug != slug:  # lost a race for the name: give it back
            await self.store.delete_calendar(made.id)
            raise NameTaken(f"a calendar named {slug} exists")
        return made

    async def find(self, user: User, slug: str) -> Calendar | None:
        """The calendar in the user's home with this slug: theirs, or one shared with them
        (accepted) under that name."""
        own = await self.store.get_calendar_by_slug(user.id, slug)
        if own is not None:  # an owner's lookup is the one it was before sharing
            return own
        return await self.find_shared(user, slug)

    async def find_shared(self, user: User, slug: str) -> Calendar | None:
        """The calendar shared with the user (accepted) that their home shows under this slug."""
        shared = await self.store.shared_calendar(user.id, slug)
        return as_shared(*shared) if shared else None

    async def shared(self, user: User) -> list[Calendar]:
        """The calendars others share with the user that they accepted, as their home shows them."""
        return [as_shared(c, g) for g, c in await self.store.grants_to(user.id, [State.ACTIVE])]

    async def managed(self, user: User) -> list[Calendar]:
        """The calendars the user owns or administers."""
        shared = await self.shared(user)
        return await self.of(user) + [c for c in shared if c.seen_by and c.seen_by[1] == Level.ADMIN.label]

    async def home(self, user: User) -> list[Calendar]:
        """The user's calendars, then those shared with them."""
        return await self.of(user) + await self.shared(user)

    async def quota(self, user: User, calendar: Calendar) -> tuple[int, int | None]:
        """Bytes of calendar data the calendar holds, and what its store has left (None: unknown)."""
        await self.need(user, [calendar], Level.FREEBUSY)
        return await self.store.calendar_size(calendar.id), await self.store.free_bytes()

    async def create_default(self, user: User) -> Calendar:
        return await self.store.create_calendar(self.new_calendar(user, "Calendar", is_default=True, slug=DEFAULT_SLUG))

    async def default(self, user: User) -> Calendar:
        """The user's default calendar (made again if it was lost)."""
        for calendar in await self.store.list_calendars(user.id):
            if calendar.is_default:
                return calendar
        return await self.create_default(user)

    async def of(self, user: User) -> list[Calendar]:
        return await self.store.list_calendars(user.id)

    async def get(self, user: User, uuid: str, level: Level = Level.FREEBUSY) -> Calendar:
        """The calendar with this uuid, if the user has ``level`` on it; NotFound for unknown
        ones and those the user may not see alike."""
        calendar = await self.store.get_calendar_by_uuid(uuid) if is_uuid(uuid) else None
        if calendar is None:
            raise NotFound("calendar not found", kind="calendar")
        return await self._seen(user, calendar, level)

    async def update(self, user: User, uuid: str, **changes: object) -> Calendar:
        """Rename or restyle a calendar (its owner or an admin)."""
        calendar = await self.get(user, uuid, Level.ADMIN)
        if "color" in changes:
            changes["color"] = normalize_color(str(changes["color"]) if changes["color"] is not None else None)
        if "name" in changes:
            changes["name"] = checked_name(str(changes["name"] or ""))
        if "description" in changes:
            checked_description(changes["description"])
        checked_zone(changes.get("timezone"))
        policy = {key: bool(changes.pop(name)) for name, key in POLICY.items() if name in changes}
        if policy:  # the flags, and its members' grants following them, in one transaction
            await self.access.follow_flags(user, replace(calendar, props={**calendar.props, **policy}), changes)
            updated = await self.store.get_calendar(calendar.id)
        else:
            updated = await self.store.update_calendar(calendar.id, **changes)
        if updated is None:
            raise NotFound("calendar not found", kind="calendar")
        return updated

    async def delete(self, user: User, uuid: str) -> Calendar:
        calendar = await self.get(user, uuid, Level.OWNER)
        if calendar.is_default:
            raise Invalid("the default calendar cannot be deleted", field="group")
        await self.store.delete_calendar(calendar.id)
        return calendar

    async def owner_of(self, login: str, *, by_email: bool = False) -> User | None:
        """The user with this username (or, ``by_email``, this e-mail address), exactly; where
        accounts come from a directory, also one who has not signed in yet (``elsewhere``)."""
        user = await self.store.find_user(login)
        if user is None and self.elsewhere is not None:
            user = await self.elsewhere(login)
        if user is None:
            return None
        name = (user.email or "") if by_email else user.username
        return user if name.lower() == login.lower() else None

    async def resolve(
        self, user: User, owner: str, slug: str | None, *, by_email: bool = False, level: Level = Level.FREEBUSY
    ) -> Calendar:
        """The calendar ``slug`` (None: the default one) of the user ``owner`` names: NotFound
        when there is none, Forbidden when the user has less than ``level`` on it (WCAP tells
        the two apart: errno 29 and 28)."""
        calendar = await self._named(owner, slug, by_email)
        if calendar is None:
            raise NotFound("calendar not found", kind="calendar")
        if calendar.owner_id == user.id:
            return calendar
        found = await self.level(user, calendar)
        if found < level:
            raise Forbidden("you have no access to this calendar" if level == Level.FREEBUSY else
                            f"this needs {level.label} access to the calendar")  # fmt: skip
        return replace(calendar, seen_by=(user.id, found.label))

    async def _named(self, owner: str, slug: str | None, by_email: bool) -> Calendar | None:
        """The calendar ``slug`` (None: the default one) of the user ``owner`` names, whoever may see it."""
        found = await self.owner_of(owner, by_email=by_email)
        if found is None:
            return None
        if slug is None:
            return next((c for c in await self.store.list_calendars(found.id) if c.is_default), None)
        return await self.store.get_calendar_by_slug(found.id, slug)

    async def invitation(self, user: User, owner: str, slug: str | None, *, by_email: bool = False) -> Grant | None:
        """The user's unanswered (or declined) invitation to the calendar ``resolve`` would name."""
        calendar = await self._named(owner, slug, by_email)
        grant = await self.access.grant_to(user, calendar) if calendar else None
        return grant if grant is not None and grant.state in (State.INVITED, State.REFUSED) else None

    def import_target(self, user: User, name: str) -> ImportTarget:
        """The user's calendar called ``name``, made by the import if it does not exist."""
        return ImportTarget(owner_id=user.id, create=self.new_calendar(user, name))

    # many objects ------------------------------------------------------------------------

    async def objects_at(self, user: User, calendar: Calendar, hrefs: Sequence[str]) -> list[CalendarObject]:
        """The objects of a calendar with these hrefs (missing ones are left out)."""
        await self.need(user, [calendar], Level.READ)
        return await self.store.get_objects(calendar.id, hrefs)

    async def instance_spans(
        self, user: User, calendar: Calendar, start: datetime, end: datetime
    ) -> dict[int, list[tuple[int, int, bool]]]:
        """The time-range index's instances of a calendar's objects in [start, end), by object
        id: (start, end, exact) in epoch seconds."""
        await self.need(user, [calendar], Level.READ)
        return await self.store.spans_in_range([calendar.id], epoch(start), epoch(end))

    async def object_pages(
        self, user: User, calendar: Calendar, detail: Detail = Detail.TEXT
    ) -> AsyncIterator[list[CalendarObject]]:
        """Every object of a calendar, a page at a time, as much of each as ``detail`` says."""
        await self.need(user, [calendar], Level.READ)
        async for page in self.store.object_pages([calendar.id], detail=detail):
            yield page

    async def changes(
        self,
        user: User,
        calendar: Calendar,
        revision: int,
        after_href: str = "",
        *,
        limit: int | None = None,
        detail: Detail = Detail.TEXT,
    ) -> list[tuple[Change, CalendarObject | None]]:
        """What changed in a calendar after a sync position, each with its object (None: deleted)
        as much of it as ``detail`` says."""
        await self.need(user, [calendar], Level.READ)
        return await self.store.changes_since(calendar.id, revision, after_href, limit=limit, detail=detail)

    async def modified(
        self, user: User, calendar: Calendar, since: str | None, until: str | None
    ) -> list[CalendarObject]:
        """Objects last written in [since, until] (ISO times; None is unbounded)."""
        await self.need(user, [calendar], Level.READ)
        return await self.store.modified_objects([calendar.id], since, until)

    async def deleted(self, user: User, calendar: Calendar, since: str | None, until: str | None) -> list[Change]:
        """Tombstones of objects deleted from a calendar in [since, until]."""
        await self.need(user, [calendar], Level.READ)
        return await self.store.deleted_since([calendar.id], since, until)

    async def list_objects(
        self,
        user: User,
        calendars: Sequence[Calendar],
        *,
        start: int | None = None,
        end: int | None = None,
        after_id: int = 0,
        limit: int | None = None,
    ) -> list[CalendarObject]:
        """Objects by id; with ``start``/``end`` only those with an instance in the range."""
        await self.need(user, calendars, Level.READ)
        return await self._objects(calendars, start, end, after_id=after_id, limit=limit)

    async def _objects(
        self,
        calendars: Sequence[Calendar],
        start: int | None,
        end: int | None,
        *,
        after_id: int = 0,
        limit: int | None = None,
    ) -> list[CalendarObject]:
        """list_objects, for calendars already checked.

        The store's span index answers exactly for most objects (one span per instance of a
        series); hits on inexact spans (floating times, a series' tail past the indexed
        horizon) are checked on the text, off the event loop.
        """
        ids = [c.id for c in calendars]
        if start is None and end is None:
            return await self.store.list_objects(ids, after_id=after_id, limit=limit)
        low, high = window(start, end)
        hits = await self.store.objects_in_range(ids, low, high, after_id=after_id, limit=limit)
        found = [o for o, _ in hits]
        unsure = [o for o, exact in hits if not exact]
        if not unsure:
            return found
        misses = await asyncio.to_thread(
            lambda: {o.id for o in unsure if not in_window(o.ical, o.start_utc, o.end_utc, o.recurring, low, high)}
        )
        return [o for o in found if o.id not in misses]

    async def busy(
        self, user: User, calendars: Sequence[Calendar], start: datetime, end: datetime, zone: tzinfo | None = None
    ) -> list[BusyPeriod]:
        """The busy periods of the calendars' opaque, not cancelled event instances in [start,
        end), each with its FBTYPE, merged (``protocol.ical.busy``). Floating times and dates
        are read in ``zone`` (the asker's), else in each calendar's time zone, else in UTC."""
        await self.need(user, calendars, Level.FREEBUSY)
        return await self._busy(calendars, start, end, zone)

    async def busy_of(
        self,
        asker: User,
        owners: Sequence[User],
        start: datetime,
        end: datetime,
        *,
        everyone: bool = False,
        besides: str | None = None,
    ) -> dict[int, list[BusyPeriod] | None]:
        """Each owner's busy periods in [start, end) (by their id) from the calendars they own
        that ``asker`` may see busy times in: all of them for themselves or when ``everyone``
        (the operator's ``[scheduling] free_busy``), else those their grants reach (freebusy or
        more); None for an owner with none. Transparent calendars (RFC 6638
        ``schedule-calendar-transp``) never count; ``besides``: a UID whose objects do not (a
        meeting being moved). Every owner's calendars are read from the index at once."""
        seen: dict[int, list[Calendar]] = {owner.id: [] for owner in owners}
        for calendar in await self.store.calendars_of(list(seen)):
            if calendar.props.get(TRANSPARENT):
                continue
            if asker.id == calendar.owner_id or everyone or await self.level(asker, calendar) >= Level.FREEBUSY:
                seen[calendar.owner_id].append(calendar)
        calendars = [c for owned in seen.values() for c in owned]
        found = await self._busy_by_calendar(calendars, start, end, besides=besides) if calendars else {}
        return {
            owner: merged(p for c in owned for p in found.get(c.id, ())) if owned else None
            for owner, owned in seen.items()
        }

    async def _busy(
        self, calendars: Sequence[Calendar], start: datetime, end: datetime, zone: tzinfo | None = None
    ) -> list[BusyPeriod]:
        found = await self._busy_by_calendar(calendars, start, end, zone)
        return merged(p for periods in found.values() for p in periods)

    async def _busy_by_calendar(
        self,
        calendars: Sequence[Calendar],
        start: datetime,
        end: datetime,
        zone: tzinfo | None = None,
        besides: str | None = None,
    ) -> dict[int, list[BusyPeriod]]:
        """Each calendar's busy periods, not merged: the events with an index span in the range,
        all calendars' read at once with their spans (one whose spans are loose, floating or past
        the index's horizon, and has no instance in the range, gives no period), in a thread."""
        places = {c.id: zone or zone_named(c.timezone) for c in calendars}
        found = await self.store.spanned_in_range(list(places), epoch(start), epoch(end))
        return (
            await asyncio.to_thread(busy_by_calendar, found, places, start, end, besides, MAX_BUSY_INSTANCES)
            if found
            else {}
        )

    async def export_items(self, user: User, calendars: Sequence[Calendar]) -> AsyncIterator[ExportItem]:
        """Every object of the calendars, each with its group, streamed from the store."""
        await self.need(user, calendars, Level.READ)
        async for item in self._export_items(calendars):
            yield item

    async def _export_items(self, calendars: Sequence[Calendar]) -> AsyncIterator[ExportItem]:
        groups = {c.id: group_info(c) for c in calendars}
        async for found in self.store.iter_objects(list(groups)):
            yield ExportItem(found.ical, groups[found.calendar_id])

    async def export(
        self,
        user: User,
        calendars: Sequence[Calendar],
        fmt: str,
        *,
        timezone: str | None = None,
        flavor: str = "outlook",
    ) -> AsyncIterator[str]:
        """The calendars as one file of ``fmt`` (ics, google, outlook, timeslot), in chunks.
        One calendar's name, description (and for ics the zone asked for) go into the file."""
        await self.need(user, calendars, Level.READ)
        async for chunk in self._export(calendars, fmt, timezone=timezone, flavor=flavor):
            yield chunk

    async def _export(
        self, calendars: Sequence[Calendar], fmt: str, *, timezone: str | None = None, flavor: str = "outlook"
    ) -> AsyncIterator[str]:
        """export, of calendars already checked."""
        if timezone is not None and not valid_zone(timezone):
            raise Invalid(f"timezone {timezone!r} is not a known time zone", field="timezone")
        single = calendars[0] if len(calendars) == 1 else None
        options: dict[str, Any] = {}
        if fmt in ("ics", "google"):
            # X-WR-TIMEZONE only on request: it would re-zone floating times
            options = {"name": single and single.name, "description": single and single.description}
            options["timezone"] = timezone
        elif fmt == "outlook":
            if flavor not in ("outlook", "timeslot"):
                raise Invalid("flavor must be outlook or timeslot", field="flavor")
            options = {"flavor": flavor, "timezone": timezone}
        async for chunk in self._written(formats.writer(fmt, **options), calendars):
            yield chunk

    async def _written(self, writer: formats.Writer, calendars: Sequence[Calendar]) -> AsyncIterator[str]:
        """The calendars' objects through a writer, in chunks of 200 (written in a thread: an
        Outlook CSV expands recurring rows there)."""
        yield writer.begin()
        batch: list[ExportItem] = []
        async for item in self._export_items(calendars):
            batch.append(item)
            if len(batch) >= 200:
                yield await asyncio.to_thread(writer.write, batch)
                batch = []
        yield await asyncio.to_thread(writer.write, batch) + writer.end()
