"""The WCAP door (the Sun/Oracle Calendar Server protocol): ``door.py`` answers a request and holds
what every command shares; the commands, by group, register themselves with ``@command``:
``session`` (login, preferences), ``calendars``, ``components`` (fetch, store, delete, free-busy)
and ``imports`` (``import.wcap``)."""

from __future__ import annotations

from aiohttp import web

from server.services import Services
from server.urls import SEED_WCAP, WCAP
from server.wcap import calendars, components, imports, session
from server.wcap.door import WcapDoor

#: every command group, imported for its commands
GROUPS = (session, calendars, components, imports)


def add_routes(app: web.Application, services: Services) -> WcapDoor:
    """``/<command>.wcap`` and ``/wcap/<command>.wcap`` (and the manual's ``/wcap//<command>.wcap``),
    GET and POST (trailing blanks tolerated: the seed's HTML form puts line breaks and spaces into
    its action URL)."""
    door = WcapDoor(services)
    for prefix in ("", WCAP, SEED_WCAP):
        for method in ("GET", "POST"):
            app.router.add_route(method, prefix + r"/{command:[A-Za-z_]+}.wcap{blank:\s*}", door.handle)
    return door
