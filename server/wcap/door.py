"""The WCAP door: ``<command>.wcap`` at the root and under ``/wcap/``, by GET or POST, answered
by the command registered under its name (``@command``, in the group modules beside this one),
and what the commands share: the call, the calendar a calid names, calprops, one block per
calendar, the range and number parameters.

Every reply is HTTP 200 with a body in the requested ``fmt-out`` that carries
``X-NSCP-WCAP-ERRNO``; only ``httpauth=1`` without valid Basic credentials gets a 401.
"""

from __future__ import annotations

import asyncio
import logging
import zoneinfo
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

from aiohttp import web

from protocol import wcap
from protocol.events import valid_zone
from protocol.wcap import Block, Errno, WcapError, flag, parse_acl, parse_calid, parse_time, split_list
from server.http import REQUEST_USER, basic_credentials, client_address, read_form, read_post, whole_number
from server.services import Services
from server.services.access import Level
from server.services.errors import Forbidden, Invalid, NotFound, ServiceError, TooLarge
from server.services.imports import Upload
from server.urls import calid_of
from server.wcap import acl
from server.wcap.acl import OWNER_ACES, ace_of
from storage.errors import StoreFull, StoreUnavailable
from storage.model import Calendar, User

log = logging.getLogger("almanac.wcap")
SESSION_KIND = "wcap"
#: what a command that writes answers when the disk is full (others: the back end failed)
WRITE_FAILED = {
    "import": Errno.WRITE_IMPORT_FAILED, "storeevents": Errno.STOREEVENTS_FAILED,
    "storetodos": Errno.STORETODOS_FAILED, "deleteevents_by_id": Errno.DELETE_EVENTS_BY_ID_FAILED,
    "deletetodos_by_id": Errno.DELETE_TODOS_BY_ID_FAILED, "createcalendar": Errno.CREATECALENDAR_FAILED,
    "deletecalendar": Errno.DELETECALENDAR_FAILED, "set_calprops": Errno.SETCALPROPS_FAILED,
    "set_userprefs": Errno.SET_USERPREFS_FAILED, "deletecomponents_by_range": Errno.DELETECOMPONENTS_BY_RANGE_FAILED,
    "login": Errno.LOGIN_FAILED,
}  # fmt: skip
NO_CACHE = {"Pragma": "no-cache", "Expires": "0", "Cache-Control": "no-cache"}


@dataclass(slots=True)
class Call:
    """One WCAP request: its parameters (query and form), reply format and user."""

    request: web.Request
    command: str
    params: dict[str, str]
    fmt: str = "text/calendar"
    user: User | None = None
    upload: Upload | None = None  #: a multipart POST's file, spooled to disk (removed after the call)
    filename: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def get(self, name: str, default: str | None = None) -> str | None:
        value = self.params.get(name)
        return default if value is None else value

    @property
    def me(self) -> User:
        assert self.user is not None
        return self.user


Command = Callable[["WcapDoor", Call], Awaitable[list[Block]]]
COMMANDS: dict[str, tuple[Command, bool]] = {}


def command(name: str, session: bool = True) -> Callable[[Command], Command]:
    """Register a handler for ``<name>.wcap``; ``session``: it needs an authenticated user."""

    def register(handler: Command) -> Command:
        COMMANDS[name] = (handler, session)
        return handler

    return register


def stamp(iso: str) -> str:
    return iso[:19].replace("-", "").replace(":", "") + "Z"


def calprops(calendar: Calendar, owner: User, aces: Sequence[str] = ()) -> list[tuple[str, str]]:
    """A calendar's properties; ``aces``: the entries of its grants, after the owners'."""
    props = [
        ("X-NSCP-CALPROPS-LAST-MODIFIED", stamp(calendar.updated_at)),
        ("X-NSCP-CALPROPS-CREATED", stamp(calendar.created_at)),
        ("X-NSCP-CALPROPS-READ", "999"),
        ("X-NSCP-CALPROPS-WRITE", "999"),
        ("X-NSCP-CALPROPS-RELATIVE-CALID", calid_of(calendar, owner)),
        ("X-NSCP-CALPROPS-NAME", calendar.name),
        ("X-NSCP-CALPROPS-PRIMARY-OWNER", owner.username),
        ("X-NSCP-CALPROPS-OWNERS", owner.username),
        ("X-NSCP-CALPROPS-TZID", calendar.timezone or "UTC"),
        ("X-NSCP-CALPROPS-LANGUAGE", "en"),
        *(("X-NSCP-CALPROPS-ACCESS-CONTROL-ENTRY", ace) for ace in (*OWNER_ACES, *aces)),
        ("X-NSCP-CALPROPS-RESOURCE", "0"),
        ("X-S1CS-CALPROPS-COMMON-NAME", owner.username),
        ("X-S1CS-CALPROPS-ALLOW-DOUBLEBOOKING", "1"),
    ]
    if calendar.description:
        props.insert(6, ("X-NSCP-CALPROPS-DESCRIPTION", calendar.description))
    if calendar.is_default:
        props.append(("X-S1CS-DEFAULTCALENDAR", "1"))
    return props


