"""server/services/scheduling.py: who a calendar user address names, and a free/busy request for
several attendees, each answered as far as the asker may see their busy times (the freebusy
grant, or everyone's with ``[scheduling] free_busy = everyone``)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from protocol.ical.resources import resource_from_calendar
from protocol.ical.values import parse_resource
from server.services import Services, build
from server.services.errors import Invalid
from server.services.scheduling import MAX_FREE_BUSY_ATTENDEES, NO_AUTHORITY, SUCCESS, UNKNOWN_USER
from storage.model import User

START, END = datetime(2027, 3, 1, tzinfo=UTC), datetime(2027, 3, 8, tzinfo=UTC)


def event(uid: str, start: str, end: str, extra: str = "") -> str:
    return (
        f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n"
        f"DTSTAMP:20270101T000000Z\r\nDTSTART:{start}\r\nDTEND:{end}\r\nSUMMARY:{uid}\r\n{extra}"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


async def people(services: Services) -> dict[str, User]:
    found = {
        name: await services.users.create(name, "correct horse", f"{name}@Example.org")
        for name in ("alice", "bob", "carol")
    }
    for name, user in found.items():
        [calendar] = await services.calendars.of(user)
        text = event(f"{name}-1", "20270302T090000Z", "20270302T100000Z")
        await services.objects.put(user, calendar, resource_from_calendar(parse_resource(text)))
        maybe = event(f"{name}-2", "20270303T090000Z", "20270303T100000Z", "STATUS:TENTATIVE\r\n")
        await services.objects.put(user, calendar, resource_from_calendar(parse_resource(maybe)))
        free = event(f"{name}-3", "20270304T090000Z", "20270304T100000Z", "TRANSP:TRANSPARENT\r\n")
        await services.objects.put(user, calendar, resource_from_calendar(parse_resource(free)))
    [carols] = await services.calendars.of(found["carol"])
    grant = await services.access.share(found["carol"], carols, found["alice"], "freebusy")
    await services.access.answer(found["alice"], grant, accept=True)
    return found


BUSY = [
    (datetime(2027, 3, 2, 9, tzinfo=UTC), datetime(2027, 3, 2, 10, tzinfo=UTC), "BUSY"),
    (datetime(2027, 3, 3, 9, tzinfo=UTC), datetime(2027, 3, 3, 10, tzinfo=UTC), "BUSY-TENTATIVE"),
]


async def test_each_attendee_is_answered_as_far_as_the_asker_may_see(services: Services) -> None:
    users = await people(services)
    asked = [
        "mailto:CAROL@example.org",
        "mailto:bob@example.org",
        "mailto:nobody@example.org",
        "mailto:alice@example.org",
        "/x/",
    ]
    answers = await services.scheduling.free_busy(users["alice"], asked, START, END)
    assert [(a.address, a.status) for a in answers] == [
        ("mailto:CAROL@example.org", SUCCESS),  # a freebusy grant: her busy times, no more
        ("mailto:bob@example.org", NO_AUTHORITY),  # no grant: nothing of his
        ("mailto:nobody@example.org", UNKNOWN_USER),
        ("mailto:alice@example.org", SUCCESS),  # her own
        ("/x/", UNKNOWN_USER),
    ]
    assert answers[0].periods == BUSY and answers[3].periods == BUSY and answers[1].periods == []
    assert await services.scheduling.user_at("MAILTO:Bob@EXAMPLE.org") == users["bob"]


async def test_an_organisation_may_let_everyone_see_busy_times(services: Services) -> None:
    users = await people(services)
    everyone = build(dataclasses.replace(services.config, free_busy="everyone"), services.store)
    [bob] = await everyone.scheduling.free_busy(users["alice"], ["mailto:bob@example.org"], START, END)
    assert (bob.status, bob.periods) == (SUCCESS, BUSY)


async def test_a_free_busy_request_is_bounded(services: Services) -> None:
    users = await people(services)
    many = [f"mailto:u{n}@example.org" for n in range(MAX_FREE_BUSY_ATTENDEES + 1)]
    with pytest.raises(Invalid):
        await services.scheduling.free_busy(users["alice"], many, START, END)
    assert len(await services.scheduling.free_busy(users["alice"], many[:-1], START, END)) == MAX_FREE_BUSY_ATTENDEES
    with pytest.raises(Invalid):
        await services.scheduling.free_busy(users["alice"], ["mailto:bob@example.org"], END, START)
