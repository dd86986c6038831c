"""Events on the web: create one (title, times or all day, time zone, place, notes, calendar, a
simple repeat), open it, change it, move it to another calendar, delete it; for a recurring
series this occurrence, this and the following ones, or all of them, as calendar programs offer
it. What the user's level on the calendar allows decides what the page offers, and the services
refuse the rest anyway; every write goes through the objects service, as any door's does."""

from __future__ import annotations

import asyncio
import re
import uuid
import zoneinfo
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from aiohttp import web
from icalendar import Calendar as ICalendar
from icalendar import Component
from multidict import MultiDictProxy

from protocol import events, itip
from protocol.events import EventFields, valid_zone, zone_named
from protocol.ical.agenda import key_value, names_instance
from protocol.ical.series import (
    CUSTOM,
    FREQUENCIES,
    WEEKDAYS,
    Repeat,
    end_before,
    exclude,
    override,
    repeat_of,
    repeat_rule,
    shift,
    split,
)
from protocol.ical.values import main_component, parse_resource
from server.http import read_post
from server.services.access import Level
from server.services.errors import Invalid, NotFound, PreconditionFailed
from server.services.scheduling import SUCCESS, UNKNOWN_USER
from server.services.users import EMAIL
from server.urls import WEB
from server.web.calendar import FIRST_DAY, LAST_DAY, chosen_day, viewer_zone
from storage.model import Calendar, CalendarObject, User

if TYPE_CHECKING:
    from server.web.pages import WebDoor

SCOPES = {"this": "This occurrence", "following": "This and the following ones", "all": "All occurrences"}
#: what a change of the form rewrites in a component (the rest of it is kept)
CHANGED = {"summary", "location", "description", "start", "end"}
MAX_TEXT = 16_384


class Form(NamedTuple):
    """What the event form says."""

    fields: EventFields
    repeat: Repeat
    zone: str
    #: the attendees' addresses; None when the form had no say in them (someone else's meeting)
    attendees: list[str] | None


def read_form(form: MultiDictProxy[str], zone_default: str) -> Form:
    """The event a form describes, its repeat, time zone and attendees; Invalid naming the field."""

    def text(name: str, limit: int = MAX_TEXT) -> str:
        value = str(form.get(name, "")).strip()
        if len(value) > limit:
            raise Invalid(f"{name} is {limit} characters at most", field=name)
        return value

    def day(name: str) -> date:
        try:
            found = date.fromisoformat(text(name, 10))
        except ValueError:
            raise Invalid(f"{name.replace('_', ' ')} is a date like 2026-12-24", field=name) from None
        if not FIRST_DAY <= found <= LAST_DAY:
            raise Invalid(f"{name.replace('_', ' ')} is between the years 2 and 9998", field=name)
        return found

    def clock(name: str) -> time:
        try:
            return time.fromisoformat(text(name, 8) or "00:00")
        except ValueError:
            raise Invalid(f"{name.replace('_', ' ')} is a time like 09:30", field=name) from None

    zone = text("timezone", 64) or zone_default
    if not valid_zone(zone):
        raise Invalid(f"{zone!r} is not a known time zone", field="timezone")
    fields = EventFields(summary=text("summary", 1024), location=text("location", 1024),
                         description=text("description"))  # fmt: skip
    first, last = day("start_date"), day("end_date") if form.get("end_date") else day("start_date")
    if form.get("allday"):
        fields.start, fields.end = first, last + timedelta(days=1)
    else:
        fields.start = events.localize(datetime.combine(first, clock("start_time")), zone)
        fields.end = events.localize(datetime.combine(last, clock("end_time")), zone)
    if fields.end < fields.start:
        raise Invalid("the event ends before it starts", field="end_date")
    repeat = Repeat(frequency=text("repeat", 16).upper(), days=[d for d in form.getall("days", []) if d])
    try:
        repeat.interval = int(text("interval", 3) or "1")
        ends = text("ends", 8)
        repeat.count = int(text("count", 5)) if ends == "count" else None
        repeat.until = date.fromisoformat(text("until", 10)) if ends == "until" else None
    except ValueError:
        raise Invalid("the repeat's interval, end date or count is not valid", field="repeat") from None
    if repeat.frequency != CUSTOM:
        try:
            fields.rrule = repeat_rule(repeat, fields.start, zoneinfo.ZoneInfo(zone) if zone != "UTC" else None)
        except ValueError as error:
            raise Invalid(str(error), field="repeat") from None
    attendees = None
    if "attendees" in form:
        attendees = [a for a in re.split(r"[\s,;]+", text("attendees")) if a]
        wrong = next((a for a in attendees if not EMAIL.match(a)), None)
        if wrong is not None:
            raise Invalid(f"{wrong!r} is not an e-mail address", field="attendees")
        attendees = [f"mailto:{a.lower()}" for a in attendees]
    return Form(fields, repeat, zone, attendees)


