"""AgendaService: what a calendar view shows across the calendars a user sees (their own and
those shared with them): the occurrences in a window, read from the time-range index (never
every object), busy blocks for free/busy-only shares, and search by title, place and
description. Every read is checked against the user's level on each calendar."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, tzinfo

from protocol.events import EventFields, view
from protocol.ical.agenda import Occurrence, in_order, occurrences
from protocol.ical.values import epoch
from server.services.access import Level
from server.services.calendars import CalendarService
from server.services.errors import Invalid
from storage.base import Store
from storage.model import Calendar, CalendarObject, User

#: occurrences one view shows at the most (a month of a busy calendar is a few thousand)
MAX_SHOWN = 5_000
#: search: the shortest and longest text looked for, and the most results
MIN_SEARCH, MAX_SEARCH, MAX_RESULTS = 2, 200, 200


class AgendaService:
    def __init__(self, store: Store, calendars: CalendarService) -> None:
        self.store = store
        self.calendars = calendars

    async def visible(self, user: User) -> list[tuple[Calendar, Level]]:
        """The user's calendars, then those shared with them (as their home shows them: their
        own name and colour), each with the user's level on it."""
        shown = await self.calendars.home(user)
        return [(c, await self.calendars.level(user, c)) for c in shown]

    async def occurrences(
        self,
        user: User,
        calendars: Sequence[Calendar],
        start: datetime,
        end: datetime,
        zone: tzinfo,
        limit: int = MAX_SHOWN,
    ) -> tuple[list[Occurrence], bool]:
        """The occurrences of the calendars' events and todos in [start, end) in order, floating
        times on ``zone``'s wall clock, and whether more than ``limit`` were left out; a calendar
        the user sees only the busy times of gives "Busy" blocks (FREEBUSY is enough)."""
        await self.calendars.need(user, calendars, Level.FREEBUSY)
        levels = {c.id: await self.calendars.level(user, c) for c in calendars}
        readable = [c.id for c in calendars if levels[c.id] >= Level.READ]
        found = await self.store.spanned_in_range(readable, epoch(start), epoch(end)) if readable else []
        shown, more = await asyncio.to_thread(occurrences, found, start, end, zone, limit)
        for calendar in calendars:
            if levels[calendar.id] == Level.FREEBUSY:
                periods = await self.calendars.busy(user, [calendar], start, end, zone)
                shown += [Occurrence(0, calendar.id, begin, finish, "Busy", busy=True) for begin, finish, _ in periods]
        shown.sort(key=lambda o: in_order(o, zone))
        return shown[:limit], more or len(shown) > limit

    async def search(
        self, user: User, calendars: Sequence[Calendar], text: str, limit: int = MAX_RESULTS
    ) -> list[tuple[CalendarObject, EventFields]]:
        """The events and todos whose title, location or description holds ``text`` (any case),
        in the calendars the user may read, by their first start; at most ``limit``."""
        needle = " ".join(text.split())
        if not MIN_SEARCH <= len(needle) <= MAX_SEARCH:
            raise Invalid(f"search for {MIN_SEARCH} to {MAX_SEARCH} characters", field="q")
        readable = [c for c in calendars if await self.calendars.level(user, c) >= Level.READ]
        if not readable:
            return []
        candidates = await self.store.search_objects([c.id for c in readable], needle, limit * 5)
        folded = needle.casefold()

        def matching() -> list[tuple[CalendarObject, EventFields]]:
            found = []
            for candidate in candidates:
                fields = view(candidate.ical)
                if any(folded in " ".join(value.split()).casefold()
                       for value in (fields.summary, fields.location, fields.description)):  # fmt: skip
                    found.append((candidate, fields))
            return found[:limit]

        return await asyncio.to_thread(matching)
