"""server/services/scheduling.py: who a calendar user address names, and a free/busy request for
several attendees, each answered as far as the asker may see their busy times (the freebusy
grant, or everyone's with ``[scheduling] free_busy = everyone``)."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime

import caldav
import pytest
from aiohttp.test_utils import TestClient

from protocol.ical.resources import resource_from_calendar
from protocol.ical.values import parse_resource
from server.http import SERVICES
from server.services import Services, build
from server.services.errors import Invalid
from server.services.scheduling import MAX_FREE_BUSY_ATTENDEES, NO_AUTHORITY, SUCCESS, UNKNOWN_USER
from storage.model import User
from tests.helpers import Account, basic

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


async def test_python_caldav_asks_its_outbox_for_free_busy(client: TestClient, alice: Account, bob: Account) -> None:
    """python-caldav's ``freebusy_request``: a VFREEBUSY REQUEST POSTed to the outbox the
    principal names, one answer per attendee (RFC 6638 5)."""
    services: Services = client.app[SERVICES]
    users = {name: await services.users.get_by_name(name) for name in ("alice", "bob")}
    [bobs] = await services.calendars.of(users["bob"])  # type: ignore[arg-type]
    text = event("bob-1", "20270302T090000Z", "20270302T100000Z")
    await services.objects.put(users["bob"], bobs, resource_from_calendar(parse_resource(text)))  # type: ignore[arg-type]
    grant = await services.access.share(users["bob"], bobs, users["alice"], "freebusy")  # type: ignore[arg-type]
    await services.access.answer(users["alice"], grant, accept=True)  # type: ignore[arg-type]
    url = str(client.make_url("/dav/"))

    def ask() -> tuple[str, list[str], dict]:
        with caldav.DAVClient(url=url, username="alice", password="correct horse") as dav:
            principal = dav.principal()
            outbox = str(principal.schedule_outbox().url)
            addresses = [str(a) for a in principal.calendar_user_address_set()]
            asked = ["mailto:bob@example.org", "mailto:nobody@example.org"]
            return outbox, addresses, principal.freebusy_request(START, END, asked)

    outbox, addresses, answers = await asyncio.to_thread(ask)
    assert outbox.endswith("/dav/scheduling/alice/outbox/") and "mailto:alice@example.org" in addresses
    assert answers["errors"] == {"mailto:nobody@example.org": UNKNOWN_USER}
    busy = answers["mailto:bob@example.org"].icalendar_component
    assert (
        busy["FREEBUSY"].to_ical() == b"20270302T090000Z/20270302T100000Z"
        and busy["FREEBUSY"].params["FBTYPE"] == "BUSY"
    )


async def test_the_outbox_refuses_what_is_not_the_users_free_busy_request(client: TestClient, alice: Account) -> None:
    outbox = "/dav/scheduling/alice/outbox/"
    headers = {**basic("alice"), "Content-Type": "text/calendar"}
    request = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nMETHOD:REQUEST\r\nBEGIN:VFREEBUSY\r\nUID:fb\r\n"
        "DTSTAMP:20270101T000000Z\r\nDTSTART:20270301T000000Z\r\nDTEND:20270308T000000Z\r\n"
        "ORGANIZER:{organizer}\r\n{attendees}END:VFREEBUSY\r\nEND:VCALENDAR\r\n"
    )
    one = "ATTENDEE:mailto:bob@example.org\r\n"

    async def post(body: str, **extra: str) -> tuple[int, str]:
        response = await client.post(outbox, data=body, headers={**headers, **extra})
        return response.status, await response.text()

    status, text = await post(request.format(organizer="mailto:alice@example.org", attendees=one))
    assert status == 200 and "3.7;Invalid calendar user" in text  # bob is nobody here
    status, text = await post(request.format(organizer="mailto:mallory@example.org", attendees=one))
    assert status == 403 and "organizer-allowed" in text
    many = "".join(f"ATTENDEE:mailto:u{n}@example.org\r\n" for n in range(MAX_FREE_BUSY_ATTENDEES + 1))
    status, text = await post(request.format(organizer="mailto:alice@example.org", attendees=many))
    assert status == 403 and "max-attendees-per-instance" in text
    status, text = await post(
        request.format(organizer="mailto:alice@example.org", attendees=one).replace("METHOD:REQUEST", "METHOD:PUBLISH")
    )
    assert status == 403 and "valid-scheduling-message" in text
    assert (await post("not a calendar"))[0] == 400
    assert (await post(request, **{"Content-Type": "application/json"}))[0] == 403
    other = await client.post("/dav/scheduling/bob/outbox/", data=request, headers=headers)
    assert other.status == 404  # only one's own
    found = await client.request("PROPFIND", "/dav/scheduling/alice/inbox/", headers={**basic("alice"), "Depth": "0"})
    assert found.status == 207 and "schedule-inbox" in await found.text()
