"""CalDAV properties: the live and dead properties of principals, calendars and objects (the
``LIVE`` table), PROPPATCH/MKCALENDAR planning, sync tokens, and a response's properties as
elements (``answer``) or as text (``MemberText``). Shared by the CalDAV door
(server/caldav/door.py) and its reports (server/caldav/reports.py); the bodies that carry them
are server/caldav/replies.py's."""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from lxml import etree

from protocol import dav
from protocol.caldav.query import CALENDAR_REPORTS, COLLATIONS, MAX_INSTANCES, Unsupported, calendar_timezone
from protocol.dav import APPLE, CALDAV, CS, DAV, PropstatResponse, tag
from protocol.events import valid_zone
from protocol.ical.resources import timezone_text
from protocol.ical.values import MAX_EPOCH, MIN_EPOCH, OBJECT_COMPONENTS, utc_stamp
from server.http import http_date
from server.services.access import Level
from server.services.calendars import TRANSPARENT, normalize_color
from server.services.errors import Invalid
from server.urls import (
    PRINCIPALS,
    calendar_href,
    home_href,
    inbox_href,
    notifications_href,
    outbox_href,
    principal_href,
)
from storage.model import Calendar, CalendarObject, Grant, User

log = logging.getLogger("almanac.caldav")

MAX_RESOURCE_SIZE = 10 * 1024 * 1024
#: what a calendar's supported-report-set lists
REPORTS = tuple(CALENDAR_REPORTS)


def _el(name: str, text: str | None = None, *children: etree._Element) -> etree._Element:
    return dav.element(name, text, *children)


def _href(href: str) -> etree._Element:
    return dav.href_element(href)


def _named(name: str, value: str) -> etree._Element:
    node = _el(name)
    node.set("name", value)
    return node


# --------------------------------------------------------------------------- properties


class Kind(enum.Enum):
    """The kinds of resource the door serves, which decide the live properties each has."""

    ROOT = "root"  # / and /dav/
    PRINCIPALS = "principals"  # /dav/principals/
    PRINCIPAL = "principal"
    HOME = "home"
    CALENDAR = "calendar"
    OBJECT = "object"
    INBOX = "inbox"  # a user's schedule inbox (RFC 6638 2.2)
    OUTBOX = "outbox"  # and outbox (RFC 6638 2.1)


@dataclass(slots=True)
class DavResource:
    """What a property is read from: who asks (``user``), whose resource it is (``owner``; a
    principal is its own), and the calendar or object it is, with what ``user`` may do there
    (``level``). ``data`` is the calendar-data a report returns for an object; read only when
    asked for by name, ``quota`` is the bytes a calendar uses and the disk has free, ``grants``
    the calendar's grants with their grantees (None: every signed-in user), for its managers."""

    kind: Kind
    user: User
    owner: User
    calendar: Calendar | None = None
    found: CalendarObject | None = None
    data: str | None = None
    quota: tuple[int, int | None] | None = None
    level: Level = Level.OWNER
    grants: list[tuple[Grant, User | None]] = field(default_factory=list)


#: a property's value: its text, its child elements, or None where the resource has none
Value = str | list[etree._Element] | None


@dataclass(frozen=True, slots=True)
class Live:
    """A live property, declared once: the kinds of resource that have it, how it is read,
    whether a request may set it (``settable``), and whether it is served only when asked for
    by name (not in allprop or propname: RFC 4331's quota, which costs a disk query)."""

    name: str
    on: frozenset[Kind]
    read: Callable[[DavResource], Value]
    settable: Settable | None = None
    by_name_only: bool = False
    #: an object's value read from the object alone (listings write their members from it)
    of_object: Callable[[CalendarObject], str | None] | None = None
    #: whether ``of_object`` reads no more than a brief listing holds (href, ETag, component)
    brief: bool = False


def _of_calendar(read: Callable[[Calendar], Value]) -> Callable[[DavResource], Value]:
    return lambda resource: read(resource.calendar) if resource.calendar else None


