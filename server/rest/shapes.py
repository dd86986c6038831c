"""The JSON of the /v1 door in and out: Timeslot's camelCase keys, users, groups, members and
slots as Timeslot shows them, and the bodies of replies and errors."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from icalendar import Calendar as ICalendar

from protocol import events, itip
from protocol.formats.timeslot_json import iso_utc, slot
from protocol.ical.values import parse_resource
from server.http import load_json
from server.services.access import State
from server.services.errors import Invalid
from storage.model import Calendar, CalendarObject, Grant, User

#: slot keys (Timeslot's camelCase, snake_cased) and the export keys they map to
SLOT_KEYS = {
    "title": "title", "start_date": "start", "end_date": "end", "allday": "allday",
    "timezone": "timezone", "rrule": "rrule", "description": "description",
    "location": "location", "visibility": "visibility", "notes": "notes", "type": "type",
}  # fmt: skip


#: which event fields a slot key changes (for PATCH, so other properties are kept)
CHANGES = {
    "title": {"summary"}, "start": {"start", "end"}, "end": {"start", "end"},
    "allday": {"start", "end"}, "timezone": {"start", "end"}, "rrule": {"rrule"},
    "description": {"description"}, "notes": {"description"}, "location": {"location", "geo"},
    "visibility": {"klass"},
}  # fmt: skip


_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def snake(key: str) -> str:
    return _CAMEL.sub("_", key).lower()


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers, dumps=lambda d: json.dumps(d, ensure_ascii=False))


def error_response(status: int, message: str, **extra: Any) -> web.Response:
    return json_response({"error": message, **{k: v for k, v in extra.items() if v is not None}}, status)


def short_user(user: User) -> dict[str, Any]:
    return {
        "id": user.id, "username": user.username, "firstName": None, "middleName": None,
        "lastName": None, "createdAt": user.created_at, "updatedAt": user.updated_at,
        "deletedAt": None, "image": "",
    }  # fmt: skip


def user_json(user: User, calendars: list[Calendar], token: str | None = None) -> dict[str, Any]:
    default = next((c for c in calendars if c.is_default), None)
    data = {
        **short_user(user),
        "email": user.email,
        "emailVerified": False,
        "slotCount": sum(c.object_count or 0 for c in calendars),
        "calendarCount": len(calendars),
        "friendsCount": 0,
        "myCalendarUuid": default.uuid if default else None,
        "friendshipState": "myself",
    }
    if token is not None:
        data["authToken"] = token
    return data


def group_json(
    calendar: Calendar, owner: User, members: Sequence[tuple[Grant, User]] = (), state: str = "active"
) -> dict[str, Any]:
    """A group as Timeslot shows it: ``members`` are its grants to users (the active ones are
    its members besides the owner), ``state`` the asking user's membershipState."""
    color = (calendar.color or "#000000").lstrip("#")[:6]
    member_ids = [owner.id, *(u.id for g, u in members if g.state == State.ACTIVE)]
    return {
        "id": calendar.uuid, "name": calendar.name, "image": "", "description": calendar.description,
        "defaultColor": color, "color": color, "timezone": calendar.timezone,
        "membersCanPost": bool(calendar.props.get("membersCanPost")),
        "membersCanInvite": bool(calendar.props.get("membersCanInvite")),
        "public": bool(calendar.props.get("public")), "default": calendar.is_default,
        "createdAt": calendar.created_at, "updatedAt": calendar.updated_at, "deletedAt": None,
        "owner": short_user(owner), "memberIds": member_ids, "memberCount": len(member_ids),
        "slotCount": calendar.object_count, "membershipState": state,
    }  # fmt: skip


def member_json(grant: Grant, user: User) -> dict[str, Any]:
    """A member of a group: the user, their membershipState and level (``access``)."""
    return {**short_user(user), "membershipState": grant.state, "access": grant.level,
            "color": grant.props.get("color")}  # fmt: skip


#: the answers ``POST /v1/slots/{id}/answer`` takes, as iCalendar says them
ANSWERS = {"accepted": "ACCEPTED", "tentative": "TENTATIVE", "declined": "DECLINED"}
#: JSON's word for each participation status (RFC 5545 PARTSTAT)
STATUSES = {"NEEDS-ACTION": "needs-action", "ACCEPTED": "accepted", "TENTATIVE": "tentative",
            "DECLINED": "declined", "DELEGATED": "delegated"}  # fmt: skip


def slot_json(found: CalendarObject, calendar: Calendar, me: str | None = None) -> dict[str, Any]:
    """A slot; a meeting's with its organizer and attendees, and (``me``: the asking user's
    e-mail) their own participation: ``needs-action`` while they have not answered."""
    data = parse_resource(found.ical)
    fields = events.view_of(data)
    exported = slot(fields)
    return {
        "id": found.id, "uid": fields.uid, "type": "todo" if fields.component == "VTODO" else "event",
        "title": fields.summary, "description": fields.description,
        "startDate": iso_utc(fields.start) if fields.start is not None else None,
        "endDate": iso_utc(fields.end) if fields.end is not None else None,
        "allday": fields.all_day, "rrule": fields.rrule, "timezone": fields.tzid,
        "location": exported["location"], "visibility": fields.visibility,
        "etag": found.etag, "createdAt": found.created_at, "updatedAt": found.modified_at,
        "deletedAt": None, "slotGroupUuids": [calendar.uuid], **meeting_json(data, me),
    }  # fmt: skip


def meeting_json(data: ICalendar, me: str | None) -> dict[str, Any]:
    """A slot's organizer (an e-mail), attendees and the asking user's participation (each
    null or empty for an event that is no meeting)."""
    master = next(iter(itip.components(data)), None)
    if master is None or "ORGANIZER" not in master:
        return {"organizer": None, "attendees": [], "participation": None}
    attendees = [
        {"email": who.removeprefix("mailto:"), "name": str(line.params["CN"]) if "CN" in line.params else None,
         "status": STATUSES.get(itip.partstat(line), "needs-action")}
        for who, line in itip.attendees(master).items()
    ]  # fmt: skip
    mine = next((a["status"] for a in attendees if me is not None and a["email"] == me.lower()), None)
    organizer = itip.address(master["ORGANIZER"])
    return {"organizer": organizer.removeprefix("mailto:"), "attendees": attendees, "participation": mine}


def json_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    data = load_json(body)
    if not isinstance(data, dict):
        raise Invalid("the body must be a JSON object")
    return {snake(k): v for k, v in data.items()}