def form_of(fields: EventFields, zone: str, calendar: Calendar) -> dict[str, Any]:
    """What the form shows of an event: its times on its own zone's wall clock (or ``zone``'s)."""
    shown = fields.tzid if fields.tzid and valid_zone(fields.tzid) else zone
    values: dict[str, Any] = {
        "summary": fields.summary, "location": fields.location, "description": fields.description,
        "calendar": calendar.uuid, "timezone": shown,
    }  # fmt: skip
    start: Any = fields.start
    end: Any = fields.end if fields.end is not None else start
    if isinstance(start, datetime):
        start, end = events.wall_clock(start, shown), events.wall_clock(end, shown)
        values.update(start_date=start.date(), start_time=f"{start:%H:%M}", end_date=end.date(),
                      end_time=f"{end:%H:%M}")  # fmt: skip
    elif isinstance(start, date):
        last = end - timedelta(days=1) if isinstance(end, date) and end > start else start
        values.update(allday="1", start_date=start, end_date=last, start_time="09:00", end_time="10:00")
    repeat = repeat_of(fields.rrule, zoneinfo.ZoneInfo(shown) if shown != "UTC" else None)
    values.update(repeat=repeat.frequency, interval=repeat.interval, days=repeat.days,
                  ends="count" if repeat.count else "until" if repeat.until else "never",
                  count=repeat.count or "", until=repeat.until or "")  # fmt: skip
    return values


class Shown(NamedTuple):
    """An event as its page shows it: its fields (of the occurrence opened), whether it recurs,
    its organizer and its attendees with their answers."""

    fields: EventFields
    recurs: bool
    organizer: str | None
    attendees: list[tuple[str, str]]


def shown(text: str, key: str) -> Shown:
    """The stored object as its page shows it (the occurrence ``key`` names, when it recurs)."""
    data = parse_resource(text)
    master = main_component(data)
    recurs = master is not None and ("RRULE" in master or "RDATE" in master)
    fields = events.view_of(data)
    component = master
    if key and recurs:
        if not names_instance(text, key_value(key)):
            raise ValueError("no such occurrence")
        component = override(data, key_value(key))
        single = ICalendar()
        single.add_component(component)
        fields, rule = events.view_of(single), fields.rrule
        fields.rrule = rule
    people = itip.attendees(component) if component is not None else {}
    return Shown(fields, recurs, itip.organizer(data), [(a, itip.partstat(line)) for a, line in people.items()])


