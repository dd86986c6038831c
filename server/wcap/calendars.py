"""WCAP calendar commands: their properties and access control entries, listing, searching,
subscribing, creating and deleting calendars."""

from __future__ import annotations

from protocol.events import valid_zone
from protocol.wcap import Block, Errno, WcapError, flag, parse_calid, split_list
from server.services.access import State
from server.services.calendars import slugify
from server.services.errors import Invalid, NameTaken
from server.urls import calid_of
from server.wcap.door import Call, WcapDoor, check_userid, command, number
from storage.model import Calendar, User


@command("get_calprops")
async def get_calprops(door: WcapDoor, call: Call) -> list[Block]:
    """Calendars' properties; ``invitecount=1`` adds how many invitations to the user are not
    answered yet (on their own calendars)."""
    pending = len(await door.services.scheduling.pending(call.me)) if flag(call.get("invitecount")) else None

    async def count(calendar: Calendar, block: Block) -> None:
        if pending is not None and calendar.owner_id == call.me.id:
            block.properties.append(("X-S1CS-CALPROPS-INVITATION-COUNT", str(pending)))

    return await door.each_calendar(call, count)


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
