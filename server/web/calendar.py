"""The calendar itself on the web: month, week (with times) and agenda views of the user's
calendars and those shared with them, each calendar in its colour and shown or hidden (remembered
on the account), in the viewer's time zone (the account's, else the browser's as the script
tells it, else UTC). Read through the agenda service from the time-range index."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING
from urllib.parse import unquote

from aiohttp import web

from protocol.events import zone_named
from protocol.ical.agenda import Occurrence
from server.http import read_post
from server.services.access import Level
from server.urls import WEB
from storage.model import Calendar, User

if TYPE_CHECKING:
    from server.web.pages import WebDoor

#: the cookie the script sets to the browser's time zone (used until the account names one)
ZONE_COOKIE = "almanac_tz"
VIEWS = ("month", "week", "agenda")
#: a month cell lists this many occurrences, then "n more"
CELL_ITEMS = 4
#: the week grid's rows: half hours
ROW_MINUTES = 30
AGENDA_DAYS = 28
#: the colours of calendars that have none of their own, by their id (told apart in the views)
PALETTE = ("#3A87AD", "#C0504D", "#4F9A55", "#8064A2", "#D08A2E", "#2E8B8B", "#B0487A", "#5B6B7F")


def shown_color(calendar: Calendar) -> str:
    """The colour a calendar is shown in: its own, or one of the palette's."""
    return calendar.color or PALETTE[calendar.id % len(PALETTE)]


def viewer_zone(request: web.Request, user: User) -> tuple[str, tzinfo]:
    """The zone the pages show times in: the account's, the browser's, or UTC."""
    for name in (user.prefs.get("timezone"), unquote(request.cookies.get(ZONE_COOKIE, ""))):
        zone = zone_named(name) if isinstance(name, str) else None
        if zone is not None:
            return str(name), zone
    return "UTC", UTC


def hidden(user: User) -> set[str]:
    """The calendars (uuids) the user chose not to see in the views."""
    return set(user.prefs.get("web", {}).get("hidden", []))


@dataclass(slots=True)
class Item:
    """An occurrence placed on one day of a view."""

    occurrence: Occurrence
    css: str
    label: str  # its time on that day ("09:30", "all day", "until 11:00")
    href: str | None
    row: int = 0  # week grid: first half-hour row (1-based), rows spanned, lane
    rows: int = 1
    lane: int = 1


@dataclass(slots=True)
class Day:
    day: date
    items: list[Item] = field(default_factory=list)
    timed: list[Item] = field(default_factory=list)
    lanes: int = 1
    more: int = 0  #: occurrences left out (a month's cell shows a few)


def local(value: date | datetime, zone: tzinfo) -> datetime:
    """An occurrence's time on the viewer's wall clock (a date: its midnight)."""
    if isinstance(value, datetime):
        return value.astimezone(zone).replace(tzinfo=None)
    return datetime.combine(value, time())


def event_href(occurrence: Occurrence) -> str | None:
    if occurrence.busy:
        return None
    query = f"?at={occurrence.key}" if occurrence.key else ""  # a key is digits only
    return f"{WEB}/events/{occurrence.object_id}{query}"


