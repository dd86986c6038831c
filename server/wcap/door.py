"""The WCAP door: ``<command>.wcap`` at the root and under ``/wcap/``, by GET or POST.

Every reply is HTTP 200 with a body in the requested ``fmt-out`` that carries
``X-NSCP-WCAP-ERRNO``; only ``httpauth=1`` without valid Basic credentials gets a 401.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
import zoneinfo
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo

from aiohttp import web
from icalendar import Calendar as ICalendar
from icalendar import Event, Todo

from protocol import recurrence, wcap
from protocol.events import valid_zone
from protocol.ical import (
    Resource,
    all_timezones,
    component_problems,
    formatted,
    instances,
    main_component,
    parse_resource,
    resource_from_calendar,
    timezone_text,
)
from protocol.wcap import Block, Errno, WcapError, flag, parse_acl, parse_calid, parse_time, split_list
from server.http import MAX_INT, REQUEST_USER, basic_credentials, client_address, read_form, read_post, whole_number
from server.services import Services
from server.services.access import Level, State
from server.services.calendars import slugify
from server.services.errors import (
    BadEncoding,
    Forbidden,
    Invalid,
    NameTaken,
    NotFound,
    PreconditionFailed,
    ServiceError,
    TooLarge,
)
from server.services.imports import ImportRequest, Upload
from server.urls import WCAP, calid_of
from server.wcap import acl
from server.wcap.acl import OWNER_ACES, ace_of
from storage.errors import StoreFull, StoreUnavailable
from storage.model import Calendar, CalendarObject, User

log = logging.getLogger("almanac.wcap")
SESSION_KIND = "wcap"
#: a user's WCAP preferences take this many bytes of JSON at most
MAX_PREFS = 64 * 1024
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
CONTENT_TYPES = {"text/calendar": "text/calendar; charset=utf-8", "text/xml": "text/xml; charset=utf-8"}
#: unbounded fetches of expanded instances stop this far ahead
EXPANSION_HORIZON = timedelta(days=366)


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


def component_kinds(call: Call) -> set[str]:
    kind = (call.get("component-type") or "all").lower()
    return {"event": {"VEVENT"}, "todo": {"VTODO"}}.get(kind, {"VEVENT", "VTODO", "VJOURNAL"})


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

    # the commands follow (registered with @command) ----------------------------------------


# --------------------------------------------------------------------------- session commands


@command("version", session=False)
async def version(door: WcapDoor, call: Call) -> list[Block]:
    return [Block([("X-NSCP-WCAPVERSION", wcap.VERSION), ("X-NSCP-SERVERVERSION", wcap.SERVER_VERSION)])]


@command("login", session=False)
async def login(door: WcapDoor, call: Call) -> list[Block]:
    name, password = call.get("user") or "", call.get("password") or ""
    user = await door.services.users.authenticate(name, password, client_address(call.request)) if name else None
    if user is None:
        raise WcapError(Errno.LOGIN_FAILED, "wrong user or password")
    session = await door.services.users.open_session(user, SESSION_KIND, door.timeout)
    call.request[REQUEST_USER] = user.username
    return [
        Block(
            [
                ("X-NSCP-WCAP-SESSION-ID", session),
                ("X-NSCP-WCAP-USER-ID", user.username),
                ("X-NSCP-WCAP-CALENDAR-ID", user.username),
            ]
        )
    ]


@command("logout", session=False)
async def logout(door: WcapDoor, call: Call) -> list[Block]:
    await door.services.users.close_session(call.get("id"), SESSION_KIND)
    return [Block(errno=Errno.LOGOUT)]


@command("check_id", session=False)
async def check_id(door: WcapDoor, call: Call) -> list[Block]:
    user = await door.services.users.session_user(call.get("id"), SESSION_KIND, door.timeout)
    return [Block([("X-NSCP-WCAP-CHECK-ID", "1" if user else "0")])]


@command("gettime")
async def gettime(door: WcapDoor, call: Call) -> list[Block]:
    zone = zone_param(call, "tzidout")
    now = datetime.now(UTC).replace(microsecond=0)
    value = wcap.format_time(now) if zone in (None, UTC) else formatted(now.astimezone(zone), "%Y%m%dT%H%M%S")
    return [Block([("X-NSCP-WCAPTIME", value)])]


@command("get_all_timezones")
async def get_all_timezones(door: WcapDoor, call: Call) -> list[Block]:
    wanted = call.get("tzid")
    if wanted:
        text = timezone_text(wanted)
        if text is None:
            raise WcapError(Errno.FETCHCOMPONENTS_FAILED_BAD_TZID, f"unknown tzid {wanted!r}")
        return [Block(components=[wcap.single(text)])]
    return [Block(components=[wcap.single(await asyncio.to_thread(all_timezones))])]


# --------------------------------------------------------------------------- user preferences


SERVER_PREFS = {
    "allowchangepassword": "no",
    "allowcreatecalendars": "yes",
    "allowdeletecalendars": "yes",
    "allowpublicwritablecalendars": "no",
    "validateowners": "no",
    "version": wcap.VERSION,
}
#: preferences computed from the account, which set_userprefs cannot change
FIXED_PREFS = {"cn", "mail", "icsCalendar", "icsCalendarOwned", "nswcalCALID", "uid"}


async def user_prefs(door: WcapDoor, user: User) -> list[tuple[str, str]]:
    owned = [calid_of(c, user) for c in await door.services.calendars.of(user)]
    subscribed = list(dict.fromkeys([*owned, *user.prefs.get("subscribed", [])]))
    prefs = {
        "uid": user.username,
        "cn": user.username,
        "mail": user.email or "",
        "icsCalendar": user.username,
        "nswcalCALID": user.username,
        "icsCalendarOwned": ",".join(f"{c}$" for c in owned),
        "icsSubscribed": ",".join(f"{c}$" for c in subscribed),
        "icsTimezone": "UTC",
        "preferredlanguage": "en",
        **{k: v for k, v in user.prefs.get("wcap", {}).items() if k not in FIXED_PREFS},
    }
    return [(f"X-NSCP-WCAP-PREF-{k}", v) for k, v in prefs.items()] + [
        (f"X-NSCP-WCAP-SERVER-PREF-{k}", v) for k, v in SERVER_PREFS.items()
    ]


def check_userid(call: Call) -> None:
    userid = call.get("userid")
    if userid and userid.lower() != call.me.username.lower() and not call.me.is_admin:
        raise WcapError(Errno.USERPREFS_ACCESS_DENIED, "only an administrator may read another user's preferences")


@command("get_userprefs")
async def get_userprefs(door: WcapDoor, call: Call) -> list[Block]:
    check_userid(call)
    user = call.me
    if call.get("userid") and (call.get("userid") or "").lower() != user.username.lower():
        other = await door.services.users.get_by_name(call.get("userid") or "")
        if other is None:
            raise WcapError(Errno.ACCESS_DENIED, "no such user")
        user = other
    return [Block(await user_prefs(door, user))]


@command("set_userprefs")
async def set_userprefs(door: WcapDoor, call: Call) -> list[Block]:
    check_userid(call)
    if sum(len(call.get(key) or "") for key in ("set_attrs", "add_attrs")) > MAX_PREFS:  # before any work on them
        raise WcapError(Errno.SET_USERPREFS_FAILED, f"preferences are {MAX_PREFS} bytes at most")
    prefs = dict(call.me.prefs.get("wcap", {}))
    for key in ("set_attrs", "add_attrs"):
        for item in split_list(call.get(key)):
            name, sep, value = item.partition("=")
            if not sep or name in FIXED_PREFS:
                raise WcapError(Errno.SET_USERPREFS_FAILED, f"cannot set {name!r}")
            prefs[name] = value
    for name in split_list(call.get("del_attrs")):
        prefs.pop(name.partition("=")[0], None)
    if len(json.dumps(prefs)) > MAX_PREFS:
        raise WcapError(Errno.SET_USERPREFS_FAILED, f"preferences are {MAX_PREFS} bytes at most")
    user = await door.services.users.set_pref(call.me, "wcap", prefs)
    assert user is not None
    return [Block(await user_prefs(door, user))]


# --------------------------------------------------------------------------- calendars


@command("get_calprops")
async def get_calprops(door: WcapDoor, call: Call) -> list[Block]:
    async def nothing(calendar: Calendar, block: Block) -> None:
        return None

    return await door.each_calendar(call, nothing)


@command("set_calprops")
async def set_calprops(door: WcapDoor, call: Call) -> list[Block]:
    calendar = await door.calendar(call)
    changes: dict[str, object] = {}
    for param, field_name in (("name", "name"), ("description", "description"), ("tzid", "timezone")):
        if param in call.params:
            changes[field_name] = call.params[param] or None
    if changes.get("timezone") and not valid_zone(str(changes["timezone"])):
        raise WcapError(Errno.SETCALPROPS_FAILED, "tzid is not a known time zone")
    wanted = await door.grants_of(call.params["acl"]) if "acl" in call.params else None
    try:  # the grants first: they are the more likely refusal (nothing changes then)
        if wanted is not None:
            await door.services.access.set_grants(call.me, calendar, wanted)
        updated = await door.services.calendars.update(call.me, calendar.uuid, **changes) if changes else calendar
    except Invalid as error:
        raise WcapError(Errno.SETCALPROPS_FAILED, error.message) from None
    return [Block(await door.props(call, updated))]


@command("search_calprops")
async def search_calprops(door: WcapDoor, call: Call) -> list[Block]:
    """Searches the calendars the user may see: their own and those shared with them."""
    needle = (call.get("search-string") or "").lower()
    by_name, by_calid, by_owner = flag(call.get("name")), flag(call.get("calid")), flag(call.get("primaryOwner"))
    if not (by_name or by_owner):
        by_calid = True
    option = call.get("searchOpts") or "0"
    tests = {
        "1": lambda s: s.lower().startswith(needle),
        "2": lambda s: s.lower().endswith(needle),
        "3": lambda s: s.lower() == needle,
    }
    test = tests.get(option, lambda s: needle in s.lower())
    limit = number(call, "maxResults", 200, 1, 100_000)
    blocks = []
    for calendar, owner in await visible_calendars(door, call.me):
        fields = [
            *([calid_of(calendar, owner)] if by_calid else []),
            *([calendar.name] if by_name else []),
            *([owner.username] if by_owner else []),
        ]
        if any(test(f) for f in fields):
            blocks.append(Block(await door.props(call, calendar)))
            if len(blocks) >= limit:
                break
    return blocks or [Block()]


async def visible_calendars(door: WcapDoor, user: User) -> list[tuple[Calendar, User]]:
    """The user's calendars, then those shared with them (accepted), each with its owner."""
    found = [(c, user) for c in await door.services.calendars.of(user)]
    shared = await door.services.access.shared_with(user)
    return found + [(calendar, owner) for grant, calendar, owner in shared if grant.state == State.ACTIVE]