class EventPages:
    def __init__(self, door: WebDoor) -> None:
        self.door = door
        self.services = door.services

    async def writable(self, user: User) -> list[Calendar]:
        return [c for c, level in await self.services.agenda.visible(user) if level >= Level.READ_WRITE]

    async def render(
        self, request: web.Request, user: User, session: str, *, values: dict[str, Any], found: CalendarObject | None,
        calendar: Calendar | None, recurs: bool = False, error: str | None = None, level: Level = Level.OWNER,
        people: Shown | None = None, busy: list[tuple[str, str]] | None = None,
    ) -> web.Response:  # fmt: skip
        me = self.services.scheduling.address_of(user)
        organizer = people.organizer if people else None
        response = await self.door.page(
            "event.html", user, session, values=values, found=found, calendar=calendar, recurs=recurs,
            error=error, calendars=await self.writable(user), scopes=SCOPES, weekdays=WEEKDAYS,
            frequencies=FREQUENCIES, custom=CUSTOM, editable=level >= Level.READ_WRITE, busy=busy,
            organizes=organizer in (None, me), organizer=organizer, attendees=people.attendees if people else [],
        )  # fmt: skip
        response.set_status(400 if error else 200)
        return response

    async def availability(self, user: User, form: Form) -> list[tuple[str, str]]:
        """The busy times of the user and the attendees on the event's first day (in its zone),
        as far as each one's calendars are shared with the user (``[scheduling] free_busy``)."""
        zone = zone_named(form.zone) or UTC
        day = form.fields.start.date() if isinstance(form.fields.start, datetime) else form.fields.start
        assert day is not None
        start = datetime.combine(day, time(), zone)
        me = self.services.scheduling.address_of(user)
        asked = [a for a in [me, *(form.attendees or [])] if a]
        found = await self.services.scheduling.free_busy(user, asked, start, start + timedelta(days=1))
        said = []
        for answer in found:
            if answer.status == SUCCESS:
                times = [f"{b.astimezone(zone):%H:%M}–{e.astimezone(zone):%H:%M}" for b, e, _ in answer.periods]
                said.append((answer.address, ", ".join(times) or "free all day"))
            else:
                said.append(
                    (answer.address, "not a user here" if answer.status == UNKNOWN_USER else "not shared with you")
                )
        return [(a.removeprefix("mailto:"), s) for a, s in said]

    async def new(self, request: web.Request, user: User, session: str) -> web.Response:
        zone, place = viewer_zone(request, user)
        on = chosen_day(request.query.get("date"), place).isoformat()
        values = {"start_date": on, "end_date": on, "start_time": "09:00", "end_time": "10:00", "timezone": zone,
                  "calendar": request.query.get("calendar", ""), "ends": "never", "interval": 1}  # fmt: skip
        return await self.render(request, user, session, values=values, found=None, calendar=None)

    async def create(self, request: web.Request, user: User, session: str) -> web.Response:
        posted = await read_post(request)
        zone, _ = viewer_zone(request, user)
        values = {**dict(posted), "days": posted.getall("days", [])}
        try:
            form = read_form(posted, zone)
            if posted.get("check"):
                busy = await self.availability(user, form)
                return await self.render(request, user, session, values=values, found=None, calendar=None, busy=busy)
            calendar = await self.services.calendars.get(user, str(posted.get("calendar", "")), Level.READ_WRITE)
            uid, me = str(uuid.uuid4()), self.organizer(user, form)

            def made(data: ICalendar) -> Component:
                master = events.build(replace(form.fields, uid=uid))
                data.subcomponents = [master]
                if me is not None:
                    itip.invite(master, me, form.attendees or [])
                return master

            saved = await self.services.objects.edit(user, calendar, None, made, new=("VEVENT", uid))
        except (Invalid, NotFound, ValueError) as refused:
            message = refused.message if isinstance(refused, Invalid | NotFound) else str(refused)
            return await self.render(request, user, session, values=values, found=None, calendar=None, error=message)
        raise web.HTTPSeeOther(f"{WEB}/calendar?view=week&date={day_of(form.fields.start)}#e{saved.id}")

    def organizer(self, user: User, form: Form) -> str | None:
        """The user's address when the form invites anyone (None: it invites no one); Invalid
        when they have no address to invite from."""
        if not form.attendees:
            return self.services.scheduling.address_of(user) if form.attendees is not None else None
        me = self.services.scheduling.address_of(user)
        if me is None:
            raise Invalid("give your account an e-mail address first: invitations come from it", field="attendees")
        return me

    async def show(self, request: web.Request, user: User, session: str) -> web.Response:
        found, calendar = await self.found(request, user)
        key = request.query.get("at", "")
        zone, _ = viewer_zone(request, user)
        try:
            people = await asyncio.to_thread(shown, found.ical, key)
        except ValueError:
            raise web.HTTPNotFound(text="no such occurrence\n") from None
        values = {**form_of(people.fields, zone, calendar), "at": key if people.recurs else ""}
        values["attendees"] = "\n".join(a.removeprefix("mailto:") for a, _ in people.attendees)
        level = await self.services.calendars.level(user, calendar)
        return await self.render(request, user, session, values=values, found=found, calendar=calendar,
                                 recurs=people.recurs, level=level, people=people)  # fmt: skip

    async def found(self, request: web.Request, user: User) -> tuple[CalendarObject, Calendar]:
        try:
            return await self.services.objects.get(user, int(request.match_info["id"]))
        except ValueError:
            raise web.HTTPNotFound(text="no such event\n") from None

    async def update(self, request: web.Request, user: User, session: str) -> web.Response:
        found, calendar = await self.found(request, user)
        posted = await read_post(request)
        zone, _ = viewer_zone(request, user)
        key, scope = str(posted.get("at", "")), str(posted.get("scope", "all"))
        values = {**dict(posted), "days": posted.getall("days", [])}
        try:
            form = read_form(posted, zone)
            if posted.get("check"):
                busy = await self.availability(user, form)
                return await self.render(request, user, session, values=values, found=found, calendar=calendar,
                                         recurs=bool(key), busy=busy)  # fmt: skip
            uuid_ = str(posted.get("calendar", calendar.uuid))
            target = await self.services.calendars.get(user, uuid_, Level.READ_WRITE)
            rid, me = key_value(key) if key else None, self.organizer(user, form)
            if rid is not None and not await asyncio.to_thread(names_instance, found.ical, rid):
                raise Invalid("that occurrence is not one of the series (any more)", field="at")
            if rid is not None and scope == "this":
                await self.services.objects.edit(user, calendar, found, lambda data: this_one(data, rid, form, me))
            elif rid is not None and scope == "following":
                await self.following(user, calendar, found, target, rid, form, me)
            else:
                await self.services.objects.edit(user, calendar, found, lambda data: all_of(data, rid, form, me))
                if target.id != calendar.id:
                    current = await self.services.objects.find(user, calendar, href=found.href)
                    if current is not None:
                        await self.services.objects.transfer(user, calendar, current, target, current.href)
        except (Invalid, NotFound, PreconditionFailed, ValueError) as refused:
            message = getattr(refused, "message", str(refused))
            return await self.render(request, user, session, values=values, found=found, calendar=calendar,
                                     recurs=bool(key), error=message)  # fmt: skip
        raise web.HTTPSeeOther(f"{WEB}/calendar?view=week&date={day_of(form.fields.start)}")

    async def following(
        self, user: User, calendar: Calendar, found: CalendarObject, target: Calendar, rid: date | datetime,
        form: Form, me: str | None,
    ) -> None:  # fmt: skip
        """This and the following occurrences: a new series from ``rid`` on, then the old one
        ended before it (the new one is taken back if that fails)."""

        uid = str(uuid.uuid4())

        def following_part(data: ICalendar) -> Component:  # a new object's calendar, filled
            series = parse_resource(found.ical)
            original = main_component(series)
            assert original is not None
            changed = changed_by(original, form.repeat)  # the repeat the form showed: the whole series'
            data.subcomponents = split(series, rid, uid).subcomponents
            master = main_component(data)
            assert master is not None
            return changed_as(master, form, changed, me)

        made = await self.services.objects.edit(user, target, None, following_part, new=(found.component, uid))
        try:
            await self.services.objects.edit(user, calendar, found, lambda data: ended(data, rid))
        except Exception:
            await self.services.objects.delete(user, target, made.href)
            raise

    async def delete(self, request: web.Request, user: User, session: str) -> web.Response:
        found, calendar = await self.found(request, user)
        form = await read_post(request)
        key, scope = str(form.get("at", "")), str(form.get("scope", "all"))
        try:
            rid = key_value(key) if key else None
            if rid is not None and not await asyncio.to_thread(names_instance, found.ical, rid):
                raise ValueError("that occurrence is not one of the series (any more)")
        except ValueError as wrong:
            raise web.HTTPBadRequest(text=f"{wrong}\n") from None
        try:
            if rid is not None and scope == "this":
                await self.services.objects.edit(user, calendar, found, lambda data: excluded(data, rid))
            elif rid is not None and scope == "following" and await asyncio.to_thread(still_some, found.ical, rid):
                await self.services.objects.edit(user, calendar, found, lambda data: ended(data, rid))
            else:
                await self.services.objects.delete(user, calendar, found.href, if_etag=found.etag)
        except PreconditionFailed:
            raise web.HTTPConflict(text="the event changed meanwhile: open it again\n") from None
        raise web.HTTPSeeOther(f"{WEB}/calendar")


