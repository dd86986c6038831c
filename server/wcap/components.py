"""WCAP component commands: fetching (by range, last modification, deletion, id), exporting,
storing and deleting events and todos, free-busy."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from icalendar import Calendar as ICalendar
from icalendar import Component

from protocol import wcap
from protocol.ical.instances import cancel_instance, one_component, override_instance, rezone
from protocol.ical.values import formatted, main_component, parse_resource
from protocol.ical.windows import instances
from protocol.wcap import Block, Errno, WcapError, flag, parse_calid, parse_time, split_list
from server.http import MAX_INT
from server.services.errors import Invalid, PreconditionFailed
from server.services.objects import Scheduling
from server.wcap.door import Call, WcapDoor, command, epoch, number, range_of, stamp, zone_param
from storage.model import Calendar, CalendarObject

#: unbounded fetches of expanded instances stop this far ahead
EXPANSION_HORIZON = timedelta(days=366)


def component_kinds(call: Call) -> set[str]:
    kind = (call.get("component-type") or "all").lower()
    return {"event": {"VEVENT"}, "todo": {"VTODO"}}.get(kind, {"VEVENT", "VTODO", "VJOURNAL"})


# --------------------------------------------------------------------------- reading components


async def fetch(
    door: WcapDoor, call: Call, found: list[CalendarObject], start: datetime | None, end: datetime | None
) -> list[str]:
    """The texts to send for these objects: masters with their exceptions (recurring=1), or
    the instances in the range (recurring=0, the WCAP default), converted to tzidout."""
    zone = zone_param(call, "tzidout")
    limit = number(call, "maxResults", 0, 0, MAX_INT) or None
    kinds = component_kinds(call)
    found = [o for o in found if o.component in kinds]
    if limit is not None:
        found = found[:limit]
    if flag(call.get("recurring")):
        texts = [o.ical for o in found]
    else:
        low = start or datetime(1900, 1, 1, tzinfo=UTC)
        high = end or max(low, datetime.now(UTC)) + EXPANSION_HORIZON
        bound = door.services.config.max_instances

        def expand() -> list[str]:
            return [instances(o.ical, low, high, bound) if o.recurring else o.ical for o in found]

        texts = await asyncio.to_thread(expand)
    if zone is not None:
        texts = await asyncio.to_thread(lambda: [rezone(t, zone) for t in texts])
    return await with_calids(door, texts)


async def in_state(door: WcapDoor, call: Call, calendar: Calendar, found: list[CalendarObject]) -> list[CalendarObject]:
    """The objects in one of the ``compstate`` states asked (all when none or ALL is): an
    invitation not answered is REQUEST-NEEDS-ACTION, an answered one REPLY-ACCEPTED and so on,
    for the calendar's owner (``protocol.wcap.component_states``)."""
    states = {s.upper() for s in split_list(call.get("compstate"))}
    if not states or "ALL" in states:
        return found
    owner = call.me if calendar.owner_id == call.me.id else await door.services.users.get(calendar.owner_id)
    me = door.services.scheduling.address_of(owner) if owner is not None else None

    def state(text: str) -> frozenset[str]:
        return wcap.component_states(parse_resource(text), me) if "ORGANIZER" in text else wcap.PLAIN_STATES

    def kept() -> list[CalendarObject]:
        return [o for o in found if states & state(o.ical)]

    return await asyncio.to_thread(kept)


async def with_calids(door: WcapDoor, texts: list[str]) -> list[str]:
    """Meetings' ORGANIZER and ATTENDEEs that are users here marked with their calid
    (``X-S1CS-CALID``), as Lightning reads an invitation."""
    meetings = [t for t in texts if "ORGANIZER" in t]
    if not meetings:
        return texts
    calids = await door.services.scheduling.usernames(meetings)
    return await asyncio.to_thread(lambda: [wcap.mark_calids(t, calids) if "ORGANIZER" in t else t for t in texts])


@command("fetchcomponents_by_range")
async def fetchcomponents_by_range(door: WcapDoor, call: Call) -> list[Block]:
    start, end = range_of(call)

    async def body(calendar: Calendar, block: Block) -> None:
        found = await door.services.calendars.list_objects(call.me, [calendar], start=epoch(start), end=epoch(end))
        block.components += await fetch(door, call, await in_state(door, call, calendar, found), start, end)

    return await door.each_calendar(call, body, Errno.FETCHBYDATERANGE_FAILED)