@command("list")
async def list_calendars(door: WcapDoor, call: Call) -> list[Block]:
    check_userid(call)
    owned = [calid_of(c, call.me) for c in await door.services.calendars.of(call.me)]
    return [Block([("X-S1CS-CALPROPS-OWNED-CALENDAR", c) for c in owned])]


@command("list_subscribed")
async def list_subscribed(door: WcapDoor, call: Call) -> list[Block]:
    check_userid(call)
    seen = [calid_of(c, owner) for c, owner in await visible_calendars(door, call.me)]  # shared ones too
    for calid in call.me.prefs.get("subscribed", []):
        if calid not in seen:
            try:  # one the user may no longer see (a share taken back) is left out
                await door.calendar(call, calid)
                seen.append(calid)
            except WcapError:
                pass
    return [Block([("X-S1CS-CALPROPS-SUBSCRIBED-CALENDAR", c) for c in seen])]


async def change_subscriptions(door: WcapDoor, call: Call, subscribe: bool) -> list[Block]:
    calids = split_list(call.get("calid"))
    if not calids:
        raise WcapError(Errno.CALID_NOT_SPECIFIED, "calid is required")
    current = list(call.me.prefs.get("subscribed", []))
    for calid in calids:
        if subscribe:  # subscribing to a calendar shared with the user accepts the invitation
            named = parse_calid(calid)
            owner = named.email if named.email is not None else named.user or ""
            invited = await door.services.calendars.invitation(call.me, owner, named.slug, by_email=bool(named.email))
            if invited is not None:
                await door.services.access.answer(call.me, invited, accept=True)
        await door.calendar(call, calid)  # only calendars the user may see
        if subscribe and calid not in current:
            current.append(calid)
        elif not subscribe and calid in current:
            current.remove(calid)
    await door.services.users.set_pref(call.me, "subscribed", current)
    return [Block()]