def _object(
    name: str,
    of: Callable[[CalendarObject], str | None],
    calendars: Callable[[Calendar], Value] | None = None,
    brief: bool = False,
) -> Live:
    """A property of objects whose value is read from the object alone (``brief``: from its
    href, ETag and component), and of calendars where ``calendars`` reads it."""

    def read(resource: DavResource) -> Value:
        if resource.found:
            return of(resource.found)
        return calendars(resource.calendar) if calendars and resource.calendar else None

    on = frozenset({Kind.OBJECT, Kind.CALENDAR} if calendars else {Kind.OBJECT})
    return Live(name, on, read, of_object=of, brief=brief)


def _hrefs(*hrefs: str) -> list[etree._Element]:
    return [_href(href) for href in hrefs]


def _report_set(names: tuple[str, ...]) -> list[etree._Element]:
    return [_el(tag(DAV, "supported-report"), None, _el(tag(DAV, "report"), None, _el(n))) for n in names]


_RESOURCE_TYPES = {
    Kind.PRINCIPAL: (tag(DAV, "principal"),),
    Kind.CALENDAR: (tag(DAV, "collection"), tag(CALDAV, "calendar")),
    Kind.OBJECT: (),
    Kind.INBOX: (tag(DAV, "collection"), tag(CALDAV, "schedule-inbox")),
    Kind.OUTBOX: (tag(DAV, "collection"), tag(CALDAV, "schedule-outbox")),
}
_NAMES = {Kind.ROOT: "Almanac", Kind.PRINCIPALS: "Principals", Kind.INBOX: "Inbox", Kind.OUTBOX: "Outbox"}
_READ = (tag(DAV, "read"), tag(CALDAV, "read-free-busy"), tag(DAV, "read-current-user-privilege-set"))
_WRITE_CONTENT = (tag(DAV, "write-content"), tag(DAV, "bind"), tag(DAV, "unbind"))
#: the privileges (RFC 3744 3, RFC 4791 6.1.1) each level of access gives on a calendar
PRIVILEGES = {
    Level.FREEBUSY: _READ[1:],
    Level.READ: _READ,
    Level.READ_WRITE: (*_READ, *_WRITE_CONTENT),
    Level.ADMIN: (*_READ, tag(DAV, "write"), tag(DAV, "write-properties"), *_WRITE_CONTENT, tag(DAV, "read-acl")),
    Level.OWNER: (*_READ, tag(DAV, "write"), tag(DAV, "write-properties"), *_WRITE_CONTENT, tag(DAV, "read-acl")),
}


#: the privileges of a user's own schedule inbox and outbox (RFC 6638 6.1)
BOX_PRIVILEGES = {
    Kind.INBOX: (tag(DAV, "read"), tag(CALDAV, "schedule-deliver")),
    Kind.OUTBOX: (tag(DAV, "read"), tag(CALDAV, "schedule-send")),
}


def _privileges(names: Sequence[str]) -> list[etree._Element]:
    return [_el(tag(DAV, "privilege"), None, _el(name)) for name in names]


def _acl(resource: DavResource) -> Value:
    """DAV:acl (RFC 3744 5.5), for those who manage the grants: the owner's, then each accepted grant's."""
    if resource.level < Level.ADMIN:
        return None
    aces = [_ace(_href(principal_href(resource.owner)), (tag(DAV, "all"),), protected=True)]
    for grant, grantee in resource.grants:
        if grant.state == "active":
            who = _href(principal_href(grantee)) if grantee else _el(tag(DAV, "authenticated"))
            aces.append(_ace(who, PRIVILEGES[Level.grantable(grant.level)]))
    return aces


#: how CS:invite (caldav-sharing) says where an invitation to a user is
INVITE_STATES = {"invited": "invite-noresponse", "active": "invite-accepted", "refused": "invite-declined"}


def sharee_href(user: User) -> str:
    """A sharee as the sharing extension names them: by e-mail address, else by principal."""
    return f"mailto:{user.email}" if user.email else principal_href(user)


