"""Every href, calid and link a door or page prints, built in one place."""

from __future__ import annotations

from urllib.parse import quote

from protocol import dav
from storage.model import Calendar, User

#: where the doors live: the CalDAV root (where /.well-known/caldav points), the JSON API, the
#: WCAP upload page and the web pages
ROOT, REST, WCAP, WEB = "/dav/", "/v1", "/wcap", "/app"
#: the seeds' own URLs double a slash (the Timeslot page's ``//v1/import/``, the Sun manual's
#: ``/wcap//import.wcap``): they are routes of their own, as the seeds show them
SEED_REST, SEED_WCAP = "//v1", "/wcap/"
#: the collection of principals (the principal-collection-set)
PRINCIPALS = "/dav/principals/"


def principal_href(user: User) -> str:
    return f"{PRINCIPALS}{quote(user.username)}/"


def home_href(user: User) -> str:
    return f"/dav/calendars/{quote(user.username)}/"


def notifications_href(user: User) -> str:
    """A user's notification collection (CalendarServer's sharing invitations)."""
    return f"/dav/notifications/{quote(user.username)}/"


def inbox_href(user: User) -> str:
    """A user's schedule inbox (RFC 6638 2.2): where scheduling messages to them arrive."""
    return f"/dav/scheduling/{quote(user.username)}/inbox/"


def outbox_href(user: User) -> str:
    """A user's schedule outbox (RFC 6638 2.1): where their free/busy requests are POSTed."""
    return f"/dav/scheduling/{quote(user.username)}/outbox/"


def calendar_href(user: User, calendar: Calendar) -> str:
    return f"{home_href(user)}{dav.canonical_segment(calendar.slug)}/"


def object_href(base: str, name: str) -> str:
    """An object's href in the calendar at ``base`` (names are kept as canonical segments)."""
    return base + dav.canonical_segment(name)


def calid_of(calendar: Calendar, owner: User) -> str:
    """The relative calid: ``jdoe`` for the default calendar, ``jdoe:work`` for the others."""
    return owner.username if calendar.is_default else f"{owner.username}:{calendar.slug}"


def feed_path(token: str) -> str:
    """A calendar's public feed (its secret address)."""
    return f"/feeds/{token}.ics"


def import_url(job_id: int) -> str:
    """An import job in the JSON API (its status, details, entries and calendars are below it)."""
    return f"{REST}/imports/{job_id}"


def import_page(job_id: int) -> str:
    """An import job's web page."""
    return f"{WEB}/imports/{job_id}"