@command("subscribe_calendars")
async def subscribe_calendars(door: WcapDoor, call: Call) -> list[Block]:
    return await change_subscriptions(door, call, True)


@command("unsubscribe_calendars")
async def unsubscribe_calendars(door: WcapDoor, call: Call) -> list[Block]:
    return await change_subscriptions(door, call, False)


@command("createcalendar")
async def createcalendar(door: WcapDoor, call: Call) -> list[Block]:
    text = call.get("calid") or call.get("name") or ""
    if not text:
        raise WcapError(Errno.CALID_NOT_SPECIFIED, "calid or name is required")
    owner, sep, slug = text.partition(":")
    if not sep:
        owner, slug = call.me.username, slugify(text)
    if owner.lower() != call.me.username.lower():
        raise WcapError(Errno.ACCESS_DENIED_TO_CALENDAR, "calendars are made in your own name")
    if not slug or slug != slugify(slug) or slug == "calendar":
        raise WcapError(Errno.ILLEGAL_CALID_NAME, f"{slug!r} is not a valid calendar name (a-z, 0-9, -)")
    wanted = await door.grants_of(call.params["acl"]) if call.get("acl") else []  # refused before it is made
    try:
        calendar = await door.services.calendars.create_at(call.me, slug, call.get("name") or slug)
    except NameTaken:
        raise WcapError(Errno.CREATECALENDAR_ALREADY_EXISTS_FAILED, f"{text} exists") from None
    if wanted:
        await door.services.access.set_grants(call.me, calendar, wanted)
    if flag(call.get("subscribe")):
        subscribed = [*call.me.prefs.get("subscribed", []), calid_of(calendar, call.me)]
        await door.services.users.set_pref(call.me, "subscribed", subscribed)
    return [Block(await door.props(call, calendar))]