def _invite(resource: DavResource) -> Value:
    """CS:invite: the owner, and each user a calendar is shared with (read or read-write) and
    where their invitation is; for those who manage the grants."""
    if resource.level < Level.ADMIN:
        return None
    organizer = _el(tag(CS, "organizer"), None, _href(principal_href(resource.owner)),
                    _el(tag(CS, "common-name"), resource.owner.username))  # fmt: skip
    users = []
    for grant, grantee in resource.grants:
        if grantee is None or grant.state not in INVITE_STATES or grant.level == Level.FREEBUSY.label:
            continue
        access = "read" if grant.level == Level.READ.label else "read-write"
        users.append(_el(tag(CS, "user"), None, _href(sharee_href(grantee)),
                         _el(tag(CS, "common-name"), grantee.username), _el(tag(CS, INVITE_STATES[grant.state])),
                         _el(tag(CS, "access"), None, _el(tag(CS, access)))))  # fmt: skip
    return [organizer, *users]


def _ace(principal: etree._Element, privileges: Sequence[str], *, protected: bool = False) -> etree._Element:
    ace = _el(tag(DAV, "ace"), None, _el(tag(DAV, "principal"), None, principal))
    ace.append(_el(tag(DAV, "grant"), None, *_privileges(privileges)))
    if protected:
        ace.append(_el(tag(DAV, "protected")))
    return ace


def _resource_type(resource: DavResource) -> Value:
    types = _RESOURCE_TYPES.get(resource.kind, (tag(DAV, "collection"),))
    if resource.kind is Kind.CALENDAR and resource.level < Level.OWNER:
        types = (*types, tag(CS, "shared"))  # shared with the user (caldav-sharing 4.3)
    return [_el(name) for name in types]


def _display_name(resource: DavResource) -> Value:
    if resource.calendar is not None:
        return resource.calendar.name
    return _NAMES.get(resource.kind, resource.owner.display_name or resource.owner.username)


def calendar_user_addresses(user: User) -> list[str]:
    """A principal's calendar user addresses: its e-mail (where it has one) and its URL."""
    return [f"mailto:{user.email}", principal_href(user)] if user.email else [principal_href(user)]


def _calendar_data_type(calendar: Calendar) -> Value:
    node = _el(tag(CALDAV, "calendar-data"))
    node.set("content-type", "text/calendar")
    node.set("version", "2.0")
    return [node]


def _calendar_zone(calendar: Calendar) -> Value:
    zone_text = calendar.props.get("calendar-timezone")
    return zone_text or (timezone_text(calendar.timezone) if calendar.timezone else None)


def _quota(index: int) -> Callable[[DavResource], Value]:
    def read(resource: DavResource) -> Value:
        value = resource.quota[index] if resource.quota else None
        return None if value is None else str(value)

    return read


_COLLECTIONS = frozenset({Kind.ROOT, Kind.PRINCIPALS, Kind.HOME, Kind.CALENDAR, Kind.INBOX, Kind.OUTBOX})
_ALL = frozenset(Kind)
_ON_CALENDAR = frozenset({Kind.CALENDAR})
_ON_OBJECT = frozenset({Kind.OBJECT})


class NotSettable(Exception):
    """A property a PROPPATCH or MKCALENDAR may not set (``status`` 403), or not to this value (409)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


@dataclass(frozen=True, slots=True)
class Settable:
    """How a request sets a calendar property: the calendar field it sets, and how a value is
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
        tzid, _ = calendar_timezone(text)
    except Unsupported:
        raise NotSettable(409) from None
    return (tzid if valid_zone(tzid) else None), {"calendar-timezone": text}


def _transp(resource: DavResource) -> Value:
    """schedule-calendar-transp (RFC 6638 9.1): whether the calendar's events count as busy."""
    transparent = resource.calendar is not None and resource.calendar.props.get(TRANSPARENT)
    return [_el(tag(CALDAV, "transparent" if transparent else "opaque"))]


