"""CalDAV REPORT bodies (RFC 4791, RFC 6578): calendar-query, calendar-multiget, free-busy-query
and sync-collection read into values, with the filters, time ranges and calendar-data they ask
for (``CALENDAR_REPORTS``, ``parse_report``). Pure."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

from icalendar import Timezone
from lxml import etree

from protocol import dav
from protocol.dav import CALDAV, DAV, BadRequest, tag
from protocol.ical.values import CRLF, OBJECT_COMPONENTS, UNREADABLE, parse_resource

#: what a report may expand at most per resource (RFC 4791 lets the server limit it)
MAX_INSTANCES = 3_000


COLLATIONS = ("i;ascii-casemap", "i;octet", "i;unicode-casemap")


#: the open ends of a time range
RANGE_FIRST, RANGE_LAST = datetime(1, 1, 2, tzinfo=UTC), datetime(9999, 12, 30, tzinfo=UTC)  # a day inside the years


class Unsupported(BadRequest):
    """A well-formed request the server declines, naming the failed precondition (Clark name)."""

    def __init__(self, message: str, condition: str) -> None:
        super().__init__(message)
        self.condition = condition


@dataclass(slots=True, frozen=True)
class TimeRange:
    start: datetime | None
    end: datetime | None

    def low(self) -> datetime:
        return self.start or RANGE_FIRST

    def high(self) -> datetime:
        return self.end or RANGE_LAST


@dataclass(slots=True, frozen=True)
class TextMatch:
    text: str
    collation: str = "i;ascii-casemap"
    negate: bool = False

    def matches(self, value: str) -> bool:
        if self.collation == "i;octet":
            found = self.text in value
        elif self.collation == "i;unicode-casemap":
            found = self.text.casefold() in value.casefold()
        else:  # i;ascii-casemap folds ASCII letters only
            found = _ascii_lower(self.text) in _ascii_lower(value)
        return found != self.negate


def _ascii_lower(value: str) -> str:
    return value.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


@dataclass(slots=True, frozen=True)
class ParamFilter:
    name: str
    is_not_defined: bool = False
    text_match: TextMatch | None = None


@dataclass(slots=True, frozen=True)
class PropFilter:
    name: str
    is_not_defined: bool = False
    time_range: TimeRange | None = None
    text_match: TextMatch | None = None
    param_filters: tuple[ParamFilter, ...] = ()


@dataclass(slots=True, frozen=True)
class CompFilter:
    name: str
    is_not_defined: bool = False
    time_range: TimeRange | None = None
    prop_filters: tuple[PropFilter, ...] = ()
    comp_filters: tuple[CompFilter, ...] = ()

    def has_time_range(self) -> bool:
        return self.time_range is not None or any(c.has_time_range() for c in self.comp_filters)


@dataclass(slots=True, frozen=True)
class CompSelect:
    """``<C:comp>`` in calendar-data: which properties and subcomponents to return."""

    name: str
    all_props: bool = True
    props: tuple[str, ...] = ()
    all_comps: bool = True
    comps: tuple[CompSelect, ...] = ()


@dataclass(slots=True, frozen=True)
class CalendarData:
    """``<C:calendar-data>`` in a report's prop: how to shape each resource returned."""

    select: CompSelect | None = None
    expand: TimeRange | None = None
    limit_recurrence: TimeRange | None = None

    @property
    def as_stored(self) -> bool:
        return self.select is None and self.expand is None and self.limit_recurrence is None


@dataclass(slots=True)
class ReportProps:
    """The properties a report asks for, with calendar-data kept apart."""

    kind: str  #: "prop", "allprop" or "propname"
    names: list[str] = field(default_factory=list)
    data: CalendarData | None = None


@dataclass(slots=True)
class CalendarQuery:
    props: ReportProps
    filter: CompFilter
    timezone: tzinfo | None = None


@dataclass(slots=True)
class Multiget:
    props: ReportProps
    hrefs: list[str]


