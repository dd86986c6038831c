"""CalDAV properties and replies: hrefs, the live and dead properties of principals, calendars
and objects, PROPPATCH/MKCALENDAR planning, sync tokens, and multistatus/error bodies.
Shared by the CalDAV door (server/caldav/door.py) and its reports (server/caldav/reports.py)."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import quote, unquote

from aiohttp import web
from lxml import etree

from protocol import caldav, dav
from protocol.dav import APPLE, CALDAV, CS, DAV, PropstatResponse, tag
from protocol.events import valid_zone
from protocol.ical import MAX_EPOCH, MIN_EPOCH, OBJECT_COMPONENTS, timezone_text
from server.services.calendars import normalize_color
from server.services.errors import Invalid
from server.urls import home_href, principal_href
from storage.model import Calendar, CalendarObject, StoreFull, User

log = logging.getLogger("almanac.caldav")

MAX_RESOURCE_SIZE = 10 * 1024 * 1024
#: what a calendar's supported-report-set lists
REPORTS = tuple(caldav.CALENDAR_REPORTS)
Props = dict[str, Callable[[], etree._Element | None]]


def http_date(iso: str) -> str:
    return format_datetime(datetime.strptime(iso[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC), usegmt=True)


def utc_stamp(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y%m%dT%H%M%SZ")


def _el(name: str, text: str | None = None, *children: etree._Element) -> etree._Element:
    return dav.element(name, text, *children)


def _href(href: str) -> etree._Element:
    return dav.href_element(href)


def _named(name: str, value: str) -> etree._Element:
    node = _el(name)
    node.set("name", value)
    return node


# --------------------------------------------------------------------------- properties


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
        tag(DAV, "supported-report-set"): lambda: _el(
            tag(DAV, "supported-report-set"),
            None,
            *(
                _el(tag(DAV, "supported-report"), None, _el(tag(DAV, "report"), None, _el(n)))
                for n in PRINCIPAL_REPORTS
            ),
        ),
    }


#: what principal-property-search looks in (RFC 3744 9.5), with a description for clients
SEARCHABLE = {tag(DAV, "displayname"): "Name", tag(CALDAV, "calendar-user-address-set"): "E-mail address"}
PRINCIPAL_REPORTS = (dav.PRINCIPAL_SEARCH, dav.SEARCH_PROPERTY_SET)


def _searchable_text(user: User, name: str) -> list[str]:
    if name == tag(DAV, "displayname"):
        return [user.username]
    if name == tag(CALDAV, "calendar-user-address-set"):
        return [f"mailto:{user.email}", principal_href(user)] if user.email else [principal_href(user)]
    return []


def principal_matches(user: User, search: dav.PrincipalSearch) -> bool:
    """Whether a principal matches a principal-property-search: a property-search matches
    when the text is a caseless substring of one of its properties (RFC 3744 9.4)."""
    results = (
        any(text.casefold() in value.casefold() for name in names for value in _searchable_text(user, name))
        for names, text in search.searches
    )
    return any(results) if search.any_of and search.searches else all(results)


def search_property_set() -> bytes:
    """The principal-search-property-set report's reply (RFC 3744 9.5)."""
    root = etree.Element(tag(DAV, "principal-search-property-set"), nsmap=dav.NSMAP)
    for name, description in SEARCHABLE.items():
        found = _el(tag(DAV, "description"), description)
        found.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
        root.append(_el(tag(DAV, "principal-search-property"), None, _el(tag(DAV, "prop"), None, _el(name)), found))
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


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


def sync_token(calendar: Calendar, revision: int | None = None, after: str = "") -> str:
    """``urn:almanac:sync:{calendar uuid}:{revision}``, plus the last href sent when a
    limited sync-collection stopped inside a revision."""
    token = f"urn:almanac:sync:{calendar.uuid}:{calendar.sync_revision if revision is None else revision}"
    return f"{token}:{quote(after, safe='')}" if after else token


def parse_sync_token(calendar: Calendar, token: str) -> tuple[int, str]:
    """The (revision, href) a token continues from; ValueError for another calendar's token,
    a token from the future or anything malformed."""
    if not token:
        return 0, ""
    prefix = f"urn:almanac:sync:{calendar.uuid}:"
    if not token.startswith(prefix):
        raise ValueError(token)
    revision, _, after = token[len(prefix) :].partition(":")
    number = int(revision)
    if not 0 <= number <= calendar.sync_revision:
        raise ValueError(token)
    return number, unquote(after)


