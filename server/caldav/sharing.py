"""CalendarServer's sharing extension (caldav-sharing), as Apple Calendar manages shares: a
``CS:share`` POST on a calendar invites users (read or read-write) or takes their access back;
the invitations wait in the sharee's notification collection (``/dav/notifications/{user}/``);
the sharee answers with a ``CS:invite-reply`` POST on their home. All of it calls the same
access service as every other door."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote, unquote, urlsplit

from aiohttp import web
from lxml import etree

from protocol import dav
from protocol.caldav.query import SyncCollection, Unsupported, parse_report
from protocol.dav import CS, DAV, PropstatResponse, tag
from server.caldav.props import INVITE_STATES
from server.caldav.replies import DavError, multistatus, xml_reply
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
        return await services.scheduling.user_at(href)
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


def waiting(grant: Grant) -> bool:
    """Whether a grant is an invitation the user's notification collection shows: not yet
    answered, not put away (DELETE), and one the sharing extension can say (read or read-write)."""
    return grant.state == State.INVITED and grant.level != Level.FREEBUSY.label and not grant.props.get("dismissed")


async def invitations(services: Services, user: User) -> list[tuple[Grant, Calendar, User]]:
    """The invitations waiting for the user, each with its calendar and that calendar's owner."""
    return [(g, c, o) for g, c, o in await services.access.shared_with(user) if waiting(g)]


def notification(user: User, grant: Grant, calendar: Calendar, owner: User) -> bytes:
    """An invitation as a ``CS:notification`` document (caldav-sharing 5.2.2), naming the sharee
    and the owner by their principals, as Apple's server does, the owner with a common name."""
    root = etree.Element(tag(CS, "notification"), nsmap=dav.NSMAP)
    root.append(dav.element(tag(CS, "dtstamp"), grant.updated_at[:19].replace("-", "").replace(":", "") + "Z"))
    access = "read" if grant.level == Level.READ.label else "read-write"
    invite = dav.element(
        tag(CS, "invite-notification"),
        None,
        dav.element(tag(CS, "uid"), f"{NAME_PREFIX}{grant.id}"),
        dav.href_element(principal_href(user)),
        dav.element(tag(CS, INVITE_STATES[grant.state])),
        dav.element(tag(CS, "access"), None, dav.element(tag(CS, access))),
        dav.element(tag(CS, "hosturl"), None, dav.href_element(calendar_href(owner, calendar))),
        dav.element(
            tag(CS, "organizer"),
            None,
            dav.href_element(principal_href(owner)),
            dav.element(tag(CS, "common-name"), owner.username),
        ),
        dav.element(tag(CS, "summary"), calendar.name),
    )
    invite.set("shared-type", "calendar")
    root.append(invite)
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def _props(names: Sequence[str], etag: str | None, token: str | None = None) -> PropstatResponse:
    """The properties asked (all, when none are named) of the notification collection (``etag``
    None; ``token`` its sync token) or of one notification; the href is filled in by the caller."""
    collection = etag is None
    values: dict[str, str | list[etree._Element] | None] = {
        tag(DAV, "resourcetype"): [dav.element(tag(DAV, "collection")), dav.element(tag(CS, "notification"))]
        if collection else [],
        tag(DAV, "displayname"): "Notifications" if collection else None,
        tag(DAV, "getetag"): etag,
        tag(DAV, "getcontenttype"): None if collection else "application/xml; charset=utf-8",
        tag(CS, "notificationtype"): None if collection else [dav.element(tag(CS, "invite-notification"))],
        tag(DAV, "sync-token"): token,
        tag(DAV, "supported-report-set"): [
            dav.element(tag(DAV, "supported-report"), None,
                        dav.element(tag(DAV, "report"), None, dav.element(tag(DAV, "sync-collection"))))
        ] if collection else None,
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


def _grant_id(name: str) -> int | None:
    """The grant a notification's name is made from (None for any other name)."""
    number = name.removeprefix(NAME_PREFIX).removesuffix(NAME_SUFFIX)
    if name == f"{NAME_PREFIX}{number}{NAME_SUFFIX}" and number.isdigit() and len(number) < 19:
        return int(number)
    return None


# the notification collection's sync tokens: urn:almanac:notifications:{user}:{stamp}:{grants}
# (the newest change of a grant to the user, and how many grants there were then)
TOKEN_PREFIX = "urn:almanac:notifications:"


async def _held(services: Services, user: User) -> list[Grant]:
    return [grant for grant, _ in await services.access.held(user)]


def _token(user: User, grants: Sequence[Grant]) -> str:
    stamp = max((g.updated_at for g in grants), default="")
    return f"{TOKEN_PREFIX}{quote(user.username, safe='')}:{quote(stamp, safe='')}:{len(grants)}"


def _since(user: User, token: str, grants: Sequence[Grant]) -> str | None:
    """The change a sync token was made at (None: an initial sync); ValueError for a token
    this collection cannot continue from: another's, malformed, or older than a grant that is
    gone since (a calendar deleted: its invitation leaves without a trace)."""
    if not token:
        return None
    prefix = f"{TOKEN_PREFIX}{quote(user.username, safe='')}:"
    if not token.startswith(prefix):
        raise ValueError(token)
    stamp, count = token[len(prefix) :].rsplit(":", 1)
    stamp = unquote(stamp)
    made_since = sum(1 for g in grants if g.created_at > stamp)
    if int(count) + made_since != len(grants):
        raise ValueError(token)
    return stamp


async def notifications(services: Services, user: User, names: Sequence[str], depth: int) -> web.StreamResponse:
    """PROPFIND of the user's notification collection (with Depth 1, its invitations too)."""
    base = notifications_href(user)
    responses = [_props(names, None, _token(user, await _held(services, user)))]
    responses[0].href = base
    if depth:
        for grant, _, _ in await invitations(services, user):
            responses.append(_props(names, _etag(grant)))
            responses[-1].href = base + _name(grant)
    return await multistatus(responses)


async def sync(services: Services, user: User, body: bytes) -> web.StreamResponse:
    """sync-collection (RFC 6578) on the notification collection: the invitations that came or
    changed since the token, and (404) those answered or put away since."""
    try:
        query = parse_report(body)
    except Unsupported as error:
        raise DavError(403, error.condition) from None
    except dav.BadRequest as error:
        raise web.HTTPBadRequest(text=f"{error}\n") from None
    if not isinstance(query, SyncCollection):
        raise DavError(403, tag(DAV, "supported-report"))
    grants = await _held(services, user)
    try:
        since = _since(user, query.token, grants)
    except ValueError:
        raise DavError(403, tag(DAV, "valid-sync-token")) from None
    base = notifications_href(user)
    responses = []
    for grant in sorted(grants, key=lambda g: g.updated_at):
        if since is not None and grant.updated_at <= since:
            continue
        if waiting(grant):
            responses.append(_props(query.props.names, _etag(grant)))
        elif since is not None:
            responses.append(PropstatResponse("", status=404))
        else:
            continue
        responses[-1].href = base + _name(grant)
    return await multistatus(responses, _token(user, grants))


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


async def dismiss(services: Services, user: User, name: str) -> web.Response:
    """DELETE of a notification (Apple's clients send it once they have answered): a waiting
    invitation is put away (it can still be answered through every door); one answered already
    is gone; any other name is not found."""
    grant_id = _grant_id(name)
    grant = next((g for g in await _held(services, user) if g.id == grant_id), None)
    if grant is None:
        raise web.HTTPNotFound()
    if waiting(grant):
        await services.access.set_props(user, grant, {"dismissed": True})
    return web.Response(status=204)