@dataclass(slots=True)
class SyncCollection:
    props: ReportProps
    token: str
    level: str
    limit: int | None


@dataclass(slots=True)
class FreeBusyQuery:
    time_range: TimeRange


Report = CalendarQuery | Multiget | SyncCollection | FreeBusyQuery


def _calendar_query(root: etree._Element) -> CalendarQuery:
    filter_node = root.find(tag(CALDAV, "filter"))
    if filter_node is None or len(filter_node) != 1:
        raise _invalid_filter("calendar-query needs one comp-filter")
    top = _comp_filter(filter_node[0])
    if top.name != "VCALENDAR":
        raise _invalid_filter("the filter must start with VCALENDAR")
    return CalendarQuery(_report_props(root), top, _query_timezone(root.find(tag(CALDAV, "timezone"))))


def _multiget(root: etree._Element) -> Multiget:
    hrefs = [(h.text or "").strip() for h in root.iter(tag(DAV, "href"))]
    return Multiget(_report_props(root), [h for h in hrefs if h])


def _sync_collection(root: etree._Element) -> SyncCollection:
    token = root.find(tag(DAV, "sync-token"))
    level = root.find(tag(DAV, "sync-level"))
    return SyncCollection(
        _report_props(root),
        (token.text or "").strip() if token is not None else "",
        (level.text or "1").strip() if level is not None else "1",
        _limit(root.find(tag(DAV, "limit"))),
    )


def _free_busy_query(root: etree._Element) -> FreeBusyQuery:
    node = root.find(tag(CALDAV, "time-range"))
    if node is None:
        raise BadRequest("free-busy-query needs a time-range")
    return FreeBusyQuery(_time_range(node))


#: the REPORTs a calendar answers, by root element, each with its reader; a calendar's
#: supported-report-set is this table
CALENDAR_REPORTS: dict[str, Callable[[etree._Element], Report]] = {
    tag(CALDAV, "calendar-query"): _calendar_query,
    tag(CALDAV, "calendar-multiget"): _multiget,
    tag(CALDAV, "free-busy-query"): _free_busy_query,
    tag(DAV, "sync-collection"): _sync_collection,
}


def parse_report(body: bytes) -> Report:
    """The REPORT a body asks for; BadRequest when it is malformed, Unsupported (with the
    precondition to name) when it is a report or a filter the server does not do."""
    root = dav.parse(body)
    reader = CALENDAR_REPORTS.get(root.tag)
    if reader is None:
        raise Unsupported(f"unsupported report {root.tag}", tag(DAV, "supported-report"))
    return reader(root)


def _limit(node: etree._Element | None) -> int | None:
    if node is None:
        return None
    text = node.findtext(tag(DAV, "nresults"))
    try:
        value = int((text or "").strip())
    except ValueError:
        raise BadRequest("DAV:limit needs a whole number in nresults") from None
    if value < 1:
        raise BadRequest("DAV:limit nresults must be at least 1")
    return value


def _report_props(root: etree._Element) -> ReportProps:
    if root.find(tag(DAV, "allprop")) is not None:
        return ReportProps("allprop")
    if root.find(tag(DAV, "propname")) is not None:
        return ReportProps("propname")
    wanted = ReportProps("prop")
    prop = root.find(tag(DAV, "prop"))
    for node in prop if prop is not None else ():
        if not isinstance(node.tag, str):
            continue
        if node.tag == tag(CALDAV, "calendar-data"):
            wanted.data = _calendar_data(node)
        wanted.names.append(node.tag)
    return wanted