def zone_param(call: Call, name: str) -> tzinfo | None:
    value = call.get(name)
    if not value:
        return None
    if not valid_zone(value):
        raise WcapError(Errno.FETCHCOMPONENTS_FAILED_BAD_TZID, f"{name}={value!r} is not a known time zone")
    return UTC if value.upper() == "UTC" else zoneinfo.ZoneInfo(value)


def epoch(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value is not None else None


def number(call: Call, name: str, default: int, low: int, high: int) -> int:
    """A whole-number parameter; errno 60 (bad arguments) for anything else."""
    try:
        return whole_number(call.get(name), name, default, low, high)
    except ValueError as error:
        raise WcapError(Errno.BAD_ARGUMENTS, str(error)) from None


def range_of(call: Call, errno: Errno = Errno.BAD_ARGUMENTS) -> tuple[datetime | None, datetime | None]:
    zone = zone_param(call, "tzid")
    start = parse_time(call.get("dtstart"), "dtstart", errno)
    end = parse_time(call.get("dtend"), "dtend", errno)
    if zone is not None:  # times without Z are in tzid

        def local(value: datetime | None, raw: str) -> datetime | None:
            zoned = "T" in raw and not raw.endswith("Z")
            return value.replace(tzinfo=zone) if value is not None and zoned else value

        start, end = local(start, call.get("dtstart") or ""), local(end, call.get("dtend") or "")
    if start is not None and end is not None and end < start:
        raise WcapError(errno, "dtend is before dtstart")
    return start, end


def check_userid(call: Call) -> None:
    userid = call.get("userid")
    if userid and userid.lower() != call.me.username.lower() and not call.me.is_admin:
        raise WcapError(Errno.USERPREFS_ACCESS_DENIED, "only an administrator may read another user's preferences")


class WcapDoor:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.timeout = services.config.session_timeout

    # request handling --------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["command"].strip().lower()
        call = Call(request, name, {k: v.strip() for k, v in request.query.items()})
        try:
            return await self._answer(call, name)
        finally:
            if call.upload is not None:
                call.upload.discard()

    async def _answer(self, call: Call, name: str) -> web.StreamResponse:
        try:
            await self.read_body(call)
        except WcapError as error:
            return await self.reply(call, [Block(errno=error.errno)], error.message)
        call.fmt = call.params.get("fmt-out") or "text/calendar"
        if call.fmt not in wcap.FORMATS:
            call.fmt = "text/calendar"
            return await self.reply(call, [Block(errno=Errno.NO_SUCH_FORMAT)], "unsupported fmt-out")
        if name not in COMMANDS:
            return await self.reply(call, [Block(errno=Errno.BAD_COMMAND)], f"unknown command {name}")
        handler, needs_session = COMMANDS[name]
        try:
            if needs_session:
                challenge = await self.authenticate(call)
                if challenge is not None:
                    return challenge
            blocks = await handler(self, call)
        except WcapError as error:
            return await self.reply(call, [Block(errno=error.errno)], error.message)
        except (Forbidden, NotFound) as error:  # the access rule refused: the calendar is not the user's to use so
            return await self.reply(call, [Block(errno=Errno.ACCESS_DENIED_TO_CALENDAR)], error.message)
        except (StoreFull, StoreUnavailable) as error:  # nothing was written; the command's failure errno says so
            return await self.reply(
                call, [Block(errno=WRITE_FAILED.get(name, Errno.DWP_CONNECTION_FAILED))], str(error)
            )
        except Exception:  # a WCAP client takes any non-200 for a dead network: answer in WCAP
            log.exception("%s.wcap failed", name)
            return await self.reply(call, [Block(errno=Errno.INTERNAL_ERROR)], "internal error (logged)")
        return await self.reply(call, blocks)

    async def reply(self, call: Call, blocks: list[Block], message: str | None = None) -> web.Response:
        if message is not None:
            log.info("%s.wcap: errno %s: %s", call.command, blocks[0].errno, message)
            blocks[0].properties.append(("X-NSCP-WCAP-ERRSTR", message))
        headers = {**NO_CACHE, "X-NSCP-WCAP-ERRNO": str(blocks[0].errno), **call.extra}
        text = await asyncio.to_thread(wcap.render, blocks, call.fmt)  # a fetch may render thousands
        return web.Response(text=text, headers=headers, content_type=call.fmt, charset="utf-8")

    async def read_body(self, call: Call) -> None:
        """Form parameters of a POST (urlencoded or multipart, where the file may be)."""
        request = call.request
        if request.method != "POST":
            return
        errno = Errno.BAD_IMPORT_ARGUMENTS if call.command == "import" else Errno.BAD_ARGUMENTS
        try:
            if request.content_type == "multipart/form-data":
                form = await read_form(request, self.services.config.max_upload_bytes, self.services.imports.spool)
                call.upload, call.filename = Upload(path=form.path) if form.path else None, form.filename
                for name, value in form.fields.items():
                    call.params.setdefault(name, value)
            elif request.content_type == "application/x-www-form-urlencoded":
                posted = await read_post(request, self.services.config.max_upload_bytes)
                call.params.update({k: str(v).strip() for k, v in posted.items()})
        except (TooLarge, Invalid) as error:
            raise WcapError(errno, error.message) from None
        except (ValueError, AssertionError, web.HTTPException) as error:
            raise WcapError(errno, f"unreadable form data: {error}") from None

    async def authenticate(self, call: Call) -> web.Response | None:
        """Set ``call.user`` from ``id=`` or, with ``httpauth=1``, HTTP Basic (401 if missing)."""
        users = self.services.users
        if flag(call.get("httpauth")):
            credentials = basic_credentials(call.request.headers.get("Authorization"))
            user = None
            if credentials is not None:
                user = await users.authenticate(*credentials, client_address(call.request))
            if user is None:
                return web.Response(
                    status=401,
                    text="HTTP Basic credentials are required with httpauth=1\n",
                    headers={"WWW-Authenticate": 'Basic realm="Almanac WCAP", charset="UTF-8"', **NO_CACHE},
                )
        else:
            user = await users.session_user(call.get("id"), SESSION_KIND, self.timeout)
            if user is None:
                raise WcapError(Errno.LOGIN_FAILED, "no session, or it expired: log in again")
        call.user = user
        call.request[REQUEST_USER] = user.username
        return None

    # calendars ---------------------------------------------------------------------------

    async def calendar(self, call: Call, calid: str | None = None) -> Calendar:
        """The calendar a calid names (the user's default when none is given)."""
        text = calid if calid is not None else call.get("calid")
        if not text:
            return await self.services.calendars.default(call.me)
        try:
            named = parse_calid(text)
            owner = named.email if named.email is not None else named.user or ""
            return await self.services.calendars.resolve(call.me, owner, named.slug, by_email=named.email is not None)
        except NotFound:
            raise WcapError(Errno.CALENDAR_DOES_NOT_EXIST, f"no calendar {text!r}") from None
        except Forbidden:
            raise WcapError(Errno.ACCESS_DENIED_TO_CALENDAR, f"you have no access to calendar {text!r}") from None

    async def props(self, call: Call, calendar: Calendar) -> list[tuple[str, str]]:
        """A calendar's calprops as the user sees them: its owner's calid and, for those who
        manage it, every grant as an access control entry (others see their own)."""
        access = self.services.access
        if calendar.owner_id == call.me.id:
            owner, level = call.me, Level.OWNER
        else:
            owner = await self.services.users.get(calendar.owner_id) or call.me
            level = await self.services.calendars.level(call.me, calendar)
        if level >= Level.ADMIN:
            aces = [ace_of(u.username if u else acl.EVERYONE, Level.grantable(g.level))
                    for g, u in await access.active_grants(call.me, calendar)]  # fmt: skip
        else:
            aces = [ace_of(call.me.username, level)] if level > Level.NONE else []
        return calprops(calendar, owner, aces)

    async def grants_of(self, acl_text: str) -> list[tuple[User | None, Level]]:
        """The grants an ``acl`` parameter asks for; errno 77 when one does not map (an
        unknown user among them)."""
        wanted = []
        for who, level in acl.levels(parse_acl(acl_text)).items():
            user = None
            if who != acl.EVERYONE:
                user = await self.services.calendars.owner_of(who, by_email="@" in who)
                if user is None:
                    raise WcapError(Errno.BAD_IMPORT_ARGUMENTS, f"there is no user {who}")
            wanted.append((user, level))
        return wanted

    async def each_calendar(
        self, call: Call, body: Callable[[Calendar, Block], Awaitable[None]], failed: Errno | None = None
    ) -> list[Block]:
        """One block per calid of the ``calid`` list, each with its own errno."""
        calids: list[str | None] = [*split_list(call.get("calid"))] or [None]
        blocks = []
        for calid in calids:
            block = Block()
            try:
                calendar = await self.calendar(call, calid)
                block.properties += await self.props(call, calendar)
                await body(calendar, block)
            except (WcapError, ServiceError) as error:  # this calendar's block says what went wrong
                block.errno = (
                    error.errno if isinstance(error, WcapError)
                    else Errno.ACCESS_DENIED_TO_CALENDAR if isinstance(error, Forbidden | NotFound)
                    else failed or Errno.BAD_ARGUMENTS
                )  # fmt: skip
                log.info("%s.wcap: errno %s: %s", call.command, block.errno, error.message)
                block.properties.append(("X-NSCP-WCAP-ERRSTR", error.message))
            blocks.append(block)
        return blocks