def day_of(value: date | datetime | None) -> str:
    return (value.date() if isinstance(value, datetime) else value or date.today()).isoformat()


def changed_as(component: Component, form: Form, changed: set[str], me: str | None) -> Component:
    """A component changed as the form says (its attendees too, when the user organizes it)."""
    events.update_component(component, replace(form.fields, uid=str(component.get("UID", ""))), changed)
    if me is not None and form.attendees is not None:
        itip.invite(component, me, form.attendees)
    return component


def this_one(data: ICalendar, rid: date | datetime, form: Form, me: str | None) -> Component:
    """One occurrence changed: its override (made from the master when there is none)."""
    return changed_as(override(data, rid), form, CHANGED, me)


def all_of(data: ICalendar, rid: date | datetime | None, form: Form, me: str | None) -> Component:
    """The whole object changed; for a series opened at an occurrence, the series moves by as
    much as that occurrence was moved (its overrides' and exceptions' dates with it)."""
    master = main_component(data)
    if master is None:
        raise ValueError("the object has no event or todo")
    changed, fields = changed_by(master, form.repeat), form.fields
    if rid is not None and "DTSTART" in master:
        original: Any = getattr(master["DTSTART"], "dt", None)
        new: Any = fields.start
        occurrence = rid if isinstance(original, datetime) == isinstance(rid, datetime) else original
        delta = _difference(fields.start, occurrence)
        if delta is not None and isinstance(fields.start, datetime) == isinstance(original, datetime):
            length = fields.end - new
            base = original.astimezone(new.tzinfo) if getattr(new, "tzinfo", None) else original
            fields = replace(fields, start=base + delta, end=base + delta + length)
            shift(data, delta)
        else:  # all day became timed (or back): the exceptions name instances that are no more
            data.subcomponents = [c for c in data.subcomponents if "RECURRENCE-ID" not in c]
            master.pop("EXDATE", None)
    return changed_as(master, form._replace(fields=fields), changed, me)