def _calendar_data(node: etree._Element) -> CalendarData:
    content_type = node.get("content-type", "text/calendar")
    if content_type != "text/calendar" or node.get("version", "2.0") != "2.0":
        raise Unsupported("only text/calendar 2.0 is served", tag(CALDAV, "supported-calendar-data"))
    comp = node.find(tag(CALDAV, "comp"))
    expand = node.find(tag(CALDAV, "expand"))
    limit = node.find(tag(CALDAV, "limit-recurrence-set"))
    return CalendarData(
        select=_comp_select(comp) if comp is not None else None,
        expand=_time_range(expand, both=True) if expand is not None else None,
        limit_recurrence=_time_range(limit, both=True) if limit is not None else None,
    )


def _comp_select(node: etree._Element) -> CompSelect:
    name = _name(node)
    props = tuple(_name(p) for p in node.findall(tag(CALDAV, "prop")))
    comps = tuple(_comp_select(c) for c in node.findall(tag(CALDAV, "comp")))
    return CompSelect(
        name=name,
        all_props=node.find(tag(CALDAV, "allprop")) is not None or not props,
        props=props,
        all_comps=node.find(tag(CALDAV, "allcomp")) is not None or not comps,
        comps=comps,
    )


def _name(node: etree._Element) -> str:
    name = (node.get("name") or "").strip().upper()
    if not name:
        raise BadRequest(f"{etree.QName(node).localname} needs a name")
    return name


#: what each filter element may hold (RFC 4791 9.7): (children, children that exclude the rest);
#: each child at most once, except the nested filters
_FILTER_CHILDREN = {
    "comp-filter": ({"is-not-defined", "time-range", "prop-filter", "comp-filter"}, set()),
    "prop-filter": ({"is-not-defined", "time-range", "text-match", "param-filter"}, {"time-range", "text-match"}),
    "param-filter": ({"is-not-defined", "text-match"}, set()),
}


_REPEATABLE = {"prop-filter", "comp-filter", "param-filter"}


def _invalid_filter(message: str) -> Unsupported:
    return Unsupported(message, tag(CALDAV, "valid-filter"))


def _checked(node: etree._Element) -> str:
    """The name of a comp-, prop- or param-filter whose children are as RFC 4791 9.7 allows;
    Unsupported (``valid-filter``) otherwise."""
    kind = etree.QName(node).localname
    allowed, exclusive = _FILTER_CHILDREN[kind]
    children = [etree.QName(c) for c in node if isinstance(c.tag, str)]
    names = [c.localname for c in children]
    for child, name in zip(children, names, strict=True):
        if child.namespace != CALDAV or name not in allowed:
            raise _invalid_filter(f"a {kind} cannot hold {child.localname}")
        if name not in _REPEATABLE and names.count(name) > 1:
            raise _invalid_filter(f"a {kind} holds {name} once at most")
    if "is-not-defined" in names and len(names) > 1:
        raise _invalid_filter(f"a {kind} with is-not-defined holds nothing else")
    if len(exclusive.intersection(names)) > 1:
        raise _invalid_filter(f"a {kind} holds a time-range or a text-match, not both")
    name = (node.get("name") or "").strip().upper()
    if not name:
        raise _invalid_filter(f"a {kind} needs a name")
    return name


def _comp_filter(node: etree._Element) -> CompFilter:
    if node.tag != tag(CALDAV, "comp-filter"):
        raise _invalid_filter(f"expected comp-filter, got {node.tag}")
    time_range = node.find(tag(CALDAV, "time-range"))
    return CompFilter(
        name=_checked(node),
        is_not_defined=node.find(tag(CALDAV, "is-not-defined")) is not None,
        time_range=_time_range(time_range) if time_range is not None else None,
        prop_filters=tuple(_prop_filter(p) for p in node.findall(tag(CALDAV, "prop-filter"))),
        comp_filters=tuple(_comp_filter(c) for c in node.findall(tag(CALDAV, "comp-filter"))),
    )


def _prop_filter(node: etree._Element) -> PropFilter:
    time_range = node.find(tag(CALDAV, "time-range"))
    text_match = node.find(tag(CALDAV, "text-match"))
    return PropFilter(
        name=_checked(node),
        is_not_defined=node.find(tag(CALDAV, "is-not-defined")) is not None,
        time_range=_time_range(time_range) if time_range is not None else None,
        text_match=_text_match(text_match) if text_match is not None else None,
        param_filters=tuple(_param_filter(p) for p in node.findall(tag(CALDAV, "param-filter"))),
    )


