"""A user's schedule inbox on CalDAV (RFC 6638 2.2, 4.1): the iTIP messages delivered to them,
each a resource of its own. Read it with PROPFIND (Depth 1 lists them), GET, REPORT
(calendar-multiget, calendar-query: every message, sync-collection), and remove a message with
DELETE once it is handled (clients do; old ones expire anyway). Only its owner sees it."""

from __future__ import annotations

import hashlib
from urllib.parse import unquote, urlsplit

from aiohttp import web

from protocol import dav
from protocol.caldav.query import CalendarQuery, Multiget, ReportProps, SyncCollection, Unsupported, parse_report
from protocol.dav import DAV, PropstatResponse, tag
from protocol.ical.values import etag_of
from server.caldav.members import MemberText
from server.caldav.props import DavResource, Kind, content_type
from server.caldav.props import answer as answer_props
from server.caldav.replies import DavError, multistatus, multistatus_reply
from server.services import Services
from server.urls import inbox_href
from storage.model import CalendarObject, InboxItem, User

#: what a sync-token of an inbox starts with (its state after it: a digest of the names it holds)
TOKEN = "urn:almanac:inbox:"


def as_object(item: InboxItem) -> CalendarObject:
    """An inbox message as the properties of an object read it."""
    component = "VTODO" if "BEGIN:VTODO" in item.ical else "VEVENT"
    return CalendarObject(
        item.id, 0, item.name, item.uid, etag_of(item.ical), component, item.ical, None, None, False, "", None,
        None, item.created_at, item.created_at,
    )  # fmt: skip


def _token(items: list[InboxItem]) -> str:
    return TOKEN + hashlib.blake2b(" ".join(i.name for i in items).encode(), digest_size=12).hexdigest()


async def answer_propfind(
    services: Services, request: web.Request, user: User, name: str | None, asked: dav.PropfindRequest
) -> web.Response:
    """The inbox (naming its default calendar) and, at Depth 1, its messages; or one message."""
    if name is not None:
        item = await _item(services, user, name)
        resource = DavResource(Kind.OBJECT, user, user, None, as_object(item))
        return await multistatus([answer_props(request.path, resource, asked.names, asked.kind)])
    box = DavResource(Kind.INBOX, user, user, await services.scheduling.default_calendar(user))
    responses = [answer_props(request.path, box, asked.names, asked.kind)]
    if request.headers.get("Depth", "1") != "0":
        for item in await services.scheduling.inbox(user):
            member = DavResource(Kind.OBJECT, user, user, None, as_object(item))
            responses.append(answer_props(inbox_href(user) + item.name, member, asked.names, asked.kind))
    return await multistatus(responses)


async def answer(
    services: Services, request: web.Request, user: User, name: str | None, asked: dav.PropfindRequest | None
) -> web.StreamResponse:
    """A request to the inbox (PROPFIND, ``asked``; REPORT) or to one message (PROPFIND, GET,
    HEAD, DELETE)."""
    if asked is not None:
        return await answer_propfind(services, request, user, name, asked)
    if name is None:
        if request.method == "REPORT":
            return await report(services, request, user)
        raise web.HTTPMethodNotAllowed(request.method, ["OPTIONS", "PROPFIND", "REPORT"])
    if request.method == "DELETE":
        if not await services.scheduling.remove_from_inbox(user, name):
            raise web.HTTPNotFound()
        return web.Response(status=204)
    if request.method not in ("GET", "HEAD"):
        raise web.HTTPMethodNotAllowed(request.method, ["OPTIONS", "PROPFIND", "GET", "HEAD", "DELETE"])
    item = await _item(services, user, name)
    found = as_object(item)
    headers = {"ETag": f'"{found.etag}"', "Content-Type": content_type(found)}
    return web.Response(body=None if request.method == "HEAD" else item.ical.encode(), headers=headers)


async def _item(services: Services, user: User, name: str) -> InboxItem:
    item = await services.scheduling.inbox_item(user, name)
    if item is None:
        raise web.HTTPNotFound()
    return item


async def report(services: Services, request: web.Request, user: User) -> web.Response:
    """calendar-multiget (by href), calendar-query (every message: they hold no time range
    worth filtering) and sync-collection (a token that is not the inbox's current one, other
    than the empty one, is refused with ``valid-sync-token``, and the client syncs afresh)."""
    try:
        query = parse_report(await request.read())
    except Unsupported as error:
        raise DavError(403, error.condition) from None
    except dav.BadRequest as error:
        raise web.HTTPBadRequest(text=f"{error}\n") from None
    items = await services.scheduling.inbox(user)
    if isinstance(query, Multiget):
        by_name = {item.name: item for item in items}
        names = [unquote(urlsplit(href).path).rsplit("/", 1)[-1] for href in query.hrefs]
        texts = [
            _member(user, by_name[name], query.props) if name in by_name else _missing(href)
            for href, name in zip(query.hrefs, names, strict=True)
        ]
        return multistatus_reply(texts)
    if isinstance(query, CalendarQuery):
        return multistatus_reply([_member(user, item, query.props) for item in items])
    if isinstance(query, SyncCollection):
        token = _token(items)
        if query.token and query.token != token:
            raise DavError(403, tag(DAV, "valid-sync-token"))
        shown = items if query.token != token else []
        return multistatus_reply([_member(user, item, query.props) for item in shown], token)
    raise DavError(403, tag(DAV, "supported-report"))


def _member(user: User, item: InboxItem, props: ReportProps) -> str:
    resource = DavResource(Kind.OBJECT, user, user, None, as_object(item), data=item.ical if props.data else None)
    return MemberText(props.names, props.kind)(inbox_href(user) + item.name, resource)


def _missing(href: str) -> str:
    return dav.responses_text([PropstatResponse(href, status=404)])
