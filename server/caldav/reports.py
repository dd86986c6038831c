"""CalDAV reports on a calendar: calendar-multiget, calendar-query, free-busy-query (RFC 4791)
and sync-collection (RFC 6578).

The store's span index answers time ranges; a resource's text is parsed only when the filter
asks more than "this component type in this range" or the reply reshapes calendar-data.
"""

from __future__ import annotations

import asyncio
import logging
import zoneinfo
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from protocol import dav
from protocol.caldav.data import freebusy_text, shape
from protocol.caldav.filters import matches
from protocol.caldav.query import (
    CalendarData,
    CalendarQuery,
    FreeBusyQuery,
    Multiget,
    Report,
    ReportProps,
    SyncCollection,
    Unsupported,
    parse_report,
    simple_range,
)
from protocol.dav import DAV, PropstatResponse, tag
from protocol.events import valid_zone
from protocol.ical.values import FLOATING_SLACK, PRODID, epoch, parse_resource
from server.caldav.members import MemberText
from server.caldav.props import DavResource, Kind, parse_sync_token, sync_token
from server.caldav.replies import DavError, Multistatus, multistatus_reply
from server.services.calendars import CalendarService
from server.urls import calendar_href, home_href, object_href
from storage.model import Calendar, CalendarObject, Detail, User

log = logging.getLogger("almanac.caldav")


@dataclass(frozen=True, slots=True)
class Context:
    """What a report needs: the request, the calendars service, who asks, and the calendar asked
    (the default one for the home); ``member``: the one object of it the report was sent to."""

    request: web.Request
    calendars: CalendarService
    user: User
    calendar: Calendar
    member: CalendarObject | None = None


async def report(context: Context, body: bytes, allowed: frozenset[type[Report]] | None = None) -> web.StreamResponse:
    """The REPORT ``body`` asks of ``context.calendar``; a report it cannot be sent to (not in
    ``allowed``) is 403 ``DAV:supported-report`` (RFC 3253 3.6)."""
    try:
        query = parse_report(body)
    except Unsupported as error:
        log.info("REPORT %s refused: %s", context.request.path, error)
        raise DavError(403, error.condition) from None
    except dav.BadRequest as error:
        raise web.HTTPBadRequest(text=f"{error}\n") from None
    if allowed is not None and type(query) not in allowed:
        raise DavError(403, tag(DAV, "supported-report"))
    answer: Any = HANDLERS[type(query)]  # each takes its own kind of query
    return await answer(context, query)


#: an object's instances in a range, from the time-range index, by object id
Spans = dict[int, list[tuple[int, int, bool]]]
#: changes a sync-collection reads from the store at a time; responses written on the event loop at most
PAGE = 1000


def _shape(found: CalendarObject, data: CalendarData, zone: tzinfo | None, spans: Spans) -> str:
    try:
        return shape(found.ical, data, zone, spans.get(found.id, ()))
    except (ValueError, KeyError, TypeError, OverflowError) as error:
        log.warning("calendar-data of %s served as stored: %s", found.href, error)
        return found.ical


async def object_texts(
    user: User,
    calendar: Calendar,
    objects: Sequence[CalendarObject],
    wanted: ReportProps,
    zone: tzinfo | None = None,
    spans: Spans | None = None,
) -> list[str]:
    """The responses for a calendar's objects, with calendar-data shaped as asked (off the event
    loop when it needs parsing; floating times expanded in ``zone``, instances taken from
    ``spans`` where they can be)."""
    data = wanted.data
    if data is None:
        texts: list[str | None] = [None] * len(objects)
    elif data.as_stored:
        texts = [o.ical for o in objects]
    else:
        texts = list(await asyncio.to_thread(lambda: [_shape(o, data, zone, spans or {}) for o in objects]))
    base = calendar_href(user, calendar)
    write = MemberText(wanted.names, wanted.kind)
    member = DavResource(Kind.OBJECT, user, user, calendar)

    def replies() -> list[str]:
        written = []
        for member.found, member.data in zip(objects, texts, strict=True):
            written.append(write(object_href(base, member.found.href), member))
        return written

    # a page of a listing is written on the event loop (about 1.5 ms); more, off it
    return replies() if len(objects) <= PAGE else await asyncio.to_thread(replies)


async def multiget(context: Context, query: Multiget) -> web.Response:
    """The objects named by href, in the asked order, 404 for each one that does not exist
    (hrefs may point into any of the user's calendars)."""
    user, calendar = context.user, context.calendar
    wanted: dict[str, list[tuple[int, str]]] = {}  # calendar slug -> (position, name)
    home = dav.path_segments(home_href(user))[:-1]
    for position, href in enumerate(query.hrefs):
        parts = dav.path_segments(urlsplit(href).path)
        if len(parts) == len(home) + 2 and parts[: len(home)] == home and parts[-1]:
            wanted.setdefault(parts[-2], []).append((position, parts[-1]))
    responses: list[str | None] = [None] * len(query.hrefs)
    for slug, names in wanted.items():
        target = calendar if slug == calendar.slug else await context.calendars.find(user, slug)
        if target is None:
            continue
        found = {o.href: o for o in await context.calendars.objects_at(context.user, target, [n for _, n in names])}
        present = [(position, found[name]) for position, name in names if name in found]
        replies = await object_texts(user, target, [o for _, o in present], query.props)
        for (position, _), reply in zip(present, replies, strict=True):
            responses[position] = reply
    return multistatus_reply([reply or not_found(href) for href, reply in zip(query.hrefs, responses, strict=True)])