def calendar_props(user: User, calendar: Calendar) -> Props:
    props = collection_props(user, [tag(DAV, "collection"), tag(CALDAV, "calendar")], calendar.name)
    props.update(
        {
            tag(CS, "getctag"): lambda: _el(tag(CS, "getctag"), str(calendar.sync_revision)),
            tag(DAV, "sync-token"): lambda: _el(tag(DAV, "sync-token"), sync_token(calendar)),
            tag(DAV, "supported-report-set"): lambda: _el(
                tag(DAV, "supported-report-set"),
                None,
                *(_el(tag(DAV, "supported-report"), None, _el(tag(DAV, "report"), None, _el(r))) for r in REPORTS),
            ),
            tag(CALDAV, "supported-calendar-component-set"): lambda: _el(
                tag(CALDAV, "supported-calendar-component-set"),
                None,
                *(_named(tag(CALDAV, "comp"), name) for name in calendar.components.split(",") if name),
            ),
            tag(CALDAV, "supported-calendar-data"): lambda: _el(
                tag(CALDAV, "supported-calendar-data"), None, _calendar_data_type()
            ),
            tag(CALDAV, "supported-collation-set"): lambda: _el(
                tag(CALDAV, "supported-collation-set"),
                None,
                *(_el(tag(CALDAV, "supported-collation"), name) for name in caldav.COLLATIONS),
            ),
            tag(CALDAV, "max-resource-size"): lambda: _el(tag(CALDAV, "max-resource-size"), str(MAX_RESOURCE_SIZE)),
            tag(CALDAV, "min-date-time"): lambda: _el(tag(CALDAV, "min-date-time"), utc_stamp(MIN_EPOCH)),
            tag(CALDAV, "max-date-time"): lambda: _el(tag(CALDAV, "max-date-time"), utc_stamp(MAX_EPOCH)),
            tag(CALDAV, "max-instances"): lambda: _el(tag(CALDAV, "max-instances"), str(caldav.MAX_INSTANCES)),
            tag(DAV, "creationdate"): lambda: _el(tag(DAV, "creationdate"), calendar.created_at),
            tag(DAV, "getlastmodified"): lambda: _el(tag(DAV, "getlastmodified"), http_date(calendar.updated_at)),
        }
    )
    if calendar.description:
        props[tag(CALDAV, "calendar-description")] = lambda: _el(
            tag(CALDAV, "calendar-description"), calendar.description
        )
    if calendar.color:
        props[tag(APPLE, "calendar-color")] = lambda: _el(tag(APPLE, "calendar-color"), calendar.color)
    zone_text = calendar.props.get("calendar-timezone")
    if not zone_text and calendar.timezone:
        zone_text = timezone_text(calendar.timezone)
    if zone_text:
        props[tag(CALDAV, "calendar-timezone")] = lambda: _el(tag(CALDAV, "calendar-timezone"), zone_text)
    for name, xml in calendar.props.get("dead", {}).items():
        props[name] = functools.partial(_dead, name, xml)
    return props


def _dead(name: str, xml: str) -> etree._Element:
    """A stored dead property; one stored before the parser refused what it holds (a DTD,
    an entity) is served empty rather than breaking every PROPFIND of its calendar."""
    try:
        return dav.parse(xml.encode())
    except dav.BadRequest as error:
        log.warning("a dead property could not be served: %s", error)
        return _el(name)


def _calendar_data_type() -> etree._Element:
    node = _el(tag(CALDAV, "calendar-data"))
    node.set("content-type", "text/calendar")
    node.set("version", "2.0")
    return node


def content_type(found: CalendarObject) -> str:
    return f"text/calendar; charset=utf-8; component={found.component.lower()}"


