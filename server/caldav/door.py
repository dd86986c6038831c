"""The CalDAV door (RFC 4791 on WebDAV, RFC 4918): discovery, calendars and their properties,
calendar objects with ETag preconditions, MOVE/COPY, and the reports (server/caldav/reports.py).

Paths: ``/dav/principals/{user}/``, ``/dav/calendars/{user}/`` (the home) and
``/dav/calendars/{user}/{slug}/{name}``. A user reaches only their own home: any other user's
path answers 404, exactly like one that does not exist. A calendar shared with the user (and
accepted) is in their home under a name of its own; what they may do there is what the
grant's level allows (current-user-privilege-set says it), and a request it does not allow is
403 with DAV:need-privileges.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from aiohttp import web

from protocol import dav
from protocol.dav import CALDAV, CS, DAV, PropstatResponse, tag
from server.caldav import inbox, reports, scheduling, sharing
from server.caldav.members import MemberText
from server.caldav.props import (
    MAX_RESOURCE_SIZE,
    PER_USER,
    WRITABLE,
    DavResource,
    Kind,
    answer,
    content_type,
    own_view,
    plan_properties,
)
from server.caldav.replies import (
    PUT_REFUSALS,
    DavError,
    Multistatus,
    multistatus,
    propstat_body,
    refusals,
    statuses,
    uid_conflict,
    xml_reply,
)
from server.caldav.scheduling import scheduling_asked
from server.caldav.search import principal_matches, search_property_set
from server.http import (
    REQUEST_USER,
    basic_credentials,
    client_address,
    etag_condition,
    etag_matches,
    http_date,
    read_limited,
)
from server.services import Services
from server.services.access import Level
from server.services.errors import BadEncoding, Invalid, NameTaken, NotFound, PreconditionFailed, TooLarge
from server.urls import ROOT, calendar_href, home_href, principal_href
from storage.model import Calendar, CalendarObject, Detail, User

log = logging.getLogger("almanac.caldav")
#: honest: no class 2 (no LOCK); calendar-auto-schedule: the server schedules (RFC 6638; clients
#: stop sending invitations themselves); calendarserver-sharing makes Apple's clients offer sharing
DAV_HEADER = "1, 3, calendar-access, calendar-auto-schedule, extended-mkcol, calendarserver-sharing"
MAX_XML_BODY = 1 << 20
#: principals a search answers at most (RFC 3744 9.4 lets a server limit them)
MAX_FOUND = 50
QUOTA = frozenset({tag(DAV, "quota-used-bytes"), tag(DAV, "quota-available-bytes")})
SHARING = frozenset({tag(DAV, "acl"), tag(CS, "invite")})  #: the properties that read a calendar's grants
NAME_RULE = "without a slash or control character, and not . or .."
#: body types that may hold XML (clients and curl label it loosely); a body labelled otherwise
#: is read as XML when it is XML (as Apple's server does), and is 415 to MKCOL when it is not
MAYBE_XML = frozenset({"application/xml", "text/xml", "text/plain", "application/octet-stream",
                       "application/x-www-form-urlencoded"})  # fmt: skip
#: what a PUT's body may be labelled: iCalendar, or what tools put on a body they were not told
#: the type of (no type, plain text, bytes, curl's form); a type naming another format (JSON,
#: HTML, vCard...) is RFC 4791 5.3.2.1's supported-calendar-data
CALENDAR_DATA = frozenset({"text/calendar", "", "text/plain", "application/octet-stream",
                           "application/x-www-form-urlencoded"})  # fmt: skip


# --------------------------------------------------------------------------- the door


def looks_like_xml(body: bytes) -> bool:
    """Whether a body is XML whatever its label says (an XML declaration or an element first)."""
    return body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"<"


def segment(request: web.Request, index: int) -> str:
    """Segment ``index`` of the request's path as sent (``/dav/calendars/{user}/{calendar}/{name}``
    counts from the empty one before ``dav``), in canonical spelling: aiohttp's match_info is
    decoded, which would make ``a%40b`` and ``a@b`` one name."""
    parts = dav.path_segments(request.raw_path.split("?", 1)[0])
    return parts[index] if index < len(parts) else ""


class CalDavDoor:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def user(self, request: web.Request) -> User:
        credentials = basic_credentials(request.headers.get("Authorization"))
        user = None
        if credentials is not None:
            user = await self.services.users.authenticate(*credentials, client_address(request))
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
        if segment(request, 3).lower() != user.username.lower():
            raise web.HTTPNotFound()
        return user

    async def find_calendar(self, user: User, slug: str) -> Calendar | None:
        return await self.services.calendars.find(user, slug)

    async def calendar(self, request: web.Request, user: User) -> Calendar:
        found = await self.find_calendar(user, segment(request, 4))
        if found is None:
            raise web.HTTPNotFound()
        return found

    @staticmethod
    async def xml_body(request: web.Request) -> bytes:
        try:
            return await read_limited(request, MAX_XML_BODY)
        except TooLarge:
            raise web.HTTPRequestEntityTooLarge(MAX_XML_BODY, request.content_length or 0) from None

    async def propfind_request(self, request: web.Request, members: bool = False) -> dav.PropfindRequest:
        """What a PROPFIND asks for. Depth infinity is refused, and so is a missing Depth on a
        collection with ``members`` (RFC 4918 9.1: no Depth means infinity)."""
        if request.headers.get("Depth", "infinity" if members else "0").strip().lower() == "infinity":
            raise DavError(403, tag(DAV, "propfind-finite-depth"))
        try:
            return dav.parse_propfind(await self.xml_body(request))
        except dav.BadRequest as error:
            raise web.HTTPBadRequest(text=f"{error}\n") from None

    @staticmethod
    def depth(request: web.Request) -> int:
        return 0 if request.headers.get("Depth", "1") == "0" else 1

    @staticmethod
    def answer(href: str, resource: DavResource, asked: dav.PropfindRequest) -> PropstatResponse:
        return answer(href, resource, asked.names, asked.kind)

    async def calendar_resource(self, user: User, calendar: Calendar, asked: dav.PropfindRequest) -> DavResource:
        """A calendar as PROPFIND reads it, with its owner and the user's level of access;
        RFC 4331's quota (asked for by name only) is the bytes it holds and what the store's
        disk has left; DAV:acl (by name only) its grants."""
        calendars = self.services.calendars
        resource = DavResource(Kind.CALENDAR, user, user, calendar)
        if calendar.owner_id != user.id:
            resource.level = await calendars.level(user, calendar)
            resource.owner = await self.services.users.get(calendar.owner_id) or user
        if QUOTA & set(asked.names):
            resource.quota = await calendars.quota(user, calendar)
        if SHARING & set(asked.names) and resource.level >= Level.ADMIN:
            resource.grants = await self.services.access.grantees(user, calendar)
        return resource

    # discovery ---------------------------------------------------------------------------

    async def well_known(self, request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently(ROOT)

    async def options(self, request: web.Request) -> web.Response:
        return web.Response(headers={"DAV": DAV_HEADER, "Allow": ALLOW, "Content-Length": "0"})

    async def root(self, request: web.Request) -> web.StreamResponse:
        """``/`` and ``/dav/``: where clients find their principal."""
        user = await self.user(request)
        asked = await self.propfind_request(request)
        return await multistatus([self.answer(request.path, DavResource(Kind.ROOT, user, user), asked)])

    async def principal(self, request: web.Request) -> web.StreamResponse:
        """A user's principal: their own, and those of the users they share calendars with."""
        user = await self.user(request)
        named = segment(request, 3).lower()
        found = next((u for u in await self.services.access.directory(user) if u.username.lower() == named), None)
        if found is None:
            raise web.HTTPNotFound()
        asked = await self.propfind_request(request)
        return await multistatus([self.answer(principal_href(found), DavResource(Kind.PRINCIPAL, user, found), asked)])

    async def principals(self, request: web.Request) -> web.StreamResponse:
        """``/dav/principals/``, the principal-collection-set: the principals the user may see."""
        user = await self.user(request)
        asked = await self.propfind_request(request, members=True)
        responses = [self.answer(request.path, DavResource(Kind.PRINCIPALS, user, user), asked)]
        if self.depth(request):  # the user's own: the others are found by searching
            responses.append(self.answer(principal_href(user), DavResource(Kind.PRINCIPAL, user, user), asked))
        return await multistatus(responses)

    async def principal_report(self, request: web.Request) -> web.StreamResponse:
        """RFC 3744 9.4/9.5 on ``/``, ``/dav/`` and the principals: principal-property-search
        (caseless substring of the display name or a calendar user address) and
        principal-search-property-set. The Depth header is not needed (clients differ)."""
        user = await self.user(request)
        try:
            search = dav.parse_principal_report(await self.xml_body(request))
        except dav.BadRequest as error:
            raise web.HTTPBadRequest(text=f"{error}\n") from None
        if search is None:
            return xml_reply(200, search_property_set())
        directory = await self.services.users.findable(user, search.texts)
        found = [u for u in directory if principal_matches(u, search)][:MAX_FOUND]
        names = search.names or (tag(DAV, "displayname"),)
        return await multistatus(
            [answer(principal_href(u), DavResource(Kind.PRINCIPAL, user, u), names) for u in found]
        )

    async def home(self, request: web.Request) -> web.StreamResponse:
        user = await self.owner(request)
        asked = await self.propfind_request(request, members=True)
        responses = [self.answer(home_href(user), DavResource(Kind.HOME, user, user), asked)]
        if self.depth(request):
            for calendar in await self.services.calendars.home(user):
                resource = await self.calendar_resource(user, calendar, asked)
                responses.append(self.answer(calendar_href(user, calendar), resource, asked))
        return await multistatus(responses)

    async def outbox(self, request: web.Request) -> web.StreamResponse:
        """The user's own schedule outbox (RFC 6638 2.1): PROPFIND, and POST of a free/busy
        request (server/caldav/scheduling.py)."""
        user = await self.owner(request)
        if request.method == "POST":
            return await scheduling.free_busy(self.services, request, user)
        asked = await self.propfind_request(request, members=True)
        return await multistatus([self.answer(request.path, DavResource(Kind.OUTBOX, user, user), asked)])

    async def inbox(self, request: web.Request) -> web.StreamResponse:
        """The user's own schedule inbox and its messages (server/caldav/inbox.py)."""
        if request.method == "OPTIONS":
            return await self.options(request)
        user, name = await self.owner(request), request.match_info.get("name")
        asked = await self.propfind_request(request, members=not name) if request.method == "PROPFIND" else None
        return await inbox.answer(self.services, request, user, name, asked)

    # calendars ---------------------------------------------------------------------------

    async def collection(self, request: web.Request) -> web.StreamResponse:
        """A calendar: the methods of ``ON_CALENDAR`` once it is found (MKCALENDAR before)."""
        method = request.method
        if method == "OPTIONS":
            return await self.options(request)
        user = await self.owner(request)
        if method in MAKE:
            return await self.make_calendar(request, user)
        calendar = await self.calendar(request, user)
        handler = ON_CALENDAR.get(method)
        if handler is None:
            raise web.HTTPMethodNotAllowed(method, ALLOW.split(", "))
        with refusals(request):
            return await handler(self, request, user, calendar)

    async def delete_calendar(self, request: web.Request, user: User, calendar: Calendar) -> web.Response:
        """Delete one's own calendar; on a calendar shared with the user, leave the share (as
        clients do to remove a shared calendar from their list)."""
        if calendar.owner_id != user.id:
            await self.services.access.leave_calendar(user, calendar)
            return web.Response(status=204)
        try:
            await self.services.calendars.delete(user, calendar.uuid)
        except Invalid:
            raise web.HTTPForbidden(text="the default calendar cannot be deleted\n") from None
        return web.Response(status=204)

    async def share(self, request: web.Request, user: User, calendar: Calendar) -> web.Response:
        """POST of a ``CS:share`` (CalendarServer sharing, as Apple Calendar sends it)."""
        return await sharing.share(self.services, request, user, calendar, await self.xml_body(request))

    async def invite_reply(self, request: web.Request) -> web.Response:
        """POST of a ``CS:invite-reply`` on the home: the user answers an invitation."""
        user = await self.owner(request)
        return await sharing.invite_reply(self.services, user, await self.xml_body(request))

    async def notifications(self, request: web.Request) -> web.StreamResponse:
        """The user's notification collection and the invitations in it: read, synced, and
        each put away with DELETE."""
        if request.method == "OPTIONS":
            return await self.options(request)
        user = await self.owner(request)
        name = segment(request, 4)
        if request.method == "PROPFIND":
            asked = await self.propfind_request(request, members=not name)
            names = list(asked.names) if asked.kind == "prop" else []
            if not name:
                return await sharing.notifications(self.services, user, names, self.depth(request))
            return await sharing.notification_item(self.services, request, user, name, names)
        if request.method in ("GET", "HEAD") and name:
            return await sharing.notification_item(self.services, request, user, name, None)
        if request.method == "DELETE" and name:
            return await sharing.dismiss(self.services, user, name)
        if request.method == "REPORT" and not name:
            return await sharing.sync(self.services, user, await self.xml_body(request))
        allowed = ["OPTIONS", "PROPFIND", "GET", "HEAD", "DELETE"] if name else ["OPTIONS", "PROPFIND", "REPORT"]
        raise web.HTTPMethodNotAllowed(request.method, allowed)

    async def report(self, request: web.Request, user: User, calendar: Calendar) -> web.StreamResponse:
        context = reports.Context(request, self.services.calendars, user, calendar)
        return await reports.report(context, await self.xml_body(request))

    async def report_object(
        self, request: web.Request, user: User, calendar: Calendar, found: CalendarObject
    ) -> web.StreamResponse:
        """calendar-multiget and calendar-query on one object (RFC 4791 7.8, 7.9): the query
        looks at that object alone; the multiget answers its hrefs, wherever they are."""
        context = reports.Context(request, self.services.calendars, user, calendar, member=found)
        return await reports.report(context, await self.xml_body(request), reports.ON_ONE)

    async def home_report(self, request: web.Request) -> web.StreamResponse:
        """calendar-multiget on the calendar home: hrefs in any of the user's calendars."""
        user = await self.owner(request)
        context = reports.Context(request, self.services.calendars, user, await self.services.calendars.default(user))
        with refusals(request):
            return await reports.report(context, await self.xml_body(request), reports.ON_HOME)

    async def beneath(self, request: web.Request) -> web.StreamResponse:
        """A collection inside a calendar (``.../calendar/name/``): calendars hold none, so it
        is made by no one (MKCOL, MKCALENDAR: item's refusal) and found by no one (404)."""
        if request.method in MAKE or request.method == "OPTIONS":
            return await self.item(request)
        await self.owner(request)
        raise web.HTTPNotFound()

    async def propfind_calendar(self, request: web.Request, user: User, calendar: Calendar) -> web.StreamResponse:
        """The calendar and, with Depth 1, its members: streamed a page of the store at a time,
        without their texts (no property of a member in a PROPFIND needs more than their size)."""
        asked = await self.propfind_request(request, members=True)
        base = calendar_href(user, calendar)
        resource = await self.calendar_resource(user, calendar, asked)
        first = self.answer(base, resource, asked)
        if not self.depth(request) or resource.level < Level.READ:  # free/busy only: no objects
            return await multistatus([first])
        reply = Multistatus(request)
        await reply.add(dav.responses_text([first]))
        write = MemberText(asked.names, asked.kind)
        member = DavResource(Kind.OBJECT, user, resource.owner, calendar)
        async for page in self.services.calendars.object_pages(user, calendar, write.detail):
            await reply.add(write.page(base, page, member))
        return await reply.finish()

    async def make_calendar(self, request: web.Request, user: User) -> web.Response:
        """MKCALENDAR (RFC 4791 5.3.1) and extended MKCOL (RFC 5689) of a calendar in the home."""
        slug = segment(request, 4)
        extended = request.method == "MKCOL"
        root = tag(DAV, "mkcol") if extended else tag(CALDAV, "mkcalendar")
        body = await self.xml_body(request) if request.body_exists else b""
        if body and request.content_type not in MAYBE_XML and not looks_like_xml(body):
            raise web.HTTPUnsupportedMediaType(text="the body of MKCOL and MKCALENDAR is XML\n")  # RFC 4918 9.3
        try:
            updates = [(True, node) for node in dav.parse_mkcol(body, root)]
        except dav.BadRequest as error:
            raise web.HTTPBadRequest(text=f"{error}\n") from None
        if extended and not any(node.tag == tag(DAV, "resourcetype") for _, node in updates):
            raise web.HTTPForbidden(text="Almanac makes calendar collections only (resourcetype calendar)\n")
        if len(slug) > 100 or not dav.valid_name(slug):
            raise web.HTTPForbidden(text=f"a calendar name is 1 to 100 characters, {NAME_RULE}\n")
        if await self.find_calendar(user, slug) is not None:
            raise DavError(405, tag(DAV, "resource-must-be-null"))
        changes, failed = plan_properties(None, updates)
        if failed:
            response_tag = tag(DAV, "mkcol-response") if extended else tag(CALDAV, "mkcalendar-response")
            return xml_reply(403, propstat_body(response_tag, updates, failed))
        name = str(changes.pop("name", None) or slug)
        try:
            made = await self.services.calendars.create_at(user, slug, name, **changes)
        except Invalid as error:
            raise web.HTTPForbidden(text=f"{error.message}\n") from None
        except NameTaken:  # another request made it meanwhile
            raise DavError(405, tag(DAV, "resource-must-be-null")) from None
        return web.Response(status=201, headers={"Location": calendar_href(user, made)})

    async def proppatch(self, request: web.Request, user: User, calendar: Calendar) -> web.Response:
        """PROPPATCH of a calendar, all or nothing. On a calendar shared with the user, its
        display name and colour are the user's own (Apple's per-user properties: any sharee
        may set them); the rest is the calendar's, for its owner and admins."""
        try:
            updates = dav.parse_proppatch(await self.xml_body(request))
        except dav.BadRequest as error:
            raise web.HTTPBadRequest(text=f"{error}\n") from None
        shared = calendar.owner_id != user.id
        own = [(setting, node) for setting, node in updates if shared and node.tag in PER_USER]
        common = [update for update in updates if update not in own]
        view, failed = own_view(own)
        changes, refused = plan_properties(calendar, common) if common else ({}, {})
        failed |= refused
        response = PropstatResponse(calendar_href(user, calendar))
        if not failed:
            try:
                if common:
                    await self.services.calendars.update(user, calendar.uuid, **changes)
                if own:
                    await self.services.access.set_view(user, calendar, view)
                response.found = [dav.element(node.tag) for _, node in updates]
            except Invalid as error:  # a value the calendar cannot take (a name too long): 409 as for bad values
                failed = {node.tag: 409 for _, node in updates if WRITABLE.get(node.tag) == error.field}
                failed = failed or {node.tag: 409 for _, node in updates}
        if failed:
            response.failed = statuses(updates, failed)
        return await multistatus([response])

    # objects -----------------------------------------------------------------------------

    async def item(self, request: web.Request) -> web.StreamResponse:
        if request.method == "OPTIONS":
            return await self.options(request)
        user = await self.owner(request)
        method = request.method
        if method in MAKE:  # calendars hold no collections (RFC 4791 4.2)
            if await self.find_calendar(user, segment(request, 4)) is None:
                raise web.HTTPConflict(text="the parent collection does not exist\n")  # RFC 4918 9.3.1
            raise DavError(403, tag(CALDAV, "calendar-collection-location-ok"))
        name = segment(request, 5)
        if method in ("GET", "HEAD"):
            with refusals(request):
                return await self.get_object(request, user, name)
        calendar = await self.calendar(request, user)
        with refusals(request):
            if method == "PUT":
                if not dav.valid_name(name):
                    raise web.HTTPForbidden(text=f"a name is 1 to 255 bytes, {NAME_RULE}\n")
                return await self.put(request, user, calendar, name)
            found = await self.services.objects.find(user, calendar, href=name)
            if found is None:
                raise web.HTTPNotFound()
            handler = ON_OBJECT.get(method)
            if handler is None:
                raise web.HTTPMethodNotAllowed(method, ALLOW.split(", "))
            return await handler(self, request, user, calendar, found)

    async def delete_object(
        self, request: web.Request, user: User, calendar: Calendar, found: CalendarObject
    ) -> web.Response:
        try:
            await self.services.objects.delete(
                user, calendar, found.href, if_etag=etag_condition(request.headers.get("If-Match")),
                scheduling=scheduling_asked(request),
            )  # fmt: skip
        except PreconditionFailed:
            raise web.HTTPPreconditionFailed() from None
        return web.Response(status=204)

    async def get_object(self, request: web.Request, user: User, name: str) -> web.Response:
        """GET and HEAD of an object. HEAD, and a GET whose If-None-Match names its ETag (304),
        are answered without reading its text."""
        objects = self.services.objects
        condition = request.headers.get("If-None-Match")
        text = request.method == "GET" and condition is None
        detail = Detail.TEXT if text else Detail.LISTED
        calendar, found = await objects.find_at(user, segment(request, 4), name, detail=detail) or (None, None)
        if calendar is None or found is None:
            raise web.HTTPNotFound()
        headers = {"ETag": f'"{found.etag}"', "Last-Modified": http_date(found.modified_at)}
        if found.schedule_tag is not None:
            headers["Schedule-Tag"] = f'"{found.schedule_tag}"'
        if condition is not None and etag_matches(condition, found.etag):
            return web.Response(status=304, headers=headers)
        headers["Content-Type"] = content_type(found)
        if request.method == "HEAD":
            return web.Response(headers={**headers, "Content-Length": str(found.size())})
        if not text:  # the condition did not hold: now the text
            if (found := await objects.find(user, calendar, href=name)) is None:
                raise web.HTTPNotFound()
            headers["ETag"] = f'"{found.etag}"'
        return web.Response(body=found.ical.encode(), headers=headers)

    async def propfind_object(
        self, request: web.Request, user: User, calendar: Calendar, found: CalendarObject
    ) -> web.StreamResponse:
        asked = await self.propfind_request(request)
        resource = DavResource(Kind.OBJECT, user, user, calendar, found)
        return await multistatus([self.answer(request.path, resource, asked)])

    async def put(self, request: web.Request, user: User, calendar: Calendar, name: str) -> web.Response:
        if request.content_type not in CALENDAR_DATA:
            log.info("PUT %s refused: a body of type %s", request.path, request.content_type)
            raise DavError(403, tag(CALDAV, "supported-calendar-data"))
        try:
            body = await read_limited(request, MAX_RESOURCE_SIZE)
        except TooLarge:
            raise DavError(403, tag(CALDAV, "max-resource-size")) from None
        try:
            saved, created, rewritten = await self.services.objects.put_text(
                user,
                calendar,
                body,
                name,
                if_etag=etag_condition(request.headers.get("If-Match")),
                create_only=request.headers.get("If-None-Match", "").strip() == "*",
                scheduling=scheduling_asked(request),
            )
        except (Invalid, BadEncoding) as error:
            log.info("PUT %s refused: %s", request.path, error.message)
            code = error.code if isinstance(error, Invalid) else "invalid_data"
            raise DavError(403, PUT_REFUSALS[code]) from None
        except NameTaken as error:
            raise uid_conflict(user, calendar, error) from None
        except PreconditionFailed:
            raise web.HTTPPreconditionFailed() from None
        # a meeting the server changed (answers kept, SCHEDULE-STATUS) is not what was sent: no
        # ETag, so that the client reads it again (RFC 4791 5.3.4); its Schedule-Tag (RFC 6638 3.2.10)
        headers = {} if rewritten else {"ETag": f'"{saved.etag}"'}
        if saved.schedule_tag is not None:
            headers["Schedule-Tag"] = f'"{saved.schedule_tag}"'
        return web.Response(status=201 if created else 204, headers=headers)

    async def transfer(
        self, request: web.Request, user: User, calendar: Calendar, found: CalendarObject
    ) -> web.Response:
        """MOVE or COPY of one object to another name in one of the user's calendars."""
        try:
            parts = dav.path_segments(urlsplit(request.headers.get("Destination", "")).path)
        except ValueError:
            parts = ()
        if len(parts) != 6 or parts[:3] != ("", "dav", "calendars") or not all(map(dav.valid_name, parts[3:])):
            raise web.HTTPBadRequest(text="the Destination must name an object in one of your calendars\n")
        target = await self.find_calendar(user, parts[4]) if parts[3].lower() == user.username.lower() else None
        if target is None:
            raise web.HTTPConflict(text="the destination calendar does not exist\n")
        if target.id == calendar.id and parts[5] == found.href:
            raise web.HTTPForbidden(text="source and destination are the same\n")
        if found.component not in target.components.split(","):
            raise DavError(403, tag(CALDAV, "supported-calendar-component"))
        overwrite = request.headers.get("Overwrite", "T").strip().upper() != "F"
        try:
            _, created = await self.services.objects.transfer(
                user, calendar, found, target, parts[5], overwrite=overwrite, keep_source=request.method == "COPY"
            )
        except PreconditionFailed:
            raise web.HTTPPreconditionFailed(text="the destination exists and Overwrite is F\n") from None
        except NotFound:
            raise web.HTTPNotFound() from None
        except NameTaken as error:
            raise uid_conflict(user, target, error) from None
        return web.Response(status=201 if created else 204)