@command("deletecalendar")
async def deletecalendar(door: WcapDoor, call: Call) -> list[Block]:
    if not call.get("calid"):
        raise WcapError(Errno.CALID_NOT_SPECIFIED, "calid is required")
    calendar = await door.calendar(call)
    try:
        await door.services.calendars.delete(call.me, calendar.uuid)
    except Invalid as error:
        raise WcapError(Errno.DELETECALENDAR_FAILED, error.message) from None
    calid = call.get("calid") or ""
    subscribed = [c for c in call.me.prefs.get("subscribed", []) if c != calid]
    await door.services.users.set_pref(call.me, "subscribed", subscribed)
    return [Block(await door.props(call, calendar))]


# --------------------------------------------------------------------------- reading components


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


async def fetch(
    door: WcapDoor, call: Call, found: list[CalendarObject], start: datetime | None, end: datetime | None
) -> list[str]:
    """The texts to send for these objects: masters with their exceptions (recurring=1), or
    the instances in the range (recurring=0, the WCAP default), converted to tzidout."""
    zone = zone_param(call, "tzidout")
    limit = number(call, "maxResults", 0, 0, MAX_INT) or None
    kinds = component_kinds(call)
    found = [o for o in found if o.component in kinds]
    if limit is not None:
        found = found[:limit]
    if flag(call.get("recurring")):
        texts = [o.ical for o in found]
    else:
        low = start or datetime(1900, 1, 1, tzinfo=UTC)
        high = end or max(low, datetime.now(UTC)) + EXPANSION_HORIZON
        bound = door.services.config.max_instances

        def expand() -> list[str]:
            return [instances(o.ical, low, high, bound) if o.recurring else o.ical for o in found]

        texts = await asyncio.to_thread(expand)
    if zone is not None:
        texts = await asyncio.to_thread(lambda: [recurrence.rezone(t, zone) for t in texts])
    return texts


