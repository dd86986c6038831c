"""ObjectService: one calendar object at a time, from every door.

Read it (by id, href or UID), create or replace it (a CalDAV PUT's text read by the imports'
rules, or a resource a door built), edit it (the one edit path: read, change, check, write over
the version read), move or copy it, delete it. Every call asks the access rule first (through
``CalendarService.need``); every write records who made it. Many objects at once (listings,
queries, exports, free/busy) are ``CalendarService``'s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from icalendar import Calendar as ICalendar
from icalendar import Component, Event, Todo

from protocol import itip
from protocol.ical.repairs import component_problems
from protocol.ical.resources import Resource, resource_from_calendar
from protocol.ical.values import href_for_uid, parse_resource
from server.config import Config
from server.services.access import Level
from server.services.calendars import CalendarService, object_write
from server.services.errors import Invalid, NameTaken, NotFound
from server.services.imports.files import FileReader, ImportRequest, Upload
from server.services.scheduling import Scheduled, SchedulingService
from storage.base import Store
from storage.errors import REPLACES_UID, Conflict, Gone, PreconditionFailed, StoreUnavailable
from storage.model import Calendar, CalendarObject, Detail, InboxItem, Mail, ObjectDelete, ObjectPut, User

#: a change to an object: given its parsed text, changes it in place and returns the component it
#: changed, which is checked before anything is written (runs in a thread; ValueError refuses it)
Change = Callable[[ICalendar], Component]
#: how often a meeting's write is planned again when a copy it delivers to changed meanwhile
ATTEMPTS = 3
#: what an invitation may be answered (PARTSTAT)
ANSWERS = ("ACCEPTED", "TENTATIVE", "DECLINED")


class Saved(NamedTuple):
    """An object written: the stored object, whether it was created, and whether the server
    changed what was sent (a meeting's answers and SCHEDULE-STATUS: the text sent is not it)."""

    object: CalendarObject
    created: bool
    rewritten: bool = False


@dataclass(frozen=True, slots=True)
class Scheduling:
    """What a write asks of scheduling (RFC 6638 3.2): the Schedule-Tag the stored version must
    have (``If-Schedule-Tag-Match``), and whether an attendee's answer is sent (``Schedule-Reply``)."""

    tag_match: str | None = None
    reply: bool = True


PLAIN = Scheduling()


class ObjectService:
    """One calendar object at a time, for every door (see the module's docstring)."""

    def __init__(
        self,
        store: Store,
        calendars: CalendarService,
        scheduling: SchedulingService,
        reader: FileReader,
        config: Config,
    ) -> None:
        self.store = store
        self.calendars = calendars
        self.scheduling = scheduling
        self.reader = reader
        self.config = config

    async def get(self, user: User, object_id: int) -> tuple[CalendarObject, Calendar]:
        """An object by its id (REST's slot id) and its calendar, if the user may read it."""
        found = await self.store.get_object_by_id(object_id)
        calendar = await self.store.get_calendar(found.calendar_id) if found else None
        if (
            found is None
            or calendar is None
            or (calendar.owner_id != user.id and await self.calendars.level(user, calendar) < Level.READ)
        ):
            raise NotFound("event not found", kind="object")
        return found, calendar

    async def find(
        self,
        user: User,
        calendar: Calendar,
        *,
        href: str | None = None,
        uid: str | None = None,
        detail: Detail = Detail.TEXT,
    ) -> CalendarObject | None:
        """The object of a calendar with this href or UID, as much of it as ``detail`` says."""
        await self.calendars.need(user, [calendar], Level.READ)
        return await self.store.get_object(calendar.id, href=href, uid=uid, detail=detail)

    async def find_at(
        self, user: User, slug: str, href: str, *, detail: Detail = Detail.TEXT
    ) -> tuple[Calendar, CalendarObject | None] | None:
        """The calendar of the user's home with this slug (``CalendarService.find``) and its
        object at ``href`` (``find``); for one of their own, both in one read."""
        own = await self.store.calendar_with_object(user.id, slug, href, detail=detail)
        if own is not None:  # an owner may read everything of theirs
            return own
        calendar = await self.calendars.find_shared(user, slug)
        return None if calendar is None else (calendar, await self.find(user, calendar, href=href, detail=detail))

    async def put(
        self,
        user: User,
        calendar: Calendar,
        resource: Resource,
        *,
        href: str | None = None,
        if_etag: str | None = None,
        create_only: bool = False,
        scheduling: Scheduling = PLAIN,
    ) -> Saved:
        """Create or replace one resource in a calendar, with what it delivers when it is a
        meeting (see the scheduling service; in the same transaction). Invalid when its UID is
        another object's (``replaces_uid``: the href holds another UID) or an attendee changes
        what is the organizer's (``attendee_change``), PreconditionFailed when ``if_etag`` is
        not the stored version's, ``create_only`` finds one, or the Schedule-Tag is not
        ``scheduling.tag_match``."""
        await self.calendars.need(user, [calendar], Level.READ_WRITE)
        href = href or href_for_uid(resource.uid)
        for _ in range(ATTEMPTS):
            old = await self.store.get_object(calendar.id, href=href)
            if scheduling.tag_match is not None and (old is None or old.schedule_tag != scheduling.tag_match):
                raise PreconditionFailed("the Schedule-Tag changed")
            plan = await self.scheduling.on_put(user, calendar, old, resource, reply=scheduling.reply)
            if plan is None and (old is None or old.schedule_tag is None):
                saved, created = await self._write(
                    calendar, [ObjectPut(calendar.id, object_write(resource, href, user.id), if_etag, create_only)], ()
                )
                return Saved(saved, created)
            write = object_write(
                plan.resource if plan else resource, href, user.id, plan.schedule_tag if plan else None
            )
            # the write replaces the version the plan was made from, or fails and is planned again
            own = if_etag is not None or create_only
            condition = if_etag if own else (old.etag if old is not None else None)
            first = ObjectPut(calendar.id, write, condition, create_only or (not own and old is None))
            try:
                saved, created = await self._write(
                    calendar,
                    [first, *(plan.steps if plan else ())],
                    plan.inbox if plan else (),
                    plan.mail if plan else (),
                )
            except PreconditionFailed as failed:
                if own and failed.step == 0:
                    raise
                continue
            return Saved(saved, created, plan.rewritten if plan else False)
        raise StoreUnavailable("the meeting kept changing while it was written: try again")

    async def _write(
        self,
        calendar: Calendar,
        steps: Sequence[ObjectPut | ObjectDelete],
        inbox: Sequence[InboxItem],
        mail: Sequence[Mail] = (),
    ) -> tuple[CalendarObject, bool]:
        """The first step's object written (with the rest, in one transaction), and whether it was
        created; a UID another object holds is Invalid."""
        first = steps[0]
        assert isinstance(first, ObjectPut)
        try:
            if len(steps) == 1 and not inbox and not mail:
                return await self.store.put_object(
                    calendar.id, first.write, if_etag=first.if_etag, create_only=first.create_only
                )
            found, created = (await self.store.write_scheduled(steps, inbox, self.scheduling.expired(), mail))[0]
        except Conflict as conflict:
            if conflict.message == REPLACES_UID:
                message = f"{first.write.href} holds another UID than {first.write.uid}: a write keeps an object's UID"
                raise Invalid(message, field="uid", code="replaces_uid") from None
            raise Invalid(f"UID {first.write.uid} is already used in this calendar", field="uid") from None
        assert found is not None
        return found, created

    async def put_text(
        self,
        user: User,
        calendar: Calendar,
        data: bytes,
        href: str,
        *,
        if_etag: str | None = None,
        create_only: bool = False,
        scheduling: Scheduling = PLAIN,
    ) -> Saved:
        """One calendar object sent as iCalendar text (a CalDAV PUT), read by the imports' rules
        (their repairs included) and written at ``href``. Refused with Invalid: ``invalid_data``
        (or BadEncoding), ``unsupported_component`` (none the calendar takes), ``one_resource``
        (several UIDs, or another kind of component beside it); NameTaken (its UID is another
        href's), PreconditionFailed."""
        await self.calendars.need(user, [calendar], Level.READ_WRITE)  # before any work
        request = ImportRequest(door="caldav", calendar=calendar, format="ics")
        try:
            result = await asyncio.to_thread(self.reader.read_whole, Upload(data), request)
        except Invalid as error:
            raise Invalid(error.message, field="data", code="invalid_data") from None
        if result.discarded and not result.resources:  # only a VFREEBUSY, say
            raise Invalid("no component a calendar holds", field="data", code="unsupported_component")
        if result.discarded:  # a VFREEBUSY beside the event, say: kept, it would not be what was sent
            skipped = next((w.error for w in result.warnings if "skipped" in w.error), "a component")
            raise Invalid(f"one kind of component per calendar object: {skipped}", field="data", code="one_resource")
        if result.errors:
            raise Invalid(result.errors[0].error, field="data", code="invalid_data")
        if len(result.resources) != 1:
            raise Invalid("one UID per calendar object resource", field="data", code="one_resource")
        resource = result.resources[0]
        if resource.component not in calendar.components.split(","):
            raise Invalid(f"this calendar holds no {resource.component}", field="data", code="unsupported_component")
        try:
            return await self.put(
                user, calendar, resource, href=href, if_etag=if_etag, create_only=create_only, scheduling=scheduling
            )
        except Invalid as taken:  # the UID is another object's, or the href holds another UID
            if taken.field != "uid":
                raise
            if taken.code == "replaces_uid":
                raise NameTaken(taken.message, href, replacing=True) from None
            raise await self._uid_taken(calendar, resource.uid) from None

    async def edit(
        self,
        user: User,
        calendar: Calendar,
        found: CalendarObject | None,
        change: Change,
        *,
        new: tuple[str, str] | None = None,
        if_etag: str | None = None,
        scheduling: Scheduling = PLAIN,
    ) -> CalendarObject:
        """The one edit path: the object ``found`` (or, where it is None, a new one holding a
        ``new`` = (component, UID)) is parsed, changed by ``change``, checked, and written over
        the version that was read (its ETag, or the caller's ``if_etag``; a new one only if its
        UID is still free). Invalid (``invalid_data``) when the change is refused or leaves a
        component that is not valid; PreconditionFailed when the object changed meanwhile."""
        await self.calendars.need(user, [calendar], Level.READ_WRITE)

        def edited() -> Resource:
            if found is not None:
                data = parse_resource(found.ical)
            else:
                assert new is not None, "a new object needs its component and UID"
                data = ICalendar()
                fresh = Todo() if new[0] == "VTODO" else Event()
                fresh.add("UID", new[1])
                data.add_component(fresh)
            changed = change(data)
            problems = component_problems(changed)
            if problems:
                raise ValueError("; ".join(problems))
            return resource_from_calendar(data, self.config.max_instances)

        try:
            resource = await asyncio.to_thread(edited)
        except ValueError as error:
            raise Invalid(str(error), code="invalid_data") from None
        saved = await self.put(
            user, calendar, resource, href=found.href if found else None,
            if_etag=if_etag or (found.etag if found else None), create_only=found is None, scheduling=scheduling,
        )  # fmt: skip
        return saved.object

    async def answer(self, user: User, calendar: Calendar, found: CalendarObject, partstat: str) -> CalendarObject:
        """The user answers an invitation in their copy (ACCEPTED, TENTATIVE or DECLINED, for the
        whole meeting): written through the edit path, so the organizer learns it as from any
        calendar program. Invalid when it is not their invitation or not an answer."""
        me = self.scheduling.address_of(user)
        if partstat not in ANSWERS:
            raise Invalid("status is accepted, tentative or declined", field="status")

        def change(data: ICalendar) -> Component:
            parts = itip.components(data)
            if me is None or itip.organizer(data) in (None, me) or not any(me in itip.attendees(c) for c in parts):
                raise ValueError("this slot is no invitation to you")
            itip.set_answer(data, me, partstat)
            return parts[0]

        return await self.edit(user, calendar, found, change)

    async def answer_by_mail(self, token: str, senders: Sequence[str], body: bytes) -> None:
        """An attendee's answer by e-mail (iMIP in), written with what it delivers (the
        organizer's copy and inbox, the other attendees' copies). Invalid when it is refused
        (see ``SchedulingService.mailed_reply``)."""
        await self._answered_from_outside(lambda: self.scheduling.mailed_reply(token, senders, body))

    async def answer_by_link(self, token: str, partstat: str) -> None:
        """An answer on the RSVP page of a reply token (ACCEPTED, TENTATIVE or DECLINED), written
        as an answer by mail would be."""
        if partstat not in ANSWERS:
            raise Invalid("the answer is accept, maybe or decline", field="answer")
        await self._answered_from_outside(lambda: self.scheduling.rsvp_answer(token, partstat))

    async def _answered_from_outside(self, planned: Callable[[], Awaitable[Scheduled]]) -> None:
        """An answer from outside written; planned again when the meeting changed meanwhile, and
        StoreUnavailable (try again later) when it kept changing."""
        for _ in range(ATTEMPTS):
            plan = await planned()
            try:
                await self.store.write_scheduled(plan.steps, plan.inbox, self.scheduling.expired())
                return
            except PreconditionFailed:
                continue
        raise StoreUnavailable("the meeting kept changing while the answer was written: try again")

    async def transfer(
        self,
        user: User,
        source: Calendar,
        found: CalendarObject,
        target: Calendar,
        href: str,
        *,
        overwrite: bool = True,
        keep_source: bool = False,
    ) -> tuple[CalendarObject, bool]:
        """Move (or copy, ``keep_source``) an object to ``href`` in ``target``, in one transaction;
        NameTaken when another object of ``target`` holds its UID."""
        await self.calendars.need(user, [source], Level.READ if keep_source else Level.READ_WRITE)
        await self.calendars.need(user, [target], Level.READ_WRITE)
        parsed = await asyncio.to_thread(lambda: resource_from_calendar(parse_resource(found.ical)))
        write = object_write(parsed, href, user.id, found.schedule_tag)
        try:
            return await self.store.move_object(
                source.id, found.href, target.id, write, overwrite=overwrite, keep_source=keep_source
            )
        except Conflict as conflict:
            if conflict.message == REPLACES_UID:
                raise NameTaken(f"{href} holds another UID than {found.uid}", href, replacing=True) from None
            raise await self._uid_taken(target, found.uid) from None
        except Gone:
            raise NotFound("the object is gone") from None

    async def delete(
        self, user: User, calendar: Calendar, href: str, *, if_etag: str | None = None, scheduling: Scheduling = PLAIN
    ) -> bool:
        """Delete the object at ``href`` (a meeting: with the CANCEL or REPLY it sends, in the same
        transaction); whether there was one. PreconditionFailed when ``if_etag`` is not the
        stored version's, or its Schedule-Tag not ``scheduling.tag_match``."""
        await self.calendars.need(user, [calendar], Level.READ_WRITE)
        for _ in range(ATTEMPTS):
            old = await self.store.get_object(calendar.id, href=href)
            if old is None:
                return False
            if scheduling.tag_match is not None and old.schedule_tag != scheduling.tag_match:
                raise PreconditionFailed("the Schedule-Tag changed")
            plan = await self.scheduling.on_delete(user, calendar, old, reply=scheduling.reply)
            if plan is None:
                return await self.store.delete_object(calendar.id, href, if_etag=if_etag, by=user.id)
            first = ObjectDelete(calendar.id, href, if_etag or old.etag, user.id)
            try:
                written = await self.store.write_scheduled(
                    [first, *plan.steps], plan.inbox, self.scheduling.expired(), plan.mail
                )
                return written[0][1]
            except PreconditionFailed as failed:
                if if_etag is not None and failed.step == 0:
                    raise
        raise StoreUnavailable("the meeting kept changing while it was removed: try again")

    async def _uid_taken(self, calendar: Calendar, uid: str) -> NameTaken:
        """The refusal of a write whose UID another object of the calendar holds, naming it."""
        other = await self.store.get_object(calendar.id, uid=uid)
        return NameTaken(f"UID {uid} is already used in this calendar", other.href if other else None)