def _transp_of(node: etree._Element, calendar: Calendar | None) -> tuple[object, dict[str, object]]:
    children = [child.tag for child in node]
    if children not in ([], [tag(CALDAV, "opaque")], [tag(CALDAV, "transparent")]):
        raise NotSettable(409)
    return None, {TRANSPARENT: children == [tag(CALDAV, "transparent")] or None}


def _components_of(node: etree._Element, calendar: Calendar | None) -> tuple[object, dict[str, object]]:
    names = [(c.get("name") or "").upper() for c in node.findall(tag(CALDAV, "comp"))]
    if not names or any(n not in OBJECT_COMPONENTS for n in names):
        raise NotSettable(409)
    return ",".join(dict.fromkeys(names)), {}


def _resource_type_of(node: etree._Element, calendar: Calendar | None) -> tuple[object, dict[str, object]]:
    if node.find(tag(CALDAV, "calendar")) is None:
        raise NotSettable(403)  # Almanac's homes hold calendars only
    return None, {}


PRINCIPAL_REPORTS = (dav.PRINCIPAL_SEARCH, dav.SEARCH_PROPERTY_SET)


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


def _dead(name: str, xml: str) -> etree._Element:
    """A stored dead property; one stored before the parser refused what it holds (a DTD,
    an entity) is served empty rather than breaking every PROPFIND of its calendar."""
    try:
        return dav.parse(xml.encode())
    except dav.BadRequest as error:
        log.warning("a dead property could not be served: %s", error)
        return _el(name)


def content_type(found: CalendarObject) -> str:
    return f"text/calendar; charset=utf-8; component={found.component.lower()}"