def place(occurrences: list[Occurrence], first: date, days: int, zone: tzinfo, limit: int | None = None) -> list[Day]:
    """Each day of the window with the occurrences on it (a multi-day one on each of its days);
    ``limit``: a day keeps that many, and counts the rest."""
    placed = [Day(first + timedelta(days=n)) for n in range(days)]
    for occurrence in occurrences:
        begin, finish = local(occurrence.start, zone), local(occurrence.end, zone)
        on = max(0, (begin.date() - first).days)
        for day in placed[on : max(on, (finish.date() - first).days) + 1]:
            midnight = datetime.combine(day.day, time())
            following = midnight + timedelta(days=1)
            if begin >= following or (finish <= midnight and not midnight <= begin == finish):
                continue
            if limit is not None and len(day.items) >= limit:
                day.more += 1
                continue
            css = f"event c{occurrence.calendar_id}" + (" busy" if occurrence.busy else "")
            css += " cancelled" if occurrence.cancelled else ""
            whole = occurrence.all_day or (begin <= midnight and finish >= following)
            label = "all day" if whole else (f"{begin:%H:%M}" if begin >= midnight else f"until {finish:%H:%M}")
            item = Item(occurrence, css, label, event_href(occurrence))
            day.items.append(item)
            if not whole:
                shown_from = max(begin, midnight)
                shown_to = max(min(finish, following), shown_from)
                minutes = int((shown_from - midnight).total_seconds() // 60)
                length = int((shown_to - shown_from).total_seconds() // 60)
                item.row = minutes // ROW_MINUTES + 1
                item.rows = max(1, min(-(-length // ROW_MINUTES), 24 * 60 // ROW_MINUTES - item.row + 1))
                day.timed.append(item)
    for day in placed:
        day.lanes = lanes(day.timed)
    return placed


def lanes(items: list[Item]) -> int:
    """Side-by-side lanes for a day's timed items, so none hides another; how many."""
    ends: list[int] = []  # the row each lane is free from
    for item in sorted(items, key=lambda i: (i.row, -i.rows)):
        free = next((n for n, end in enumerate(ends) if end <= item.row), None)
        if free is None:
            ends.append(0)
            free = len(ends) - 1
        ends[free] = item.row + item.rows
        item.lane = free + 1
    return max(1, min(len(ends), 6))


def window(view: str, on: date) -> tuple[date, int]:
    """The first day a view shows and how many days."""
    if view == "month":
        first = on.replace(day=1)
        return first - timedelta(days=first.weekday()), 42
    if view == "week":
        return on - timedelta(days=on.weekday()), 7
    return on, AGENDA_DAYS


def moved(view: str, on: date, step: int) -> date:
    """The date the previous (-1) or next (1) period of a view shows."""
    if view == "month":
        month = on.month - 1 + step
        return date(on.year + month // 12, month % 12 + 1, 1)
    return on + timedelta(days=step * (7 if view == "week" else AGENDA_DAYS))


#: the days a view may show (its window, and the period before and after, stay within the calendar)
FIRST_DAY, LAST_DAY = date(2, 1, 1), date(9998, 12, 1)


def chosen_day(value: str | None, zone: tzinfo) -> date:
    """The day a view is asked to show; today for one that is no day (or beyond the years)."""
    try:
        chosen = date.fromisoformat((value or "")[:10])
    except ValueError:
        return datetime.now(zone).date()
    return chosen if FIRST_DAY <= chosen <= LAST_DAY else datetime.now(zone).date()


class CalendarViews:
    def __init__(self, door: WebDoor) -> None:
        self.door = door
        self.services = door.services

    async def show(self, request: web.Request, user: User, session: str) -> web.Response:
        view = request.query.get("view", "month")
        if view not in VIEWS:
            view = "month"
        zone_name, zone = viewer_zone(request, user)
        on = chosen_day(request.query.get("date"), zone)
        first, days = window(view, on)
        visible = await self.services.agenda.visible(user)
        off = hidden(user)
        shown = [c for c, _ in visible if c.uuid not in off]
        start = datetime.combine(first, time(), zone).astimezone(UTC)
        end = datetime.combine(first + timedelta(days=days), time(), zone).astimezone(UTC)
        found, more = await self.services.agenda.occurrences(user, shown, start, end, zone) if shown else ([], False)
        placed = place(found, first, days, zone, CELL_ITEMS if view == "month" else None)
        writable = [c for c, level in visible if level >= Level.READ_WRITE]
        weeks = [placed[n : n + 7] for n in range(0, days, 7)]
        return await self.door.page(
            "calendar.html", user, session, view=view, on=on, days=placed, weeks=weeks,
            previous=moved(view, on, -1), following=moved(view, on, 1), today=datetime.now(zone).date(),
            visible=visible, off=off, zone=zone_name, more=more, writable=bool(writable),
            hours=range(24), title=title(view, on, first, days),
        )  # fmt: skip

    async def choose(self, request: web.Request, user: User, session: str) -> web.Response:
        """Which calendars the views show (the rest is remembered as hidden)."""
        form = await read_post(request)
        chosen = set(form.getall("shown", []))
        every = [c.uuid for c, _ in await self.services.agenda.visible(user)]
        settings = {**user.prefs.get("web", {}), "hidden": [u for u in every if u not in chosen]}
        await self.services.users.set_pref(user, "web", settings)
        back = str(form.get("back") or "")
        raise web.HTTPSeeOther(back if back.startswith(f"{WEB}/calendar") else f"{WEB}/calendar")

    async def stylesheet(self, request: web.Request, user: User, session: str) -> web.Response:
        """The colours of the user's calendars (their own choice for shared ones) and the week
        grid's rows: a stylesheet, as the pages allow no inline style."""
        rules = [f".c{c.id}{{--c:{shown_color(c)}}}" for c, _ in await self.services.agenda.visible(user)]
        rows = 24 * 60 // ROW_MINUTES
        rules += [f".r{n}{{grid-row-start:{n}}}" for n in range(1, rows + 1)]
        rules += [f".s{n}{{grid-row-end:span {n}}}" for n in range(1, rows + 1)]
        rules += [f".l{n}{{grid-column-start:{n}}}" for n in range(1, 7)]
        rules += [f".lanes{n}{{grid-template-columns:repeat({n},minmax(0,1fr))}}" for n in range(1, 7)]
        return web.Response(
            text="\n".join(rules) + "\n", content_type="text/css", headers={"Cache-Control": "private, no-cache"}
        )


def title(view: str, on: date, first: date, days: int) -> str:
    if view == "month":
        return f"{on:%B %Y}"
    last = first + timedelta(days=days - 1)
    return f"{first:%-d %b} – {last:%-d %b %Y}"


def add_routes(app: web.Application, door: WebDoor) -> None:
    views = CalendarViews(door)
    app.router.add_get(f"{WEB}/calendar", door.signed_in(views.show))
    app.router.add_post(f"{WEB}/calendar/shown", door.signed_in(views.choose))
    app.router.add_get(f"{WEB}/calendar.css", door.signed_in(views.stylesheet))
