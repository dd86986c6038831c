"""Issue 16's one access check (services/access.py), on each store: levels from grants, the
invitation's states, who may share and revoke. (What each door makes of it: test_sharing.py and
test_access_matrix.py.)"""

from __future__ import annotations

import pytest

from server.services import Services
from server.services.access import Level, State
from server.services.errors import Forbidden, Invalid, NotFound


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


async def test_only_the_owner_changes_an_admins_grant(services: Services) -> None:
    """Issue 26.1: one rule on every path that changes grants (share, invite, a whole list,
    revoke, a group's flags): an admin may change everyone's grant but another admin's (their
    own too); the owner may change anyone's. A refusal changes nothing."""
    alice, bob, carol, dave, erin = [
        await services.users.create(name, "correct horse") for name in ("alice", "bob", "carol", "dave", "erin")
    ]
    access = services.access
    calendar = await services.calendars.create(alice, "Team", members_can_invite=True)
    for member in (bob, dave):  # admins as members of the group
        await access.answer(member, (await access.invite(alice, calendar, [member]))[0], accept=True)
    await access.answer(carol, await access.share(alice, calendar, carol, "admin"), accept=True)  # explicitly
    await access.answer(erin, await access.share(bob, calendar, erin, "read"), accept=True)
    before = await services.store.grants_of(calendar.id)
    carol_grant = await access.grant_to(carol, calendar)
    assert carol_grant is not None
    refusals = {
        "share": lambda: access.share(bob, calendar, carol, "freebusy"),
        "invite as a member": lambda: access.invite(bob, calendar, [carol]),
        "a whole list": lambda: access.set_grants(bob, calendar, [(erin, Level.READ), (dave, Level.ADMIN)]),
        "revoke": lambda: access.revoke(bob, calendar, carol_grant),
        "a flag": lambda: services.calendars.update(bob, calendar.uuid, members_can_invite=False),  # dave's
    }
    for path, attempt in refusals.items():
        with pytest.raises(Forbidden, match="only the owner"):
            await attempt()
        assert await services.store.grants_of(calendar.id) == before, path
        assert (await services.store.get_calendar(calendar.id)).props == calendar.props, path  # type: ignore[union-attr]
    # an admin changes the others' grants and their own; the owner anyone's
    await access.share(bob, calendar, erin, "read-write")
    assert await access.level(erin, calendar) == Level.READ_WRITE
    await access.share(bob, calendar, bob, "read")
    assert await access.level(bob, calendar) == Level.READ
    await access.share(alice, calendar, carol, "freebusy")
    await services.calendars.update(alice, calendar.uuid, members_can_invite=False)
    assert [await access.level(u, calendar) for u in (carol, dave)] == [Level.FREEBUSY, Level.READ]


async def test_a_group_flag_never_widens_an_explicit_grant(services: Services) -> None:
    """Issue 26.2: grants given as members follow the group's flags both ways; a grant given at
    a level explicitly keeps it whichever way a flag changes; the public flag gives every
    signed-in user read and takes back only what it gave."""
    alice, bob, carol, dave = [
        await services.users.create(name, "correct horse") for name in ("alice", "bob", "carol", "dave")
    ]
    access = services.access
    calendar = await services.calendars.create(alice, "Team")
    await access.answer(bob, (await access.invite(alice, calendar, [bob]))[0], accept=True)  # a member
    await access.answer(carol, await access.share(alice, calendar, carol, "freebusy"), accept=True)
    await access.answer(dave, await access.share(alice, calendar, dave, "read-write"), accept=True)
    expected = {
        "members_can_post": (Level.READ_WRITE, Level.FREEBUSY, Level.READ_WRITE),
        "members_can_invite": (Level.ADMIN, Level.FREEBUSY, Level.READ_WRITE),
    }
    for flag, levels in expected.items():
        for on in (True, False):
            await services.calendars.update(alice, calendar.uuid, **{flag: on})
            got = tuple([await access.level(user, calendar) for user in (bob, carol, dave)])
            assert got == (levels if on else (Level.READ, Level.FREEBUSY, Level.READ_WRITE)), (flag, on)
    eve = await services.users.create("eve", "correct horse")
    await services.calendars.update(alice, calendar.uuid, public=True)
    assert [await access.level(u, calendar) for u in (eve, carol)] == [Level.READ, Level.READ]
    await services.calendars.update(alice, calendar.uuid, public=False)
    assert [await access.level(u, calendar) for u in (eve, carol)] == [Level.NONE, Level.FREEBUSY]
    await access.share(alice, calendar, None, "freebusy")  # every signed-in user, explicitly
    await services.calendars.update(alice, calendar.uuid, public=False)
    assert await access.level(eve, calendar) == Level.FREEBUSY  # the flag takes back only what it gave
    await services.calendars.update(alice, calendar.uuid, public=True)  # the owner's choice now: everyone reads
    assert await access.level(eve, calendar) == Level.READ


async def test_sharing_again_invites_again_and_never_makes_active(services: Services) -> None:
    """Issue 32.3: a user who declined, left or was kicked is invited again when shared with
    again (whoever shares, at whatever level), never put straight back into the calendar; one
    who accepted stays accepted at the new level."""
    alice, bob = [await services.users.create(name, "correct horse") for name in ("alice", "bob")]
    calendar = await services.calendars.create(alice, "Team")
    access = services.access
    for leave_how in ("declined", "left", "kicked"):
        grant = await access.share(alice, calendar, bob, "read")
        if leave_how == "declined":
            await access.answer(bob, grant, accept=False)
        else:
            grant = await access.answer(bob, grant, accept=True)
            await (access.leave(bob, grant) if leave_how == "left" else access.revoke(alice, calendar, grant))
        for again in (access.share(alice, calendar, bob, "read-write"), access.invite(alice, calendar, [bob])):
            shared = await again
            state = (shared[0] if isinstance(shared, list) else shared).state
            assert state == State.INVITED and await access.level(bob, calendar) == Level.NONE, leave_how
        await access.answer(bob, await access.grant_to(bob, calendar), accept=True)  # type: ignore[arg-type]
        assert (await access.share(alice, calendar, bob, "read-write")).state == State.ACTIVE  # accepted stays
        assert await access.level(bob, calendar) == Level.READ_WRITE
        await access.revoke(alice, calendar, await access.grant_to(bob, calendar))  # type: ignore[arg-type]