def stored_range(call: Call) -> tuple[str | None, str | None]:
    """dtstart/dtend as the store's ISO times (for modification and deletion times)."""
    start, end = range_of(call)
    since = formatted(start, "%Y-%m-%dT%H:%M:%S") if start else None
    until = formatted(end, "%Y-%m-%dT%H:%M:%S.999Z") if end else None
    return since, until


@command("fetchcomponents_by_lastmod")
async def fetchcomponents_by_lastmod(door: WcapDoor, call: Call) -> list[Block]:
    since, until = stored_range(call)

    async def body(calendar: Calendar, block: Block) -> None:
        found = await door.services.calendars.modified(call.me, calendar, since, until)
        block.components += [o.ical for o in found if o.component in component_kinds(call)]

    return await door.each_calendar(call, body, Errno.FETCH_BY_LAST_MODIFIED_FAILED)


@command("fetch_deletedcomponents")
async def fetch_deletedcomponents(door: WcapDoor, call: Call) -> list[Block]:
    since, until = stored_range(call)
    name = "VTODO" if (call.get("component-type") or "").lower() == "todo" else "VEVENT"

    async def body(calendar: Calendar, block: Block) -> None:
        for change in await door.services.calendars.deleted(call.me, calendar, since, until):
            block.components.append(
                wcap.single(
                    f"BEGIN:{name}\r\nUID:{change.uid}\r\nX-NSCP-DELETED-AT:{stamp(change.changed_at)}\r\nEND:{name}\r\n"
                )
            )

    return await door.each_calendar(call, body, Errno.FETCH_DELETEDCOMPONENTS_FAILED)


async def by_id(door: WcapDoor, call: Call, kind: str) -> list[Block]:
    uids = split_list(call.get("uid"))
    rids = split_list(call.get("rid"))
    if not uids:
        raise WcapError(Errno.BAD_ARGUMENTS, "uid is required")

    async def body(calendar: Calendar, block: Block) -> None:
        for index, uid in enumerate(uids):
            found = await door.services.objects.find(call.me, calendar, uid=uid)
            if found is None or found.component != kind:
                block.errno = Errno.COMPONENT_NOT_FOUND
                continue
            rid = rids[index] if index < len(rids) else "0"
            moment = parse_time(rid, "rid")
            if moment is None or flag(call.get("recurring")):
                block.components.append(found.ical)
            else:
                text = await asyncio.to_thread(instances, found.ical, moment, moment + timedelta(seconds=1), 1)
                if "RECURRENCE-ID" not in text:
                    block.errno = Errno.COMPONENT_NOT_FOUND
                    continue
                block.components.append(text)
        zone = zone_param(call, "tzidout")
        if zone is not None:
            block.components = await asyncio.to_thread(lambda: [rezone(t, zone) for t in block.components])

    return await door.each_calendar(call, body)


@command("fetchevents_by_id")
async def fetchevents_by_id(door: WcapDoor, call: Call) -> list[Block]:
    return await by_id(door, call, "VEVENT")


@command("fetchtodos_by_id")
async def fetchtodos_by_id(door: WcapDoor, call: Call) -> list[Block]:
    return await by_id(door, call, "VTODO")


@command("export")
async def export(door: WcapDoor, call: Call) -> list[Block]:
    content = call.get("content-out") or "text/calendar"
    if content not in wcap.FORMATS:
        raise WcapError(Errno.NO_SUCH_FORMAT, "content-out must be text/calendar or text/xml")
    call.fmt = content
    start, end = range_of(call)
    extension = "xml" if content == "text/xml" else "ics"
    call.extra["Content-Disposition"] = f'attachment; filename="export.{extension}"'

    async def body(calendar: Calendar, block: Block) -> None:
        found = await door.services.calendars.list_objects(call.me, [calendar], start=epoch(start), end=epoch(end))
        block.components += [o.ical for o in found]

    return await door.each_calendar(call, body)


# --------------------------------------------------------------------------- writing components


