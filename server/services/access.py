"""Who may do what with a calendar: its owner, and the users its grants name.

One check for every door (issue 16): a user's level on a calendar is ``OWNER`` for its owner,
else the highest level of the active grants that name the user or every signed-in user, else
``NONE``. Sharing, answering an invitation, leaving and revoking are the rules below.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

from server.services.errors import Forbidden, Invalid, NotFound
from storage.base import Store
from storage.model import Calendar, Grant, User


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
        of access; an admin may give up to admin. Sharing again changes the level: an accepted
        grant stays accepted, any other is an invitation again."""
        await self.require(by, calendar, Level.ADMIN)
        level = Level.grantable(label)
        if grantee is not None and grantee.id == calendar.owner_id:
            raise Invalid("the owner has every right to their calendar already", field="user")
        state = State.ACTIVE
        if grantee is not None:
            current = next((g for g in await self.store.grants_on(calendar.id, grantee.id) if g.grantee_id), None)
            state = State.ACTIVE if current is not None and current.state == State.ACTIVE else State.INVITED
        return await self.store.put_grant(calendar.id, grantee.id if grantee else None, level.label, state, by.id)

    async def answer(self, user: User, grant: Grant, accept: bool) -> Grant:
        """Accept or decline an invitation (a declined one may be accepted later)."""
        if grant.grantee_id != user.id or grant.state not in (State.INVITED, State.REFUSED):
            raise NotFound("invitation not found", kind="invitation")
        return await self._set(grant, State.ACTIVE if accept else State.REFUSED)

    async def leave(self, user: User, grant: Grant) -> Grant:
        if grant.grantee_id != user.id or grant.state != State.ACTIVE:
            raise NotFound("membership not found", kind="membership")
        return await self._set(grant, State.LEFT)

    async def revoke(self, by: User, calendar: Calendar, grant: Grant) -> Grant:
        """Take a grant back (the user is kicked; a grant to everyone stops)."""
        await self.require(by, calendar, Level.ADMIN)
        if grant.calendar_id != calendar.id:
            raise NotFound("grant not found", kind="grant")
        return await self._set(grant, State.KICKED)

    async def shared_with(self, user: User) -> list[tuple[Grant, Calendar]]:
        """The calendars shared with a user: accepted ones and invitations."""
        return await self.store.grants_to(user.id, [State.INVITED, State.ACTIVE])

    async def _set(self, grant: Grant, state: State) -> Grant:
        changed = await self.store.set_grant_state(grant.id, state)
        if changed is None:
            raise NotFound("grant not found", kind="grant")
        return changed