def wanted_state(call: Call) -> bool:
    """Almanac has no pending invitations: asking only for REQUEST-NEEDS-ACTION & co finds none."""
    states = {s.upper() for s in split_list(call.get("compstate"))}
    return not states or bool(states & {"ALL", "REQUEST-NEEDSNOACTION", "REPLY-ACCEPTED", "REQUEST-COMPLETED"})


@command("fetchcomponents_by_range")
async def fetchcomponents_by_range(door: WcapDoor, call: Call) -> list[Block]:
    start, end = range_of(call)

    async def body(calendar: Calendar, block: Block) -> None:
        if not wanted_state(call):
            return
        found = await door.services.calendars.list_objects(call.me, [calendar], start=epoch(start), end=epoch(end))
        block.components += await fetch(door, call, found, start, end)

    return await door.each_calendar(call, body, Errno.FETCHBYDATERANGE_FAILED)


def stored_range(call: Call) -> tuple[str | None, str | None]:
    """dtstart/dtend as the store's ISO times (for modification and deletion times)."""
    start, end = range_of(call)
    since = formatted(start, "%Y-%m-%dT%H:%M:%S") if start else None
    until = formatted(end, "%Y-%m-%dT%H:%M:%S.999Z") if end else None
    return since, until


@command("fetchcomponents_by_lastmod")
async def fetchcomponents_by_lastmod(door: WcapDoor, call: Call) -> list[Block]:
    since, until = stored_range(call)

    async def body(calendar: Calendar, block: Block) -> None:
        found = await door.services.calendars.modified(call.me, calendar, since, until)
        block.components += [o.ical for o in found if o.component in component_kinds(call)]

    return await door.each_calendar(call, body, Errno.FETCH_BY_LAST_MODIFIED_FAILED)


@command("fetch_deletedcomponents")
async def fetch_deletedcomponents(door: WcapDoor, call: Call) -> list[Block]:
    since, until = stored_range(call)
    name = "VTODO" if (call.get("component-type") or "").lower() == "todo" else "VEVENT"

    async def body(calendar: Calendar, block: Block) -> None:
        for change in await door.services.calendars.deleted(call.me, calendar, since, until):
            block.components.append(
                wcap.single(
                    f"BEGIN:{name}\r\nUID:{change.uid}\r\nX-NSCP-DELETED-AT:{stamp(change.changed_at)}\r\nEND:{name}\r\n"
                )
            )

    return await door.each_calendar(call, body, Errno.FETCH_DELETEDCOMPONENTS_FAILED)


