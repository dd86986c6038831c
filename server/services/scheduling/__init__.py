"""SchedulingService: meetings between the users of this server (RFC 6638), whichever door asks.

Implicit scheduling: when an object whose ORGANIZER is its owner's address is written (a CalDAV
PUT, a WCAP storeevents, a REST slot), each local attendee gets a REQUEST in their inbox and
their own copy in their default calendar; when an attendee's copy is written with another
answer, or removed, a REPLY updates the organizer's copy and the other attendees' copies; when
the organizer removes attendees or the meeting, they get a CANCEL and lose their copy. The
objects service asks ``on_put``/``on_delete`` what a write delivers and writes it all in one
transaction. A free/busy request for several attendees (RFC 6638 5) answers each attendee's
busy periods as far as the asker may see them: the ``freebusy`` grant on each of their
calendars, or every user's when ``[scheduling] free_busy = everyone``. Rooms and resources
(users whose ``cutype`` says so) accept an invitation when free and decline it when busy.
Attendees outside the server are mailed (iMIP: queued with the change, sent by
``services.mail``) when ``[smtp]`` is set up. Pending invitations are read from the inbox.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from icalendar import Calendar as ICalendar
from icalendar import vCalAddress

from protocol import imip, itip
from protocol.ical.busy import BusyPeriod
from protocol.ical.resources import Resource
from protocol.ical.values import href_for_uid, parse_resource
from protocol.itip import address
from server.config import Config
from server.services.calendars import CalendarService, object_write
from server.services.errors import Invalid
from server.services.scheduling.changes import (
    Delivery,
    Local,
    Mailing,
    Outcome,
    attendee_change,
    attendee_delete,
    mailed_reply,
    organizer_change,
    organizer_delete,
)
from storage.base import Store
from storage.model import Calendar, CalendarObject, InboxItem, Mail, ObjectDelete, ObjectPut, User, now_iso

#: the e-mail addresses in a resource's (unfolded) ORGANIZER and ATTENDEE lines: candidates,
#: matched against the users
_MAILTO = re.compile(r"^(?:ORGANIZER|ATTENDEE)[^\r\n]*?:mailto:([^\s;:@]+@[^\s;:]+)", re.IGNORECASE | re.MULTILINE)
#: attendees one scheduling object resource may have (a bound on the work one write starts)
MAX_ATTENDEES = 500
#: calendar user types that answer invitations on their own
SELF_ANSWERING = ("ROOM", "RESOURCE")

#: attendees one free/busy request may ask about (Apple's Calendar Server's limit)
MAX_FREE_BUSY_ATTENDEES = 30
#: iTIP request statuses (RFC 5546 3.6) a free/busy answer uses
SUCCESS, UNKNOWN_USER, NO_AUTHORITY = "2.0;Success", "3.7;Invalid calendar user", "3.8;No authority"


@dataclass(frozen=True, slots=True)
class FreeBusy:
    """One attendee's answer to a free/busy request: its status and, on success, busy periods."""

    address: str
    status: str
    periods: list[BusyPeriod] = field(default_factory=list)


@dataclass(slots=True)
class Scheduled:
    """A write of a scheduling object resource with what it delivers, ready for the store: the
    resource to write instead of the one sent, its Schedule-Tag, the other writes and the inbox
    items."""

    resource: Resource
    schedule_tag: str | None
    rewritten: bool
    steps: list[ObjectPut | ObjectDelete] = field(default_factory=list)
    inbox: list[InboxItem] = field(default_factory=list)
    mail: list[Mail] = field(default_factory=list)  #: to attendees outside the server (iMIP)


class TokenMeeting(NamedTuple):
    """The meeting a reply token names: its organizer, the attendee, the organizer's copy."""

    organizer: User
    attendee: str
    copy: CalendarObject

    @property
    def email(self) -> str:
        return self.attendee.removeprefix("mailto:")


