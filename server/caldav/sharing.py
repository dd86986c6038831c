"""CalendarServer's sharing extension (caldav-sharing), as Apple Calendar manages shares: a
``CS:share`` POST on a calendar invites users (read or read-write) or takes their access back;
the invitations wait in the sharee's notification collection (``/dav/notifications/{user}/``);
the sharee answers with a ``CS:invite-reply`` POST on their home. All of it calls the same
access service as every other door."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from aiohttp import web
from lxml import etree

from protocol import dav
from protocol.dav import CS, DAV, PropstatResponse, tag
from server.caldav.props import INVITE_STATES, DavError, multistatus, sharee_href, xml_reply
from server.services import Services
from server.services.access import Level, Share, State
from server.urls import calendar_href, notifications_href, principal_href
from storage.model import Calendar, Grant, User

#: a notification's name in the collection: the invitation's grant
NAME_PREFIX, NAME_SUFFIX = "invite-", ".xml"


def _path(href: str) -> list[str]:
    """The segments of an href's path, absolute (``http://host/dav/...``) or not (``/dav/...``)."""
    try:
        return [part for part in dav.path_segments(urlsplit(href).path) if part]
    except ValueError:
        return []


async def sharee(services: Services, href: str) -> User | None:
    """The user a sharee href names: ``mailto:`` an address, or a principal's path."""
    if href.lower().startswith("mailto:"):
        return await services.calendars.owner_of(href[7:], by_email=True)
    parts = _path(href)
    if len(parts) == 3 and parts[:2] == ["dav", "principals"]:
        return await services.users.get_by_name(parts[2])
    return None


async def share(services: Services, request: web.Request, user: User, calendar: Calendar, body: bytes) -> web.Response:
    """A ``CS:share`` POST, all or nothing: every sharee is found and checked before anything
    changes, then every change is made in one transaction. A sharee that is no user is 400, the
    owner 403 (``CS:valid-request`` naming the href); a change the user may not make (sharing
    at all, another admin's grant) is 403 ``need-privileges``."""
    try:
        sharees = dav.parse_share(body)
    except dav.BadRequest as error:
        raise web.HTTPBadRequest(text=f"{error}\n") from None
    await services.calendars.need(user, [calendar], Level.ADMIN)
    changes = []
    for item in sharees:
        who = await sharee(services, item.href)
        if who is None or who.id == calendar.owner_id:
            raise DavError(400 if who is None else 403, tag(CS, "valid-request"), item.href)
        level = None if item.read_write is None else Level.READ_WRITE if item.read_write else Level.READ
        changes.append(Share(who.id, level))
    await services.access.apply(user, calendar, changes)
    return web.Response(status=200)


async def invite_reply(services: Services, user: User, body: bytes) -> web.Response:
    """A ``CS:invite-reply`` POST on the sharee's home; accepted, the reply says where the
    calendar now is in the home (``CS:shared-as``)."""
    try:
        reply = dav.parse_invite_reply(body)
    except dav.BadRequest as error:
        raise web.HTTPBadRequest(text=f"{error}\n") from None
    parts = _path(reply.host)
    if len(parts) != 4 or parts[:2] != ["dav", "calendars"]:
        raise web.HTTPBadRequest(text="hosturl names the shared calendar, /dav/calendars/{owner}/{calendar}/\n")
    invited = await services.calendars.invitation(user, parts[2], parts[3])
    if invited is None:
        raise web.HTTPForbidden(text="there is no invitation to that calendar waiting for you\n")
    answered = await services.access.answer(user, invited, reply.accepted)
    if answered.state != State.ACTIVE:
        return web.Response(status=200)
    shared = await services.calendars.find(user, answered.slug or "")
    root = etree.Element(tag(CS, "shared-as"), nsmap=dav.NSMAP)
    if shared is not None:
        root.append(dav.href_element(calendar_href(user, shared)))
    return xml_reply(200, etree.tostring(root, xml_declaration=True, encoding="utf-8"))


# --------------------------------------------------------------------------- notifications


