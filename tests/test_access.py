"""Issue 16's one access check (services/access.py), on each store: levels from grants, the
invitation's states, who may share and revoke. (What each door makes of it: test_sharing.py and
test_access_matrix.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from server.config import Config
from server.services import Services, build
from server.services.access import Level, State
from server.services.errors import Forbidden, Invalid, NotFound


@pytest.fixture
async def services(config: Config) -> AsyncIterator[Services]:
    built = build(config)
    await built.store.open()
    yield built
    await built.store.close()


async def test_levels_come_from_active_grants_only(services: Services) -> None:
    alice, bob, carol = [await services.users.create(name, "correct horse") for name in ("alice", "bob", "carol")]
    [calendar] = await services.calendars.of(alice)
    access = services.access
    assert await access.level(alice, calendar) == Level.OWNER
    assert await access.level(bob, calendar) == Level.NONE
    invitation = await access.share(alice, calendar, bob, "read")
    assert invitation.state == State.INVITED and await access.level(bob, calendar) == Level.NONE  # not yet
    assert [(c.id, owner.id) for _, c, owner in await access.shared_with(bob)] == [(calendar.id, alice.id)]
    accepted = await access.answer(bob, invitation, accept=True)
    assert accepted.state == State.ACTIVE and await access.level(bob, calendar) == Level.READ
    await access.share(alice, calendar, bob, "read-write")  # a new level keeps the acceptance
    assert await access.level(bob, calendar) == Level.READ_WRITE
    await access.share(alice, calendar, None, "freebusy")  # every signed-in user, at once
    assert await access.level(carol, calendar) == Level.FREEBUSY
    assert await access.level(bob, calendar) == Level.READ_WRITE  # the higher of the two
    left = await access.leave(bob, accepted)
    assert left.state == State.LEFT and await access.level(bob, calendar) == Level.FREEBUSY


async def test_only_admins_share_and_nobody_is_told_of_what_they_cannot_see(services: Services) -> None:
    alice, bob, carol = [await services.users.create(name, "correct horse") for name in ("alice", "bob", "carol")]
    [calendar] = await services.calendars.of(alice)
    access = services.access
    with pytest.raises(NotFound):  # carol has no access: the calendar is not there for her
        await access.share(carol, calendar, bob, "read")
    grant = await access.share(alice, calendar, bob, "read")
    await access.answer(bob, grant, accept=True)
    with pytest.raises(Forbidden):  # bob sees it, but may not share it
        await access.share(bob, calendar, carol, "read")
    with pytest.raises(Forbidden):
        await access.require(bob, calendar, Level.READ_WRITE)
    await access.share(alice, calendar, bob, "admin")
    assert (await access.share(bob, calendar, carol, "read")).state == State.INVITED  # an admin may
    for label in ("owner", "none", "write"):
        with pytest.raises(Invalid):
            await access.share(alice, calendar, carol, label)
    with pytest.raises(Invalid):
        await access.share(bob, calendar, alice, "read")  # the owner needs no grant
    with pytest.raises(NotFound):
        await access.answer(carol, grant, accept=True)  # not her invitation
    kicked = await access.revoke(alice, calendar, grant)
    assert kicked.state == State.KICKED and await access.level(bob, calendar) == Level.NONE
    with pytest.raises(NotFound):
        await access.answer(bob, kicked, accept=True)  # a kicked member cannot let himself back in
