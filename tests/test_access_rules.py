"""Issue 32: each rule of the access service (services/access.py) pinned where a silent change
would give someone too much, or take too much away: who may do what, what each refusal says
(the doors show it), who is recorded as having given a grant, and what each state allows. The
doors' view of the same rules is in test_access_matrix.py and test_sharing.py."""

from __future__ import annotations

from collections.abc import Awaitable

import pytest

from server.services import Services
from server.services.access import Level, Share, State
from server.services.errors import Forbidden, Invalid, NotFound
from storage.model import User


async def users(services: Services, *names: str) -> list[User]:
    return [await services.users.create(name, "correct horse", f"{name}@example.org") for name in names]


def test_levels_order_and_their_labels() -> None:
    assert [level.label for level in Level] == ["none", "freebusy", "read", "read-write", "admin", "owner"]
    assert Level.NONE < Level.FREEBUSY < Level.READ < Level.READ_WRITE < Level.ADMIN < Level.OWNER
    for label in ("freebusy", "read", "read-write", "admin"):
        assert Level.grantable(label).label == label
    for label in ("none", "owner", "write", "", "READ"):
        with pytest.raises(Invalid) as refused:
            Level.grantable(label)
        assert refused.value.field == "level"
        assert refused.value.message == "a grant's level is freebusy, read, read-write or admin"


async def test_what_a_refusal_says(services: Services) -> None:
    alice, bob, carol = await users(services, "alice", "bob", "carol")
    [calendar] = await services.calendars.of(alice)
    access = services.access
    with pytest.raises(NotFound) as unseen:
        await access.require(bob, calendar, Level.FREEBUSY)
    assert unseen.value.kind == "calendar" and unseen.value.message == "calendar not found"
    await access.answer(bob, await access.share(alice, calendar, bob, "read"), accept=True)
    with pytest.raises(Forbidden) as short:
        await access.require(bob, calendar, Level.READ_WRITE)
    assert short.value.message == "this needs read-write access to the calendar; you have read"
    assert await access.require(bob, calendar, Level.READ) == Level.READ
    assert await access.require(alice, calendar, Level.OWNER) == Level.OWNER
    with pytest.raises(Invalid) as owner:
        await access.share(alice, calendar, alice, "read")
    assert (owner.value.field, owner.value.message) == ("user", "the owner has every right to their calendar already")
    with pytest.raises(Forbidden) as admins:
        await access.share(alice, calendar, carol, "admin")
        await access.answer(carol, await access.grant_to(carol, calendar), accept=True)  # type: ignore[arg-type]
        await access.share(bob, calendar, bob, "admin")  # only an admin may share: bob is not
    assert "admin" in admins.value.message


async def test_a_grant_records_who_gave_it_and_names_itself_after_the_owner(services: Services) -> None:
    alice, bob, carol, dave = await users(services, "alice", "bob", "carol", "dave")
    access = services.access
    calendar = await services.calendars.create(alice, "Team & Co!")
    grant = await access.share(alice, calendar, bob, "admin")
    assert (grant.granted_by, grant.slug, grant.state, grant.follows_group) == (
        alice.id,
        "alice-team-co",
        "invited",
        False,
    )
    await access.answer(bob, grant, accept=True)
    by_bob = await access.share(bob, calendar, carol, "read")
    assert by_bob.granted_by == bob.id
    [member] = await access.invite(bob, calendar, [dave])
    assert (member.granted_by, member.level, member.follows_group) == (bob.id, "read", True)
    kicked = await access.revoke(bob, calendar, by_bob)
    assert (kicked.state, kicked.granted_by) == (State.KICKED, bob.id)
    everyone = await access.share(alice, calendar, None, "freebusy")
    assert (everyone.grantee_id, everyone.state, everyone.slug, everyone.granted_by) == (None, "active", None, alice.id)
    [long_named] = await users(services, "a" * 30)
    long = await services.calendars.create(long_named, "x" * 200)
    slug = (await access.share(long_named, long, carol, "read")).slug
    assert slug == "a" * 30 + "-" + "x" * 29  # at most 60 characters
    symbols = await services.calendars.create(alice, "!!!")
    assert (await access.share(alice, symbols, carol, "read")).slug == "alice-calendar-2"  # its slug, made unique