#: the methods of a calendar (after MKCALENDAR/MKCOL, which make one) and of an object (after
#: PUT, which may make one); OPTIONS answers everywhere
MAKE = ("MKCALENDAR", "MKCOL")
ON_CALENDAR = {
    "PROPFIND": CalDavDoor.propfind_calendar,
    "PROPPATCH": CalDavDoor.proppatch,
    "REPORT": CalDavDoor.report,
    "DELETE": CalDavDoor.delete_calendar,
    "POST": CalDavDoor.share,
}
ON_OBJECT = {
    "PROPFIND": CalDavDoor.propfind_object,
    "REPORT": CalDavDoor.report_object,
    "DELETE": CalDavDoor.delete_object,
    "MOVE": CalDavDoor.transfer,
    "COPY": CalDavDoor.transfer,
}
ALLOW = ", ".join(dict.fromkeys(["OPTIONS", "GET", "HEAD", *ON_OBJECT, "PUT", *ON_CALENDAR, *MAKE]))


def add_routes(app: web.Application, services: Services) -> CalDavDoor:
    door = CalDavDoor(services)
    for path in ("/.well-known/caldav", "/.well-known/caldav/"):
        app.router.add_route("*", path, door.well_known)
    # Collections above the calendars only answer PROPFIND (and OPTIONS); aiohttp says 405 to the rest.
    for path, handler in (
        ("/", door.root),  # GET / is the index
        ("/dav/", door.root),
        ("/dav/principals/", door.principals),
        ("/dav/principals/{user}/", door.principal),
        ("/dav/calendars/{user}/", door.home),
        ("/dav/scheduling/{user}/outbox/", door.outbox),  # and POST, below
    ):
        app.router.add_route("PROPFIND", path, handler)
        app.router.add_route("OPTIONS", path, door.options)
    app.router.add_route("POST", "/dav/scheduling/{user}/outbox/", door.outbox)
    for path in ("/dav/scheduling/{user}/inbox/", "/dav/scheduling/{user}/inbox/{name}"):
        app.router.add_route("*", path, door.inbox)
    for path in ("/", "/dav/", "/dav/principals/", "/dav/principals/{user}/"):
        app.router.add_route("REPORT", path, door.principal_report)
    app.router.add_route("POST", "/dav/calendars/{user}/", door.invite_reply)
    app.router.add_route("REPORT", "/dav/calendars/{user}/", door.home_report)
    for path in ("/dav/notifications/{user}/", "/dav/notifications/{user}/{name}"):
        app.router.add_route("*", path, door.notifications)
    for path in ("/dav/calendars/{user}/{calendar}/", "/dav/calendars/{user}/{calendar}"):
        app.router.add_route("*", path, door.collection)
    app.router.add_route("*", "/dav/calendars/{user}/{calendar}/{name}", door.item)
    app.router.add_route("*", "/dav/calendars/{user}/{calendar}/{name}/", door.beneath)
    return door
