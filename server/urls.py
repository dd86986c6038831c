"""Every href, calid and link a door or page prints, built in one place."""

from __future__ import annotations

from urllib.parse import quote

from protocol import dav
from storage.model import Calendar, User

#: the CalDAV root (where /.well-known/caldav points)
ROOT = "/dav/"
#: the collection of principals (the principal-collection-set)
PRINCIPALS = "/dav/principals/"


def principal_href(user: User) -> str:
    return f"{PRINCIPALS}{quote(user.username)}/"


def home_href(user: User) -> str:
    return f"/dav/calendars/{quote(user.username)}/"


def calendar_href(user: User, calendar: Calendar) -> str:
    return f"{home_href(user)}{dav.canonical_segment(calendar.slug)}/"


def object_href(base: str, name: str) -> str:
    """An object's href in the calendar at ``base`` (names are kept as canonical segments)."""
    return base + dav.canonical_segment(name)


def calid_of(calendar: Calendar, owner: User) -> str:
    """The relative calid: ``jdoe`` for the default calendar, ``jdoe:work`` for the others."""
    return owner.username if calendar.is_default else f"{owner.username}:{calendar.slug}"