async def store(door: WcapDoor, call: Call, kind: str, failed: Errno) -> list[Block]:
    calendar = await door.calendar(call)
    uid = call.get("uid") or str(uuid.uuid4())
    storetype = call.get("storetype") or "0"
    existing = await door.services.objects.find(call.me, calendar, uid=uid)
    if existing is not None and existing.component != kind:
        raise WcapError(failed, f"{uid} is not a {kind}")
    if storetype == "1" and existing is not None:
        raise WcapError(Errno.CREATE_EXISTS, f"{uid} exists")
    if storetype == "2" and existing is None:
        raise WcapError(Errno.MODIFY_NO_EVENT, f"{uid} does not exist")
    zone = zone_param(call, "tzid")
    rid = parse_time(call.get("rid"), "rid")
    mod = call.get("mod") or "4"
    params = await with_addresses(door, call)
    method = call.get("method")
    if method == "2" and existing is not None and await invited(door, call, calendar, existing):
        raise WcapError(Errno.ATTENDEE_NOT_ALLOWED_TO_REQUEST_ON_MODIFY, "an attendee answers (method=4), not requests")
    # a REPLY (method 4) carries the user's own answer, not a new list of attendees
    answers = params.pop("attendees", None) if method == "4" else None
    if method == "8":  # the organizer cancels with a store: the meeting stays, cancelled for everyone
        params["status"] = "1"

    def change(calendar_data: ICalendar) -> Component:
        """The call's changes to the master, or to the instance at ``rid`` with ``mod=1``."""
        target = main_component(calendar_data)
        if rid is not None and mod == "1":
            target = override_instance(calendar_data, rid)
        assert target is not None
        wcap.apply_store(target, params, zone)
        if answers is not None:
            wcap.apply_answers(target, answers)
        for prop in ("DTSTAMP", "LAST-MODIFIED"):
            target.pop(prop, None)
            target.add(prop, datetime.now(UTC).replace(microsecond=0))
        if "CREATED" not in target:
            target.add("CREATED", datetime.now(UTC).replace(microsecond=0))
        return target

    try:
        saved = await door.services.objects.edit(
            call.me, calendar, existing, change, new=(kind, uid), scheduling=scheduling_of(call)
        )
    except (Invalid, PreconditionFailed) as error:
        raise WcapError(failed, error.message) from None
    block = Block(await door.props(call, calendar))
    if flag(call.get("fetch")):
        block.components.append(one_component(saved.ical, rid if mod == "1" else None))
    else:
        block.components.append(wcap.status_component(kind, uid, "2.0;Success.  Store successful."))
    return [block]


async def invited(door: WcapDoor, call: Call, calendar: Calendar, found: CalendarObject) -> bool:
    """Whether the object is an invitation to the calendar's owner (someone else organizes it)."""
    owner = call.me if calendar.owner_id == call.me.id else await door.services.users.get(calendar.owner_id)
    me = door.services.scheduling.address_of(owner) if owner is not None else None
    return me is not None and wcap.component_states(parse_resource(found.ical), me) & wcap.INVITED != frozenset()


async def with_addresses(door: WcapDoor, call: Call) -> dict[str, str]:
    """The call's parameters with the calids among its attendees and ``orgCalid`` made the
    users' e-mail addresses (the calid kept in ``X-S1CS-CALID``), so that scheduling knows
    them; addresses and unknown calids stay as given."""
    params = dict(call.params)
    entries = split_list(params.get("attendees"))
    named = {e.split("^")[-1] for e in entries} | ({params["orgCalid"]} if params.get("orgCalid") else set())
    emails = {}
    for calid in named:
        if calid and ":" not in calid and "@" not in calid:
            user = await door.services.users.get_by_name(parse_calid(calid).user or "")
            if user is not None and user.email:
                emails[calid] = user.email
    if entries:
        params["attendees"] = ";".join(
            "^".join([*e.split("^")[:-1], f"X-S1CS-CALID={e.split('^')[-1]}", f"mailto:{emails[e.split('^')[-1]]}"])
            if e.split("^")[-1] in emails else e
            for e in entries
        )  # fmt: skip
    if params.get("orgCalid") in emails and not params.get("orgEmail"):
        params["orgEmail"] = emails[params["orgCalid"]]
    return params


def scheduling_of(call: Call) -> Scheduling:
    """``notify=0`` (Lightning's, for an item not organised by this calendar) and method 256 (an
    invitee's private copy): the change is kept, and no answer goes to the organizer."""
    quiet = call.get("notify") == "0" or call.get("method") == "256"
    return Scheduling(reply=not quiet)


@command("storeevents")
async def storeevents(door: WcapDoor, call: Call) -> list[Block]:
    return await store(door, call, "VEVENT", Errno.STOREEVENTS_FAILED)


@command("storetodos")
async def storetodos(door: WcapDoor, call: Call) -> list[Block]:
    return await store(door, call, "VTODO", Errno.STORETODOS_FAILED)


