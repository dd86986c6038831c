"""CalDAV REPORT bodies (RFC 4791, RFC 6578) and what they ask of calendar data. Pure.

Parses calendar-query, calendar-multiget, free-busy-query and sync-collection requests; decides
whether a calendar resource matches a query filter (time ranges per RFC 4791 9.9, recurrence
aware, text-match collations); and shapes the calendar-data a report returns (``expand``,
``limit-recurrence-set``, a partial selection of components and properties).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta, tzinfo

import recurring_ical_events
from icalendar import Calendar, Component, Timezone
from icalendar.prop import vCategory, vText
from lxml import etree

from protocol import dav
from protocol.dav import CALDAV, DAV, BadRequest, tag
from protocol.ical.instances import rezone_components
from protocol.ical.values import CRLF, OBJECT_COMPONENTS, UNREADABLE, formatted, parse_resource, split_stored
from protocol.ical.windows import expand_spans, instances, window_calendar

#: what a report may expand at most per resource (RFC 4791 lets the server limit it)
MAX_INSTANCES = 3_000
COLLATIONS = ("i;ascii-casemap", "i;octet", "i;unicode-casemap")
#: how far around an alarm's time range the events that may ring in it are looked for
_REACH = timedelta(days=366)
_MARGIN = timedelta(days=1)
#: the open ends of a time range
_FIRST, _LAST = datetime(1, 1, 2, tzinfo=UTC), datetime(9999, 12, 30, tzinfo=UTC)  # a day inside the years


class Unsupported(BadRequest):
    """A well-formed request the server declines, naming the failed precondition (Clark name)."""

    def __init__(self, message: str, condition: str) -> None:
        super().__init__(message)
        self.condition = condition


# --------------------------------------------------------------------------- request model


@dataclass(slots=True, frozen=True)
class TimeRange:
    start: datetime | None
    end: datetime | None

    def low(self) -> datetime:
        return self.start or _FIRST

    def high(self) -> datetime:
        return self.end or _LAST


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


# --------------------------------------------------------------------------- parsing


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


# --------------------------------------------------------------------------- matching


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


def matches(top: CompFilter, calendar: Calendar, zone: tzinfo | None = None) -> bool:
    """Whether a resource satisfies a calendar-query filter (``top`` names VCALENDAR).

    RFC 4791 9.7 has no time-range under VCALENDAR, and VCALENDAR itself has no SUMMARY or
    CATEGORIES; clients that send them without a component type (python-caldav does) mean
    "any component of the resource", so that is how they are read.
    """
    zone = zone or UTC
    untyped = tuple(p for p in top.prop_filters if p.name not in calendar)
    if top.time_range is not None or untyped:
        inner = [CompFilter(name, time_range=top.time_range, prop_filters=untyped) for name in OBJECT_COMPONENTS]
        if not any(_child_matches(spec, calendar, zone) for spec in inner):
            return False
        top = replace(top, time_range=None, prop_filters=tuple(p for p in top.prop_filters if p not in untyped))
    return _component_matches(top, [calendar], zone)


def _component_matches(spec: CompFilter, candidates: Iterable[Component], zone: tzinfo) -> bool:
    if spec.is_not_defined:
        return next(iter(candidates), None) is None
    return any(
        all(_prop_matches(p, component, zone) for p in spec.prop_filters)
        and all(_child_matches(c, component, zone) for c in spec.comp_filters)
        for component in candidates
    )


def _child_matches(spec: CompFilter, parent: Component, zone: tzinfo) -> bool:
    if spec.name == "VALARM":  # alarm times depend on their parent (instance)
        return _alarm_matches(spec, parent, zone)
    return _component_matches(spec, _children(parent, spec, zone), zone)


def _children(parent: Component, spec: CompFilter, zone: tzinfo) -> Iterable[Component]:
    """The subcomponents named by ``spec`` that pass its time range, lazily: for a recurring
    set, its instances in the range (or, when only an alarm below has a range, around it)."""
    found: Iterable[Component] = [c for c in parent.subcomponents if c.name == spec.name]
    recurring = any("RRULE" in c or "RDATE" in c for c in found)
    if recurring and spec.name in OBJECT_COMPONENTS and spec.has_time_range():
        found = _instances(parent, spec.name, spec.time_range or _nested_range(spec), zone)
    if spec.time_range is None:
        return found
    return (c for c in found if _in_range(c, spec.time_range, zone))


def _shifted(moment: datetime, delta: timedelta) -> datetime:
    """``moment + delta`` kept between _FIRST and _LAST, which any zone can still show (an open
    range's end moved by a margin and shown at -05:00 would otherwise be the year 0)."""
    try:
        return min(max(moment + delta, _FIRST), _LAST)
    except OverflowError:
        return _FIRST if delta < timedelta(0) else _LAST


def _nested_range(spec: CompFilter) -> TimeRange:
    ranges = [c.time_range or _nested_range(c) for c in spec.comp_filters if c.has_time_range()]
    low, high = min(r.low() for r in ranges), max(r.high() for r in ranges)
    return TimeRange(_shifted(low, -_REACH), _shifted(high, _REACH))


def _instances(parent: Component, name: str, window: TimeRange, zone: tzinfo) -> Iterator[Component]:
    """Instances of the recurring set starting before the window ends and not ending before it
    starts (a day's margin for RFC 4791's closed todo ends), in order, at most MAX_INSTANCES."""
    calendar = Calendar()
    calendar.subcomponents = [c for c in parent.subcomponents if c.name in (name, "VTIMEZONE")]
    low = _shifted(window.low(), -_MARGIN).astimezone(zone)
    high = _shifted(window.high(), _MARGIN)
    query = recurring_ical_events.of(window_calendar(calendar, low, high, MAX_INSTANCES), components=[name])
    for count, instance in enumerate(query.after(low)):
        start = _moment(_value(instance, "DTSTART") or _value(instance, "DUE"), zone)
        if count >= MAX_INSTANCES or start is None or start >= high:
            return
        yield instance


def _moment(value: object, zone: tzinfo) -> datetime | None:
    """A DATE or DATE-TIME as an aware datetime (floating and dates in ``zone``)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=zone)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=zone)
    return None


def _value(component: Component, name: str) -> object | None:
    try:
        return component.decoded(name) if name in component else None
    except (ValueError, KeyError, TypeError):
        return None


def _in_range(component: Component, time_range: TimeRange, zone: tzinfo) -> bool:
    """RFC 4791 9.9: whether one component (or instance) overlaps the range."""
    low, high = time_range.low(), time_range.high()
    name = component.name
    start_value = _value(component, "DTSTART")
    start = _moment(start_value, zone)
    if name in ("VEVENT", "VJOURNAL"):
        if start is None:
            return False
        if name == "VJOURNAL":
            finish = start + timedelta(days=1) if not isinstance(start_value, datetime) else start
        else:
            end = _moment(_value(component, "DTEND"), zone)
            duration = _value(component, "DURATION")
            if end is not None:
                finish = end
            elif isinstance(duration, timedelta):
                finish = start + duration
            else:
                finish = start + timedelta(days=1) if not isinstance(start_value, datetime) else start
        if finish > start:
            return low < finish and high > start
        return low <= start < high
    if name == "VTODO":
        return _todo_in_range(component, low, high, start, zone)
    if name == "VFREEBUSY":
        return _freebusy_in_range(component, low, high, start, zone)
    return False  # alarms are matched against their parent by _alarm_matches


def _todo_in_range(component: Component, low: datetime, high: datetime, start: datetime | None, zone: tzinfo) -> bool:
    due = _moment(_value(component, "DUE"), zone)
    duration = _value(component, "DURATION")
    completed = _moment(_value(component, "COMPLETED"), zone)
    created = _moment(_value(component, "CREATED"), zone)
    if start is not None and isinstance(duration, timedelta):
        finish = start + duration
        return low <= finish and (high > start or high >= finish)
    if start is not None and due is not None:
        return (low < due or low <= start) and (high > start or high >= due)
    if start is not None:
        return low <= start < high
    if due is not None:
        return low < due <= high
    if completed is not None and created is not None:
        return (low <= created or low <= completed) and (high >= created or high >= completed)
    if completed is not None:
        return low <= completed <= high
    if created is not None:
        return high > created
    return True


def _freebusy_in_range(
    component: Component, low: datetime, high: datetime, start: datetime | None, zone: tzinfo
) -> bool:
    periods: list[tuple[datetime, datetime]] = []
    for period in _props(component, "FREEBUSY"):
        first, length = getattr(period, "dt", (None, None))
        begin = _moment(first, zone)
        finish = begin + length if begin and isinstance(length, timedelta) else _moment(length, zone)
        if begin is not None and finish is not None:
            periods.append((begin, finish))
    if not periods:
        end = _moment(_value(component, "DTEND"), zone)
        if start is None or end is None:
            return False
        periods = [(start, end)]
    return any(begin < high and finish > low for begin, finish in periods)


def alarm_times(alarm: Component, parent: Component, zone: tzinfo) -> list[datetime]:
    """When an alarm fires for one (instance of an) event or todo, repetitions included."""
    trigger = alarm.get("TRIGGER")
    if trigger is None:
        return []
    value = trigger.dt
    if isinstance(value, timedelta):
        related = str(trigger.params.get("RELATED", "START")).upper()
        anchor_name = "DTEND" if related == "END" else "DTSTART"
        anchor = _moment(_value(parent, anchor_name), zone)
        if anchor is None and related == "END":
            anchor = _moment(_value(parent, "DUE"), zone)
            if anchor is None:
                begin = _moment(_value(parent, "DTSTART"), zone)
                duration = _value(parent, "DURATION")
                anchor = begin + duration if begin and isinstance(duration, timedelta) else None
        if anchor is None and parent.name == "VTODO":
            anchor = _moment(_value(parent, "DUE"), zone)
        if anchor is None:
            return []
        first: datetime | None = anchor + value
    else:
        first = _moment(value, zone)
    if first is None:
        return []
    times = [first]
    repeat, interval = _value(alarm, "REPEAT"), _value(alarm, "DURATION")
    if isinstance(repeat, int) and isinstance(interval, timedelta) and interval > timedelta(0):
        times += [first + interval * n for n in range(1, min(repeat, 1000) + 1)]
    return times


def _prop_matches(spec: PropFilter, component: Component, zone: tzinfo) -> bool:
    props = _props(component, spec.name)
    if spec.is_not_defined:
        return not props
    if not props:
        return False
    return any(
        (spec.time_range is None or _prop_in_range(prop, spec.time_range, zone))
        and (spec.text_match is None or spec.text_match.matches(_text(prop)))
        and all(_param_matches(p, prop) for p in spec.param_filters)
        for prop in props
    )


def _props(component: Component, name: str) -> list[object]:
    value = component.get(name)
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _prop_in_range(prop: object, time_range: TimeRange, zone: tzinfo) -> bool:
    moment = _moment(getattr(prop, "dt", None), zone)
    return moment is not None and time_range.low() <= moment < time_range.high()


def _text(prop: object) -> str:
    if isinstance(prop, vCategory):
        return ",".join(str(c) for c in prop.cats)
    if isinstance(prop, vText | str):
        return str(prop)
    to_ical = getattr(prop, "to_ical", None)
    raw = to_ical() if to_ical else prop
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _param_matches(spec: ParamFilter, prop: object) -> bool:
    params = getattr(prop, "params", {})
    value = params.get(spec.name)
    if spec.is_not_defined:
        return value is None
    if value is None:
        return False
    values = value if isinstance(value, list) else [value]
    return spec.text_match is None or any(spec.text_match.matches(str(v)) for v in values)


def _alarm_matches(spec: CompFilter, parent: Component, zone: tzinfo) -> bool:
    alarms = [c for c in parent.subcomponents if c.name == "VALARM"]
    if spec.is_not_defined:
        return not alarms
    for alarm in alarms:
        if spec.time_range is not None:
            low, high = spec.time_range.low(), spec.time_range.high()
            if not any(low <= t < high for t in alarm_times(alarm, parent, zone)):
                continue
        if all(_prop_matches(p, alarm, zone) for p in spec.prop_filters):
            return True
    return False


# --------------------------------------------------------------------------- calendar-data


def shape(
    text: str, data: CalendarData, zone: tzinfo | None = None, spans: Sequence[tuple[int, int, bool]] = ()
) -> str:
    """The calendar-data of one resource as the report's ``<C:calendar-data>`` asks for it
    (``zone``: the query's, where floating times and dates are placed, RFC 4791 9.9; ``spans``:
    the resource's instances in the expand's range from the time-range index, which spare
    parsing it where they tell everything)."""
    if data.as_stored:
        return text
    if data.expand is not None:
        text = expand_spans(text, spans, MAX_INSTANCES) or expand_utc(text, data.expand, zone)
        if data.limit_recurrence is None and data.select is None:
            return text
    calendar = parse_resource(text)
    if data.limit_recurrence is not None:
        _limit_recurrence(calendar, data.limit_recurrence)
    if data.select is not None:
        _select(calendar, data.select)
    return calendar.to_ical().decode()


def expand_utc(text: str, time_range: TimeRange, zone: tzinfo | None = None) -> str:
    """The instances overlapping the range (RFC 4791 9.6.5): each with a RECURRENCE-ID when it
    belongs to a series, no recurrence rules, every zoned time in UTC and no VTIMEZONE."""
    recurring = any("RRULE" in part or "RDATE" in part for kind, _, part in split_stored(text) if kind != "VTIMEZONE")
    if not recurring and "TZID" not in text:
        return text  # one instance already, its times UTC, floating or dates
    if not recurring:
        calendar = parse_resource(text)
    else:
        calendar = parse_resource(instances(text, time_range.low(), time_range.high(), MAX_INSTANCES, zone))
    calendar.subcomponents = [c for c in calendar.subcomponents if c.name != "VTIMEZONE"]
    rezone_components(calendar, UTC)
    return calendar.to_ical().decode()


def _limit_recurrence(calendar: Calendar, time_range: TimeRange) -> None:
    """Keep the master and only the overridden instances that touch the range (RFC 4791 9.6.6)."""
    kept = []
    for component in calendar.subcomponents:
        if component.name in OBJECT_COMPONENTS and "RECURRENCE-ID" in component:
            rid = _moment(_value(component, "RECURRENCE-ID"), UTC)
            if not (_in_range(component, time_range, UTC) or (rid and time_range.low() <= rid < time_range.high())):
                continue
        kept.append(component)
    calendar.subcomponents = kept


def _select(component: Component, select: CompSelect) -> None:
    if not select.all_props:
        wanted = set(select.props)
        for name in list(component.keys()):
            if name not in wanted:
                del component[name]
    if not select.all_comps:
        by_name = {c.name: c for c in select.comps}
        component.subcomponents = [c for c in component.subcomponents if c.name in by_name]
        for child in component.subcomponents:
            _select(child, by_name[str(child.name)])


# --------------------------------------------------------------------------- free/busy


def freebusy_text(
    periods: Iterable[tuple[datetime, datetime] | tuple[datetime, datetime, str]], time_range: TimeRange, prodid: str
) -> str:
    """A VCALENDAR with one VFREEBUSY listing busy periods in UTC, each with its FBTYPE (RFC 4791
    7.10; BUSY when a period does not say)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{prodid}", "BEGIN:VFREEBUSY", f"DTSTAMP:{stamp}"]
    lines.append(f"DTSTART:{_utc(time_range.low())}")
    lines.append(f"DTEND:{_utc(time_range.high())}")
    for begin, finish, *kind in periods:
        lines.append(f"FREEBUSY;FBTYPE={kind[0] if kind else 'BUSY'}:{_utc(begin)}/{_utc(finish)}")
    lines += ["END:VFREEBUSY", "END:VCALENDAR"]
    return CRLF.join(lines) + CRLF


def _utc(moment: datetime) -> str:
    return formatted(moment.astimezone(UTC), "%Y%m%dT%H%M%SZ")