def new_tag() -> str:
    return secrets.token_hex(8)


class SchedulingService:
    def __init__(self, store: Store, calendars: CalendarService, config: Config) -> None:
        self.store = store
        self.calendars = calendars
        self.config = config

    @staticmethod
    def address_of(user: User) -> str | None:
        """The calendar user address the services know a user by (their e-mail)."""
        return f"mailto:{user.email.lower()}" if user.email else None

    async def on_put(
        self, actor: User, calendar: Calendar, old: CalendarObject | None, resource: Resource, *, reply: bool = True
    ) -> Scheduled | None:
        """What writing ``resource`` over ``old`` in ``calendar`` delivers, or None when it is no
        scheduling object resource of the calendar's owner (nor was). Invalid (``attendee_change``)
        when an attendee changes what is the organizer's; ``reply`` False: an attendee's answer is
        kept in their copy and sent to no one (CalDAV's ``Schedule-Reply: F``)."""
        if "ORGANIZER" not in resource.text and (old is None or old.schedule_tag is None):
            return None
        owner = await self._owner(actor, calendar)
        me = self.address_of(owner) if owner is not None else None
        if owner is None or me is None:
            return None
        new, before = await asyncio.to_thread(_parse, resource.text, old)
        organizer = itip.organizer(new)
        was = itip.organizer(before) if before is not None else None
        if organizer == me or (organizer is None and was == me):
            everyone = itip.attendee_addresses(new) | (itip.attendee_addresses(before) if before is not None else set())
            if len(everyone) > MAX_ATTENDEES:
                raise Invalid(f"a meeting has {MAX_ATTENDEES} attendees at most", code="too_many_attendees")
            locals_ = await self._locals(everyone - {me}, resource.uid)
            await self._self_answers(locals_, resource)
            mail = self.mails(resource.end)
            outcome = await asyncio.to_thread(
                organizer_change, before if was == me else None, new, me, locals_, self.config.max_instances, mail
            )
        elif organizer is not None and me in itip.attendee_addresses(new):
            found, others = await self._organizer_and_others(organizer, new, me, resource.uid)
            try:
                outcome = await asyncio.to_thread(
                    attendee_change, before if was == organizer else None, new, me, found, others,
                    reply=reply, max_instances=self.config.max_instances,
                )  # fmt: skip
            except ValueError as refused:
                raise Invalid(str(refused), code="attendee_change") from None
        else:
            return None
        kept = old.schedule_tag if outcome.keep_tag and old is not None else None
        tag = (kept or new_tag()) if organizer is not None else None
        # what was sent is written as it came (its lines, its ETag) unless scheduling changed it
        scheduled = Scheduled(outcome.resource if outcome.rewritten else resource, tag, outcome.rewritten)
        await self._deliver(scheduled, outcome, actor, owner)
        return scheduled

    async def on_delete(
        self, actor: User, calendar: Calendar, old: CalendarObject, *, reply: bool = True
    ) -> Scheduled | None:
        """What removing a scheduling object resource delivers (the organizer's: CANCELs; an
        attendee's: their REPLY declining it, unless ``reply`` is False), or None."""
        if "ORGANIZER" not in old.ical:
            return None
        owner = await self._owner(actor, calendar)
        me = self.address_of(owner) if owner is not None else None
        if owner is None or me is None:
            return None
        before = await asyncio.to_thread(parse_resource, old.ical)
        organizer = itip.organizer(before)
        if organizer is None:
            return None
        if organizer == me:
            locals_ = await self._locals(itip.attendee_addresses(before) - {me}, old.uid)
            deliveries, mailings = await asyncio.to_thread(
                organizer_delete, before, me, locals_, self.mails(old.end_utc)
            )
        elif me in itip.attendee_addresses(before) and reply:
            found, others = await self._organizer_and_others(organizer, before, me, old.uid)
            deliveries = await asyncio.to_thread(attendee_delete, before, me, found, others, self.config.max_instances)
            mailings = []
        else:
            return None
        gone = Resource(old.uid, old.component, "", None, None, summary=old.summary)
        scheduled = Scheduled(gone, None, False)
        await self._deliver(scheduled, Outcome(gone, False, False, deliveries, mail=mailings), actor, owner)
        return scheduled

    async def mailed_reply(self, token: str, senders: Sequence[str], body: bytes) -> Scheduled:
        """What an attendee's answer by e-mail delivers (iMIP in): the reply token names the
        organizer, the attendee and the meeting, and the mail must come from that attendee
        (``senders``: its envelope sender and its From, one of which must be theirs). Invalid
        (saying why) for an unknown token, another sender, a mail without a REPLY, or a meeting
        that is gone."""
        meeting = await self._by_token(token)
        if meeting.attendee not in {address(f"mailto:{sender}") for sender in senders}:
            raise Invalid(f"the answer to this address must come from {meeting.email}", field="sender")
        text = await asyncio.to_thread(imip.calendar_part, body)
        if text is None:
            raise Invalid("the mail holds no calendar", field="body")
        return await self._answered(meeting, text)

    async def rsvp(self, token: str) -> tuple[str, datetime | None, str, str]:
        """What the RSVP page of a reply token shows, for an attendee without a calendar program:
        the meeting's title, start, organizer and their answer so far. Invalid when the token is
        unknown or the meeting is gone or over (the link expires with it)."""
        meeting = await self._by_token(token, current=True)
        calendar = await asyncio.to_thread(parse_resource, meeting.copy.ical)
        master = itip.components(calendar)[0]
        line = itip.attendees(master).get(meeting.attendee)
        start = master.get("DTSTART")
        moment = start.dt if start is not None and isinstance(start.dt, datetime) else None
        organizer = str(meeting.organizer.email or meeting.organizer.username)
        return str(master.get("SUMMARY", "")), moment, organizer, itip.partstat(line) if line is not None else ""

    async def rsvp_answer(self, token: str, partstat: str) -> Scheduled:
        """An answer given on the RSVP page: a REPLY for the token's attendee, delivered as one
        from their calendar program would be."""
        meeting = await self._by_token(token, current=True)

        def reply_text() -> str:
            copy = parse_resource(meeting.copy.ical)
            itip.set_answer(copy, meeting.attendee, partstat)
            return itip.reply(copy, meeting.attendee).to_ical().decode()

        return await self._answered(meeting, await asyncio.to_thread(reply_text))

    async def _by_token(self, token: str, *, current: bool = False) -> TokenMeeting:
        """The meeting a reply token names, with the organizer's copy; Invalid when there is none
        (or, ``current``, when it is over)."""
        found = await self.store.imip_token_of(token) if 8 <= len(token) <= 64 else None
        if found is None:
            raise Invalid("no such reply address", field="token")
        organizer_id, attendee, uid = found
        organizer = await self.store.get_user(organizer_id)
        copies = [c for owner, c in await self.store.scheduled_copies([organizer_id], uid) if owner == organizer_id]
        if organizer is None or self.address_of(organizer) is None or not copies:
            raise Invalid("the meeting is gone", field="token")
        if current and copies[0].end_utc is not None and copies[0].end_utc < time.time():
            raise Invalid("the meeting is over: this link has expired", field="token")
        return TokenMeeting(organizer, attendee, copies[0])

    async def _answered(self, meeting: TokenMeeting, text: str) -> Scheduled:
        """An answer from outside (by mail, or on the RSVP page) delivered: only the token's
        attendee's answer counts."""
        me = self.address_of(meeting.organizer)
        assert me is not None
        held = Local(meeting.organizer, me, meeting.copy)
        calendar = await asyncio.to_thread(held.parsed)
        assert calendar is not None
        uid = meeting.copy.uid
        everyone = await self._locals(itip.attendee_addresses(calendar) - {me, meeting.attendee}, uid)
        others = {a: local for a, local in everyone.items() if local.copy is not None}
        try:
            deliveries = await asyncio.to_thread(
                mailed_reply, text, meeting.attendee, held, others, self.config.max_instances
            )
        except ValueError as refused:
            raise Invalid(str(refused), field="body") from None
        if not deliveries:
            raise Invalid("the answer names nothing of this meeting", field="body")
        scheduled = Scheduled(Resource(uid, meeting.copy.component, "", None, None), meeting.copy.schedule_tag, False)
        outcome = Outcome(scheduled.resource, False, True, deliveries)
        await self._deliver(scheduled, outcome, meeting.organizer, meeting.organizer)
        return scheduled

    def mails(self, end: int | None) -> bool:
        """Whether a meeting ending at ``end`` (epoch seconds; None: never) is mailed to attendees
        outside the server: when mail is set up (``[smtp] host``), and never for the past."""
        return bool(self.config.smtp_host) and (end is None or end > time.time())

    async def _owner(self, actor: User, calendar: Calendar) -> User | None:
        return actor if actor.id == calendar.owner_id else await self.store.get_user(calendar.owner_id)

    async def _locals(self, addresses: set[str], uid: str) -> dict[str, Local]:
        """The users of this server among ``addresses``, each with their copy of meeting ``uid``."""
        emails = [a.removeprefix("mailto:") for a in addresses if a.startswith("mailto:")]
        users = await self.store.users_by_email(emails) if emails else {}
        found = {f"mailto:{email}": Local(user, f"mailto:{email}") for email, user in users.items()}
        if found:
            by_user = {local.user.id: local for local in found.values()}
            for owner_id, copy in await self.store.scheduled_copies(list(by_user), uid):
                if by_user[owner_id].copy is None:
                    by_user[owner_id].copy = copy
        return found

    async def _organizer_and_others(
        self, organizer: str, calendar: ICalendar, me: str, uid: str
    ) -> tuple[Local | None, dict[str, Local]]:
        """For an attendee's change: the organizer (if a user here) with their copy, and the
        other local attendees with theirs (only those who have one)."""
        everyone = await self._locals((itip.attendee_addresses(calendar) | {organizer}) - {me}, uid)
        found = everyone.pop(organizer, None)
        return found, {a: local for a, local in everyone.items() if local.copy is not None}

    async def _self_answers(self, locals_: dict[str, Local], resource: Resource) -> None:
        """Rooms' and resources' answers: accepted when no other event of theirs overlaps any
        instance, declined otherwise."""
        if not resource.spans:
            return
        start = datetime.fromtimestamp(min(s for s, _, _ in resource.spans), UTC)
        end = datetime.fromtimestamp(max(e for _, e, _ in resource.spans), UTC)
        rooms = [local for local in locals_.values() if local.user.cutype in SELF_ANSWERING]
        if not rooms:
            return
        busy = await self.calendars.busy_of(
            rooms[0].user, [room.user for room in rooms], start, end, everyone=True, besides=resource.uid
        )
        for room in rooms:
            taken = [(b.timestamp(), e.timestamp()) for b, e, _ in busy[room.user.id] or ()]
            overlaps = any(s < e2 and b2 < e for s, e, _ in resource.spans for b2, e2 in taken)
            room.answer = "DECLINED" if overlaps else "ACCEPTED"

    async def _deliver(self, scheduled: Scheduled, outcome: Outcome, actor: User, owner: User) -> None:
        """The deliveries as store steps and inbox items."""
        arriving = [d.local.user.id for d in outcome.deliveries if d.write and d.resource and not d.local.copy]
        defaults = await self.store.default_calendars(arriving) if arriving else {}
        for delivery in outcome.deliveries:
            step = await self._step(delivery, actor, defaults)
            if step is not None:
                scheduled.steps.append(step)
            if delivery.message is not None:
                scheduled.inbox.append(_item(delivery.local.user.id, scheduled.resource.uid, delivery))
        for mailing in outcome.mail:
            scheduled.mail.append(await self._mail(owner, scheduled.resource, mailing))
        for text in outcome.replies:
            scheduled.inbox.append(
                _item(owner.id, scheduled.resource.uid, Delivery(Local(owner, ""), message=text, method="REPLY"))
            )

    async def _mail(self, organizer: User, resource: Resource, mailing: Mailing) -> Mail:
        """The e-mail telling an attendee outside the server ``mailing`` (iMIP), with the reply
        token of (organizer, attendee, meeting); the same change queued twice is mailed once."""
        token = await self.store.imip_token(organizer.id, mailing.address, resource.uid, secrets.token_urlsafe(12))
        recipient = mailing.address.removeprefix("mailto:")
        text = imip.message(
            mailing.method, mailing.text, summary=resource.summary, organizer_name=organizer.username,
            sender=self.config.smtp_sender, recipient=recipient, token=token, update=mailing.update,
            rsvp=f"{self.config.smtp_rsvp_url}{token}" if self.config.smtp_rsvp_url else None,
        )  # fmt: skip
        told = await asyncio.to_thread(lambda: itip.without_answers(parse_resource(mailing.text)))
        dedupe = hashlib.sha256(recipient.encode() + b"\0" + mailing.method.encode() + b"\0" + told).hexdigest()
        return Mail(organizer.id, dedupe, recipient, text)

    async def _step(
        self, delivery: Delivery, actor: User, defaults: dict[int, Calendar]
    ) -> ObjectPut | ObjectDelete | None:
        copy = delivery.local.copy
        if not delivery.write:
            return None
        if delivery.resource is None:
            return ObjectDelete(copy.calendar_id, copy.href, copy.etag, actor.id) if copy is not None else None
        if copy is not None:
            tag = copy.schedule_tag if delivery.keep_tag and copy.schedule_tag else new_tag()
            return ObjectPut(copy.calendar_id, object_write(delivery.resource, copy.href, actor.id, tag), copy.etag)
        target = defaults.get(delivery.local.user.id)
        if target is None or delivery.resource.component not in target.components.split(","):
            target = await self.default_calendar(delivery.local.user, delivery.resource.component)
        write = object_write(delivery.resource, href_for_uid(delivery.resource.uid), actor.id, new_tag())
        return ObjectPut(target.id, write, create_only=True)

    async def default_calendar(self, user: User, component: str = "VEVENT") -> Calendar:
        """Where an invitation's copy goes (RFC 6638 ``schedule-default-calendar-URL``): the
        user's default calendar, or the first of theirs that takes the component."""
        default = await self.calendars.default(user)
        if component in default.components.split(","):
            return default
        return next((c for c in await self.calendars.of(user) if component in c.components.split(",")), default)

    async def pending(self, user: User) -> list[tuple[CalendarObject, Calendar]]:
        """The invitations (from the user's inbox, not expired) they have not answered: their
        copies, each with its calendar, newest invitation first."""
        me = self.address_of(user)
        uids = list(dict.fromkeys(i.uid for i in reversed(await self.inbox(user)) if i.method == "REQUEST"))
        found = []
        for uid in uids[:MAX_ATTENDEES]:
            for _, copy in await self.store.scheduled_copies([user.id], uid):
                calendar = await self.store.get_calendar(copy.calendar_id)
                lines = await asyncio.to_thread(_my_lines, copy.ical, me)
                if calendar is not None and lines and all(itip.partstat(line) == "NEEDS-ACTION" for line in lines):
                    found.append((copy, calendar))
        return found

    async def usernames(self, texts: Sequence[str]) -> dict[str, str]:
        """The users of this server among the ORGANIZER and ATTENDEE addresses of these
        resources: their username by address."""
        unfolded = (text.replace("\r\n ", "").replace("\r\n\t", "") for text in texts)
        emails = {m.lower() for text in unfolded for m in _MAILTO.findall(text)}
        found = await self.store.users_by_email(sorted(emails)) if emails else {}
        return {f"mailto:{email}": user.username for email, user in found.items()}

    def expired(self) -> str:
        """Inbox items delivered before this time (``[scheduling] inbox_days`` ago) have expired:
        they are never shown, and a delivery to their user drops them."""
        return now_iso(ago=timedelta(days=self.config.inbox_days))

    async def inbox(self, user: User) -> list[InboxItem]:
        """The user's own scheduling inbox, oldest first."""
        return await self.store.inbox(user.id, self.expired())

    async def inbox_item(self, user: User, name: str) -> InboxItem | None:
        return await self.store.inbox_item(user.id, name, self.expired())

    async def remove_from_inbox(self, user: User, name: str) -> bool:
        """Remove a message the user handled; whether there was one."""
        return await self.store.delete_inbox_item(user.id, name)

    async def user_at(self, calendar_user: str) -> User | None:
        """The user of this server a ``mailto:`` address names, or None."""
        text = address(calendar_user)
        if not text.startswith("mailto:") or "@" not in text:
            return None
        return await self.calendars.owner_of(text.removeprefix("mailto:"), by_email=True)

    async def free_busy(
        self,
        asker: User,
        attendees: Sequence[str],
        start: datetime,
        end: datetime,
        *,
        known: Mapping[str, User] | None = None,
    ) -> list[FreeBusy]:
        """The answer to a free/busy request for ``attendees`` (calendar user addresses) in
        [start, end): one per attendee, in their order; ``known``: the users of addresses a door
        resolved itself (its principals' URLs). Invalid beyond ``MAX_FREE_BUSY_ATTENDEES`` or
        for an empty or reversed range."""
        if len(attendees) > MAX_FREE_BUSY_ATTENDEES:
            raise Invalid(
                f"a free/busy request asks about {MAX_FREE_BUSY_ATTENDEES} attendees at most", field="attendee"
            )
        if end <= start:
            raise Invalid("a free/busy request's end must be after its start", field="dtend")
        emails = [address(a).removeprefix("mailto:") for a in attendees if address(a).startswith("mailto:")]
        by_email = await self.store.users_by_email(emails) if emails else {}
        users = [(a, (known or {}).get(a) or by_email.get(address(a).removeprefix("mailto:"))) for a in attendees]
        everyone = self.config.free_busy == "everyone"
        found = [user for _, user in users if user is not None]
        busy = await self.calendars.busy_of(asker, found, start, end, everyone=everyone) if found else {}
        answers = []
        for attendee, user in users:
            periods = busy.get(user.id) if user is not None else None
            if user is None:
                answers.append(FreeBusy(attendee, UNKNOWN_USER))
            elif periods is None:
                answers.append(FreeBusy(attendee, NO_AUTHORITY))
            else:
                answers.append(FreeBusy(attendee, SUCCESS, periods))
        return answers


def _parse(text: str, old: CalendarObject | None) -> tuple[ICalendar, ICalendar | None]:
    return parse_resource(text), parse_resource(old.ical) if old is not None else None


def _item(user_id: int, uid: str, delivery: Delivery) -> InboxItem:
    assert delivery.message is not None
    return InboxItem(user_id, f"{uuid.uuid4().hex}.ics", uid, delivery.method, delivery.message)


def _my_lines(text: str, me: str | None) -> list[vCalAddress]:
    """The ATTENDEE lines of ``me`` in a copy whose organizer is someone else."""
    data = parse_resource(text)
    if me is None or itip.organizer(data) in (None, me):
        return []
    return [line for component in itip.components(data) if (line := itip.attendees(component).get(me)) is not None]