async def by_id(door: WcapDoor, call: Call, kind: str) -> list[Block]:
    uids = split_list(call.get("uid"))
    rids = split_list(call.get("rid"))
    if not uids:
        raise WcapError(Errno.BAD_ARGUMENTS, "uid is required")

    async def body(calendar: Calendar, block: Block) -> None:
        for index, uid in enumerate(uids):
            found = await door.services.calendars.find_object(call.me, calendar, uid=uid)
            if found is None or found.component != kind:
                block.errno = Errno.COMPONENT_NOT_FOUND
                continue
            rid = rids[index] if index < len(rids) else "0"
            moment = parse_time(rid, "rid")
            if moment is None or flag(call.get("recurring")):
                block.components.append(found.ical)
            else:
                text = await asyncio.to_thread(instances, found.ical, moment, moment + timedelta(seconds=1), 1)
                if "RECURRENCE-ID" not in text:
                    block.errno = Errno.COMPONENT_NOT_FOUND
                    continue
                block.components.append(text)
        zone = zone_param(call, "tzidout")
        if zone is not None:
            block.components = await asyncio.to_thread(lambda: [recurrence.rezone(t, zone) for t in block.components])

    return await door.each_calendar(call, body)


@command("fetchevents_by_id")
async def fetchevents_by_id(door: WcapDoor, call: Call) -> list[Block]:
    return await by_id(door, call, "VEVENT")


@command("fetchtodos_by_id")
async def fetchtodos_by_id(door: WcapDoor, call: Call) -> list[Block]:
    return await by_id(door, call, "VTODO")


@command("export")
async def export(door: WcapDoor, call: Call) -> list[Block]:
    content = call.get("content-out") or "text/calendar"
    if content not in wcap.FORMATS:
        raise WcapError(Errno.NO_SUCH_FORMAT, "content-out must be text/calendar or text/xml")
    call.fmt = content
    start, end = range_of(call)
    extension = "xml" if content == "text/xml" else "ics"
    call.extra["Content-Disposition"] = f'attachment; filename="export.{extension}"'

    async def body(calendar: Calendar, block: Block) -> None:
        found = await door.services.calendars.list_objects(call.me, [calendar], start=epoch(start), end=epoch(end))
        block.components += [o.ical for o in found]

    return await door.each_calendar(call, body)


# --------------------------------------------------------------------------- writing components


async def store(door: WcapDoor, call: Call, kind: str, failed: Errno) -> list[Block]:
    calendar = await door.calendar(call)
    uid = call.get("uid") or str(uuid.uuid4())
    storetype = call.get("storetype") or "0"
    existing = await door.services.calendars.find_object(call.me, calendar, uid=uid)
    if existing is not None and existing.component != kind:
        raise WcapError(failed, f"{uid} is not a {kind}")
    if storetype == "1" and existing is not None:
        raise WcapError(Errno.CREATE_EXISTS, f"{uid} exists")
    if storetype == "2" and existing is None:
        raise WcapError(Errno.MODIFY_NO_EVENT, f"{uid} does not exist")
    zone = zone_param(call, "tzid")
    rid = parse_time(call.get("rid"), "rid")
    mod = call.get("mod") or "4"

    def edited() -> Resource:
        """The stored (or a new) component with the call's changes, checked (in a thread)."""
        if existing is not None:
            calendar_data = parse_resource(existing.ical)
        else:
            calendar_data = ICalendar()
            fresh = Todo() if kind == "VTODO" else Event()
            fresh.add("UID", uid)
            calendar_data.add_component(fresh)
        target = main_component(calendar_data)
        if rid is not None and mod == "1":
            try:
                target = recurrence.override_instance(calendar_data, rid)
            except ValueError as error:
                raise WcapError(failed, str(error)) from None
        assert target is not None
        wcap.apply_store(target, call.params, zone)
        for prop in ("DTSTAMP", "LAST-MODIFIED"):
            target.pop(prop, None)
            target.add(prop, datetime.now(UTC).replace(microsecond=0))
        if "CREATED" not in target:
            target.add("CREATED", datetime.now(UTC).replace(microsecond=0))
        problems = component_problems(target)
        if problems:
            raise WcapError(failed, "; ".join(problems))
        return resource_from_calendar(calendar_data, door.services.config.max_instances)

    resource = await asyncio.to_thread(edited)
    try:
        saved, _ = await door.services.calendars.put(
            call.me, calendar, resource, href=existing.href if existing else None,
            if_etag=existing.etag if existing else None, create_only=existing is None,
        )  # fmt: skip
    except (Invalid, PreconditionFailed) as error:
        raise WcapError(failed, error.message) from None
    block = Block(await door.props(call, calendar))
    if flag(call.get("fetch")):
        block.components.append(recurrence.one_component(saved.ical, rid if mod == "1" else None))
    else:
        block.components.append(wcap.status_component(kind, uid, "2.0;Success.  Store successful."))
    return [block]


