"""Who may do what with a calendar: its owner, and the users its grants name.

One check for every door (issue 16): a user's level on a calendar is ``OWNER`` for its owner,
else the highest level of the active grants that name the user or every signed-in user, else
``NONE``. Sharing, answering an invitation, leaving and revoking are the rules below.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any

from server.services.errors import Forbidden, Invalid, NotFound
from storage.base import Store
from storage.model import Calendar, Grant, GrantChange, User


class Level(IntEnum):
    """What a user may do with a calendar; each level allows what the ones below it do."""

    NONE = 0
    FREEBUSY = 1  #: busy times only
    READ = 2
    READ_WRITE = 3  #: create, change and delete objects
    ADMIN = 4  #: also rename the calendar and manage its grants
    OWNER = 5

    @property
    def label(self) -> str:
        """As grants store it (``read-write``)."""
        return self.name.lower().replace("_", "-")

    @classmethod
    def grantable(cls, label: str) -> Level:
        """The level a grant may give, from its label; Invalid for any other."""
        level = next((level for level in cls if level.label == label), None)
        if level is None or level in (cls.NONE, cls.OWNER):
            raise Invalid("a grant's level is freebusy, read, read-write or admin", field="level")
        return level


class State(StrEnum):
    """Where a grant to a user is (Timeslot's membership states)."""

    INVITED = "invited"
    ACTIVE = "active"
    REFUSED = "refused"
    LEFT = "left"
    KICKED = "kicked"


#: the states in which a grant to a user still counts (an invitation, even declined, may be accepted)
LIVE = frozenset({State.INVITED, State.ACTIVE, State.REFUSED})


@dataclass(slots=True, frozen=True)
class Share:
    """One change to a calendar's grants: a user (None: every signed-in user) given a level, or
    (``level`` None) their grant taken back."""

    grantee_id: int | None
    level: Level | None
    #: given as a member of the group: the level follows the group's flags; otherwise it was
    #: chosen explicitly and keeps it whatever the flags
    as_member: bool = False


class AccessService:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def level(self, user: User, calendar: Calendar) -> Level:
        if calendar.owner_id == user.id:
            return Level.OWNER
        grants = await self.store.grants_on(calendar.id, user.id)
        return max((Level.grantable(g.level) for g in grants if g.state == State.ACTIVE), default=Level.NONE)

    async def require(self, user: User, calendar: Calendar, needed: Level) -> Level:
        """The user's level, if it is at least ``needed``. A calendar the user may not see at
        all is NotFound (its existence is not told); one seen but not to be changed, Forbidden."""
        level = await self.level(user, calendar)
        if level == Level.NONE:
            raise NotFound("calendar not found", kind="calendar")
        if level < needed:
            raise Forbidden(f"this needs {needed.label} access to the calendar; you have {level.label}")
        return level

    async def share(self, by: User, calendar: Calendar, grantee: User | None, label: str) -> Grant:
        """Give a user (an invitation, until accepted) or every signed-in user (at once) a level
        of access, explicitly (it keeps that level whatever the group's flags); see ``apply``."""
        [grant] = await self.apply(by, calendar, [Share(grantee.id if grantee else None, Level.grantable(label))])
        return grant

    async def apply(self, by: User, calendar: Calendar, shares: Sequence[Share]) -> list[Grant]:
        """Change a calendar's grants, in one transaction once every change is allowed (refused
        as a whole, Forbidden or Invalid, before anything changes); the grants as they are then.

        Owners and admins share (an admin up to admin); only the owner changes or takes back
        another admin's grant. Sharing again changes the level: an accepted grant stays
        accepted, any other is an invitation again. A new grant to a user is named
        ``owner-calendar`` in their home (made unique there). Taking back a grant that gives
        nothing is nothing to do."""
        level = await self.require(by, calendar, Level.ADMIN)
        current = await self._current(calendar)
        slug = await self._slug(calendar)
        changes = []
        for share in shares:
            if share.grantee_id == calendar.owner_id:
                raise Invalid("the owner has every right to their calendar already", field="user")
            held = current.get(share.grantee_id)
            if share.level is None:
                if held is not None and held.state in LIVE:
                    changes.append(GrantChange(held.grantee_id, held.level, State.KICKED, by.id))
                continue
            state = State.ACTIVE if share.grantee_id is None or (held and held.state == State.ACTIVE) else State.INVITED
            props = None  # a new invitation shows again where the grantee had put the old one away
            if held is not None and state == State.INVITED and "dismissed" in held.props:
                props = {k: v for k, v in held.props.items() if k != "dismissed"}
            changes.append(
                GrantChange(share.grantee_id, share.level.label, state, by.id, share.as_member, slug, props)
            )  # fmt: skip
        return await self._write(by, level, current, calendar, changes)

    async def follow_flags(self, by: User, calendar: Calendar, changes: dict[str, Any]) -> None:
        """Set a group's flags (``calendar.props`` as they are to be) and its other ``changes``
        in the transaction that makes its members' grants follow them: those given as members
        take the members' level, the grant to everyone reads while the group is public. Grants
        given at an explicit level keep it."""
        level = await self.require(by, calendar, Level.ADMIN)
        current = await self._current(calendar)
        member = self.member_level(calendar).label
        grants = [
            GrantChange(g.grantee_id, member, g.state, by.id, follows_group=True)
            for g in current.values()
            if g.grantee_id is not None and g.follows_group and g.state in LIVE and g.level != member
        ]
        everyone = current.get(None)
        if calendar.props.get("public"):  # every signed-in user reads (unless given more explicitly)
            given = Level.grantable(everyone.level) if everyone and everyone.state == State.ACTIVE else Level.NONE
            if given < Level.READ or (everyone and everyone.follows_group and given != Level.READ):
                grants.append(GrantChange(None, Level.READ.label, State.ACTIVE, by.id, follows_group=True))
        elif everyone is not None and everyone.follows_group and everyone.state == State.ACTIVE:
            grants.append(GrantChange(None, everyone.level, State.KICKED, by.id))
        await self._write(by, level, current, calendar, grants, {**changes, "props": calendar.props})

    async def _current(self, calendar: Calendar) -> dict[int | None, Grant]:
        """A calendar's grants by grantee (None: every signed-in user)."""
        return {g.grantee_id: g for g in await self.store.grants_of(calendar.id)}

    async def _slug(self, calendar: Calendar) -> str:
        """What a new grant of the calendar is called in a grantee's home: ``owner-calendar``."""
        owner = await self.store.get_user(calendar.owner_id)
        if owner is None:  # deleted meanwhile, and its calendars with it
            raise NotFound("calendar not found", kind="calendar")
        return re.sub(r"[^a-z0-9]+", "-", f"{owner.username}-{calendar.slug}".lower()).strip("-")[:60]

    async def _write(
        self,
        by: User,
        level: Level,
        current: dict[int | None, Grant],
        calendar: Calendar,
        changes: list[GrantChange],
        calendar_changes: dict[str, Any] | None = None,
    ) -> list[Grant]:
        """Write the changes in one transaction, unless one changes another admin's grant and
        ``by`` (at ``level``) is not the owner: then nothing, Forbidden."""
        for change in changes:
            held = current.get(change.grantee_id)
            if (
                level < Level.OWNER
                and held is not None
                and held.level == Level.ADMIN.label
                and held.state in LIVE
                and held.grantee_id != by.id
                and (held.level, held.state, held.follows_group) != (change.level, change.state, change.follows_group)
            ):
                raise Forbidden("only the owner may change an admin's access")
        if not changes and not calendar_changes:
            return []
        return await self.store.put_grants(calendar.id, changes, calendar_changes)

    async def set_grants(self, by: User, calendar: Calendar, wanted: list[tuple[User | None, Level]]) -> None:
        """Make a calendar's grants these (a whole access control list): each user (None:
        everyone) shared with at their level, every other grant taken back; all or nothing."""
        keep = {grantee.id if grantee else None for grantee, _ in wanted}
        gone = [g.grantee_id for g in await self.store.grants_of(calendar.id) if g.grantee_id not in keep]
        await self.apply(
            by, calendar, [*(Share(g.id if g else None, level) for g, level in wanted), *(Share(g, None) for g in gone)]
        )

    async def grant_to(self, user: User, calendar: Calendar) -> Grant | None:
        """The grant of a calendar that names this user, in whatever state."""
        return next((g for g in await self.store.grants_on(calendar.id, user.id) if g.grantee_id == user.id), None)

    async def grants(self, by: User, calendar: Calendar) -> list[Grant]:
        """A calendar's grants, for its owner and admins (who manage them)."""
        await self.require(by, calendar, Level.ADMIN)
        return await self.store.grants_of(calendar.id)

    async def grant(self, by: User, calendar: Calendar, grant_id: int) -> Grant:
        """One of a calendar's grants, for its owner and admins."""
        await self.require(by, calendar, Level.ADMIN)
        found = await self.store.get_grant(grant_id)
        if found is None or found.calendar_id != calendar.id:
            raise NotFound("grant not found", kind="grant")
        return found

    async def set_props(self, user: User, grant: Grant, props: dict[str, object]) -> Grant:
        """The grantee's own settings of a calendar shared with them (its colour)."""
        if grant.grantee_id != user.id:
            raise NotFound("membership not found", kind="membership")
        return await self._keep_props(grant, {**grant.props, **props})

    async def set_view(self, user: User, calendar: Calendar, settings: dict[str, object]) -> Grant:
        """The user's own name and colour of a calendar shared with them (None: the calendar's)."""
        grant = await self.grant_to(user, calendar)
        if grant is None or grant.state != State.ACTIVE:
            raise NotFound("membership not found", kind="membership")
        return await self._keep_props(grant, {k: v for k, v in {**grant.props, **settings}.items() if v is not None})

    async def _keep_props(self, grant: Grant, props: dict[str, object]) -> Grant:
        changed = await self.store.set_grant_props(grant.id, props)
        if changed is None:  # gone meanwhile, with its calendar
            raise NotFound("membership not found", kind="membership")
        return changed

    async def answer(self, user: User, grant: Grant, accept: bool) -> Grant:
        """Accept or decline an invitation (a declined one may be accepted later)."""
        if grant.grantee_id != user.id or grant.state not in (State.INVITED, State.REFUSED):
            raise NotFound("invitation not found", kind="invitation")
        return await self._set(grant, State.ACTIVE if accept else State.REFUSED)

    async def invitation(self, user: User, calendar_uuid: str) -> tuple[Grant, Calendar]:
        """The user's grant (an invitation, or one answered) on the calendar with this uuid."""
        calendar = await self.store.get_calendar_by_uuid(calendar_uuid)
        grant = await self.grant_to(user, calendar) if calendar else None
        if calendar is None or grant is None or grant.state in (State.KICKED, State.LEFT):
            raise NotFound("invitation not found", kind="invitation")
        return grant, calendar

    async def leave(self, user: User, grant: Grant) -> Grant:
        if grant.grantee_id != user.id or grant.state != State.ACTIVE:
            raise NotFound("membership not found", kind="membership")
        return await self._set(grant, State.LEFT)

    async def revoke(self, by: User, calendar: Calendar, grant: Grant) -> Grant:
        """Take a grant back (the user is kicked; a grant to everyone stops); see ``apply``."""
        if grant.calendar_id != calendar.id:
            raise NotFound("grant not found", kind="grant")
        taken = await self.apply(by, calendar, [Share(grant.grantee_id, None)])
        return taken[0] if taken else grant

    async def grantees(self, by: User, calendar: Calendar) -> list[tuple[Grant, User | None]]:
        """A calendar's grants with their grantees (None: every signed-in user), for its owner
        and admins."""
        return await self._with_grantees(await self.grants(by, calendar))

    async def _with_grantees(self, grants: list[Grant]) -> list[tuple[Grant, User | None]]:
        found: list[tuple[Grant, User | None]] = []
        for grant in grants:
            if grant.grantee_id is None:
                found.append((grant, None))
            elif grantee := await self.store.get_user(grant.grantee_id):  # one deleted meanwhile is left out
                found.append((grant, grantee))
        return found

    async def active_grants(self, by: User, calendar: Calendar) -> list[tuple[Grant, User | None]]:
        """The accepted ones of ``grantees``."""
        return [(g, u) for g, u in await self.grantees(by, calendar) if g.state == State.ACTIVE]

    async def leave_calendar(self, user: User, calendar: Calendar) -> Grant:
        """Leave a calendar shared with the user."""
        grant = await self.grant_to(user, calendar)
        if grant is None:
            raise NotFound("membership not found", kind="membership")
        return await self.leave(user, grant)

    # a calendar as a group (Timeslot's members) -------------------------------------------

    @staticmethod
    def member_level(calendar: Calendar) -> Level:
        """What a member of a group gets: admin when members may invite, read-write when they
        may post, read otherwise."""
        if calendar.props.get("membersCanInvite"):
            return Level.ADMIN
        return Level.READ_WRITE if calendar.props.get("membersCanPost") else Level.READ

    async def members(self, by: User, calendar: Calendar) -> list[tuple[Grant, User]]:
        """The users a calendar is shared with (invited, active, refused, left, kicked), for
        anyone who may see the calendar."""
        await self.require(by, calendar, Level.FREEBUSY)
        return [(g, u) for g, u in await self._with_grantees(await self.store.grants_of(calendar.id)) if u]

    async def invite(self, by: User, calendar: Calendar, users: list[User]) -> list[Grant]:
        """Invite users to a group as members: at the members' level, which follows the group's flags."""
        level = self.member_level(calendar)
        return await self.apply(by, calendar, [Share(user.id, level, as_member=True) for user in users])

    async def directory(self, user: User) -> list[User]:
        """The users a user may find (principal search): themself and those they share a
        calendar with either way (invited or accepted). Others are shared with by their exact
        name or e-mail address."""
        return [
            user,
            *(u for u in await self.store.related_users(user.id, [State.INVITED, State.ACTIVE]) if u.id != user.id),
        ]

    async def shared_with(self, user: User) -> list[tuple[Grant, Calendar, User]]:
        """The calendars shared with a user, accepted ones and invitations, each with its grant
        and its owner."""
        found = []
        for grant, calendar in await self.store.grants_to(user.id, [State.INVITED, State.ACTIVE]):
            owner = await self.store.get_user(calendar.owner_id)
            if owner is not None:
                found.append((grant, calendar, owner))
        return found

    async def held(self, user: User) -> list[tuple[Grant, Calendar]]:
        """Every grant to the user, in whatever state, with its calendar."""
        return await self.store.grants_to(user.id, list(State))

    async def _set(self, grant: Grant, state: State) -> Grant:
        changed = await self.store.set_grant_state(grant.id, state)
        if changed is None:
            raise NotFound("grant not found", kind="grant")
        return changed