def changed_by(master: Component, repeat: Repeat) -> set[str]:
    """What a form's change rewrites in a series' master: the rule only when the form's repeat
    is not the one it has (a rule the form cannot show, CUSTOM, is kept as it is)."""
    prop: Any = master.get("RRULE")
    rule = prop.to_ical().decode() if prop is not None else None
    kept = repeat_of(rule, None)
    same = (kept.frequency, kept.interval, set(kept.days), kept.count) == (
        repeat.frequency,
        repeat.interval,
        set(repeat.days),
        repeat.count,
    ) and (kept.until is None) == (repeat.until is None)
    return CHANGED if repeat.frequency == CUSTOM or (same and repeat.until is None) else CHANGED | {"rrule"}


def _difference(new: object, old: object) -> timedelta | None:
    """How far an occurrence moved (wall-clock days and time), None when its kind changed."""
    if isinstance(new, datetime) and isinstance(old, datetime):
        return new.replace(tzinfo=None) - old.astimezone(new.tzinfo).replace(tzinfo=None) if new.tzinfo else new - old
    if isinstance(new, date) and isinstance(old, date) and not isinstance(new, datetime):
        return new - old
    return None


def excluded(data: ICalendar, rid: date | datetime) -> Component:
    exclude(data, rid)
    master = main_component(data)
    assert master is not None
    return master


def ended(data: ICalendar, rid: date | datetime) -> Component:
    if not end_before(data, rid):
        raise ValueError("no occurrence would be left: delete the whole series")
    master = main_component(data)
    assert master is not None
    return master


def still_some(text: str, rid: date | datetime) -> bool:
    """Whether a series has occurrences before ``rid`` (else "this and following" is all)."""
    return end_before(parse_resource(text), rid)


def add_routes(app: web.Application, door: WebDoor) -> None:
    pages = EventPages(door)
    routes, guarded = app.router, door.signed_in
    routes.add_get(f"{WEB}/events/new", guarded(pages.new))
    routes.add_post(f"{WEB}/events", guarded(pages.create))
    routes.add_get(f"{WEB}/events/{{id:\\d{{1,18}}}}", guarded(pages.show))
    routes.add_post(f"{WEB}/events/{{id:\\d{{1,18}}}}", guarded(pages.update))
    routes.add_post(f"{WEB}/events/{{id:\\d{{1,18}}}}/delete", guarded(pages.delete))
