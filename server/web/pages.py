"""The web pages under ``/app/``: sign in and out, calendars with their exports, import with a
preview and live progress, the import history with details and Undo, and how to connect a
calendar app. Rendered by the server (Jinja2 templates, one small script, no build step).

Security: the session cookie is HttpOnly, SameSite=Lax (and Secure over HTTPS) and only its
hash is stored; every POST must carry the session's CSRF token (form field ``csrf`` or header
``X-CSRF-Token``) and, when the browser sends one, an Origin of this site; pages are served
with a Content-Security-Policy that allows no inline script or style.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import zoneinfo
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web

from protocol import events, itip
from protocol.events import EventFields
from protocol.ical.values import parse_resource
from server.forms import freckle_error, import_form
from server.http import MAX_INT, REQUEST_USER, client_address, object_id, read_post, whole_number
from server.services import Services
from server.services.access import Level
from server.services.errors import Forbidden, Invalid, NotFound, TooLarge
from server.urls import WEB, calendar_href, calid_of, feed_path, import_page
from server.web import calendar, settings
from server.web import events as events_pages
from storage.model import FINISHED, ImportFilter, ImportJob, User

COOKIE = "almanac_session"
PER_PAGE = 30
#: export buttons: format name -> (file extension, content type, label)
#: the levels a share may give, as the sharing page offers them
LEVELS = [("freebusy", "Free/busy only"), ("read", "See all details"), ("read-write", "Make changes"),
          ("admin", "Make changes and manage sharing")]  # fmt: skip
EXPORTS = {
    "ics": ("ics", "text/calendar; charset=utf-8", ".ics"),
    "outlook": ("csv", "text/csv; charset=utf-8", "Outlook .csv"),
    "timeslot": ("json", "application/json", "Timeslot .json"),
}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
Handler = Callable[[web.Request, User, str], Awaitable[web.StreamResponse]]

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
_templates.filters["thousands"] = lambda number: f"{number or 0:,}"
_templates.filters["color"] = calendar.shown_color
#: the time zones forms offer (any other known one is accepted too)
_templates.globals["zones"] = sorted(
    z for z in zoneinfo.available_timezones() if "/" in z and not z.startswith(("Etc/", "SystemV/", "US/"))
)


def csrf_token(session: str) -> str:
    """The CSRF token of a session: derived from the cookie, which other sites cannot read."""
    return hmac.new(session.encode(), b"almanac web csrf", hashlib.sha256).hexdigest()


#: the invitation page's buttons and the answers they give
INVITATION_ANSWERS = {"accept": "ACCEPTED", "maybe": "TENTATIVE", "decline": "DECLINED"}


def render(name: str, status: int = 200, **context: Any) -> web.Response:
    html = _templates.get_template(name).render(prefix=WEB, **context)
    return web.Response(text=html, status=status, content_type="text/html", headers={"Content-Security-Policy": CSP})


def finished(job: ImportJob) -> bool:
    return job.status in FINISHED


class WebDoor:
    def __init__(self, services: Services) -> None:
        self.services = services

    # sessions ------------------------------------------------------------------------------

    async def session(self, request: web.Request) -> tuple[User, str] | None:
        session = request.cookies.get(COOKIE)
        user = await self.services.users.session_user(session, "web", self.services.config.web_session_timeout)
        return (user, session) if user and session else None

    def secure(self, request: web.Request) -> bool:
        """Whether cookies get ``Secure``: over HTTPS, directly or behind a proxy that says so
        (``X-Forwarded-Proto``), or always when the settings ask (``server.secure_cookies``)."""
        forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        return self.services.config.secure_cookies == "always" or request.secure or forwarded == "https"

    @staticmethod
    def same_origin(request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        return origin is None or origin == f"{request.scheme}://{request.host}"

    def signed_in(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """Pages for a signed-in user (others go to the sign-in page); POSTs need the CSRF token."""

        async def wrapper(request: web.Request) -> web.StreamResponse:
            found = await self.session(request)
            if found is None:
                if request.method == "GET" and "application/json" not in request.headers.get("Accept", ""):
                    raise web.HTTPSeeOther(f"{WEB}/signin?next={quote(request.path_qs)}")
                raise web.HTTPUnauthorized(text="sign in first")
            user, session = found
            request[REQUEST_USER] = user.username
            if request.method == "POST":
                # a header from the script; a field of a plain form; the query of a file upload form
                sent = request.headers.get("X-CSRF-Token") or request.query.get("csrf")
                if sent is None and request.content_type == "application/x-www-form-urlencoded":
                    sent = str((await read_post(request)).get("csrf", ""))
                if not self.same_origin(request) or not hmac.compare_digest(sent or "", csrf_token(session)):
                    raise web.HTTPForbidden(text="the form is out of date or from another site: reload the page")
            try:
                return await handler(request, user, session)
            except NotFound as error:  # as the pages say it: plain text
                raise web.HTTPNotFound(text=f"{error.message}\n") from None
            except Forbidden as error:
                raise web.HTTPForbidden(text=f"{error.message}\n") from None

        return wrapper

    async def page(self, name: str, user: User, session: str, **context: Any) -> web.Response:
        """A page for a signed-in user, with the count of their invitations in the navigation."""
        waiting = len(await self.services.scheduling.pending(user))
        return render(name, user=user, csrf=csrf_token(session), waiting=waiting, **context)

    async def signin_form(self, request: web.Request) -> web.Response:
        if await self.session(request):
            raise web.HTTPSeeOther(f"{WEB}/")
        return render("signin.html", next=request.query.get("next", ""), signup=self.services.users.signup_open)

    async def signup(self, request: web.Request) -> web.Response:
        """Make an account and sign in, where sign-up is open (404 where it is not)."""
        users = self.services.users
        if users.signup == "closed" or (users.signup == "invitation" and "invitation" not in request.query):
            raise web.HTTPNotFound(text="sign-up here is closed or by invitation: an operator makes accounts\n")
        if request.method == "GET":
            return render("signup.html", values={"invitation": request.query.get("invitation", "")})
        form = await read_post(request)
        values = {k: str(form.get(k, "")).strip() for k in ("username", "email", "invitation")}
        try:
            if not self.same_origin(request):
                raise Invalid("the form is from another site")
            user = await users.sign_up(
                values["username"], form.get("password"), values["email"] or None, values["invitation"] or None
            )
        except Invalid as refused:
            return render("signup.html", status=400, values=values, error=refused.message)
        return await self.signed_in_as(request, user, f"{WEB}/calendar")

    async def signin(self, request: web.Request) -> web.Response:
        form = await read_post(request)
        login, password = str(form.get("username", "")).strip(), str(form.get("password", ""))
        target = str(form.get("next") or "")
        if not target.startswith(f"{WEB}/") or target.startswith("//"):
            target = f"{WEB}/"
        user = None
        if self.same_origin(request):
            user = await self.services.users.authenticate(login, password, client_address(request))
        if user is None:
            return render("signin.html", status=401, next=target, username=login, error="Wrong user name or password.",
                          signup=self.services.users.signup_open)  # fmt: skip
        return await self.signed_in_as(request, user, target)

    async def signed_in_as(self, request: web.Request, user: User, target: str) -> web.Response:
        """A new session for the user, its cookie set, on the way to ``target``."""
        timeout = self.services.config.web_session_timeout
        session = await self.services.users.open_session(user, "web", timeout)
        response = web.HTTPSeeOther(target)
        response.set_cookie(
            COOKIE, session, max_age=timeout, path="/", httponly=True, samesite="Lax", secure=self.secure(request)
        )
        raise response

    async def signout(self, request: web.Request, user: User, session: str) -> web.Response:
        await self.services.users.close_session(session, "web")
        response = web.HTTPSeeOther(f"{WEB}/signin")
        response.del_cookie(COOKIE, path="/")
        raise response

    # pages ---------------------------------------------------------------------------------

    async def calendars(
        self, request: web.Request, user: User, session: str, *, error: str | None = None
    ) -> web.Response:
        """The user's calendars and those shared with them (as their home shows them: the
        sharee's own colour, the CalDAV address in their home), with exports and settings."""
        calendars = await self.services.calendars.of(user)
        shared = await self.services.access.shared_with(user)
        origin = f"{request.scheme}://{request.host}"
        homes = {c.id: (c, origin + calendar_href(user, c)) for c in await self.services.calendars.shared(user)}
        response = await self.page("calendars.html", user, session, calendars=calendars, exports=EXPORTS,
                                   shared=shared, homes=homes, error=error)  # fmt: skip
        response.set_status(400 if error else 200)
        return response

    # sharing -------------------------------------------------------------------------------

    async def sharing(
        self, request: web.Request, user: User, session: str, *, token: str | None = None, error: str | None = None
    ) -> web.Response:
        """A calendar's grants and public address, for its owner and admins."""
        calendar = await self.services.calendars.get(user, request.match_info["uuid"], Level.ADMIN)
        owner = await self.services.users.get(calendar.owner_id) or user
        grants = await self.services.access.grantees(user, calendar)
        is_owner = calendar.owner_id == user.id
        feed = await self.services.calendars.feed_status(user, calendar) if is_owner else None
        token = token or (feed.token if feed else None)
        origin = f"{request.scheme}://{request.host}"
        return await self.page(
            "sharing.html", user, session, calendar=calendar, owner=owner, grants=grants, is_owner=is_owner,
            levels=LEVELS, feed=feed, token=token, error=error, feed_url=token and f"{origin}{feed_path(token)}",
            feed_webcal=token and f"webcal://{request.host}{feed_path(token)}",
        )  # fmt: skip

    async def share(self, request: web.Request, user: User, session: str) -> web.Response:
        calendar = await self.services.calendars.get(user, request.match_info["uuid"], Level.ADMIN)
        form = await read_post(request)
        who, level = str(form.get("user", "")).strip(), str(form.get("level", ""))
        grantee = None
        if who != "*":
            grantee = await self.services.calendars.owner_of(who, by_email="@" in who)
            if grantee is None:
                return await self.sharing(request, user, session, error=f"There is no user {who}.")
        try:
            await self.services.access.share(user, calendar, grantee, level)
        except (Invalid, Forbidden) as refused:
            return await self.sharing(request, user, session, error=refused.message)
        raise web.HTTPSeeOther(f"{WEB}/calendars/{calendar.uuid}/sharing")

    async def revoke(self, request: web.Request, user: User, session: str) -> web.Response:
        calendar = await self.services.calendars.get(user, request.match_info["uuid"], Level.ADMIN)
        grant = await self.services.access.grant(user, calendar, object_id(request.match_info["id"]) or 0)
        try:
            await self.services.access.revoke(user, calendar, grant)
        except Forbidden as refused:
            return await self.sharing(request, user, session, error=refused.message)
        raise web.HTTPSeeOther(f"{WEB}/calendars/{calendar.uuid}/sharing")

    async def feed_switch(self, request: web.Request, user: User, session: str) -> web.Response:
        calendar = await self.services.calendars.get(user, request.match_info["uuid"], Level.OWNER)
        action = str((await read_post(request)).get("action", ""))
        if action not in ("full", "busy", "off"):
            raise web.HTTPBadRequest(text="action is full, busy or off")
        token = await self.services.calendars.set_feed(user, calendar, on=action != "off", busy_only=action == "busy")
        return await self.sharing(request, user, session, token=token)

    async def answer(self, request: web.Request, user: User, session: str) -> web.Response:
        """Accept, decline or leave a calendar shared with the user."""
        grant, _ = await self.services.access.invitation(user, request.match_info["uuid"])
        answer = str((await read_post(request)).get("answer", ""))
        if answer == "leave":
            await self.services.access.leave(user, grant)
        elif answer in ("accept", "decline"):
            await self.services.access.answer(user, grant, answer == "accept")
        else:
            raise web.HTTPBadRequest(text="answer is accept, decline or leave")
        raise web.HTTPSeeOther(f"{WEB}/#shared")

    async def invitations(self, request: web.Request, user: User, session: str) -> web.Response:
        """The meetings the user is invited to and has not answered, with accept, maybe and decline."""
        pending = await self.services.scheduling.pending(user)

        def described(text: str) -> tuple[EventFields, str]:
            return events.view(text), (itip.organizer(parse_resource(text)) or "").removeprefix("mailto:")

        shown = await asyncio.to_thread(lambda: [(found, *described(found.ical)) for found, _ in pending])
        return await self.page("invitations.html", user, session, invitations=shown)

    async def answer_invitation(self, request: web.Request, user: User, session: str) -> web.Response:
        """One invitation answered (the organizer learns it as from any calendar program)."""
        answer = INVITATION_ANSWERS.get(str((await read_post(request)).get("answer", "")))
        if answer is None:
            raise web.HTTPBadRequest(text="answer is accept, maybe or decline")
        try:
            found, calendar = await self.services.objects.get(user, int(request.match_info["id"]))
        except ValueError:
            raise web.HTTPNotFound() from None
        try:
            await self.services.objects.answer(user, calendar, found, answer)
        except Invalid as refused:
            raise web.HTTPBadRequest(text=f"{refused.message}\n") from None
        raise web.HTTPSeeOther(f"{WEB}/invitations")

    async def rsvp(self, request: web.Request) -> web.Response:
        """The page an invitation by mail links to: an attendee without a calendar program (and
        without an account) answers; the token in the address is the only credential, and it
        expires with the meeting."""
        token = request.match_info["token"]
        done = False
        try:
            if request.method == "POST":
                if not self.same_origin(request):
                    raise web.HTTPForbidden(text="the form is from another site\n")
                answer = INVITATION_ANSWERS.get(str((await read_post(request)).get("answer", "")), "")
                await self.services.objects.answer_by_link(token, answer)
                done = True
            summary, start, organizer, answered = await self.services.scheduling.rsvp(token)
        except Invalid as refused:
            return render(
                "rsvp.html", status=404 if refused.field == "token" else 400, user=None, error=refused.message
            )
        return render("rsvp.html", user=None, summary=summary, start=start, organizer=organizer,
                      answered=answered, done=done)  # fmt: skip

    async def export(self, request: web.Request, user: User, session: str) -> web.StreamResponse:
        fmt = request.query.get("format", "ics")
        if fmt not in EXPORTS:
            raise web.HTTPNotFound(text="unknown export format")
        calendars = self.services.calendars
        if request.query.get("calendar"):
            try:
                chosen = [await calendars.get(user, request.query["calendar"], Level.READ)]
            except NotFound:
                raise web.HTTPNotFound(text="no such calendar") from None
            name = chosen[0].name
        else:
            chosen, name = await calendars.of(user), f"{user.username} calendars"
        extension, content_type, _ = EXPORTS[fmt]
        response = web.StreamResponse(
            headers={
                "Content-Type": content_type,
                "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}.{extension}",
            }
        )
        response.enable_compression()
        await response.prepare(request)
        async for chunk in calendars.export(user, chosen, fmt):
            await response.write(chunk.encode())
        await response.write_eof()
        return response

    async def import_page(self, request: web.Request, user: User, session: str) -> web.Response:
        calendars = await self.services.calendars.of(user)
        return await self.page("import.html", user, session, calendars=calendars, chosen=request.query.get("calendar"))

    async def preview(self, request: web.Request, user: User, session: str) -> web.Response:
        """The dry run the import page shows before importing (JSON for its script)."""
        try:
            chosen, upload, _ = await import_form(request, self.services, user, "web")
        except (Invalid, TooLarge) as error:
            return freckle_error(error)
        try:
            return web.json_response((await self.services.imports.preview(user, chosen, upload)).as_dict())
        finally:
            upload.discard()

    async def start_import(self, request: web.Request, user: User, session: str) -> web.Response:
        """Queue the import; the script gets its id, a browser without script its page."""
        try:
            chosen, upload, _ = await import_form(request, self.services, user, "web")
            job = await self.services.imports.submit(user, chosen, upload)
        except (Invalid, TooLarge) as error:
            if "application/json" in request.headers.get("Accept", ""):
                return freckle_error(error)
            calendars = await self.services.calendars.of(user)
            return await self.page("import.html", user, session, calendars=calendars, error=error.message)
        if "application/json" in request.headers.get("Accept", ""):
            return web.json_response({"id": job.id, "url": import_page(job.id)}, status=202)
        raise web.HTTPSeeOther(import_page(job.id))

    async def history(self, request: web.Request, user: User, session: str) -> web.Response:
        try:
            page = whole_number(request.query.get("page"), "page", 1, 1, MAX_INT // PER_PAGE)
        except ValueError:
            page = 1
        jobs, total = await self.services.imports.jobs_of(
            user, ImportFilter(), offset=(page - 1) * PER_PAGE, limit=PER_PAGE
        )
        names = {c.id: c.name for c in await self.services.calendars.home(user)}
        pages = max(1, -(-total // PER_PAGE))
        return await self.page(
            "imports.html", user, session, jobs=jobs, names=names, page=page, pages=pages, total=total
        )

    async def job_of(self, request: web.Request, user: User) -> ImportJob:
        import_id = object_id(request.match_info["id"])
        try:
            if import_id is None:
                raise NotFound("no such import")
            return await self.services.imports.get(user, import_id)
        except NotFound:
            raise web.HTTPNotFound(text="no such import") from None

    async def detail(self, request: web.Request, user: User, session: str) -> web.Response:
        job = await self.job_of(request, user)
        names = {c.id: c.name for c in await self.services.calendars.home(user)}
        return await self.page("import_detail.html", user, session, job=job, names=names, finished=finished(job),
                         undone=request.query.get("undone"))  # fmt: skip

    async def status(self, request: web.Request, user: User, session: str) -> web.Response:
        job = await self.job_of(request, user)
        return web.json_response(
            {"status": job.status, "percent": job.progress, "finished": finished(job), "total": job.total,
             "written": job.created + job.updated + job.unchanged}
        )  # fmt: skip

    async def undo(self, request: web.Request, user: User, session: str) -> web.Response:
        job = await self.job_of(request, user)
        try:
            await self.services.imports.undo(user, job.id)
        except Invalid as error:
            raise web.HTTPConflict(text=error.message) from None
        raise web.HTTPSeeOther(f"{import_page(job.id)}?undone=1")

    async def feed(self, request: web.Request) -> web.StreamResponse:
        """A public feed: the calendar at a secret address, for any client that subscribes
        (no sign-in; the address is the credential). ETag/If-None-Match answer 304."""
        try:
            feed, calendar = await self.services.calendars.feed(request.match_info["token"])
        except NotFound:
            raise web.HTTPNotFound(text="no such feed (it may have been turned off or given a new address)") from None
        day = datetime.now(UTC).date().isoformat() if feed.busy_only else ""  # its window moves daily
        seed = f"{calendar.id}:{calendar.sync_revision}:{calendar.updated_at}:{feed.created_at}:{feed.busy_only}:{day}"
        etag = '"' + hashlib.sha256(seed.encode()).hexdigest()[:32] + '"'
        headers = {
            "ETag": etag,
            "Cache-Control": "private, max-age=300",
            "Content-Type": "text/calendar; charset=utf-8",
        }
        if etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
            return web.Response(status=304, headers={"ETag": etag})
        response = web.StreamResponse(headers=headers)
        response.enable_compression()
        await response.prepare(request)
        if request.method == "GET":
            async for chunk in self.services.calendars.feed_text(feed, calendar):
                await response.write(chunk.encode())
        await response.write_eof()
        return response

    async def connect(self, request: web.Request, user: User, session: str) -> web.Response:
        origin = f"{request.scheme}://{request.host}"
        calendars = [
            (c, origin + calendar_href(user, c), calid_of(c, user)) for c in await self.services.calendars.of(user)
        ]
        return await self.page("connect.html", user, session, origin=origin, calendars=calendars)


def add_routes(app: web.Application, services: Services) -> None:
    door = WebDoor(services)
    calendar.add_routes(app, door)
    events_pages.add_routes(app, door)
    settings.add_routes(app, door)
    routes = app.router
    guarded = door.signed_in
    routes.add_get(f"{WEB}/signin", door.signin_form)
    routes.add_post(f"{WEB}/signin", door.signin)
    routes.add_route("*", f"{WEB}/signup", door.signup)
    routes.add_post(f"{WEB}/signout", guarded(door.signout))
    routes.add_get(f"{WEB}/", guarded(door.calendars))
    routes.add_get(f"{WEB}/export", guarded(door.export))
    routes.add_get(f"{WEB}/import", guarded(door.import_page))
    routes.add_post(f"{WEB}/import/preview", guarded(door.preview))
    routes.add_post(f"{WEB}/import", guarded(door.start_import))
    routes.add_get(f"{WEB}/imports", guarded(door.history))
    routes.add_get(f"{WEB}/imports/{{id}}", guarded(door.detail))
    routes.add_get(f"{WEB}/imports/{{id}}/status", guarded(door.status))
    routes.add_post(f"{WEB}/imports/{{id}}/undo", guarded(door.undo))
    routes.add_get(f"{WEB}/connect", guarded(door.connect))
    routes.add_get(f"{WEB}/invitations", guarded(door.invitations))
    routes.add_get(f"{WEB}/rsvp/{{token}}", door.rsvp)
    routes.add_post(f"{WEB}/rsvp/{{token}}", door.rsvp)
    routes.add_post(f"{WEB}/invitations/{{id:\\d{{1,18}}}}", guarded(door.answer_invitation))
    routes.add_get(f"{WEB}/calendars/{{uuid}}/sharing", guarded(door.sharing))
    routes.add_post(f"{WEB}/calendars/{{uuid}}/share", guarded(door.share))
    routes.add_post(f"{WEB}/calendars/{{uuid}}/grants/{{id}}/revoke", guarded(door.revoke))
    routes.add_post(f"{WEB}/calendars/{{uuid}}/feed", guarded(door.feed_switch))
    routes.add_post(f"{WEB}/shared/{{uuid}}", guarded(door.answer))
    for method in ("GET", "HEAD"):
        routes.add_route(method, "/feeds/{token}.ics", door.feed)
    routes.add_static(f"{WEB}/static", Path(__file__).parent / "static", append_version=True)
