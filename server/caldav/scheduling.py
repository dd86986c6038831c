"""CalDAV scheduling (RFC 6638): what a PUT or DELETE asks of scheduling (its headers), and the
outbox's free/busy request. An organizer's client POSTs a
VFREEBUSY REQUEST naming attendees (``mailto:`` addresses or principals' URLs) to its own outbox
(``/dav/scheduling/{user}/outbox/``) and gets one ``C:response`` per attendee: their busy periods
as far as the scheduling service lets the asker see them, or why not. The inbox and outbox
themselves are answered by the door (PROPFIND)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from urllib.parse import urlsplit

from aiohttp import web
from icalendar import Calendar
from lxml import etree

from protocol import dav
from protocol.dav import CALDAV, tag
from protocol.ical.values import UNREADABLE
from protocol.itip import FreeBusyRequest, address, free_busy_reply, free_busy_request
from server.caldav.props import MAX_RESOURCE_SIZE, calendar_user_addresses
from server.caldav.replies import DavError, xml_reply
from server.caldav.sharing import sharee
from server.http import read_limited
from server.services import Services
from server.services.errors import Invalid, TooLarge
from server.services.objects import Scheduling
from server.services.scheduling import FreeBusy
from storage.model import User


def scheduling_asked(request: web.Request) -> Scheduling:
    """What a PUT or DELETE asks of scheduling: ``If-Schedule-Tag-Match`` (the Schedule-Tag the
    stored version must have) and ``Schedule-Reply: F`` (an attendee's answer goes to no one)."""
    tag_match = request.headers.get("If-Schedule-Tag-Match")
    return Scheduling(
        tag_match=tag_match.strip().strip('"') if tag_match is not None else None,
        reply=request.headers.get("Schedule-Reply", "T").strip().upper() != "F",
    )


def own_address(user: User, value: str) -> bool:
    """Whether a calendar user address is one of the user's ``calendar-user-address-set`` (a
    principal's URL may come absolute)."""
    mine = {address(own) for own in calendar_user_addresses(user)}
    return address(value) in mine or urlsplit(value).path in mine


def _read(body: bytes) -> FreeBusyRequest:
    """The request a body holds; DavError when it is none (CPU-bound: in a thread)."""
    try:
        calendar = Calendar.from_ical(body.decode("utf-8"))
    except (UnicodeDecodeError, *UNREADABLE) as error:
        raise DavError(400, tag(CALDAV, "valid-calendar-data"), None) from error
    try:
        return free_busy_request(calendar)
    except ValueError:
        raise DavError(403, tag(CALDAV, "valid-scheduling-message")) from None


def schedule_response(asked: FreeBusyRequest, answers: list[FreeBusy]) -> bytes:
    """The ``C:schedule-response`` (RFC 6638 10.2): per attendee, its status and its busy time."""
    root = etree.Element(tag(CALDAV, "schedule-response"), nsmap=dav.NSMAP)
    stamp = datetime.now(UTC).replace(microsecond=0)
    for answer in answers:
        response = etree.SubElement(root, tag(CALDAV, "response"))
        recipient = etree.SubElement(response, tag(CALDAV, "recipient"))
        recipient.append(dav.href_element(answer.address))
        etree.SubElement(response, tag(CALDAV, "request-status")).text = answer.status
        if answer.status.startswith("2."):
            data = free_busy_reply(asked, answer.address, answer.periods, stamp)
            etree.SubElement(response, tag(CALDAV, "calendar-data")).text = data
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


async def free_busy(services: Services, request: web.Request, user: User) -> web.Response:
    """A POST to the user's outbox: a VFREEBUSY REQUEST answered at once (RFC 6638 5). Refused
    (403, with the precondition) when it is not one, is not the user's own (ORGANIZER), or asks
    about more attendees than a request may."""
    if request.content_type != "text/calendar":
        raise DavError(403, tag(CALDAV, "supported-calendar-data"))
    try:
        body = await read_limited(request, MAX_RESOURCE_SIZE)
    except TooLarge:
        raise DavError(403, tag(CALDAV, "max-resource-size")) from None
    asked = await asyncio.to_thread(_read, body)
    if not own_address(user, asked.organizer):
        raise DavError(403, tag(CALDAV, "organizer-allowed"))
    known = {
        a: who for a in asked.attendees if not a.lower().startswith("mailto:") and (who := await sharee(services, a))
    }
    try:
        answers = await services.scheduling.free_busy(user, asked.attendees, asked.start, asked.end, known=known)
    except Invalid as error:
        condition = "max-attendees-per-instance" if error.field == "attendee" else "valid-scheduling-message"
        raise DavError(403, tag(CALDAV, condition)) from None
    return xml_reply(200, await asyncio.to_thread(schedule_response, asked, answers))