async def test_taking_back_what_gives_nothing_changes_nothing(services: Services) -> None:
    """A removal of someone with no grant (or one that gives nothing any more) is nothing to do,
    and the rest of the same request still happens."""
    alice, bob, carol = await users(services, "alice", "bob", "carol")
    [calendar] = await services.calendars.of(alice)
    access = services.access
    assert await access.apply(alice, calendar, [Share(bob.id, None)]) == []
    made = await access.apply(alice, calendar, [Share(bob.id, None), Share(carol.id, Level.READ)])
    assert [(g.grantee_id, g.level) for g in made] == [(carol.id, "read")]
    left = await access.leave(carol, await access.answer(carol, made[0], accept=True))
    before = await services.store.grants_of(calendar.id)
    assert await access.apply(alice, calendar, [Share(carol.id, None)]) == []  # left: nothing to take
    assert await services.store.grants_of(calendar.id) == before and left.state == State.LEFT


async def test_another_admin_is_only_the_owners_to_change_while_their_grant_counts(services: Services) -> None:
    alice, bob, carol = await users(services, "alice", "bob", "carol")
    [calendar] = await services.calendars.of(alice)
    access = services.access
    for admin in (bob, carol):
        await access.answer(admin, await access.share(alice, calendar, admin, "admin"), accept=True)
    carol_grant = await access.grant_to(carol, calendar)
    assert carol_grant is not None
    same = await access.share(bob, calendar, carol, "admin")  # the same grant again: no change
    assert (same.level, same.state) == ("admin", "active")
    for invited in (False, True):  # an invitation to admin is an admin's grant too
        if invited:
            await access.revoke(alice, calendar, carol_grant)
            await access.share(alice, calendar, carol, "admin")
        with pytest.raises(Forbidden) as rule:
            await access.share(bob, calendar, carol, "read")
        assert rule.value.message == "only the owner may change an admin's access"
    await access.revoke(alice, calendar, carol_grant)  # kicked: it counts no more
    assert (await access.share(bob, calendar, carol, "read")).level == "read"
    await access.answer(carol, await access.grant_to(carol, calendar), accept=False)  # type: ignore[arg-type]
    assert (await access.share(bob, calendar, carol, "admin")).state == State.INVITED  # refused, then invited
    with pytest.raises(Forbidden, match="only the owner"):
        await access.share(bob, calendar, carol, "read")  # a declined admin invitation still counts


async def test_flags_alone_are_kept_when_nobody_follows_them(services: Services) -> None:
    alice, bob = await users(services, "alice", "bob")
    calendar = await services.calendars.create(alice, "Team")
    updated = await services.calendars.update(alice, calendar.uuid, members_can_post=True, name="Renamed")
    assert updated.props["membersCanPost"] is True and updated.name == "Renamed"
    [member] = await services.access.invite(alice, updated, [bob])
    assert member.level == "read-write"
    everyone = await services.access.share(alice, updated, None, "read")  # explicitly
    await services.calendars.update(alice, calendar.uuid, public=True)
    after = next(g for g in await services.store.grants_of(calendar.id) if g.grantee_id is None)
    assert (after.level, after.follows_group, after.id) == ("read", False, everyone.id)  # given already
    await services.access.share(alice, updated, None, "admin")
    await services.calendars.update(alice, calendar.uuid, public=False)
    await services.calendars.update(alice, calendar.uuid, public=True)
    after = next(g for g in await services.store.grants_of(calendar.id) if g.grantee_id is None)
    assert (after.level, after.state) == ("admin", "active")  # more than the flag gives: kept


