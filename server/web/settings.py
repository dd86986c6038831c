"""Calendars and the account on the web: a calendar created, renamed, recoloured, given a time
zone or deleted (saying how many events go with it), a shared calendar's own colour for its
sharee; the account's password, e-mail and time zone, and its API tokens listed and taken back;
and search across every calendar the user may read."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from protocol.events import valid_zone
from server.http import client_address, object_id, read_post
from server.services.access import Level
from server.services.calendars import normalize_color
from server.services.errors import Invalid, NameTaken
from server.urls import WEB, calendar_href, calid_of
from storage.model import Calendar, User

if TYPE_CHECKING:
    from server.web.pages import WebDoor


class SettingsPages:
    def __init__(self, door: WebDoor) -> None:
        self.door = door
        self.services = door.services

    # calendars -----------------------------------------------------------------------------

    async def create(self, request: web.Request, user: User, session: str) -> web.Response:
        form = await read_post(request)
        try:
            zone = str(form.get("timezone", "")).strip() or None  # the service says if it is not known
            made = await self.services.calendars.create(
                user, str(form.get("name", "")), color=str(form.get("color") or "") or None, timezone=zone
            )
        except Invalid as refused:
            return await self.door.calendars(request, user, session, error=refused.message)
        raise web.HTTPSeeOther(f"{WEB}/calendars/{made.uuid}/settings?made=1")

    async def calendar(
        self, request: web.Request, user: User, session: str, *, error: str | None = None
    ) -> web.Response:
        """A calendar's settings: its owner's and admins' (name, colour, zone), the owner's
        delete, and a sharee's own colour."""
        calendar = await self.services.calendars.get(user, request.match_info["uuid"], Level.FREEBUSY)
        level = await self.services.calendars.level(user, calendar)
        mine = next((c for c in await self.services.calendars.home(user) if c.id == calendar.id), calendar)
        origin = f"{request.scheme}://{request.host}"
        response = await self.door.page(
            "calendar_settings.html", user, session, calendar=calendar, seen=mine, level=level,
            manages=level >= Level.ADMIN, owns=level == Level.OWNER, error=error, made=request.query.get("made"),
            caldav=origin + calendar_href(user, mine), calid=calid_of(mine, user),
        )  # fmt: skip
        response.set_status(400 if error else 200)
        return response

    async def change(self, request: web.Request, user: User, session: str) -> web.Response:
        uuid = request.match_info["uuid"]
        form = await read_post(request)
        try:
            calendar = await self.services.calendars.get(user, uuid, Level.FREEBUSY)
            level = await self.services.calendars.level(user, calendar)
            color = normalize_color(str(form.get("color") or "") or None)
            if level >= Level.ADMIN:
                changes: dict[str, Any] = {"name": str(form.get("name", "")), "color": color}
                changes["timezone"] = str(form.get("timezone", "")).strip() or None
                await self.services.calendars.update(user, uuid, **changes)
            else:  # a sharee's own colour of it
                await self.services.access.set_view(user, calendar, {"color": color})
        except (Invalid, NameTaken) as refused:
            return await self.calendar(request, user, session, error=refused.message)
        raise web.HTTPSeeOther(f"{WEB}/")

    async def delete(self, request: web.Request, user: User, session: str) -> web.Response:
        form = await read_post(request)
        if form.get("confirm") != "yes":
            return await self.calendar(request, user, session, error="Tick the box to confirm the deletion.")
        try:
            await self.services.calendars.delete(user, request.match_info["uuid"])
        except Invalid as refused:
            return await self.calendar(request, user, session, error=refused.message)
        raise web.HTTPSeeOther(f"{WEB}/")

    # the account ---------------------------------------------------------------------------

    async def account(
        self, request: web.Request, user: User, session: str, *, error: str | None = None, done: str | None = None
    ) -> web.Response:
        tokens = await self.services.users.tokens(user)
        response = await self.door.page(
            "account.html", user, session, tokens=tokens, error=error, done=done or request.query.get("done"),
            zone=user.prefs.get("timezone", ""),
        )  # fmt: skip
        response.set_status(400 if error else 200)
        return response

    async def change_account(self, request: web.Request, user: User, session: str) -> web.Response:
        form = await read_post(request)
        what = request.match_info["what"]
        try:
            if what == "password":
                if form.get("new") != form.get("again"):
                    raise Invalid("the two new passwords differ", field="new")
                current = str(form.get("current", ""))
                await self.services.users.change_password(user, current, form.get("new"), client_address(request))
            elif what == "email":
                await self.services.users.set_email(user, str(form.get("email", "")))
            elif what == "timezone":
                await self.services.users.set_pref(user, "timezone", zone_field(str(form.get("timezone", ""))) or "")
            else:
                raise web.HTTPNotFound()
        except Invalid as refused:
            fresh = await self.services.users.get(user.id) or user
            return await self.account(request, fresh, session, error=refused.message)
        raise web.HTTPSeeOther(f"{WEB}/account?done={what}")

    async def revoke_token(self, request: web.Request, user: User, session: str) -> web.Response:
        await self.services.users.revoke_token(user, object_id(request.match_info["id"]) or 0)
        raise web.HTTPSeeOther(f"{WEB}/account?done=token")

    # search --------------------------------------------------------------------------------

    async def search(self, request: web.Request, user: User, session: str) -> web.Response:
        query = request.query.get("q", "").strip()
        found: list[Any] = []
        error = None
        names: dict[int, Calendar] = {}
        if query:
            visible = [c for c, _ in await self.services.agenda.visible(user)]
            names = {c.id: c for c in visible}
            try:
                found = await self.services.agenda.search(user, visible, query)
            except Invalid as refused:
                error = refused.message
        return await self.door.page("search.html", user, session, query=query, found=found, names=names, error=error)


def zone_field(value: str) -> str | None:
    """The account's time zone a form names (None: none); Invalid when it is not a known one."""
    value = value.strip()
    if value and not valid_zone(value):
        raise Invalid(f"{value!r} is not a known time zone (like Europe/Paris)", field="timezone")
    return value or None


def add_routes(app: web.Application, door: WebDoor) -> None:
    pages = SettingsPages(door)
    routes, guarded = app.router, door.signed_in
    routes.add_post(f"{WEB}/calendars", guarded(pages.create))
    routes.add_get(f"{WEB}/calendars/{{uuid}}/settings", guarded(pages.calendar))
    routes.add_post(f"{WEB}/calendars/{{uuid}}/settings", guarded(pages.change))
    routes.add_post(f"{WEB}/calendars/{{uuid}}/delete", guarded(pages.delete))
    routes.add_get(f"{WEB}/account", guarded(pages.account))
    routes.add_post(f"{WEB}/account/{{what}}", guarded(pages.change_account))
    routes.add_post(f"{WEB}/account/tokens/{{id}}/revoke", guarded(pages.revoke_token))
    routes.add_get(f"{WEB}/search", guarded(pages.search))