def not_found(href: str) -> str:
    return dav.responses_text([PropstatResponse(href, status=404)])


def query_zone(query: CalendarQuery, calendar: Calendar) -> tzinfo | None:
    """The zone floating times are read in: the query's, else the calendar's (RFC 4791 9.8)."""
    if query.timezone is not None:
        return query.timezone
    return zoneinfo.ZoneInfo(calendar.timezone) if calendar.timezone and valid_zone(calendar.timezone) else None


async def calendar_query(context: Context, query: CalendarQuery) -> web.Response:
    user, calendar = context.user, context.calendar
    zone = query_zone(query, calendar)
    name, time_range, whole = simple_range(query)
    calendars = context.calendars
    if context.member is not None:  # of one object: its text
        exact = False
        found = [o for o in await calendars.objects_at(user, calendar, [context.member.href])]
    elif time_range is not None:
        # The index is exact for events with UTC or zoned times; anything else is read wider
        # (floating times in another zone, the closed ends of RFC 4791's todo rules) and checked.
        exact = whole and name == "VEVENT" and zone is None
        slack = 0 if exact else FLOATING_SLACK + 1
        low, high = epoch(time_range.low()), epoch(time_range.high())
        found = await calendars.list_objects(context.user, [calendar], start=low - slack, end=high + slack)
    else:
        exact = whole
        found = await calendars.list_objects(context.user, [calendar])
    if name is not None:
        found = [o for o in found if o.component == name]
    if not exact:
        found = await asyncio.to_thread(
            lambda: [o for o in found if matches(query.filter, parse_resource(o.ical), zone)]
        )
    expand = query.props.data.expand if query.props.data else None
    spans = await calendars.instance_spans(user, calendar, expand.low(), expand.high()) if expand and found else None
    return multistatus_reply(await object_texts(user, calendar, found, query.props, zone, spans))


async def sync_collection(context: Context, query: SyncCollection) -> web.StreamResponse:
    """Changes since the token (RFC 6578): members changed (with their properties) or removed
    (404); with DAV:limit, at most that many and a 507 for the collection when more remain.
    Streamed a page of changes at a time; a change made meanwhile has a later revision, so a
    later page holds it and the token covers it. An initial sync without a limit is a listing
    of the objects (as PROPFIND's) under the revision the calendar had when the request came:
    what changes meanwhile is in the next sync (perhaps twice, which is harmless)."""
    user, calendar = context.user, context.calendar
    try:
        position = parse_sync_token(calendar, query.token)
    except ValueError:
        raise DavError(403, tag(DAV, "valid-sync-token")) from None
    if query.level not in ("1", "infinite"):
        raise web.HTTPBadRequest(text="sync-level must be 1 or infinite\n")
    wanted, remaining = query.props, query.limit
    base = calendar_href(user, calendar)
    reply = Multistatus(context.request)
    write = MemberText(wanted.names, wanted.kind)
    detail = write.detail if wanted.data is None else Detail.TEXT
    if not query.token and remaining is None:
        member = DavResource(Kind.OBJECT, user, user, calendar)
        async for page in context.calendars.object_pages(user, calendar, detail):
            if wanted.data is None:
                await reply.add(write.page(base, page, member))
            else:
                await reply.add("".join(await object_texts(user, calendar, page, wanted)))
        return await reply.finish(sync_token(calendar, calendar.sync_revision))
    revision = calendar.sync_revision
    while True:
        asked = PAGE if remaining is None else min(PAGE, remaining + 1)
        rows = await context.calendars.changes(user, calendar, *position, limit=asked, detail=detail)
        truncated = remaining is not None and len(rows) > remaining
        rows = rows[:remaining] if truncated else rows
        present = [found for _, found in rows if found is not None]
        replies = iter(await object_texts(user, calendar, present, wanted))
        texts = [  # an initial sync lists what exists, not what was removed
            next(replies) if found else not_found(object_href(base, change.href))
            for change, found in rows
            if found or query.token
        ]
        await reply.add("".join(texts))
        if rows:
            position = (rows[-1][0].revision, rows[-1][0].href)
            revision = max(revision, *(change.revision for change, _ in rows))
        if truncated:
            await reply.add(dav.responses_text([PropstatResponse(base, status=507)]))
            return await reply.finish(sync_token(calendar, *position))
        if remaining is not None:
            remaining -= len(rows)
        if len(rows) < asked:
            return await reply.finish(sync_token(calendar, revision))


async def free_busy(context: Context, query: FreeBusyQuery) -> web.Response:
    """A VFREEBUSY of the calendar's busy time in the range (RFC 4791 7.10)."""
    calendar = context.calendar
    time_range = query.time_range
    periods = await context.calendars.busy(context.user, [calendar], time_range.low(), time_range.high())
    text = freebusy_text(periods, time_range, PRODID)
    return web.Response(body=text.encode(), content_type="text/calendar", charset="utf-8")


#: the reports an object answers (RFC 4791 7.8, 7.9) and those the home answers
ON_ONE: frozenset[type[Report]] = frozenset({CalendarQuery, Multiget})
ON_HOME: frozenset[type[Report]] = frozenset({Multiget})
#: who answers each report CALENDAR_REPORTS reads (by the kind of query it reads)
HANDLERS: dict[type[Report], Callable[..., Awaitable[web.StreamResponse]]] = {
    CalendarQuery: calendar_query,
    Multiget: multiget,
    FreeBusyQuery: free_busy,
    SyncCollection: sync_collection,
}
