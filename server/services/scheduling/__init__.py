"""SchedulingService: meetings between the users of this server (RFC 6638), whichever door asks.

So far: who a calendar user address names, and a free/busy request for several attendees (what
an organizer's client asks before inviting, RFC 6638 5): each attendee's busy periods as far as
the asker may see them, which is the ``freebusy`` grant on each of their calendars, or every
user's when ``[scheduling] free_busy = everyone``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from protocol.ical.busy import BusyPeriod
from protocol.itip import address
from server.config import Config
from server.services.calendars import CalendarService
from server.services.errors import Invalid
from storage.model import User

#: attendees one free/busy request may ask about (Apple's Calendar Server's limit)
MAX_FREE_BUSY_ATTENDEES = 30
#: iTIP request statuses (RFC 5546 3.6) a free/busy answer uses
SUCCESS, UNKNOWN_USER, NO_AUTHORITY = "2.0;Success", "3.7;Invalid calendar user", "3.8;No authority"


@dataclass(frozen=True, slots=True)
class FreeBusy:
    """One attendee's answer to a free/busy request: its status and, on success, busy periods."""

    address: str
    status: str
    periods: list[BusyPeriod] = field(default_factory=list)


class SchedulingService:
    def __init__(self, calendars: CalendarService, config: Config) -> None:
        self.calendars = calendars
        self.config = config

    async def user_at(self, calendar_user: str) -> User | None:
        """The user of this server a ``mailto:`` address names, or None."""
        text = address(calendar_user)
        if not text.startswith("mailto:") or "@" not in text:
            return None
        return await self.calendars.owner_of(text.removeprefix("mailto:"), by_email=True)

    async def free_busy(
        self,
        asker: User,
        attendees: Sequence[str],
        start: datetime,
        end: datetime,
        *,
        known: Mapping[str, User] | None = None,
    ) -> list[FreeBusy]:
        """The answer to a free/busy request for ``attendees`` (calendar user addresses) in
        [start, end): one per attendee, in their order; ``known``: the users of addresses a door
        resolved itself (its principals' URLs). Invalid beyond ``MAX_FREE_BUSY_ATTENDEES`` or
        for an empty or reversed range."""
        if len(attendees) > MAX_FREE_BUSY_ATTENDEES:
            raise Invalid(
                f"a free/busy request asks about {MAX_FREE_BUSY_ATTENDEES} attendees at most", field="attendee"
            )
        if end <= start:
            raise Invalid("a free/busy request's end must be after its start", field="dtend")
        answers = []
        for attendee in attendees:
            user = (known or {}).get(attendee) or await self.user_at(attendee)
            if user is None:
                answers.append(FreeBusy(attendee, UNKNOWN_USER))
                continue
            everyone = self.config.free_busy == "everyone"
            periods = await self.calendars.busy_of(asker, user, start, end, everyone=everyone)
            answers.append(
                FreeBusy(attendee, NO_AUTHORITY) if periods is None else FreeBusy(attendee, SUCCESS, periods)
            )
        return answers