#: every live property, declared once, in the order allprop lists them
LIVE = {
    live.name: live
    for live in (
        Live(tag(DAV, "resourcetype"), _ALL, _resource_type,
             Settable("", _resource_type_of, at_creation_only=True), of_object=lambda o: "", brief=True),
        Live(tag(DAV, "displayname"), _ALL - _ON_OBJECT, _display_name, Settable("name", _name_of)),
        Live(tag(DAV, "owner"), _COLLECTIONS, lambda r: _hrefs(principal_href(r.owner))),
        Live(tag(DAV, "principal-URL"), frozenset({Kind.PRINCIPAL}), lambda r: _hrefs(principal_href(r.owner))),
        Live(tag(DAV, "current-user-principal"), _ALL - _ON_OBJECT, lambda r: _hrefs(principal_href(r.user))),
        Live(tag(DAV, "current-user-privilege-set"), _COLLECTIONS,
             lambda r: _privileges(BOX_PRIVILEGES.get(r.kind) or PRIVILEGES[r.level])),
        Live(tag(DAV, "acl"), _ON_CALENDAR, _acl, by_name_only=True),
        Live(tag(CS, "invite"), _ON_CALENDAR, _invite, by_name_only=True),
        Live(tag(CS, "allowed-sharing-modes"), _ON_CALENDAR,
             lambda r: [_el(tag(CS, "can-be-shared"))] if r.level >= Level.ADMIN else []),
        Live(tag(CS, "notification-URL"), frozenset({Kind.PRINCIPAL}),
             lambda r: _hrefs(notifications_href(r.owner)) if r.owner.id == r.user.id else None),
        Live(tag(CALDAV, "calendar-home-set"), _ALL - _ON_OBJECT,
             lambda r: _hrefs(home_href(r.owner if r.kind is Kind.PRINCIPAL else r.user))),
        Live(tag(CALDAV, "calendar-user-address-set"), frozenset({Kind.PRINCIPAL}),
             lambda r: _hrefs(*calendar_user_addresses(r.owner))),
        Live(tag(CALDAV, "calendar-user-type"), frozenset({Kind.PRINCIPAL}), lambda r: r.owner.cutype),
        Live(tag(CALDAV, "schedule-default-calendar-URL"), frozenset({Kind.INBOX}),
             lambda r: _hrefs(calendar_href(r.owner, r.calendar)) if r.calendar else None),
        Live(tag(CALDAV, "schedule-calendar-transp"), _ON_CALENDAR, _transp, Settable("", _transp_of)),
        _object(tag(CALDAV, "schedule-tag"), lambda o: f'"{o.schedule_tag}"' if o.schedule_tag else None),
        Live(tag(CALDAV, "schedule-inbox-URL"), frozenset({Kind.PRINCIPAL}),
             lambda r: _hrefs(inbox_href(r.owner)) if r.owner.id == r.user.id else None),
        Live(tag(CALDAV, "schedule-outbox-URL"), frozenset({Kind.PRINCIPAL}),
             lambda r: _hrefs(outbox_href(r.owner)) if r.owner.id == r.user.id else None),
        Live(tag(DAV, "principal-collection-set"), frozenset({Kind.PRINCIPAL}), lambda r: _hrefs(PRINCIPALS)),
        Live(tag(DAV, "supported-report-set"), frozenset({Kind.PRINCIPAL, Kind.CALENDAR}),
             lambda r: _report_set(REPORTS if r.kind is Kind.CALENDAR else PRINCIPAL_REPORTS)),
        Live(tag(CS, "getctag"), _ON_CALENDAR, _of_calendar(lambda c: str(c.sync_revision))),
        Live(tag(DAV, "sync-token"), _ON_CALENDAR, _of_calendar(sync_token)),
        Live(tag(CALDAV, "supported-calendar-component-set"), _ON_CALENDAR,
             _of_calendar(lambda c: [_named(tag(CALDAV, "comp"), n) for n in c.components.split(",") if n]),
             Settable("components", _components_of, at_creation_only=True)),
        Live(tag(CALDAV, "supported-calendar-data"), _ON_CALENDAR, _of_calendar(_calendar_data_type)),
        Live(tag(CALDAV, "supported-collation-set"), _ON_CALENDAR,
             lambda r: [_el(tag(CALDAV, "supported-collation"), name) for name in COLLATIONS]),
        Live(tag(CALDAV, "max-resource-size"), _ON_CALENDAR, lambda r: str(MAX_RESOURCE_SIZE)),
        Live(tag(CALDAV, "min-date-time"), _ON_CALENDAR, lambda r: utc_stamp(MIN_EPOCH)),
        Live(tag(CALDAV, "max-date-time"), _ON_CALENDAR, lambda r: utc_stamp(MAX_EPOCH)),
        Live(tag(CALDAV, "max-instances"), _ON_CALENDAR, lambda r: str(MAX_INSTANCES)),
        _object(tag(DAV, "getetag"), lambda o: f'"{o.etag}"', brief=True),
        _object(tag(DAV, "getcontenttype"), content_type, brief=True),
        _object(tag(DAV, "getcontentlength"), lambda o: str(o.size())),
        _object(tag(DAV, "getlastmodified"), lambda o: http_date(o.modified_at), lambda c: http_date(c.updated_at)),
        _object(tag(DAV, "creationdate"), lambda o: o.created_at, lambda c: c.created_at),
        Live(tag(CALDAV, "calendar-description"), _ON_CALENDAR, _of_calendar(lambda c: c.description or None),
             Settable("description", _text_of)),
        Live(tag(APPLE, "calendar-color"), _ON_CALENDAR, _of_calendar(lambda c: c.color or None),
             Settable("color", _color_of)),
        Live(tag(CALDAV, "calendar-timezone"), _ON_CALENDAR, _of_calendar(_calendar_zone),
             Settable("timezone", _zone_of)),
        Live(tag(CALDAV, "calendar-data"), _ON_OBJECT, lambda r: r.data),
        Live(tag(DAV, "quota-used-bytes"), _ON_CALENDAR, _quota(0), by_name_only=True),
        Live(tag(DAV, "quota-available-bytes"), _ON_CALENDAR, _quota(1), by_name_only=True),
    )
}  # fmt: skip
#: the live properties each kind of resource lists in allprop and propname
_LISTED = {kind: [live for live in LIVE.values() if kind in live.on and not live.by_name_only] for kind in Kind}
#: what PROPPATCH (and MKCALENDAR/MKCOL) may set on a calendar
SETTABLE = {name: live.settable for name, live in LIVE.items() if live.settable}
#: the calendar field each settable property maps to (a service's Invalid names the field)
WRITABLE = {name: setting.field for name, setting in SETTABLE.items() if setting.field}
#: what no request may set: every other live property, and the locking ones Almanac does not
#: serve (RFC 4918 15)
PROTECTED = frozenset(name for name in LIVE if name not in SETTABLE) | {
    tag(DAV, "lockdiscovery"),
    tag(DAV, "supportedlock"),
}