async def test_what_a_sharee_does_with_their_own_grant(services: Services) -> None:
    alice, bob, carol = await users(services, "alice", "bob", "carol")
    [calendar] = await services.calendars.of(alice)
    access = services.access
    grant = await access.share(alice, calendar, bob, "read")
    for user in (alice, carol):  # nobody else answers, sets or leaves it
        for attempt in (access.answer(user, grant, True), access.set_props(user, grant, {"color": "#000000"})):
            with pytest.raises(NotFound):
                await attempt
    with pytest.raises(NotFound) as not_member:
        await access.set_view(bob, calendar, {"name": "Mine"})  # not accepted yet
    assert not_member.value.kind == "membership"
    with pytest.raises(NotFound):
        await access.leave(bob, grant)  # nothing to leave before accepting
    refused = await access.answer(bob, grant, accept=False)
    assert refused.state == State.REFUSED
    assert (await access.invitation(bob, calendar.uuid))[0].id == grant.id  # a declined one is still there
    accepted = await access.answer(bob, refused, accept=True)
    with pytest.raises(NotFound):
        await access.answer(bob, accepted, accept=True)  # answered
    coloured = await access.set_props(bob, accepted, {"color": "#FF0000"})
    named = await access.set_view(bob, calendar, {"name": "Alice's", "color": None})
    assert coloured.props == {"color": "#FF0000"} and named.props == {"name": "Alice's"}
    left = await access.leave_calendar(bob, calendar)
    assert left.state == State.LEFT and await access.level(bob, calendar) == Level.NONE
    with pytest.raises(NotFound) as gone:
        await access.invitation(bob, calendar.uuid)  # left: no invitation any more
    assert gone.value.kind == "invitation"
    with pytest.raises(NotFound):
        await access.leave_calendar(carol, calendar)  # never had one
    with pytest.raises(NotFound):
        await access.invitation(carol, "00000000-0000-0000-0000-000000000000")


async def test_who_sees_which_grants_and_users(services: Services) -> None:
    alice, bob, carol, dave = await users(services, "alice", "bob", "carol", "dave")
    [calendar] = await services.calendars.of(alice)
    access = services.access
    for user, level in ((bob, "admin"), (carol, "read")):
        await access.answer(user, await access.share(alice, calendar, user, level), accept=True)
    dave_grant = await access.share(alice, calendar, dave, "read")  # invited only
    await access.share(alice, calendar, None, "freebusy")
    listed = [(g.grantee_id, u.username if u else None) for g, u in await access.grantees(bob, calendar)]
    assert listed == [(bob.id, "bob"), (carol.id, "carol"), (dave.id, "dave"), (None, None)]
    assert [u.username for _, u in await access.active_grants(bob, calendar) if u] == ["bob", "carol"]
    for outsider in (carol, dave):
        with pytest.raises((Forbidden, NotFound)):
            await access.grantees(outsider, calendar)
    assert (await access.grant(bob, calendar, dave_grant.id)).id == dave_grant.id
    [other] = await services.calendars.of(bob)
    with pytest.raises(NotFound) as elsewhere:
        await access.grant(alice, other, dave_grant.id)  # not a grant of that calendar (nor hers)
    await access.share(bob, other, carol, "read")
    carols = [g for g, _ in await access.held(carol)]
    with pytest.raises(NotFound) as elsewhere:
        await access.grant(bob, other, dave_grant.id)
    assert elsewhere.value.kind == "grant" and len(carols) == 2
    assert [u.username for _, u in await access.members(carol, calendar)] == ["bob", "carol", "dave"]
    await services.users.delete(dave)
    assert [u.username for _, u in await access.members(carol, calendar)] == ["bob", "carol"]  # gone: left out
    assert [u.username for u in await access.directory(carol)] == ["carol", "alice", "bob"]
    assert [(c.id, o.username) for _, c, o in await access.shared_with(carol)] == [
        (calendar.id, "alice"),
        (other.id, "bob"),
    ]
    assert access.member_level(calendar) == Level.READ


async def refused(attempt: Awaitable[object], kind: str, message: str) -> None:
    """``attempt`` is NotFound of this kind with this message (what the doors say)."""
    with pytest.raises(NotFound) as found:
        await attempt
    assert (found.value.kind, found.value.message) == (kind, message)


