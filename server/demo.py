"""``serve --demo``: a demo user with a small calendar, and how to reach it through each door."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from server.services import Services
from server.services.imports import ImportRequest, Upload

USERNAME = "demo"
PASSWORD = "almanac-demo"
CALENDAR = "Demo"


def sample_calendar(today: date) -> str:
    """A week of sample events and a todo around ``today``, in a few shapes."""
    monday = today - timedelta(days=today.weekday())
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")

    def day(offset: int) -> str:
        return (monday + timedelta(days=offset)).strftime("%Y%m%d")

    return "\r\n".join(
        [
            "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Almanac//Demo//EN",
            "BEGIN:VEVENT", "UID:demo-standup@almanac", f"DTSTAMP:{stamp}",
            f"DTSTART;TZID=Europe/Berlin:{day(0)}T093000", "DURATION:PT15M",
            "RRULE:FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;COUNT=40", "SUMMARY:Stand-up",
            "LOCATION:Room 4", "END:VEVENT",
            "BEGIN:VEVENT", "UID:demo-lunch@almanac", f"DTSTAMP:{stamp}",
            f"DTSTART:{day(2)}T113000Z", f"DTEND:{day(2)}T130000Z", "SUMMARY:Lunch with Ada",
            "DESCRIPTION:Talk about the calendar import.", "CLASS:PRIVATE", "END:VEVENT",
            "BEGIN:VEVENT", "UID:demo-offsite@almanac", f"DTSTAMP:{stamp}",
            f"DTSTART;VALUE=DATE:{day(4)}", f"DTEND;VALUE=DATE:{day(5)}", "SUMMARY:Team offsite",
            "END:VEVENT",
            "BEGIN:VTODO", "UID:demo-todo@almanac", f"DTSTAMP:{stamp}", f"DUE;VALUE=DATE:{day(3)}",
            "SUMMARY:Send the slides", "END:VTODO",
            "END:VCALENDAR", "",
        ]
    )  # fmt: skip


async def prepare(services: Services, base: str) -> str:
    """Make (or refresh) the demo user and calendar; return how to use them."""
    user = await services.users.get_by_name(USERNAME)
    if user is None:
        user = await services.users.create(USERNAME, PASSWORD, "demo@example.org")
    calendar = await services.store.find_calendar_by_name(user.id, CALENDAR)
    if calendar is None:
        calendar = await services.calendars.create(user, CALENDAR, color="3A87AD", timezone="Europe/Berlin")
    request = ImportRequest(door="cli", calendar=calendar, filename="demo.ics")
    await services.imports.run(user, request, Upload.of(sample_calendar(date.today())))
    token = await services.users.issue_token(user)
    return f"""
Demo user ready: {USERNAME} / {PASSWORD} (calendar "{CALENDAR}", group {calendar.uuid})

REST (Timeslot Data API), with the token just issued:
  curl -s {base}/v1/me -H 'Authorization: Token token={token}'
  curl -s -X POST {base}/v1/export/ical -H 'Authorization: Token token={token}'
  curl -s -X POST {base}/v1/import/ -H 'Authorization: Token token={token}' \\
       -F file=@tests/data/google.ics -F group={calendar.uuid}
"""
