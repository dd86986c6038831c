"""Public feeds: a calendar at a secret address that calendar programs subscribe to (full
details or busy times only), for ``CalendarService``, which mixes this in. The token is the
only credential; it is kept for its owner to see again and looked up by its hash."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta, tzinfo

from protocol import formats
from protocol.events import zone_named
from protocol.ical.busy import BusyPeriod, busy_calendar
from server.services.access import Level
from server.services.auth import digest
from server.services.errors import NotFound
from storage import base
from storage.model import Calendar, Feed, User

#: what a busy-times feed covers
FEED_PAST, FEED_AHEAD = timedelta(days=90), timedelta(days=400)


class Feeds:
    """A calendar's public feed: on, off, its text."""

    store: base.Store

    # CalendarService's, which this is mixed into
    async def need(self, user: User, calendars: Sequence[Calendar], level: Level) -> None:
        raise NotImplementedError

    def _written(self, writer: formats.Writer, calendars: Sequence[Calendar]) -> AsyncIterator[str]:
        raise NotImplementedError

    async def _busy(
        self, calendars: Sequence[Calendar], start: datetime, end: datetime, zone: tzinfo | None = None
    ) -> list[BusyPeriod]:
        raise NotImplementedError

    async def feed_status(self, user: User, calendar: Calendar) -> Feed | None:
        """A calendar's public feed, if on (for its owner)."""
        await self.need(user, [calendar], Level.OWNER)
        return await self.store.feed_of(calendar.id)

    async def set_feed(self, user: User, calendar: Calendar, *, on: bool, busy_only: bool = False) -> str | None:
        """Turn a calendar's public feed on at a new secret address (the old one stops at once)
        and return its token (kept for its owner to see again, looked up by its hash); or off."""
        await self.need(user, [calendar], Level.OWNER)
        token = secrets.token_urlsafe(24) if on else None
        await self.store.set_feed(calendar.id, digest(token) if token else None, busy_only, token)
        return token

    async def feed(self, token: str) -> tuple[Feed, Calendar]:
        """The feed a secret address names: the token is the only credential it needs."""
        found = await self.store.feed_calendar(digest(token)) if 16 <= len(token) <= 64 else None
        if found is None:
            raise NotFound("feed not found", kind="feed")
        return found

    def feed_text(self, feed: Feed, calendar: Calendar) -> AsyncIterator[str]:
        """A feed's calendar: every object (streamed), or the busy periods from
        ``FEED_PAST`` ago to ``FEED_AHEAD`` ahead."""
        if feed.busy_only:
            return self._busy_feed(calendar)
        return self._feed(calendar)

    async def _feed(self, calendar: Calendar) -> AsyncIterator[str]:
        """Every object of a feed's calendar, under its name, zone and colour, without alarms."""
        writer = formats.writer("ics", name=calendar.name, description=calendar.description,
                                timezone=calendar.timezone, color=calendar.color, feed=True)  # fmt: skip
        async for chunk in self._written(writer, [calendar]):
            yield chunk

    async def _busy_feed(self, calendar: Calendar) -> AsyncIterator[str]:
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        start, end = today - FEED_PAST, today + FEED_AHEAD
        zone = zone_named(calendar.timezone) or UTC
        periods = await self._busy([calendar], start, end, zone)
        yield await asyncio.to_thread(busy_calendar, calendar.name, periods, zone)