async def invitations(services: Services, user: User) -> list[tuple[Grant, Calendar, User]]:
    """The invitations waiting for the user, each with its calendar and that calendar's owner."""
    shared = await services.access.shared_with(user)
    return [(g, c, o) for g, c, o in shared if g.state == State.INVITED and g.level != Level.FREEBUSY.label]


def notification(user: User, grant: Grant, calendar: Calendar, owner: User) -> bytes:
    """An invitation as a ``CS:notification`` document (caldav-sharing 5.2.2)."""
    root = etree.Element(tag(CS, "notification"), nsmap=dav.NSMAP)
    root.append(dav.element(tag(CS, "dtstamp"), grant.updated_at[:19].replace("-", "").replace(":", "") + "Z"))
    access = "read" if grant.level == Level.READ.label else "read-write"
    root.append(
        dav.element(
            tag(CS, "invite-notification"),
            None,
            dav.element(tag(CS, "uid"), f"{NAME_PREFIX}{grant.id}"),
            dav.href_element(sharee_href(user)),
            dav.element(tag(CS, INVITE_STATES[grant.state])),
            dav.element(tag(CS, "hosturl"), None, dav.href_element(calendar_href(owner, calendar))),
            dav.element(
                tag(CS, "organizer"),
                None,
                dav.href_element(principal_href(owner)),
                dav.element(tag(CS, "common-name"), owner.username),
            ),
            dav.element(tag(CS, "summary"), calendar.name),
            dav.element(tag(CS, "access"), None, dav.element(tag(CS, access))),
        )
    )
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def _props(names: Sequence[str], etag: str | None) -> PropstatResponse:
    """The properties asked (all, when none are named) of the notification collection (``etag``
    None) or of one notification; the href is filled in by the caller."""
    collection = etag is None
    values: dict[str, str | list[etree._Element] | None] = {
        tag(DAV, "resourcetype"): [dav.element(tag(DAV, "collection")), dav.element(tag(CS, "notification"))]
        if collection else [],
        tag(DAV, "displayname"): "Notifications" if collection else None,
        tag(DAV, "getetag"): etag,
        tag(DAV, "getcontenttype"): None if collection else "application/xml; charset=utf-8",
        tag(CS, "notificationtype"): None if collection else [dav.element(tag(CS, "invite-notification"))],
    }  # fmt: skip
    response = PropstatResponse("")
    for name in names or [n for n, v in values.items() if v is not None]:
        value = values.get(name)
        if value is None:
            response.missing.append(name)
        elif isinstance(value, str):
            response.found.append(dav.element(name, value))
        else:
            response.found.append(dav.element(name, None, *value))
    return response


def _etag(grant: Grant) -> str:
    return f'"{grant.id}-{grant.updated_at}"'


def _name(grant: Grant) -> str:
    return f"{NAME_PREFIX}{grant.id}{NAME_SUFFIX}"


async def notifications(services: Services, user: User, names: Sequence[str], depth: int) -> web.StreamResponse:
    """PROPFIND of the user's notification collection (with Depth 1, its invitations too)."""
    base = notifications_href(user)
    responses = [_props(names, None)]
    responses[0].href = base
    if depth:
        for grant, _, _ in await invitations(services, user):
            responses.append(_props(names, _etag(grant)))
            responses[-1].href = base + _name(grant)
    return await multistatus(responses)


async def notification_item(
    services: Services, request: web.Request, user: User, name: str, names: Sequence[str] | None
) -> web.StreamResponse:
    """GET (the document) or PROPFIND (``names``) of one invitation in the collection."""
    for grant, calendar, owner in await invitations(services, user):
        if name == _name(grant):
            if names is not None:
                response = _props(names, _etag(grant))
                response.href = request.path
                return await multistatus([response])
            body = notification(user, grant, calendar, owner) if request.method == "GET" else None
            return web.Response(
                body=body, headers={"ETag": _etag(grant)}, content_type="application/xml", charset="utf-8"
            )
    raise web.HTTPNotFound()