async def test_each_not_found_says_what_is_missing(services: Services) -> None:
    """The doors turn a NotFound's kind into their words (REST: "membership not found"): each
    path says the right one, also when a calendar went away under an invitation in hand."""
    alice, bob, carol = await users(services, "alice", "bob", "carol")
    access = services.access
    calendar = await services.calendars.create(alice, "Team")
    [other] = await services.calendars.of(bob)
    grant = await access.share(alice, calendar, bob, "read")
    await refused(access.answer(carol, grant, True), "invitation", "invitation not found")
    await refused(access.set_props(carol, grant, {}), "membership", "membership not found")
    await refused(access.leave(bob, grant), "membership", "membership not found")  # not accepted
    await refused(access.set_view(carol, calendar, {}), "membership", "membership not found")
    await refused(access.leave_calendar(carol, calendar), "membership", "membership not found")
    await refused(access.invitation(carol, calendar.uuid), "invitation", "invitation not found")  # none for her
    await refused(access.grant(alice, calendar, grant.id + 1000), "grant", "grant not found")
    await refused(access.revoke(bob, other, grant), "grant", "grant not found")  # not a grant of his calendar
    accepted = await access.answer(bob, grant, accept=True)
    kicked = await access.revoke(alice, calendar, accepted)
    again = await access.revoke(alice, calendar, kicked)  # gives nothing already: nothing to do
    assert (again.id, again.state) == (kicked.id, State.KICKED)
    invited = await access.share(alice, calendar, carol, "read")
    await services.calendars.delete(alice, calendar.uuid)  # the invitation goes with it
    await refused(access.answer(carol, invited, True), "grant", "grant not found")
    await refused(access.set_props(carol, invited, {"color": "#000000"}), "membership", "membership not found")
    [dave] = await users(services, "dave_")
    mine = await services.calendars.create_at(dave, "trips_", "Trips")  # as a CalDAV path may name it
    assert (await access.share(dave, mine, carol, "read")).slug == "dave-trips"  # one dash between, none at the end
    await services.users.delete(dave)  # while a request of theirs is under way
    await refused(access.share(dave, mine, carol, "read"), "calendar", "calendar not found")


async def test_sharing_again_shows_a_put_away_invitation_again(services: Services) -> None:
    """A grantee who put an invitation away (Apple's notifications DELETE) sees it again when the
    owner shares again; their own colour stays. An accepted grant keeps every setting."""
    alice, bob, carol = await users(services, "alice", "bob", "carol")
    [calendar] = await services.calendars.of(alice)
    access = services.access
    invited = await access.share(alice, calendar, bob, "read")
    await access.set_props(bob, invited, {"dismissed": True, "color": "#FF0000"})
    again = await access.share(alice, calendar, bob, "read-write")
    assert (again.state, again.level, again.props) == (State.INVITED, "read-write", {"color": "#FF0000"})
    accepted = await access.answer(carol, await access.share(alice, calendar, carol, "read"), accept=True)
    await access.set_props(carol, accepted, {"dismissed": True, "color": "#00FF00"})
    kept = await access.share(alice, calendar, carol, "read-write")
    assert (kept.state, kept.props) == (State.ACTIVE, {"dismissed": True, "color": "#00FF00"})


async def test_flag_changes_record_who_made_them(services: Services) -> None:
    """The grants a group's flags change name the admin who changed the flags, and only the grants
    the change touches are written again."""
    alice, bob, carol = await users(services, "alice", "bob", "carol")
    calendar = await services.calendars.create(alice, "Team")
    access = services.access
    await access.answer(bob, await access.share(alice, calendar, bob, "admin"), accept=True)
    [member] = await access.invite(alice, calendar, [carol])
    assert (member.level, member.granted_by) == ("read", alice.id)
    await services.calendars.update(bob, calendar.uuid, members_can_post=True, public=True)
    grants = {g.grantee_id: g for g in await services.store.grants_of(calendar.id)}
    assert (grants[carol.id].level, grants[carol.id].granted_by) == ("read-write", bob.id)
    assert (grants[None].level, grants[None].granted_by, grants[None].follows_group) == ("read", bob.id, True)
    await services.calendars.update(alice, calendar.uuid, public=True, name="Renamed")  # as it was: nothing to follow
    same = {g.grantee_id: g for g in await services.store.grants_of(calendar.id)}
    assert same[None].granted_by == bob.id and same[carol.id].granted_by == bob.id
    await services.calendars.update(alice, calendar.uuid, public=False)
    [everyone] = [g for g in await services.store.grants_of(calendar.id) if g.grantee_id is None]
    assert (everyone.state, everyone.granted_by) == (State.KICKED, alice.id)
    await services.calendars.update(alice, calendar.uuid, public=True)
    [everyone] = [g for g in await services.store.grants_of(calendar.id) if g.grantee_id is None]
    assert (everyone.state, everyone.level, everyone.follows_group) == (State.ACTIVE, "read", True)
