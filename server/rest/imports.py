"""``/v1/imports``: the imports resource, adapted from the Freckle v2 draft (seed 003) to
calendars: list with filters and pagination, one import, its status, details, what it wrote,
and DELETE to undo it.

Choices where the draft contradicts itself (reference B.3): the status is ``complete`` (the
prose), the details live at ``details_url``, and the list filter is ``format``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from server.forms import import_form
from server.http import MAX_INT, boolean, iso_epoch, object_id, whole_number
from server.services import Services
from server.services.errors import Forbidden, Invalid, NotFound
from server.services.imports import iso
from server.urls import calendar_href, import_url, object_href
from storage.model import FINISHED, Calendar, ImportFilter, ImportJob, User

PER_PAGE, MAX_PER_PAGE = 30, 1000
UserOf = Callable[[web.Request], Awaitable[User]]


def paging(request: web.Request) -> tuple[int, int]:
    """``page`` (from 1) and ``per_page`` (30 by default, at most 1,000)."""
    try:
        per_page = whole_number(request.query.get("per_page"), "per_page", PER_PAGE, 1, MAX_PER_PAGE)
        page = whole_number(request.query.get("page"), "page", 1, 1, MAX_INT // MAX_PER_PAGE)
    except ValueError as error:
        raise Invalid(str(error), field="page") from None
    return page, per_page


def link_header(request: web.Request, page: int, per_page: int, total: int) -> dict[str, str]:
    """RFC 8288 ``Link`` with next/prev/first/last, as the Freckle API sends it."""
    last = max(1, -(-total // per_page))
    pages = {"first": 1, "last": last}
    if page < last:
        pages["next"] = page + 1
    if page > 1:
        pages["prev"] = page - 1
    links = []
    for rel, number in pages.items():
        query = {**request.query, "page": str(number), "per_page": str(per_page)}
        links.append(f'<{request.url.with_query(None)}?{urlencode(query)}>; rel="{rel}"')
    return {"Link": ", ".join(links), "X-Total-Count": str(total)}


class ImportsResource:
    def __init__(self, services: Services, user_of: UserOf) -> None:
        self.services = services
        self.user_of = user_of  #: the REST door's token authentication

    async def calendars_by_id(self, user: User) -> dict[int, Calendar]:
        return {c.id: c for c in await self.services.calendars.home(user)}

    def shape(self, request: web.Request, job: ImportJob, calendars: dict[int, Calendar]) -> dict[str, Any]:
        url = f"{request.url.origin()}{import_url(job.id)}"
        calendar = calendars.get(job.calendar_id) if job.calendar_id else None
        return {
            "id": job.id, "type": job.format, "door": job.door, "filename": job.filename,
            "calendar": {"id": calendar.uuid, "name": calendar.name} if calendar else None,
            "options": job.options, "status": job.status, "progress": job.progress, "message": job.message,
            "entries": job.created + job.updated, "entries_created": job.created, "entries_updated": job.updated,
            "entries_unchanged": job.unchanged, "entries_discarded": job.discarded,
            "calendars": len(job.calendars_created),
            "url": url, "status_url": f"{url}/status", "details_url": f"{url}/details",
            "entries_url": f"{url}/entries", "calendars_url": f"{url}/calendars",
            "created_at": job.created_at, "updated_at": job.updated_at, "finished_at": job.finished_at,
        }  # fmt: skip

    async def job(self, request: web.Request) -> tuple[User, ImportJob]:
        user = await self.user_of(request)
        import_id = object_id(request.match_info["id"])
        if import_id is None:
            raise NotFound("import not found")
        return user, await self.services.imports.get(user, import_id)

    async def whose(self, me: User, username: str | None) -> User:
        """The user whose imports are listed: me, or for an administrator the one named."""
        if username in (None, "", me.username):
            return me
        if not me.is_admin:
            raise Forbidden("only an administrator may list another user's imports")
        other = await self.services.users.get_by_name(username)
        if other is None:
            raise Invalid(f"no user is called {username!r}", field="user", code="missing")
        return other

    # handlers ----------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.Response:
        """The user's imports and those into calendars they own or administer (a server
        administrator may name another user with ``user``)."""
        user = await self.whose(await self.user_of(request), request.query.get("user"))
        page, per_page = paging(request)
        calendars = await self.calendars_by_id(user)
        calendar_id = None
        if "calendar" in request.query:
            calendar_id = (await self.services.calendars.get(user, request.query["calendar"])).id
        try:
            since, until = (iso(iso_epoch(request.query.get(name), name)) for name in ("from", "to"))
        except ValueError as error:
            raise Invalid(str(error), field="from") from None
        where = ImportFilter(
            format=request.query.get("format"),
            calendar_id=calendar_id,
            status=request.query.get("status"),
            since=since,
            until=until,
        )
        jobs, total = await self.services.imports.jobs_of(user, where, offset=(page - 1) * per_page, limit=per_page)
        return web.json_response(
            [self.shape(request, job, calendars) for job in jobs], headers=link_header(request, page, per_page, total)
        )

    async def show(self, request: web.Request) -> web.Response:
        user, job = await self.job(request)
        return web.json_response(self.shape(request, job, await self.calendars_by_id(user)))

    async def status(self, request: web.Request) -> web.Response:
        _, job = await self.job(request)
        return web.json_response({"status": job.status, "percent": job.progress})

    async def details(self, request: web.Request) -> web.Response:
        _, job = await self.job(request)
        if job.status not in FINISHED:
            return web.Response(status=204)
        return web.json_response(
            {
                "entries_imported": job.created,
                "entries_updated": job.updated,
                "entries_unchanged": job.unchanged,
                "entries_discarded": job.discarded,
                "calendars_created": len(job.calendars_created),
                "line_errors": job.errors,  # [{"line", "fields", "error"}], as the draft shows them
                "line_error_count": job.error_count,  # all of them; line_errors lists the first 1,000
                "warnings": job.warnings,
            }
        )

    async def entries(self, request: web.Request) -> web.Response:
        """What the import wrote: each object with its UID, whether it was created or replaced,
        its calendar and its CalDAV address."""
        user, job = await self.job(request)
        page, per_page = paging(request)
        items, total = await self.services.imports.items(job, offset=(page - 1) * per_page, limit=per_page)
        calendars = await self.calendars_by_id(user)
        shaped = []
        for item in items:
            calendar = calendars.get(item.calendar_id)
            shaped.append(
                {
                    "uid": item.uid,
                    "action": item.action,
                    "calendar": calendar.uuid if calendar else None,
                    "caldav_url": object_href(calendar_href(user, calendar), item.href) if calendar else None,
                }
            )
        return web.json_response(shaped, headers=link_header(request, page, per_page, total))

    async def made_calendars(self, request: web.Request) -> web.Response:
        user, job = await self.job(request)
        page, per_page = paging(request)
        calendars = await self.calendars_by_id(user)
        made = [calendars[i] for i in job.calendars_created if i in calendars]
        chosen = made[(page - 1) * per_page : page * per_page]
        shaped = [{"id": c.uuid, "name": c.name, "caldav_url": calendar_href(user, c)} for c in chosen]
        return web.json_response(shaped, headers=link_header(request, page, per_page, len(made)))

    async def create(self, request: web.Request) -> web.Response:
        """Queue an import: 202 with the import and ``Location`` of its status. With
        ``dry_run=true``: 200 with what it would do, and nothing is recorded."""
        user = await self.user_of(request)
        imports = self.services.imports
        chosen, upload, fields = await import_form(request, self.services, user, "rest")
        try:
            if dry_run(request, fields):
                return web.json_response((await imports.preview(user, chosen, upload)).as_dict())
            job = await imports.submit(user, chosen, upload)
        finally:
            upload.discard()  # (a submitted one has moved to the queue already)
        body = self.shape(request, job, await self.calendars_by_id(user))
        return web.json_response(body, status=202, headers={"Location": f"{import_url(job.id)}/status"})

    async def undo(self, request: web.Request) -> web.Response:
        user, job = await self.job(request)
        await self.services.imports.undo(user, job.id)
        return web.Response(status=204)


def dry_run(request: web.Request, fields: dict[str, str]) -> bool:
    """``dry_run``, a field or in the query (Invalid when it is no boolean)."""
    try:
        return boolean(request.query.get("dry_run") or fields.get("dry_run"), "dry_run", False)
    except ValueError as error:
        raise Invalid(str(error), field="dry_run") from None


def refuses_as_freckle(request: web.Request) -> bool:
    """Whether the request creates an import: what that refuses at once is told in the Freckle
    draft's format (docs/rest.md), not the door's ``{"error": ...}``."""
    return getattr(request.match_info.handler, "__func__", None) is ImportsResource.create


def add_routes(app: web.Application, services: Services, user_of: UserOf) -> None:
    resource = ImportsResource(services, user_of)
    for path in ("/imports", "/imports/"):
        app.router.add_route("GET", path, resource.index)
        app.router.add_route("POST", path, resource.create)
    app.router.add_route("GET", "/imports/{id}", resource.show)
    app.router.add_route("DELETE", "/imports/{id}", resource.undo)
    app.router.add_route("GET", "/imports/{id}/status", resource.status)
    app.router.add_route("GET", "/imports/{id}/details", resource.details)
    app.router.add_route("GET", "/imports/{id}/entries", resource.entries)
    app.router.add_route("GET", "/imports/{id}/calendars", resource.made_calendars)