async def delete_by_id(door: WcapDoor, call: Call, kind: str, failed: Errno) -> list[Block]:
    calendar = await door.calendar(call)
    uids = split_list(call.get("uid"))
    rids = split_list(call.get("rid"))
    mods = split_list(call.get("mod")) or ["4"]
    if not uids:
        raise WcapError(Errno.BAD_ARGUMENTS, "uid is required")
    found = {uid: await door.services.objects.find(call.me, calendar, uid=uid) for uid in uids}
    missing = [uid for uid, obj in found.items() if obj is None or obj.component != kind]
    if missing:
        raise WcapError(Errno.COMPONENT_NOT_FOUND, f"no {kind} with uid {', '.join(missing)}")
    block = Block(await door.props(call, calendar))
    for index, uid in enumerate(uids):
        obj = found[uid]
        assert obj is not None
        rid = parse_time(rids[index] if index < len(rids) else "0", "rid")
        mod = mods[index] if index < len(mods) else mods[-1]
        if rid is None or mod == "4":
            await door.services.objects.delete(call.me, calendar, obj.href, scheduling=scheduling_of(call))
        else:
            await remove_instance(door, call, calendar, obj, rid, failed)
            found[uid] = await door.services.objects.find(call.me, calendar, uid=uid)
        block.components.append(wcap.status_component(kind, uid, "2.0;Success.  Delete successful."))
    return [block]


async def remove_instance(
    door: WcapDoor, call: Call, calendar: Calendar, obj: CalendarObject, rid: datetime, failed: Errno
) -> None:
    """Cancel one occurrence: an EXDATE on the master and no override for it."""
    try:
        await door.services.objects.edit(call.me, calendar, obj, lambda data: cancel_instance(data, rid))
    except (Invalid, PreconditionFailed) as error:
        raise WcapError(failed, error.message) from None


@command("deleteevents_by_id")
async def deleteevents_by_id(door: WcapDoor, call: Call) -> list[Block]:
    return await delete_by_id(door, call, "VEVENT", Errno.DELETE_EVENTS_BY_ID_FAILED)


@command("deletetodos_by_id")
async def deletetodos_by_id(door: WcapDoor, call: Call) -> list[Block]:
    return await delete_by_id(door, call, "VTODO", Errno.DELETE_TODOS_BY_ID_FAILED)


@command("deletecomponents_by_range")
async def deletecomponents_by_range(door: WcapDoor, call: Call) -> list[Block]:
    start, end = range_of(call, Errno.DELETECOMPONENTS_BY_RANGE_FAILED)
    kinds = component_kinds(call)

    async def body(calendar: Calendar, block: Block) -> None:
        found = await door.services.calendars.list_objects(call.me, [calendar], start=epoch(start), end=epoch(end))
        for obj in found:
            if obj.component in kinds:
                await door.services.objects.delete(call.me, calendar, obj.href)

    return await door.each_calendar(call, body, Errno.DELETECOMPONENTS_BY_RANGE_FAILED)


@command("get_freebusy")
async def get_freebusy(door: WcapDoor, call: Call) -> list[Block]:
    try:
        start, end = range_of(call)
    except WcapError:
        raise WcapError(Errno.GET_FREEBUSY_FAILED, "bad dtstart or dtend") from None
    start = start or datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    zone = zone_param(call, "tzid")  # the asker's wall clock, for floating times and dates
    try:
        end = end or start + timedelta(days=number(call, "duration", 60, 1, 3660))
    except OverflowError:
        raise WcapError(Errno.BAD_ARGUMENTS, "dtstart plus duration is past the year 9999") from None

    async def body(calendar: Calendar, block: Block) -> None:
        busy = await door.services.calendars.busy(call.me, [calendar], start, end, zone)
        lines = [f"BEGIN:VFREEBUSY\r\nDTSTART:{wcap.format_time(start)}\r\nDTEND:{wcap.format_time(end)}\r\n"]
        lines += [f"FREEBUSY;FBTYPE={kind}:{wcap.format_time(a)}/{wcap.format_time(b)}\r\n" for a, b, kind in busy]
        block.components.append(wcap.single("".join(lines) + "END:VFREEBUSY\r\n"))

    blocks = await door.each_calendar(call, body, Errno.GET_FREEBUSY_FAILED)
    for block in blocks:
        if block.errno not in (0, Errno.ACCESS_DENIED_TO_CALENDAR, Errno.CALENDAR_DOES_NOT_EXIST):
            block.errno = Errno.GET_FREEBUSY_FAILED
    return blocks
