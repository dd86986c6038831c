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

from protocol import caldav, dav
from protocol.dav import DAV, PropstatResponse, tag
from protocol.events import valid_zone
from protocol.ical import FLOATING_SLACK, PRODID, epoch, parse_resource
from server.caldav.props import (
    DavError,
    Kind,
    Resource,
    answer,
    multistatus,
    parse_sync_token,
    sync_token,
)
from server.services.calendars import CalendarService
from server.urls import calendar_href, home_href, object_href
from storage.model import Calendar, CalendarObject, User

log = logging.getLogger("almanac.caldav")


@dataclass(frozen=True, slots=True)
class Context:
    """What a report needs: the calendars service, who asks, and the calendar asked."""

    calendars: CalendarService
    user: User
    calendar: Calendar


async def report(context: Context, body: bytes, path: str) -> web.StreamResponse:
    """The REPORT ``body`` asks of ``context.calendar`` (``path`` for the log)."""
    try:
        query = caldav.parse_report(body)
    except caldav.Unsupported as error:
        log.info("REPORT %s refused: %s", path, error)
        raise DavError(403, error.condition) from None
    except dav.BadRequest as error:
        raise web.HTTPBadRequest(text=f"{error}\n") from None
    answer: Any = HANDLERS[type(query)]  # each takes its own kind of query
    return await answer(context, query)


def _shape(found: CalendarObject, data: caldav.CalendarData, zone: tzinfo | None) -> str:
    try:
        return caldav.shape(found.ical, data, zone)
    except (ValueError, KeyError, TypeError, OverflowError) as error:
        log.warning("calendar-data of %s served as stored: %s", found.href, error)
        return found.ical


async def object_responses(
    user: User,
    calendar: Calendar,
    objects: Sequence[CalendarObject],
    wanted: caldav.ReportProps,
    zone: tzinfo | None = None,
) -> list[PropstatResponse]:
    """The responses for a calendar's objects, with calendar-data shaped as asked (off the event loop when
    it needs parsing; floating times expanded in ``zone``)."""
    data = wanted.data
    if data is None:
        texts: list[str | None] = [None] * len(objects)
    elif data.as_stored:
        texts = [o.ical for o in objects]
    else:
        texts = list(await asyncio.to_thread(lambda: [_shape(o, data, zone) for o in objects]))
    base = calendar_href(user, calendar)
    return [
        answer(
            object_href(base, o.href), Resource(Kind.OBJECT, user, user, calendar, o, text), wanted.names, wanted.kind
        )
        for o, text in zip(objects, texts, strict=True)
    ]


async def multiget(context: Context, query: caldav.Multiget) -> web.Response:
    """The objects named by href, in the asked order, 404 for each one that does not exist
    (hrefs may point into any of the user's calendars)."""
    user, calendar = context.user, context.calendar
    wanted: dict[str, list[tuple[int, str]]] = {}  # calendar slug -> (position, name)
    home = dav.path_segments(home_href(user))[:-1]
    for position, href in enumerate(query.hrefs):
        parts = dav.path_segments(urlsplit(href).path)
        if len(parts) == len(home) + 2 and parts[: len(home)] == home and parts[-1]:
            wanted.setdefault(parts[-2], []).append((position, parts[-1]))
    responses: list[PropstatResponse | None] = [None] * len(query.hrefs)
    for slug, names in wanted.items():
        target = calendar if slug == calendar.slug else await context.calendars.find(user, slug)
        if target is None:
            continue
        found = {o.href: o for o in await context.calendars.objects_at(context.user, target, [n for _, n in names])}
        present = [(position, found[name]) for position, name in names if name in found]
        replies = await object_responses(user, target, [o for _, o in present], query.props)
        for (position, _), reply in zip(present, replies, strict=True):
            responses[position] = reply
    return await multistatus(
        [reply or PropstatResponse(href, status=404) for href, reply in zip(query.hrefs, responses, strict=True)]
    )


def query_zone(query: caldav.CalendarQuery, calendar: Calendar) -> tzinfo | None:
    """The zone floating times are read in: the query's, else the calendar's (RFC 4791 9.8)."""
    if query.timezone is not None:
        return query.timezone
    return zoneinfo.ZoneInfo(calendar.timezone) if calendar.timezone and valid_zone(calendar.timezone) else None


async def calendar_query(context: Context, query: caldav.CalendarQuery) -> web.Response:
    user, calendar = context.user, context.calendar
    zone = query_zone(query, calendar)
    name, time_range, whole = caldav.simple_range(query)
    calendars = context.calendars
    if time_range is not None:
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
            lambda: [o for o in found if caldav.matches(query.filter, parse_resource(o.ical), zone)]
        )
    return await multistatus(await object_responses(user, calendar, found, query.props, zone))


async def sync_collection(context: Context, query: caldav.SyncCollection) -> web.Response:
    """Changes since the token (RFC 6578): members changed (with their properties) or removed
    (404); with DAV:limit, at most that many and a 507 for the collection when more remain."""
    user, calendar = context.user, context.calendar
    try:
        revision, after = parse_sync_token(calendar, query.token)
    except ValueError:
        raise DavError(403, tag(DAV, "valid-sync-token")) from None
    if query.level not in ("1", "infinite"):
        raise web.HTTPBadRequest(text="sync-level must be 1 or infinite\n")
    wanted = query.props
    text = wanted.data is not None or tag(DAV, "getcontentlength") in wanted.names or wanted.kind == "allprop"
    limit = query.limit
    rows = await context.calendars.changes(
        context.user, calendar, revision, after, limit=limit + 1 if limit else None, text=text
    )
    truncated = limit is not None and len(rows) > limit
    rows = rows[:limit] if truncated else rows
    base = calendar_href(user, calendar)
    present = [found for _, found in rows if found is not None]
    replies = iter(await object_responses(user, calendar, present, wanted))
    responses = []
    for change, found in rows:
        if found is not None:
            responses.append(next(replies))
        elif query.token:  # an initial sync lists what exists, not what was removed
            responses.append(PropstatResponse(object_href(base, change.href), status=404))
    if truncated:
        last = rows[-1][0]
        responses.append(PropstatResponse(base, status=507))
        token = sync_token(calendar, last.revision, last.href)
    else:
        token = sync_token(calendar, max([calendar.sync_revision, *(c.revision for c, _ in rows)]))
    return await multistatus(responses, token)


async def free_busy(context: Context, query: caldav.FreeBusyQuery) -> web.Response:
    """A VFREEBUSY of the calendar's busy time in the range (RFC 4791 7.10)."""
    calendar = context.calendar
    time_range = query.time_range
    periods = await context.calendars.busy(context.user, [calendar], time_range.low(), time_range.high())
    text = caldav.freebusy_text(periods, time_range, PRODID)
    return web.Response(body=text.encode(), content_type="text/calendar", charset="utf-8")


#: who answers each report caldav.CALENDAR_REPORTS reads (by the kind of query it reads)
HANDLERS: dict[type[caldav.Report], Callable[..., Awaitable[web.StreamResponse]]] = {
    caldav.CalendarQuery: calendar_query,
    caldav.Multiget: multiget,
    caldav.FreeBusyQuery: free_busy,
    caldav.SyncCollection: sync_collection,
}