def object_props(found: CalendarObject, data: str | None = None) -> Props:
    """An object's properties; ``data`` is the calendar-data a report returns for it."""
    props: Props = {
        tag(DAV, "resourcetype"): lambda: _el(tag(DAV, "resourcetype")),
        tag(DAV, "getetag"): lambda: _el(tag(DAV, "getetag"), f'"{found.etag}"'),
        tag(DAV, "getcontenttype"): lambda: _el(tag(DAV, "getcontenttype"), content_type(found)),
        tag(DAV, "getcontentlength"): lambda: _el(tag(DAV, "getcontentlength"), str(len(found.ical.encode()))),
        tag(DAV, "getlastmodified"): lambda: _el(tag(DAV, "getlastmodified"), http_date(found.modified_at)),
        tag(DAV, "creationdate"): lambda: _el(tag(DAV, "creationdate"), found.created_at),
    }
    if data is not None:
        props[tag(CALDAV, "calendar-data")] = lambda: _el(tag(CALDAV, "calendar-data"), data)
    return props


class NotSettable(Exception):
    """A property a PROPPATCH or MKCALENDAR may not set (``status`` 403), or not to this value (409)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


@dataclass(frozen=True, slots=True)
class Settable:
    """A calendar property a request may set: the calendar field it sets, and how a value is
    read (``read(element, calendar or None at creation)`` gives the field's value and any
    calendar props to keep, NotSettable when it cannot be taken; a removal reads an empty element)."""

    field: str
    read: Callable[[etree._Element, Calendar | None], tuple[object, dict[str, object]]]
    at_creation_only: bool = False


def _text_of(node: etree._Element, calendar: Calendar | None) -> tuple[object, dict[str, object]]:
    return (node.text or "").strip() or None, {}


def _name_of(node: etree._Element, calendar: Calendar | None) -> tuple[object, dict[str, object]]:
    """displayname; empty gives the calendar its slug back."""
    return (node.text or "").strip() or (calendar.slug if calendar else None), {}


def _color_of(node: etree._Element, calendar: Calendar | None) -> tuple[object, dict[str, object]]:
    text = (node.text or "").strip()
    try:
        return (normalize_color(text) if text else None), {}
    except Invalid:
        raise NotSettable(409) from None


def _zone_of(node: etree._Element, calendar: Calendar | None) -> tuple[object, dict[str, object]]:
    """calendar-timezone: the TZID kept when it names a known zone; the text kept as given."""
    text = (node.text or "").strip()
    if not text:
        return None, {"calendar-timezone": None}
    try:
        tzid, _ = caldav.calendar_timezone(text)
    except caldav.Unsupported:
        raise NotSettable(409) from None
    return (tzid if valid_zone(tzid) else None), {"calendar-timezone": text}


def _components_of(node: etree._Element, calendar: Calendar | None) -> tuple[object, dict[str, object]]:
    names = [(c.get("name") or "").upper() for c in node.findall(tag(CALDAV, "comp"))]
    if not names or any(n not in OBJECT_COMPONENTS for n in names):
        raise NotSettable(409)
    return ",".join(dict.fromkeys(names)), {}


def _resource_type_of(node: etree._Element, calendar: Calendar | None) -> tuple[object, dict[str, object]]:
    if node.find(tag(CALDAV, "calendar")) is None:
        raise NotSettable(403)  # Almanac's homes hold calendars only
    return None, {}


#: what PROPPATCH (and MKCALENDAR/MKCOL) may set on a calendar, one declaration each
SETTABLE = {
    tag(DAV, "displayname"): Settable("name", _name_of),
    tag(CALDAV, "calendar-description"): Settable("description", _text_of),
    tag(APPLE, "calendar-color"): Settable("color", _color_of),
    tag(CALDAV, "calendar-timezone"): Settable("timezone", _zone_of),
    tag(CALDAV, "supported-calendar-component-set"): Settable("components", _components_of, at_creation_only=True),
    tag(DAV, "resourcetype"): Settable("", _resource_type_of, at_creation_only=True),
}
#: the calendar field each settable property maps to (a service's Invalid names the field)
WRITABLE = {name: setting.field for name, setting in SETTABLE.items() if setting.field}
#: live properties no request may set (RFC 4918 15, RFC 4791 5.2, RFC 6578, RFC 4331)
PROTECTED = frozenset(
    tag(DAV, name)
    for name in (
        "getetag", "getcontenttype", "getcontentlength", "getlastmodified", "creationdate", "lockdiscovery",
        "supportedlock", "sync-token", "owner", "current-user-privilege-set", "supported-report-set",
        "quota-used-bytes", "quota-available-bytes", "current-user-principal",
    )
) | {tag(CS, "getctag"), tag(CALDAV, "calendar-data")}  # fmt: skip


def plan_properties(
    calendar: Calendar | None, updates: list[tuple[bool, etree._Element]], user: User
) -> tuple[dict[str, object], dict[str, int]]:
    """The calendar fields a PROPPATCH (or a MKCALENDAR's set, ``calendar`` None) changes, and
    the properties that cannot be set with their status (403 protected, 409 bad value)."""
    changes: dict[str, object] = {}
    props = dict(calendar.props) if calendar else {}
    dead = dict(props.get("dead", {}))
    live = set(calendar_props(user, calendar)) - set(dead) if calendar else set()
    failed: dict[str, int] = {}
    for setting, node in updates:
        name = node.tag
        settable = SETTABLE.get(name)
        if settable is not None:
            if settable.at_creation_only and (calendar is not None or not setting):
                failed[name] = 403
                continue
            try:
                value, kept = settable.read(node if setting else etree.Element(name), calendar)
            except NotSettable as refusal:
                failed[name] = refusal.status
                continue
            if settable.field:
                changes[settable.field] = value
            props.update(kept)
        elif name in live or name in PROTECTED:
            failed[name] = 403
        elif setting:
            dead[name] = etree.tostring(node, encoding="unicode")
        else:
            dead.pop(name, None)
    props["dead"] = dead
    changes["props"] = {k: v for k, v in props.items() if v is not None}
    return changes, failed


# --------------------------------------------------------------------------- replies


def answer(href: str, props: Props, names: list[str] | tuple[str, ...], kind: str = "prop") -> PropstatResponse:
    """One PROPFIND/REPORT response: the asked properties found, and the others 404."""
    response = PropstatResponse(href)
    if kind == "propname":
        response.found = [_el(name) for name in props]
        return response
    wanted = list(props) + [n for n in names if n not in props] if kind == "allprop" else list(names)
    for name in wanted:
        value = props[name]() if name in props else None
        if value is None:
            response.missing.append(name)
        else:
            response.found.append(value)
    return response


def xml_reply(status: int, body: bytes) -> web.Response:
    return web.Response(status=status, body=body, content_type="application/xml", charset="utf-8")


#: replies with more members, or more text, than this are rendered in a thread, off the event loop
RENDER_INLINE, RENDER_INLINE_CHARS = 50, 1 << 16


async def multistatus(responses: list[PropstatResponse], token: str | None = None) -> web.Response:
    small = len(responses) <= RENDER_INLINE and (
        sum(len(element.text or "") for response in responses for element in response.found) <= RENDER_INLINE_CHARS
    )
    if small:
        return xml_reply(207, dav.multistatus(responses, token))
    return xml_reply(207, await asyncio.to_thread(dav.multistatus, responses, token))


def dav_error(status: int, condition: str, href: str | None = None) -> web.Response:
    body = dav.error(condition)
    if href:
        root = etree.fromstring(body)
        root[0].append(_href(href))
        body = etree.tostring(root, xml_declaration=True, encoding="utf-8")
    return xml_reply(status, body)


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
        except StoreFull as error:  # RFC 4918 11.5; nothing was written
            log.warning("%s %s: %s", request.method, request.path, error)
            return web.Response(status=507, text=f"{error}: nothing was written\n")

    return handle


def statuses(updates: list[tuple[bool, etree._Element]], failed: dict[str, int]) -> dict[int, list[str]]:
    """The properties of a refused update by status: their own failure, or 424 for the rest."""
    found: dict[int, list[str]] = {}
    for name in dict.fromkeys(node.tag for _, node in updates):
        found.setdefault(failed.get(name, 424), []).append(name)
    return found


def propstat_body(root_tag: str, updates: list[tuple[bool, etree._Element]], failed: dict[str, int]) -> bytes:
    """A mkcalendar-response / mkcol-response naming why each property was not set."""
    root = etree.Element(root_tag, nsmap=dav.NSMAP)
    for code, names in statuses(updates, failed).items():
        propstat = etree.SubElement(root, tag(DAV, "propstat"))
        prop = etree.SubElement(propstat, tag(DAV, "prop"))
        for name in names:
            etree.SubElement(prop, name)
        etree.SubElement(propstat, tag(DAV, "status")).text = dav.status_line(code)
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")
