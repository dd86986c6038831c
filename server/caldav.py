"""The CalDAV door (RFC 4791 on WebDAV), first part: discovery, principals, the calendar home,
PROPFIND, OPTIONS and GET/HEAD/PUT/DELETE of calendar objects with ETag preconditions.

Paths: ``/dav/principals/{user}/``, ``/dav/calendars/{user}/`` (the home) and
``/dav/calendars/{user}/{slug}/{name}``. A user reaches only their own: any other user's path
answers 404, exactly like one that does not exist.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import quote, unquote

from aiohttp import web
from lxml import etree

from protocol import dav
from protocol.dav import APPLE, CALDAV, CS, DAV, PropstatResponse, tag
from server.auth import basic_credentials
from server.errors import BadEncoding, Invalid, PreconditionFailed, TooLarge
from server.http import read_limited
from server.services import REQUEST_USER, Services
from storage.model import Calendar, CalendarObject, User

log = logging.getLogger("almanac.caldav")
ROOT = "/dav/"
#: honest: no class 2 (no LOCK), no calendar-auto-schedule (no server-side scheduling) yet
DAV_HEADER = "1, calendar-access"
ALLOW = "OPTIONS, GET, HEAD, PUT, DELETE, PROPFIND"
MAX_RESOURCE_SIZE = 10 * 1024 * 1024
Props = dict[str, Callable[[], etree._Element | None]]


def principal_href(user: User) -> str:
    return f"/dav/principals/{quote(user.username)}/"


def home_href(user: User) -> str:
    return f"/dav/calendars/{quote(user.username)}/"


def calendar_href(user: User, calendar: Calendar) -> str:
    return f"{home_href(user)}{quote(calendar.slug)}/"


def sync_token(calendar: Calendar) -> str:
    return f"urn:almanac:sync:{calendar.uuid}:{calendar.sync_revision}"


def http_date(iso: str) -> str:
    return format_datetime(datetime.strptime(iso[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC), usegmt=True)


def _el(name: str, text: str | None = None, *children: etree._Element) -> etree._Element:
    return dav.element(name, text, *children)


def _href(href: str) -> etree._Element:
    return dav.href_element(href)


def principal_props(user: User) -> Props:
    return {
        tag(DAV, "resourcetype"): lambda: _el(tag(DAV, "resourcetype"), None, _el(tag(DAV, "principal"))),
        tag(DAV, "displayname"): lambda: _el(tag(DAV, "displayname"), user.username),
        tag(DAV, "principal-URL"): lambda: _el(tag(DAV, "principal-URL"), None, _href(principal_href(user))),
        tag(DAV, "current-user-principal"): lambda: _el(
            tag(DAV, "current-user-principal"), None, _href(principal_href(user))
        ),
        tag(CALDAV, "calendar-home-set"): lambda: _el(tag(CALDAV, "calendar-home-set"), None, _href(home_href(user))),
        tag(CALDAV, "calendar-user-address-set"): lambda: _el(
            tag(CALDAV, "calendar-user-address-set"),
            None,
            *([_href(f"mailto:{user.email}")] if user.email else []),
            _href(principal_href(user)),
        ),
        tag(DAV, "principal-collection-set"): lambda: _el(
            tag(DAV, "principal-collection-set"), None, _href("/dav/principals/")
        ),
    }


def privileges() -> etree._Element:
    names = ("read", "write", "write-properties", "write-content", "bind", "unbind", "read-current-user-privilege-set")
    return _el(
        tag(DAV, "current-user-privilege-set"),
        None,
        *(_el(tag(DAV, "privilege"), None, _el(tag(DAV, name))) for name in names),
    )


def collection_props(user: User, resource_type: list[str], name: str) -> Props:
    return {
        tag(DAV, "resourcetype"): lambda: _el(tag(DAV, "resourcetype"), None, *(_el(t) for t in resource_type)),
        tag(DAV, "displayname"): lambda: _el(tag(DAV, "displayname"), name),
        tag(DAV, "owner"): lambda: _el(tag(DAV, "owner"), None, _href(principal_href(user))),
        tag(DAV, "current-user-principal"): lambda: _el(
            tag(DAV, "current-user-principal"), None, _href(principal_href(user))
        ),
        tag(DAV, "current-user-privilege-set"): privileges,
        tag(CALDAV, "calendar-home-set"): lambda: _el(tag(CALDAV, "calendar-home-set"), None, _href(home_href(user))),
    }


def calendar_props(user: User, calendar: Calendar) -> Props:
    props = collection_props(user, [tag(DAV, "collection"), tag(CALDAV, "calendar")], calendar.name)
    props.update(
        {
            tag(CS, "getctag"): lambda: _el(tag(CS, "getctag"), str(calendar.sync_revision)),
            tag(DAV, "sync-token"): lambda: _el(tag(DAV, "sync-token"), sync_token(calendar)),
            tag(CALDAV, "supported-calendar-component-set"): lambda: _el(
                tag(CALDAV, "supported-calendar-component-set"),
                None,
                *(_component(name) for name in calendar.components.split(",") if name),
            ),
            tag(CALDAV, "supported-calendar-data"): lambda: _el(
                tag(CALDAV, "supported-calendar-data"), None, _calendar_data_type()
            ),
            tag(CALDAV, "max-resource-size"): lambda: _el(tag(CALDAV, "max-resource-size"), str(MAX_RESOURCE_SIZE)),
            tag(DAV, "creationdate"): lambda: _el(tag(DAV, "creationdate"), calendar.created_at),
        }
    )
    if calendar.description:
        props[tag(CALDAV, "calendar-description")] = lambda: _el(
            tag(CALDAV, "calendar-description"), calendar.description
        )
    if calendar.color:
        props[tag(APPLE, "calendar-color")] = lambda: _el(tag(APPLE, "calendar-color"), calendar.color)
    if calendar.timezone:
        props[tag(CALDAV, "calendar-timezone")] = lambda: _el(tag(CALDAV, "calendar-timezone"), calendar.timezone)
    return props


def _component(name: str) -> etree._Element:
    node = _el(tag(CALDAV, "comp"))
    node.set("name", name)
    return node


def _calendar_data_type() -> etree._Element:
    node = _el(tag(CALDAV, "calendar-data"))
    node.set("content-type", "text/calendar")
    node.set("version", "2.0")
    return node


def content_type(found: CalendarObject) -> str:
    return f"text/calendar; charset=utf-8; component={found.component.lower()}"


def object_props(found: CalendarObject) -> Props:
    return {
        tag(DAV, "resourcetype"): lambda: _el(tag(DAV, "resourcetype")),
        tag(DAV, "getetag"): lambda: _el(tag(DAV, "getetag"), f'"{found.etag}"'),
        tag(DAV, "getcontenttype"): lambda: _el(tag(DAV, "getcontenttype"), content_type(found)),
        tag(DAV, "getcontentlength"): lambda: _el(tag(DAV, "getcontentlength"), str(len(found.ical.encode()))),
        tag(DAV, "getlastmodified"): lambda: _el(tag(DAV, "getlastmodified"), http_date(found.modified_at)),
        tag(DAV, "creationdate"): lambda: _el(tag(DAV, "creationdate"), found.created_at),
    }


def answer(href: str, props: Props, request: dav.PropfindRequest) -> PropstatResponse:
    """One PROPFIND response: the asked properties found, and the others 404."""
    response = PropstatResponse(href)
    if request.kind == "propname":
        response.found = [_el(name) for name in props]
        return response
    names = list(props) if request.kind == "allprop" else list(request.names)
    if request.kind == "allprop":
        names += [n for n in request.names if n not in props]
    for name in names:
        value = props[name]() if name in props else None
        if value is None:
            response.missing.append(name)
        else:
            response.found.append(value)
    return response


def multistatus(responses: list[PropstatResponse]) -> web.Response:
    return web.Response(status=207, body=dav.multistatus(responses), content_type="application/xml", charset="utf-8")


def dav_error(status: int, *conditions: str) -> web.Response:
    return web.Response(status=status, body=dav.error(*conditions), content_type="application/xml", charset="utf-8")


def etag_condition(value: str | None) -> str | None:
    """The entity tag of If-Match / If-None-Match, without W/ and quotes."""
    if value is None:
        return None
    value = value.strip()
    return value[2:].strip('"') if value.startswith("W/") else value.strip('"')


class Refused(Exception):
    """Stop handling a request with this reply (a DAV:error body, which HTTP exceptions cannot carry)."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def guarded(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> Callable[..., Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except Refused as refused:
            return refused.response

    return handle


