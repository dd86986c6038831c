"""WCAP session commands: version, login and logout, the server's time and time zones, a user's
preferences."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from protocol import wcap
from protocol.ical.resources import all_timezones, timezone_text
from protocol.ical.values import formatted
from protocol.wcap import Block, Errno, WcapError, split_list
from server.http import REQUEST_USER, client_address
from server.urls import calid_of
from server.wcap.door import SESSION_KIND, Call, WcapDoor, check_userid, command, zone_param
from storage.model import User

#: a user's WCAP preferences take this many bytes of JSON at most
MAX_PREFS = 64 * 1024


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