@command("storeevents")
async def storeevents(door: WcapDoor, call: Call) -> list[Block]:
    return await store(door, call, "VEVENT", Errno.STOREEVENTS_FAILED)


@command("storetodos")
async def storetodos(door: WcapDoor, call: Call) -> list[Block]:
    return await store(door, call, "VTODO", Errno.STORETODOS_FAILED)


async def delete_by_id(door: WcapDoor, call: Call, kind: str, failed: Errno) -> list[Block]:
    calendar = await door.calendar(call)
    uids = split_list(call.get("uid"))
    rids = split_list(call.get("rid"))
    mods = split_list(call.get("mod")) or ["4"]
    if not uids:
        raise WcapError(Errno.BAD_ARGUMENTS, "uid is required")
    found = {uid: await door.services.calendars.find_object(call.me, calendar, uid=uid) for uid in uids}
    missing = [uid for uid, obj in found.items() if obj is None or obj.component != kind]
    if missing:
        raise WcapError(Errno.COMPONENT_NOT_FOUND, f"no {kind} with uid {', '.join(missing)}")
    block = Block(await door.props(call, calendar))
    for index, uid in enumerate(uids):
        obj = found[uid]
        assert obj is not None
        rid = parse_time(rids[index] if index < len(rids) else "0", "rid")
        mod = mods[index] if index < len(mods) else mods[-1]
        if rid is None or mod == "4":
            await door.services.calendars.delete_object(call.me, calendar, obj.href)
        else:
            await remove_instance(door, call, calendar, obj, rid, failed)
            found[uid] = await door.services.calendars.find_object(call.me, calendar, uid=uid)
        block.components.append(wcap.status_component(kind, uid, "2.0;Success.  Delete successful."))
    return [block]


async def remove_instance(
    door: WcapDoor, call: Call, calendar: Calendar, obj: CalendarObject, rid: datetime, failed: Errno
) -> None:
    """Cancel one occurrence: an EXDATE on the master and no override for it."""

    def cancelled() -> Resource:
        data = parse_resource(obj.ical)
        recurrence.cancel_instance(data, rid)
        return resource_from_calendar(data, door.services.config.max_instances)

    try:
        resource = await asyncio.to_thread(cancelled)
    except ValueError as error:
        raise WcapError(failed, str(error)) from None
    await door.services.calendars.put(call.me, calendar, resource, href=obj.href, if_etag=obj.etag)


@command("deleteevents_by_id")
async def deleteevents_by_id(door: WcapDoor, call: Call) -> list[Block]:
    return await delete_by_id(door, call, "VEVENT", Errno.DELETE_EVENTS_BY_ID_FAILED)


@command("deletetodos_by_id")
async def deletetodos_by_id(door: WcapDoor, call: Call) -> list[Block]:
    return await delete_by_id(door, call, "VTODO", Errno.DELETE_TODOS_BY_ID_FAILED)