class CalDavDoor:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def user(self, request: web.Request) -> User:
        credentials = basic_credentials(request.headers.get("Authorization"))
        user = None
        if credentials is not None:
            user = await self.services.users.authenticate(*credentials, request.remote or "")
        if user is None:
            raise web.HTTPUnauthorized(
                headers={"WWW-Authenticate": 'Basic realm="Almanac", charset="UTF-8"'},
                text="authentication required\n",
            )
        request[REQUEST_USER] = user.username
        return user

    async def owner(self, request: web.Request) -> User:
        """The authenticated user, who must be the one the path names (else 404)."""
        user = await self.user(request)
        if unquote(request.match_info["user"]).lower() != user.username.lower():
            raise web.HTTPNotFound()
        return user

    async def calendar(self, request: web.Request, user: User) -> Calendar:
        found = await self.services.store.get_calendar_by_slug(user.id, unquote(request.match_info["calendar"]))
        if found is None:
            raise web.HTTPNotFound()
        return found

    @staticmethod
    async def propfind_request(request: web.Request) -> dav.PropfindRequest:
        depth = request.headers.get("Depth", "1")
        if depth.lower() == "infinity":
            raise Refused(dav_error(403, tag(DAV, "propfind-finite-depth")))
        try:
            return dav.parse_propfind(await read_limited(request, 1 << 20))
        except dav.BadRequest as error:
            raise web.HTTPBadRequest(text=f"{error}\n") from None

    @staticmethod
    def depth(request: web.Request) -> int:
        return 0 if request.headers.get("Depth", "1") == "0" else 1

    # handlers ----------------------------------------------------------------------------

    async def well_known(self, request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently(ROOT)

    async def options(self, request: web.Request) -> web.Response:
        return web.Response(headers={"DAV": DAV_HEADER, "Allow": ALLOW, "Content-Length": "0"})

    async def root(self, request: web.Request) -> web.StreamResponse:
        """``/`` and ``/dav/``: where clients find their principal."""
        user = await self.user(request)
        asked = await self.propfind_request(request)
        props = collection_props(user, [tag(DAV, "collection")], "Almanac")
        return multistatus([answer(request.path, props, asked)])

    async def principal(self, request: web.Request) -> web.StreamResponse:
        user = await self.owner(request)
        return multistatus([answer(principal_href(user), principal_props(user), await self.propfind_request(request))])

    async def home(self, request: web.Request) -> web.StreamResponse:
        user = await self.owner(request)
        asked = await self.propfind_request(request)
        responses = [answer(home_href(user), collection_props(user, [tag(DAV, "collection")], user.username), asked)]
        if self.depth(request):
            for calendar in await self.services.calendars.list(user):
                responses.append(answer(calendar_href(user, calendar), calendar_props(user, calendar), asked))
        return multistatus(responses)

    async def collection(self, request: web.Request) -> web.StreamResponse:
        if request.method == "OPTIONS":
            return await self.options(request)
        user = await self.owner(request)
        calendar = await self.calendar(request, user)
        if request.method == "PROPFIND":
            asked = await self.propfind_request(request)
            responses = [answer(calendar_href(user, calendar), calendar_props(user, calendar), asked)]
            if self.depth(request):
                base = calendar_href(user, calendar)
                async for found in self.services.store.iter_objects([calendar.id]):
                    responses.append(answer(base + quote(found.href), object_props(found), asked))
            return multistatus(responses)
        if request.method == "DELETE":
            try:
                await self.services.calendars.delete(user, calendar.uuid)
            except Invalid:
                raise web.HTTPForbidden(text="the default calendar cannot be deleted\n") from None
            return web.Response(status=204)
        raise web.HTTPMethodNotAllowed(request.method, ["OPTIONS", "PROPFIND", "DELETE"])

    async def item(self, request: web.Request) -> web.StreamResponse:
        if request.method == "OPTIONS":
            return await self.options(request)
        user = await self.owner(request)
        calendar = await self.calendar(request, user)
        name = unquote(request.match_info["name"])
        method = request.method
        if method == "PUT":
            return await self.put(request, calendar, name)
        found = await self.services.store.get_object(calendar.id, href=name)
        if method == "DELETE":
            if found is None:
                raise web.HTTPNotFound()
            try:
                await self.services.calendars.delete_object(
                    calendar, name, if_etag=etag_condition(request.headers.get("If-Match"))
                )
            except PreconditionFailed:
                raise web.HTTPPreconditionFailed() from None
            return web.Response(status=204)
        if found is None:
            raise web.HTTPNotFound()
        if method in ("GET", "HEAD"):
            headers = {"ETag": f'"{found.etag}"', "Last-Modified": http_date(found.modified_at)}
            if method == "HEAD":
                return web.Response(headers={**headers, "Content-Type": content_type(found)})
            return web.Response(body=found.ical.encode(), headers={**headers, "Content-Type": content_type(found)})
        if method == "PROPFIND":
            asked = await self.propfind_request(request)
            return multistatus([answer(request.path, object_props(found), asked)])
        raise web.HTTPMethodNotAllowed(method, ALLOW.split(", "))

    async def put(self, request: web.Request, calendar: Calendar, name: str) -> web.Response:
        try:
            body = await read_limited(request, MAX_RESOURCE_SIZE)
        except TooLarge:
            return dav_error(403, tag(CALDAV, "max-resource-size"))
        imports = self.services.imports
        try:
            result = imports.parse(imports.decode(body), "ics", calendar)
        except (Invalid, BadEncoding) as error:
            log.info("PUT %s refused: %s", request.path, getattr(error, "message", error))
            return dav_error(403, tag(CALDAV, "valid-calendar-data"))
        if len(result.resources) != 1:
            return dav_error(403, tag(CALDAV, "valid-calendar-object-resource"))
        resource = result.resources[0]
        if resource.component not in calendar.components.split(","):
            return dav_error(403, tag(CALDAV, "supported-calendar-component"))
        if_match = etag_condition(request.headers.get("If-Match"))
        create_only = request.headers.get("If-None-Match", "").strip() == "*"
        try:
            saved, created = await self.services.calendars.put(
                calendar, resource, href=name, if_etag=if_match, create_only=create_only
            )
        except PreconditionFailed:
            raise web.HTTPPreconditionFailed() from None
        except Invalid:
            other = await self.services.store.get_object(calendar.id, uid=resource.uid)
            href = calendar_href(await self.user(request), calendar) + quote(other.href) if other else ""
            body = dav.error(tag(CALDAV, "no-uid-conflict"))
            if href:
                root = etree.fromstring(body)
                root[0].append(_href(href))
                body = etree.tostring(root, xml_declaration=True, encoding="utf-8")
            return web.Response(status=409, body=body, content_type="application/xml", charset="utf-8")
        return web.Response(status=201 if created else 204, headers={"ETag": f'"{saved.etag}"'})


def add_routes(app: web.Application, services: Services) -> CalDavDoor:
    door = CalDavDoor(services)
    app.router.add_route("*", "/.well-known/caldav", door.well_known)
    # Collections above the calendars only answer PROPFIND (and OPTIONS); aiohttp says 405 to the rest.
    for path, handler in (
        ("/", door.root),  # GET / is the index
        ("/dav/", door.root),
        ("/dav/principals/{user}/", door.principal),
        ("/dav/calendars/{user}/", door.home),
    ):
        app.router.add_route("PROPFIND", path, guarded(handler))
        app.router.add_route("OPTIONS", path, door.options)
    app.router.add_route("*", "/dav/calendars/{user}/{calendar}/", guarded(door.collection))
    app.router.add_route("*", "/dav/calendars/{user}/{calendar}/{name}", guarded(door.item))
    return door