def _element(name: str, value: Value) -> etree._Element:
    return _el(name, value) if isinstance(value, str) else _el(name, None, *value or ())


def _dead_of(resource: DavResource) -> dict[str, str]:
    return resource.calendar.props.get("dead", {}) if resource.kind is Kind.CALENDAR and resource.calendar else {}


def read(resource: DavResource, name: str) -> etree._Element | None:
    """Property ``name`` of a resource, None where it has none."""
    live = LIVE.get(name)
    if live is not None and resource.kind in live.on:
        value = live.read(resource)
        return None if value is None else _element(name, value)
    xml = _dead_of(resource).get(name)
    return None if xml is None else _dead(name, xml)


def listed(resource: DavResource) -> list[etree._Element]:
    """The properties allprop lists: every live one the resource has, then its dead ones."""
    found = []
    for live in _LISTED[resource.kind]:
        value = live.read(resource)
        if value is not None:
            found.append(_element(live.name, value))
    return found + [_dead(name, xml) for name, xml in _dead_of(resource).items()]


#: the properties of a shared calendar that are each sharee's own (Apple's per-user properties)
#: and the grant setting each is kept in
PER_USER = {tag(DAV, "displayname"): "name", tag(APPLE, "calendar-color"): "color"}


def own_view(updates: list[tuple[bool, etree._Element]]) -> tuple[dict[str, object], dict[str, int]]:
    """A sharee's own settings of a calendar from a PROPPATCH's per-user properties (None: the
    calendar's again), and those that cannot be taken (409)."""
    view: dict[str, object] = {}
    failed: dict[str, int] = {}
    for setting, node in updates:
        text = (node.text or "").strip() if setting else ""
        try:
            value = normalize_color(text) if PER_USER[node.tag] == "color" and text else text or None
        except Invalid:
            failed[node.tag] = 409
            continue
        view[PER_USER[node.tag]] = value
    return view, failed


def plan_properties(
    calendar: Calendar | None, updates: list[tuple[bool, etree._Element]]
) -> tuple[dict[str, object], dict[str, int]]:
    """The calendar fields a PROPPATCH (or a MKCALENDAR's set, ``calendar`` None) changes, and
    the properties that cannot be set with their status (403 protected, 409 bad value)."""
    changes: dict[str, object] = {}
    props = dict(calendar.props) if calendar else {}
    dead = dict(props.get("dead", {}))
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
        elif name in PROTECTED:
            failed[name] = 403
        elif setting:
            dead[name] = etree.tostring(node, encoding="unicode")
        else:
            dead.pop(name, None)
    props["dead"] = dead
    changes["props"] = {k: v for k, v in props.items() if v is not None}
    return changes, failed


# --------------------------------------------------------------------------- replies


def answer(href: str, resource: DavResource, names: Sequence[str], kind: str = "prop") -> PropstatResponse:
    """One PROPFIND/REPORT response: the asked properties found, and the others 404 (allprop:
    every listed property and the asked ones; propname: the listed properties' names)."""
    response = PropstatResponse(href)
    if kind in ("allprop", "propname"):
        response.found = listed(resource)
        if kind == "propname":
            response.found = [_el(node.tag) for node in response.found]
            return response
        shown = {node.tag for node in response.found}
        names = [name for name in names if name not in shown]
    for name in names:
        value = read(resource, name)
        if value is None:
            response.missing.append(name)
        else:
            response.found.append(value)
    return response