@command("deletecomponents_by_range")
async def deletecomponents_by_range(door: WcapDoor, call: Call) -> list[Block]:
    start, end = range_of(call, Errno.DELETECOMPONENTS_BY_RANGE_FAILED)
    kinds = component_kinds(call)

    async def body(calendar: Calendar, block: Block) -> None:
        found = await door.services.calendars.list_objects(call.me, [calendar], start=epoch(start), end=epoch(end))
        for obj in found:
            if obj.component in kinds:
                await door.services.calendars.delete_object(call.me, calendar, obj.href)

    return await door.each_calendar(call, body, Errno.DELETECOMPONENTS_BY_RANGE_FAILED)


@command("get_freebusy")
async def get_freebusy(door: WcapDoor, call: Call) -> list[Block]:
    try:
        start, end = range_of(call)
    except WcapError:
        raise WcapError(Errno.GET_FREEBUSY_FAILED, "bad dtstart or dtend") from None
    start = start or datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    zone = zone_param(call, "tzid")  # the asker's wall clock, for floating times and dates
    try:
        end = end or start + timedelta(days=number(call, "duration", 60, 1, 3660))
    except OverflowError:
        raise WcapError(Errno.BAD_ARGUMENTS, "dtstart plus duration is past the year 9999") from None

    async def body(calendar: Calendar, block: Block) -> None:
        busy = await door.services.calendars.busy(call.me, [calendar], start, end, zone)
        lines = [f"BEGIN:VFREEBUSY\r\nDTSTART:{wcap.format_time(start)}\r\nDTEND:{wcap.format_time(end)}\r\n"]
        lines += [f"FREEBUSY;FBTYPE={kind}:{wcap.format_time(a)}/{wcap.format_time(b)}\r\n" for a, b, kind in busy]
        block.components.append(wcap.single("".join(lines) + "END:VFREEBUSY\r\n"))

    blocks = await door.each_calendar(call, body, Errno.GET_FREEBUSY_FAILED)
    for block in blocks:
        if block.errno not in (0, Errno.ACCESS_DENIED_TO_CALENDAR, Errno.CALENDAR_DOES_NOT_EXIST):
            block.errno = Errno.GET_FREEBUSY_FAILED
    return blocks


# --------------------------------------------------------------------------- import


@command("import")
async def import_file(door: WcapDoor, call: Call) -> list[Block]:
    bad = Errno.BAD_IMPORT_ARGUMENTS
    if call.request.method != "POST":
        raise WcapError(bad, "import.wcap takes the file in a multipart/form-data POST")
    if (call.get("content-in") or "text/calendar") != "text/calendar":
        raise WcapError(bad, "content-in must be text/calendar")
    start, end = range_of(call, bad)
    if call.upload is None or not call.upload.size:
        raise WcapError(bad, "no file: send it in the multipart field 'file'")
    calendar = await door.calendar(call)
    try:
        job, result = await door.services.imports.run(
            call.me,
            ImportRequest(
                door="wcap", calendar=calendar, format="ics", filename=call.filename, start=epoch(start), end=epoch(end)
            ),
            call.upload,
        )
    except (Invalid, BadEncoding, TooLarge) as error:
        raise WcapError(bad, error.message) from None
    block = Block(await door.props(call, calendar))
    block.properties += [
        ("X-ALMANAC-IMPORT-ID", str(job.id)),
        ("X-ALMANAC-IMPORT-CREATED", str(job.created)),
        ("X-ALMANAC-IMPORT-UPDATED", str(job.updated)),
        ("X-ALMANAC-IMPORT-UNCHANGED", str(job.unchanged)),
        ("X-ALMANAC-IMPORT-DISCARDED", str(result.discarded)),
    ]
    return [block]


def add_routes(app: web.Application, services: Services) -> WcapDoor:
    """``/<command>.wcap`` and ``/wcap/<command>.wcap``, GET and POST (trailing blanks tolerated:
    the seed's HTML form puts line breaks and spaces into its action URL)."""
    door = WcapDoor(services)
    for prefix in ("", WCAP):
        for method in ("GET", "POST"):
            app.router.add_route(method, prefix + r"/{command:[A-Za-z_]+}.wcap{blank:\s*}", door.handle)
    return door
