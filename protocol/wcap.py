"""WCAP (Sun/Oracle Calendar Server) values: errnos, parameters, calids and replies.

Pure: parameters in, reply text out. The door (server/wcap/door.py) does the rest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from enum import IntEnum

from icalendar import Alarm, Component, vCalAddress, vDuration, vRecur
from icalendar import Calendar as ICalendar
from lxml import etree

from protocol import itip
from protocol.dav import xml_text
from protocol.ical.values import CRLF, formatted, split_stored, timezones_and_body, unfold

PRODID = "-//Almanac//Almanac WCAP 3.0//EN"
VERSION = "3.0.0"
SERVER_VERSION = "Almanac 0.1"


class Errno(IntEnum):
    """The WCAP error numbers Almanac answers with (Sun's names)."""

    LOGOUT = -1
    OK = 0
    LOGIN_FAILED = 1
    DELETE_EVENTS_BY_ID_FAILED = 6
    SETCALPROPS_FAILED = 8
    FETCH_EVENTS_BY_ID_FAILED = 9
    CREATECALENDAR_FAILED = 10
    DELETECALENDAR_FAILED = 11
    FETCHBYDATERANGE_FAILED = 13
    STOREEVENTS_FAILED = 14
    STORETODOS_FAILED = 15
    DELETE_TODOS_BY_ID_FAILED = 16
    FETCH_TODOS_BY_ID_FAILED = 17
    FETCHCOMPONENTS_FAILED_BAD_TZID = 18
    DELETECOMPONENTS_BY_RANGE_FAILED = 21
    WRITE_IMPORT_FAILED = 35
    CREATECALENDAR_ALREADY_EXISTS_FAILED = 25
    SET_USERPREFS_FAILED = 26
    ACCESS_DENIED_TO_CALENDAR = 28
    CALENDAR_DOES_NOT_EXIST = 29
    ILLEGAL_CALID_NAME = 30
    FETCH_BY_LAST_MODIFIED_FAILED = 36
    CALID_NOT_SPECIFIED = 38
    GET_FREEBUSY_FAILED = 39
    DWP_CONNECTION_FAILED = 48  #: the back end (for Almanac: the store) cannot do it now
    BAD_COMMAND = 52
    INTERNAL_ERROR = 53  #: Sun's NOT_FOUND: "DB write error (internal)"
    GETTIME_FAILED = 55
    FETCH_DELETEDCOMPONENTS_FAILED = 56
    NO_SUCH_FORMAT = 58
    COMPONENT_NOT_FOUND = 59
    BAD_ARGUMENTS = 60
    MODIFY_NO_EVENT = 62
    CREATE_EXISTS = 63
    USERPREFS_ACCESS_DENIED = 44
    ACCESS_DENIED = 76
    BAD_IMPORT_ARGUMENTS = 77
    ATTENDEE_NOT_ALLOWED_TO_REQUEST_ON_MODIFY = 79


class WcapError(Exception):
    """A failure with its errno; ``message`` goes to the log and to X-NSCP-WCAP-ERRSTR."""

    def __init__(self, errno: Errno, message: str = "") -> None:
        super().__init__(message or errno.name)
        self.errno = errno
        self.message = message or errno.name


FORMATS = ("text/calendar", "text/xml")


# --------------------------------------------------------------------------- parameters


def split_list(value: str | None) -> list[str]:
    """A ``;``-separated list; a ``;`` inside double quotes (Lightning quotes each RRULE) or
    written ``%3B`` belongs to its item. Quotes are removed, empty items dropped."""
    if not value:
        return []
    items = re.findall(r'(?:"[^"]*"|[^;])+', value)
    return [item.strip('"').replace("%3B", ";").replace("%3b", ";") for item in items if item.strip('"')]


def parse_time(value: str | None, name: str, errno: Errno = Errno.BAD_ARGUMENTS) -> datetime | None:
    """A WCAP date-time: ``20020105T000000Z``; ``0`` or nothing is unbounded (None).

    Times without ``Z`` are read as UTC (Almanac's server zone); a bare date is its midnight.
    """
    if value is None or value.strip() in ("", "0"):
        return None
    text = value.strip()
    try:
        if re.fullmatch(r"\d{8}T\d{6}Z?", text):
            return datetime.strptime(text[:15], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
        if re.fullmatch(r"\d{8}", text):
            return datetime.strptime(text, "%Y%m%d").replace(tzinfo=UTC)
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):  # what an HTML date input sends
            return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        pass
    raise WcapError(errno, f"{name}={value!r} is not a date-time like 20020105T000000Z")


def format_time(value: datetime) -> str:
    return formatted(value.astimezone(UTC), "%Y%m%dT%H%M%SZ")


def flag(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip() not in ("0", "false", "no")


@dataclass(frozen=True, slots=True)
class Calid:
    """A parsed calid: a user's default calendar or one of their calendars by slug."""

    user: str | None = None  #: username
    email: str | None = None  #: for ``mailto:`` calids
    slug: str | None = None  #: None: the default calendar


def parse_calid(text: str) -> Calid:
    """``jdoe``, ``jdoe:work``, ``mailto:jdoe@example.org`` or ``/home/jdoe/calendar/``."""
    value = text.strip()
    if value.lower().startswith("mailto:"):
        return Calid(email=value[7:])
    match = re.fullmatch(r"/?home/([^/]+)(?:/([^/]+))?/?", value)
    if match:
        return Calid(user=match.group(1), slug=match.group(2))
    user, _, slug = value.partition(":")
    if not user:
        raise WcapError(Errno.ILLEGAL_CALID_NAME, f"calid {text!r} names no user")
    return Calid(user=user, slug=slug or None)


# --------------------------------------------------------------------------- access control entries


@dataclass(frozen=True, slots=True)
class Ace:
    """One access control entry, ``who^flags^how^grant`` (``jdoe^a^rf^g``): who it names (a
    user, ``user@domain``, ``@`` every user, ``@@o`` the owners ...), what it covers (``a`` the
    calendar, ``c`` its components, ``p`` its properties), the rights (``r`` read, ``w`` write,
    ``d`` delete, ``s`` schedule, ``f`` free/busy ...) and ``g`` grant or ``d`` deny."""

    who: str
    flags: str
    how: str
    grant: str

    def __str__(self) -> str:
        return f"{self.who}^{self.flags}^{self.how}^{self.grant}"


def parse_acl(text: str) -> list[Ace]:
    """An ``acl`` parameter: ACEs separated by ``;``; errno 77 for one not of four fields."""
    found = []
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        fields = part.split("^")
        if len(fields) != 4 or not all(fields[1:]) or not fields[0]:
            raise WcapError(Errno.BAD_IMPORT_ARGUMENTS, f"{part!r} is not an access control entry like jdoe^a^r^g")
        found.append(Ace(*fields))
    return found


# --------------------------------------------------------------------------- replies


@dataclass(slots=True)
class Block:
    """One VCALENDAR (iCal) or ``<iCal>`` (XML) of a reply: properties, components, errno."""

    properties: list[tuple[str, str]] = field(default_factory=list)
    #: stored resources or single components, as iCalendar text
    components: list[str] = field(default_factory=list)
    errno: int = 0


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def _fold(line: str) -> str:
    if len(line.encode()) <= 75:
        return line
    parts: list[str] = []
    current = ""
    for char in line:
        if len((current + char).encode()) > (75 if not parts else 74):
            parts.append(current)
            current = char
        else:
            current += char
    parts.append(current)
    return (CRLF + " ").join(parts)


def render_ical(blocks: list[Block]) -> str:
    """text/calendar: one VCALENDAR per block, each VTIMEZONE once per block."""
    out = []
    for block in blocks:
        lines = ["BEGIN:VCALENDAR", f"PRODID:{PRODID}", "METHOD:PUBLISH", "VERSION:2.0"]
        lines += [_fold(f"{name}:{value}") for name, value in block.properties]
        text = CRLF.join(lines) + CRLF
        seen: set[str] = set()
        parts = []
        for resource in block.components:
            zones, body = timezones_and_body(resource)
            for tzid, zone in zones:
                if tzid not in seen:
                    seen.add(tzid)
                    parts.append(zone)
            parts.append(body)
        text += "".join(parts) + f"X-NSCP-WCAP-ERRNO:{block.errno}{CRLF}END:VCALENDAR{CRLF}"
        out.append(text)
    return "".join(out)


#: a property or component name that can be an XML element name
_NAME = re.compile(r"[A-Z][A-Z0-9-]*")
_XML_NAMES = {
    "DTSTART": "START", "DTEND": "END", "RECURRENCE-ID": "RECURID", "VEVENT": "EVENT", "VTODO": "TODO",
    "VFREEBUSY": "FREEBUSY", "FREEBUSY": "FB",
}  # fmt: skip


def _component_xml(parent: etree._Element, text: str) -> None:
    """A component in CS6 XML: one element per property (START/END/RECURID as CS6 names them)."""
    stack = [parent]
    for line in unfold(text).split(CRLF):
        if not line:
            continue
        head, _, value = line.partition(":")
        name = head.split(";", 1)[0].upper()
        if name == "BEGIN":
            kind = value.strip().upper()
            element = etree.SubElement(stack[-1], _XML_NAMES.get(kind, kind if _NAME.fullmatch(kind) else "X-UNKNOWN"))
            stack.append(element)
        elif name == "END":
            if len(stack) > 1:
                stack.pop()
        elif _NAME.fullmatch(name):
            element = etree.SubElement(stack[-1], _XML_NAMES.get(name, name))
            element.text = xml_text(value)
            params = head.split(";")[1:]
            for param in params:
                key, _, param_value = param.partition("=")
                if re.fullmatch(r"[A-Za-z0-9-]+", key):
                    element.set(key.upper(), xml_text(param_value.strip('"')))


def render_xml(blocks: list[Block]) -> str:
    """text/xml: ``<iCalendar><iCal ...>...</iCal></iCalendar>``."""
    root = etree.Element("iCalendar")
    for block in blocks:
        ical = etree.SubElement(root, "iCal", version="2.0", prodid=PRODID, METHOD="PUBLISH")
        for name, value in block.properties:
            etree.SubElement(ical, name).text = xml_text(value)
        for resource in block.components:
            for kind, _, part in split_stored(resource):
                if kind != "VTIMEZONE":
                    _component_xml(ical, part)
        etree.SubElement(ical, "X-NSCP-WCAP-ERRNO").text = str(block.errno)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True).decode()


def render(blocks: list[Block], fmt: str) -> str:
    return render_xml(blocks) if fmt == "text/xml" else render_ical(blocks)


def error_blocks(errno: int) -> list[Block]:
    return [Block(errno=errno)]


def single(component_text: str) -> str:
    """Wrap one bare component (VEVENT...END:VEVENT) so ``render_*`` can take it."""
    return f"BEGIN:VCALENDAR{CRLF}{component_text}END:VCALENDAR{CRLF}"


def status_component(name: str, uid: str, status: str) -> str:
    """``BEGIN:VEVENT UID REQUEST-STATUS END:VEVENT``: what store/delete answer without fetch."""
    return single(f"BEGIN:{name}{CRLF}UID:{_escape(uid)}{CRLF}REQUEST-STATUS:{status}{CRLF}END:{name}{CRLF}")


def date_value(value: date | datetime) -> str:
    if isinstance(value, datetime):
        return format_time(value) if value.tzinfo else formatted(value, "%Y%m%dT%H%M%S")
    return formatted(value, "%Y%m%d")


# --------------------------------------------------------------------------- storeevents


#: storeevents' numeric status -> STATUS
STATUSES = ("CONFIRMED", "CANCELLED", "TENTATIVE", "NEEDS-ACTION", "COMPLETED", "IN-PROCESS", "DRAFT", "FINAL")
#: parameters whose value is a plain TEXT property
_TEXT = {"summary": "SUMMARY", "desc": "DESCRIPTION", "location": "LOCATION", "icsUrl": "URL"}
#: parameters that are (lists of) date-times
_TIMES = {"dtstart": "DTSTART", "dtend": "DTEND", "due": "DUE", "completed": "COMPLETED"}


def store_time(value: str, zone: tzinfo | None, all_day: bool, name: str) -> date | datetime:
    """A storeevents time: ``...Z`` is UTC, other date-times are in ``tzid`` (or floating),
    ``YYYYMMDD`` (or any value with isAllDay=1) is a date."""
    text = value.strip().strip('"')
    try:
        if re.fullmatch(r"\d{8}", text) or (all_day and re.fullmatch(r"\d{8}(T\d{6}Z?)?", text)):
            return datetime.strptime(text[:8], "%Y%m%d").date()
        if re.fullmatch(r"\d{8}T\d{6}Z", text):
            return datetime.strptime(text[:15], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
        if re.fullmatch(r"\d{8}T\d{6}", text):
            return datetime.strptime(text, "%Y%m%dT%H%M%S").replace(tzinfo=zone)
    except ValueError:
        pass
    raise WcapError(Errno.BAD_ARGUMENTS, f"{name}={value!r} is not a date or date-time")


def _address(text: str) -> str:
    if ":" in text:
        return text
    return f"mailto:{text}"


def apply_store(component: Component, params: Mapping[str, str], zone: tzinfo | None) -> None:
    """Apply the storeevents/storetodos parameters present in ``params`` to ``component``.

    An empty value removes the property. Raises WcapError for values that cannot be read.
    """
    all_day = flag(params.get("isAllDay"))
    for key, prop in _TIMES.items():
        if key in params:
            component.pop(prop, None)
            if params[key].strip():
                value = store_time(params[key], UTC if key == "completed" else zone, all_day, key)
                component.add(prop, value)
    if "dtend" in params or "due" in params:
        component.pop("DURATION", None)
    for key, prop in _TEXT.items():
        if key in params:
            component.pop(prop, None)
            if params[key]:
                component.add(prop, params[key])
    if "categories" in params:
        component.pop("CATEGORIES", None)
        if split_list(params["categories"]):
            component.add("CATEGORIES", split_list(params["categories"]))
    if "icsClass" in params:
        component.pop("CLASS", None)
        if params["icsClass"].strip():
            component.add("CLASS", params["icsClass"].strip().upper())
    for key, prop in (("priority", "PRIORITY"), ("percent", "PERCENT-COMPLETE")):
        if key in params:
            component.pop(prop, None)
            if params[key].strip():
                try:
                    component.add(prop, int(params[key]))
                except ValueError:
                    raise WcapError(Errno.BAD_ARGUMENTS, f"{key}={params[key]!r} is not a number") from None
    if "status" in params:
        component.pop("STATUS", None)
        text = params["status"].strip()
        if text:
            if not text.isdigit() or int(text) >= len(STATUSES):
                raise WcapError(Errno.BAD_ARGUMENTS, f"status={text!r} is not 0 to 7")
            component.add("STATUS", STATUSES[int(text)])
    if "transparent" in params:
        component.pop("TRANSP", None)
        component.add("TRANSP", "TRANSPARENT" if flag(params["transparent"]) else "OPAQUE")
    for key, prop in (("rrules", "RRULE"), ("exrules", "EXRULE")):
        if key in params:
            component.pop(prop, None)
            for rule in split_list(params[key]):
                try:
                    component.add(prop, vRecur.from_ical(rule.strip().strip('"').removeprefix(f"{prop}:")))
                except ValueError:
                    raise WcapError(Errno.BAD_ARGUMENTS, f"{key}: {rule!r} is not a recurrence rule") from None
    for key, prop in (("rdates", "RDATE"), ("exdates", "EXDATE")):
        if key in params:
            component.pop(prop, None)
            for text in split_list(params[key]):
                component.add(prop, store_time(text, zone, all_day, key))
    if "attendees" in params:
        component.pop("ATTENDEE", None)
        for entry in split_list(params["attendees"]):
            *pairs, address = entry.split("^")
            attendee = vCalAddress(_address(address))
            for pair in pairs:
                name, _, given = pair.partition("=")
                attendee.params[name.upper()] = given
            component.add("ATTENDEE", attendee, encode=False)
    if params.get("orgCalid") or params.get("orgEmail"):
        component.pop("ORGANIZER", None)
        organizer = vCalAddress(_address(params.get("orgEmail") or params["orgCalid"]))
        if params.get("orgCalid"):
            organizer.params["X-S1CS-CALID"] = params["orgCalid"]
        component.add("ORGANIZER", organizer, encode=False)
    if "alarmStart" in params:
        for alarm in component.walk("VALARM"):
            component.subcomponents.remove(alarm)
        trigger = params["alarmStart"].strip()
        if trigger:
            _add_alarm(component, trigger, params, zone)


def _add_alarm(component: Component, trigger: str, params: Mapping[str, str], zone: tzinfo | None) -> None:
    alarm = Alarm()
    emails = split_list(params.get("alarmEmails"))
    alarm.add("ACTION", "EMAIL" if emails else "DISPLAY")
    alarm.add("DESCRIPTION", params.get("alarmDescription") or str(component.get("SUMMARY", "Reminder")))
    try:
        value = vDuration.from_ical(trigger) if trigger.lstrip("+-").startswith("P") else None
    except ValueError:
        value = None
    alarm.add("TRIGGER", value if value is not None else store_time(trigger, zone, False, "alarmStart"))
    if emails:
        alarm.add("SUMMARY", str(component.get("SUMMARY", "Reminder")))
        for email in emails:
            alarm.add("ATTENDEE", _address(email))
    component.add_component(alarm)


# ----------------------------------------------------------------------------- invitations

#: the component states of an invitation (the owner attends, someone else organizes)
INVITED = frozenset({"REQUEST-NEEDS-ACTION", "REPLY-ACCEPTED", "REPLY-DECLINED", "REPLY-TENTATIVE", "REPLY-DELEGATED"})
#: the component states (``compstate``) an event that is no meeting answers to
PLAIN_STATES = frozenset({"REQUEST-NEEDSNOACTION", "REPLY-ACCEPTED", "REQUEST-COMPLETED"})


def component_states(calendar: ICalendar, me: str | None) -> frozenset[str]:
    """The ``compstate`` keywords a stored resource answers to for its calendar's owner (``me``:
    their address): an invitation they have not answered is REQUEST-NEEDS-ACTION, one they
    answered REPLY-ACCEPTED (-DECLINED, -TENTATIVE); their own meeting REQUEST-WAITFORREPLY
    while an attendee has not answered, else REQUEST-COMPLETED."""
    organizer = itip.organizer(calendar)
    parts = itip.components(calendar)
    if organizer is None or not parts:
        return PLAIN_STATES
    attendees = itip.attendees(parts[0])
    if me is None or organizer == me:
        waiting = any(itip.partstat(line) == "NEEDS-ACTION" for who, line in attendees.items() if who != organizer)
        return frozenset({"REQUEST-WAITFORREPLY"} if waiting else {"REQUEST-COMPLETED", "REQUEST-NEEDSNOACTION"})
    line = attendees.get(me)
    if line is None:
        return PLAIN_STATES
    status = itip.partstat(line)
    return frozenset(
        {"REQUEST-NEEDS-ACTION"} if status == "NEEDS-ACTION" else {f"REPLY-{status}", "REQUEST-NEEDSNOACTION"}
    )


def apply_answers(component: Component, entries: str) -> None:
    """A REPLY's ``attendees`` (``PARTSTAT=ACCEPTED^mailto:me@x``): the parameters given set on
    the attendees named, the others left alone (Lightning answers with its own line only)."""
    lines = itip.attendees(component)
    for entry in split_list(entries):
        *pairs, who = entry.split("^")
        line = lines.get(itip.address(_address(who)))
        if line is None:
            raise WcapError(Errno.BAD_ARGUMENTS, f"{who} is not an attendee")
        for pair in pairs:
            name, _, given = pair.partition("=")
            line.params[name.upper()] = given


def mark_calids(text: str, calids: Mapping[str, str]) -> str:
    """A resource whose ORGANIZER and ATTENDEEs that are users here carry their calid in
    ``X-S1CS-CALID`` (how Lightning tells an invitation to its user); the text as it was when
    none is."""
    calendar = ICalendar.from_ical(text)
    marked = False
    for component in itip.components(calendar):
        for name in ("ORGANIZER", "ATTENDEE"):
            value = component.get(name)
            for line in value if isinstance(value, list) else [value] if value is not None else []:
                calid = calids.get(itip.address(line))
                if calid is not None and line.params.get("X-S1CS-CALID") != calid:
                    line.params["X-S1CS-CALID"] = calid
                    marked = True
    return calendar.to_ical().decode() if marked else text
