"""What one change of a scheduling object resource delivers (RFC 6638 3.2), decided from parsed
calendars without I/O (it runs in a thread): the organizer's copy as it is written (answers
kept, SCHEDULE-STATUS per attendee), each local attendee's copy made, updated or removed, the
organizer's copy learning an attendee's answer, and the iTIP message each of them finds in
their inbox. The service reads what this needs first and writes what it decides in one
transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from icalendar import Calendar

from protocol import itip
from protocol.ical.resources import Resource, resource_from_calendar
from protocol.ical.values import parse_resource
from storage.model import CalendarObject, User

#: SCHEDULE-STATUS values (RFC 6638 3.2.9, RFC 5546 3.6): delivered to a local attendee;
#: answered (a room at once, an attendee's REPLY); not delivered (an address no one here has,
#: while no mail goes out)
DELIVERED, ANSWERED, NO_SUCH_USER = "1.2", "2.0", "3.7"
#: SCHEDULE-STATUS of a message on its way by e-mail (RFC 6638 3.2.9: pending)
MAILED = "1.1"


@dataclass(slots=True)
class Local:
    """A user of this server a change concerns, with their copy of the meeting (if any)."""

    user: User
    address: str
    copy: CalendarObject | None = None
    answer: str | None = None  #: a room's or resource's own answer, decided from its busy times

    def parsed(self) -> Calendar | None:
        return parse_resource(self.copy.ical) if self.copy is not None else None


@dataclass(slots=True)
class Delivery:
    """One user's share of a change: their copy after it (None: removed; unchanged: no write)
    and the message their inbox gets (None: none)."""

    local: Local
    resource: Resource | None = None
    keep_tag: bool = False  #: only answers changed: the copy's Schedule-Tag stays
    write: bool = True
    message: str | None = None  #: the iTIP message's text
    method: str = ""


class Mailing(NamedTuple):
    """An iTIP message for an attendee outside the server: it goes by e-mail (iMIP)."""

    address: str
    method: str  #: REQUEST or CANCEL
    text: str
    update: bool = False  #: a change of an invitation they had


@dataclass(slots=True)
class Outcome:
    """What a write does: the resource written in place of the one sent, and the deliveries."""

    resource: Resource
    rewritten: bool  #: the server changed what was sent (answers kept, SCHEDULE-STATUS)
    keep_tag: bool  #: only answers changed: the written object's Schedule-Tag stays
    deliveries: list[Delivery] = field(default_factory=list)
    #: answers rooms and resources gave on their own (REPLY texts), for the organizer's inbox
    replies: list[str] = field(default_factory=list)
    #: iTIP messages for attendees outside the server, to mail: (address, method, text, update)
    mail: list[Mailing] = field(default_factory=list)


def _resource(calendar: Calendar, max_instances: int) -> Resource:
    return resource_from_calendar(calendar, max_instances)


def _text(message: Calendar) -> str:
    return message.to_ical().decode()


def _to_copy(local: Local, message: Calendar, text: str, *, reset: bool, max_instances: int) -> Delivery:
    """A local attendee's copy updated from a REQUEST (``text`` is its text), with the REQUEST for
    their inbox unless only answers changed."""
    before = local.parsed()
    copy = itip.attendee_copy(message, local.address, before, reset=reset)
    if local.answer is not None:
        itip.set_answer(copy, local.address, local.answer)
    if before is not None and copy.to_ical() == before.to_ical():
        return Delivery(local, write=False)
    only_answers = before is not None and itip.without_answers(copy) == itip.without_answers(before)
    return Delivery(
        local, _resource(copy, max_instances), keep_tag=only_answers,
        message=None if only_answers else text, method="REQUEST",
    )  # fmt: skip


def organizer_change(
    old: Calendar | None,
    new: Calendar,
    organizer: str,
    locals_: dict[str, Local],
    max_instances: int,
    mail: bool = False,
) -> Outcome:
    """An organizer's write (``mail``: attendees outside the server are mailed): answers
    recorded so far are kept unless the change is significant
    (then every attendee is asked again), rooms answer, each attendee the server schedules for
    gets a REQUEST (their copy made or updated) or a CANCEL (removed, or instances taken away),
    and SCHEDULE-STATUS says per attendee what became of it."""
    sent_before = itip.answers_state(new)
    before = itip.attendee_addresses(old) if old is not None else set()
    now = itip.attendee_addresses(new) - {organizer}
    significant = old is None or itip.significant(old, new)
    if old is not None:
        if significant:
            itip.reset_answers(new, organizer)
        itip.merge_answers(new, old, (before & now) if not significant else ())
    index = itip.attendee_index(new)
    scheduled = [a for a in sorted(now) if any(itip.agent(line) == "SERVER" for _, line in index[a])]
    forced = set()
    # first what the organizer's copy records of each attendee, so that every message tells it all
    for address in scheduled:
        lines = [line for _, line in index[address]]
        if any(str(line.params.pop("SCHEDULE-FORCE-SEND", "")).upper() == "REQUEST" for line in lines):
            forced.add(address)  # the client asks for a REQUEST whatever changed (RFC 6638 7.3)
        local = locals_.get(address)
        if local is not None and local.answer is not None and (address not in before or significant):
            answer = {"PARTSTAT": local.answer}
        else:
            answer = {}
            if local is not None:
                local.answer = None
        for line in lines:
            if answer:
                line.params.pop("RSVP", None)
            status = (MAILED if mail else NO_SUCH_USER) if local is None else ANSWERED if answer else DELIVERED
            line.params.update(answer, **{"SCHEDULE-STATUS": status})
    # then what each gets: attendees of the same instances get the same REQUEST, and the same
    # first copy (so inviting a hundred costs little more than inviting one)
    messages: dict[frozenset[datetime | None], tuple[Calendar, str]] = {}
    first_copies: dict[frozenset[datetime | None], Resource] = {}
    deliveries: list[Delivery] = []
    replies: list[str] = []
    mailings: list[Mailing] = []
    for address in scheduled:
        local = locals_.get(address)
        instances = frozenset(rid for rid, _ in index[address])
        if (local is None and not mail) or not instances:
            continue
        invited = address not in before
        if local is not None and local.copy is None and not (invited or significant or address in forced):
            continue  # they removed their copy (declining): a minor change does not bring it back
        if instances not in messages:
            request = itip.request(new, address)
            assert request is not None  # they are invited to these instances
            messages[instances] = request, _text(request)
        message, text = messages[instances]
        if local is None:  # outside the server: by e-mail (the queue mails one text once)
            mailings.append(Mailing(address, "REQUEST", text, update=not invited))
            if old is not None and not invited and (gone := itip.cancelled_instances(old, new, address)):
                mailings.append(Mailing(address, "CANCEL", _text(itip.cancel(old, address, gone))))
            continue
        if local.copy is None and local.answer is None:
            if instances not in first_copies:
                first_copies[instances] = _resource(itip.attendee_copy(message, address), max_instances)
            delivery = Delivery(local, first_copies[instances], message=text, method="REQUEST")
        else:
            delivery = _to_copy(local, message, text, reset=significant, max_instances=max_instances)
        if address in forced and delivery.message is None:
            delivery.message, delivery.method = text, "REQUEST"
        deliveries.append(delivery)
        if old is not None and not invited and (gone := itip.cancelled_instances(old, new, address)):
            cancelled = _text(itip.cancel(old, address, gone))
            deliveries.append(Delivery(local, write=False, message=cancelled, method="CANCEL"))
        if local.answer is not None:  # a room's answer, as if it had replied
            replies.append(_text(itip.reply(new, address)))
    if old is not None:
        removed, mailed = organizer_delete(old, organizer, locals_, mail, only=before - now)
        deliveries += removed
        mailings += mailed
    resource = _resource(new, max_instances)
    rewritten = itip.answers_state(new) != sent_before
    return Outcome(resource, rewritten, keep_tag=False, deliveries=deliveries, replies=replies, mail=mailings)


def organizer_delete(
    old: Calendar, organizer: str, locals_: dict[str, Local], mail: bool = False, only: set[str] | None = None
) -> tuple[list[Delivery], list[Mailing]]:
    """The organizer removed the meeting (or, ``only``, these attendees from it): every attendee
    the server schedules for gets a CANCEL and loses their copy; those outside, by e-mail."""
    deliveries, mailings = [], []
    for address in sorted((itip.attendee_addresses(old) if only is None else only) - {organizer}):
        if not itip.scheduled_by_server(old, address):
            continue
        local = locals_.get(address)
        text = _text(itip.cancel(old, address))
        if local is not None:
            deliveries.append(Delivery(local, None, message=text, method="CANCEL"))
        elif mail:
            mailings.append(Mailing(address, "CANCEL", text))
    return deliveries, mailings


def attendee_change(
    old: Calendar | None,
    new: Calendar,
    me: str,
    organizer: Local | None,
    others: dict[str, Local],
    *,
    reply: bool,
    max_instances: int,
) -> Outcome:
    """An attendee's write of their copy: refused (ValueError saying why) when it changes what
    is the organizer's; else the other attendees' answers are kept as scheduling recorded them
    and, when their own answer changed (or they removed an instance), a REPLY updates the
    organizer's copy, then the other local attendees' copies."""
    sent_before = itip.answers_state(new)
    if old is not None:
        refused = itip.attendee_change_refused(old, new, me)
        if refused:
            raise ValueError(refused)
        itip.merge_answers(new, old, itip.attendee_addresses(new) - {me})
    reference = old if old is not None else (organizer.parsed() if organizer is not None else None)
    changed, declined = itip.answered(reference, new, me)
    deliveries: list[Delivery] = []
    if reply and (changed or declined):
        message = itip.reply(new, me, changed, declined)
        deliveries = _replied(message, organizer, others, max_instances)
    resource = _resource(new, max_instances)
    # what an attendee changes is theirs, never consequential to the organizer: their copy keeps
    # its Schedule-Tag (RFC 6638 3.2.10), which only the organizer's changes move
    return Outcome(resource, rewritten=itip.answers_state(new) != sent_before, keep_tag=True, deliveries=deliveries)


def attendee_delete(
    old: Calendar, me: str, organizer: Local | None, others: dict[str, Local], max_instances: int
) -> list[Delivery]:
    """An attendee removed their copy: they decline every instance they had not declined yet."""
    parts = itip.by_instance(old)
    declining = [
        rid for rid, c in parts.items() if (line := itip.attendees(c).get(me)) and itip.partstat(line) != "DECLINED"
    ]
    if not declining:
        return []
    copy = Calendar.from_ical(old.to_ical())
    for rid, component in itip.by_instance(copy).items():
        if rid in declining:
            itip.attendees(component)[me].params["PARTSTAT"] = "DECLINED"
    return _replied(itip.reply(copy, me, declining), organizer, others, max_instances)


def _replied(
    message: Calendar, organizer: Local | None, others: dict[str, Local], max_instances: int
) -> list[Delivery]:
    """A REPLY delivered: the organizer's copy takes the answer (its Schedule-Tag stays) and
    gets it in its inbox; the other local attendees' copies learn it too (no inbox item)."""
    deliveries: list[Delivery] = []
    if organizer is None or organizer.copy is None:
        return deliveries
    copy = organizer.parsed()
    assert copy is not None
    if not itip.apply_reply(copy, message):
        return deliveries
    resource = _resource(copy, max_instances)
    deliveries.append(Delivery(organizer, resource, keep_tag=True, message=_text(message), method="REPLY"))
    for local in others.values():
        theirs = local.parsed()
        if theirs is not None and itip.apply_reply(theirs, message, status=None):
            deliveries.append(Delivery(local, _resource(theirs, max_instances), keep_tag=True))
    return deliveries


def mailed_reply(
    text: str, attendee: str, organizer: Local, others: dict[str, Local], max_instances: int
) -> list[Delivery]:
    """An answer that came by e-mail from ``attendee`` (whose the reply token is): its REPLY
    delivered as one made here, its other attendees' lines ignored (no one answers for
    another); it needs no ORGANIZER (Outlook leaves it out). ValueError when it is no REPLY
    or says nothing of theirs."""
    message = parse_resource(text)
    if str(message.get("METHOD", "")).upper() != "REPLY":
        raise ValueError("not an iTIP REPLY")
    for component in itip.components(message):
        mine = itip.attendees(component).get(attendee)
        component.pop("ATTENDEE", None)
        if mine is not None:
            component.add("ATTENDEE", mine)
    if not itip.answers(message):
        raise ValueError(f"no answer of {attendee}")
    return _replied(message, organizer, others, max_instances)