def _param_filter(node: etree._Element) -> ParamFilter:
    text_match = node.find(tag(CALDAV, "text-match"))
    return ParamFilter(
        name=_checked(node),
        is_not_defined=node.find(tag(CALDAV, "is-not-defined")) is not None,
        text_match=_text_match(text_match) if text_match is not None else None,
    )


def _text_match(node: etree._Element) -> TextMatch:
    collation = node.get("collation", "i;ascii-casemap")
    if collation not in COLLATIONS:
        raise Unsupported(f"unsupported collation {collation}", tag(CALDAV, "supported-collation"))
    negate = node.get("negate-condition", "no").strip().lower()
    if negate not in ("yes", "no"):
        raise _invalid_filter(f"negate-condition is yes or no, not {negate!r}")
    if len(node):
        raise _invalid_filter("a text-match holds text only")
    return TextMatch(node.text or "", collation, negate == "yes")


def parse_utc(value: str) -> datetime:
    """A CalDAV time attribute: ``20060104T000000Z`` (UTC, RFC 4791 9.9)."""
    try:
        return datetime.strptime(value.strip(), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        message = f"time {value!r} is not a UTC date-time like 20060104T000000Z"
        raise _invalid_filter(message) from None


def _time_range(node: etree._Element, *, both: bool = False) -> TimeRange:
    start, end = node.get("start"), node.get("end")
    if (start is None and end is None) or (both and (start is None or end is None)):
        raise _invalid_filter("a time-range needs start or end")
    found = TimeRange(parse_utc(start) if start else None, parse_utc(end) if end else None)
    if found.start and found.end and found.end <= found.start:
        raise _invalid_filter("a time-range must end after it starts")
    return found


def _query_timezone(node: etree._Element | None) -> tzinfo | None:
    """The zone of ``<C:timezone>`` (a VCALENDAR with one VTIMEZONE), for floating times."""
    if node is None or not (node.text or "").strip():
        return None
    return calendar_timezone(node.text or "")[1]


def calendar_timezone(text: str) -> tuple[str, tzinfo]:
    """The TZID and zone of a calendar-timezone value (a VCALENDAR with one VTIMEZONE)."""
    try:
        calendar = parse_resource(text.strip().replace("\r\n", "\n").replace("\n", CRLF) + CRLF)
    except UNREADABLE:
        calendar = None
    if calendar is None or calendar.name != "VCALENDAR":
        raise Unsupported("the timezone is not a VCALENDAR", tag(CALDAV, "valid-calendar-data"))
    zones = calendar.walk("VTIMEZONE")
    if len(zones) != 1:
        raise Unsupported("the timezone must hold one VTIMEZONE", tag(CALDAV, "valid-calendar-data"))
    try:
        if not isinstance(zones[0], Timezone):
            raise TypeError("not a VTIMEZONE")
        return str(zones[0]["TZID"]), zones[0].to_tz()
    except UNREADABLE:
        raise Unsupported("the VTIMEZONE cannot be read", tag(CALDAV, "valid-calendar-data")) from None


def simple_range(query: CalendarQuery) -> tuple[str | None, TimeRange | None, bool]:
    """What the store's index can answer: the one component type asked for, its time range,
    and whether those two are the whole filter (no other condition to check on the text)."""
    top = query.filter
    if top.is_not_defined or top.time_range or top.prop_filters or len(top.comp_filters) != 1:
        return None, None, False
    inner = top.comp_filters[0]
    if inner.is_not_defined or inner.name not in OBJECT_COMPONENTS:
        return None, None, False
    whole = not inner.prop_filters and not inner.comp_filters
    return inner.name, inner.time_range, whole
