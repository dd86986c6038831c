"""Meetings between the users of this server (RFC 6638 implicit scheduling) through CalDAV: an
organizer's PUT invites, attendees answer in their own copies, the organizer's changes follow
into every copy, cancellations remove them; Schedule-Tag, SCHEDULE-AGENT, Schedule-Reply,
rooms that answer on their own, the inbox. python-caldav's scheduling API and replayed
Thunderbird and Apple Calendar requests drive it."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Awaitable, Callable

import caldav
from aiohttp.test_utils import TestClient
from icalendar import Calendar
from multidict import CIMultiDict

from server.http import SERVICES
from server.services import Services, build
from tests.helpers import Account, basic

CALENDAR = "/dav/calendars/{}/calendar/"
INBOX = "/dav/scheduling/{}/inbox/"
ICS = {"Content-Type": "text/calendar; charset=utf-8"}


def meeting(
    uid: str = "m1",
    attendees: tuple[str, ...] = ("bob",),
    *,
    start: str = "20270302T090000Z",
    summary: str = "Plan",
    organizer: str = "alice",
    extra: str = "",
    partstats: dict[str, str] | None = None,
    component: str = "",
) -> str:
    """A meeting organized by ``organizer`` with attendees named by user (@example.org) or by
    address (with an @)."""
    lines = [
        f"ATTENDEE;CN={a};PARTSTAT={(partstats or {}).get(a, 'NEEDS-ACTION')};RSVP=TRUE:mailto:"
        + (a if "@" in a else f"{a}@example.org")
        for a in attendees
    ]
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20270101T000000Z\r\nDTSTART:{start}\r\nDURATION:PT1H\r\nSUMMARY:{summary}\r\n"
        f"ORGANIZER;CN={organizer}:mailto:{organizer}@example.org\r\n"
        + "".join(line + "\r\n" for line in lines)
        + extra
        + "END:VEVENT\r\n"
        + component
        + "END:VCALENDAR\r\n"
    )


async def put(client: TestClient, user: str, uid: str, text: str, **headers: str) -> tuple[int, CIMultiDict[str], str]:
    response = await client.put(
        CALENDAR.format(user) + f"{uid}.ics", data=text, headers={**basic(user), **ICS, **headers}
    )
    return response.status, CIMultiDict(response.headers), await response.text()


async def get(client: TestClient, user: str, uid: str) -> tuple[Calendar | None, CIMultiDict[str]]:
    response = await client.get(CALENDAR.format(user) + f"{uid}.ics", headers=basic(user))
    if response.status == 404:
        return None, CIMultiDict()
    assert response.status == 200, await response.text()
    return Calendar.from_ical(await response.text()), CIMultiDict(response.headers)


async def inbox(client: TestClient, user: str) -> list[str]:
    """The texts of the user's inbox messages, oldest first."""
    response = await client.request("PROPFIND", INBOX.format(user), headers={**basic(user), "Depth": "1"})
    assert response.status == 207
    hrefs = [h for h in re.findall(r"<D:href>([^<]+)</D:href>", await response.text()) if h.endswith(".ics")]
    texts = []
    for href in hrefs:
        message = await client.get(href, headers=basic(user))
        assert message.status == 200
        texts.append(await message.text())
    return texts


def partstat(calendar: Calendar | None, who: str, instance: int = 0) -> str:
    assert calendar is not None
    component = [c for c in calendar.walk() if c.name == "VEVENT"][instance]
    attendees = component.get("ATTENDEE")
    for line in attendees if isinstance(attendees, list) else [attendees]:
        if str(line).lower() == f"mailto:{who}@example.org":
            return str(line.params.get("PARTSTAT"))
    raise AssertionError(f"{who} is not an attendee")


def status(calendar: Calendar | None, who: str) -> str | None:
    assert calendar is not None
    component = next(c for c in calendar.walk() if c.name == "VEVENT")
    attendees = component.get("ATTENDEE")
    for line in attendees if isinstance(attendees, list) else [attendees]:
        if who in str(line).lower():
            return line.params.get("SCHEDULE-STATUS")
    raise AssertionError(f"{who} is not an attendee")


def answered(text: str, answer: str, who: str = "bob") -> str:
    """A copy as an attendee's client saves it with their answer (in every component) changed."""
    calendar = Calendar.from_ical(text)
    for component in calendar.walk("VEVENT"):
        lines = component.get("ATTENDEE")
        for line in lines if isinstance(lines, list) else [lines]:
            if str(line).lower() == f"mailto:{who}@example.org":
                line.params["PARTSTAT"] = answer
                line.params.pop("RSVP", None)
    return calendar.to_ical().decode()


People = Callable[[str], Awaitable[Account]]


async def test_python_caldav_invites_and_the_attendees_answer(client: TestClient, signup: People) -> None:
    """The whole exchange through python-caldav's scheduling API: ``save_with_invites``, the
    invitation in each attendee's ``schedule_inbox`` and their own copy in their calendar,
    ``accept_invite`` and ``decline_invite``, and the organizer's copy showing both answers."""
    for name in ("alice", "bob", "carol"):
        await signup(name)
    url = str(client.make_url("/dav/"))

    def session(user: str) -> caldav.DAVClient:
        return caldav.DAVClient(url=url, username=user, password="correct horse")

    def run() -> tuple[str, list[str], list[str], str, list[str]]:
        with session("alice") as dav:
            [calendar] = dav.principal().calendars()
            body = meeting(attendees=())
            sent = calendar.save_with_invites(
                body, ["mailto:bob@example.org", "mailto:carol@example.org", "mailto:dave@elsewhere.org"]
            )
            sent.load()
            organized = sent.data
        copies, kinds = [], []
        for user, accept in (("bob", True), ("carol", False)):
            with session(user) as dav:
                principal = dav.principal()
                [item] = list(principal.schedule_inbox().get_items())
                kinds.append(str(item.icalendar_instance["METHOD"]))
                [copy] = principal.calendars()[0].events()
                copies.append(copy.data)
                if accept:
                    item.accept_invite()
                else:
                    item.decline_invite()
        with session("alice") as dav:
            principal = dav.principal()
            [answered_copy] = principal.calendars()[0].events()
            replies = [str(i.icalendar_instance["METHOD"]) for i in principal.schedule_inbox().get_items()]
            return organized, copies, kinds, answered_copy.data, replies

    organized, copies, kinds, answers, replies = await asyncio.to_thread(run)
    sent = Calendar.from_ical(organized)
    assert (status(sent, "bob"), status(sent, "carol"), status(sent, "dave")) == ("1.2", "1.2", "3.7")
    assert kinds == ["REQUEST", "REQUEST"]
    assert all("PARTSTAT=NEEDS-ACTION" in c and "METHOD" not in c for c in copies)
    final = Calendar.from_ical(answers)
    assert (partstat(final, "bob"), partstat(final, "carol")) == ("ACCEPTED", "DECLINED")
    assert status(final, "bob") == "2.0"
    assert replies == ["REPLY", "REPLY"]


async def test_an_attendee_answer_reaches_the_organizer_then_the_other_attendees(
    client: TestClient, signup: People
) -> None:
    for name in ("alice", "bob", "carol"):
        await signup(name)
    code, headers, _ = await put(client, "alice", "m1", meeting(attendees=("bob", "carol")), **{"If-None-Match": "*"})
    assert code == 201 and "Schedule-Tag" in headers and "ETag" not in headers  # SCHEDULE-STATUS was added
    _, organizer_headers = await get(client, "alice", "m1")
    carols, carol_headers = await get(client, "carol", "m1")
    assert partstat(carols, "bob") == "NEEDS-ACTION"
    bobs, _ = await get(client, "bob", "m1")
    assert bobs is not None
    code, _, _ = await put(client, "bob", "m1", answered(bobs.to_ical().decode(), "TENTATIVE"))
    assert code == 204
    after, after_headers = await get(client, "alice", "m1")
    assert partstat(after, "bob") == "TENTATIVE" and status(after, "bob") == "2.0"
    # scheduling recorded an answer only: the organizer's Schedule-Tag stays, its ETag does not
    assert after_headers["Schedule-Tag"] == organizer_headers["Schedule-Tag"]
    assert after_headers["ETag"] != organizer_headers["ETag"]
    carols_after, carol_after_headers = await get(client, "carol", "m1")
    assert partstat(carols_after, "bob") == "TENTATIVE"
    assert carol_after_headers["Schedule-Tag"] == carol_headers["Schedule-Tag"]
    [request_to_carol] = await inbox(client, "carol")  # another's answer puts nothing in her inbox
    assert "METHOD:REQUEST" in request_to_carol
    [reply] = await inbox(client, "alice")
    assert "METHOD:REPLY" in reply and "PARTSTAT=TENTATIVE" in reply


async def test_the_organizers_changes_follow_into_every_copy(client: TestClient, signup: People) -> None:
    """A minor change keeps the answers and what the attendee added (an alarm); a change of
    time asks everyone again (PARTSTAT=NEEDS-ACTION) with a new REQUEST."""
    for name in ("alice", "bob"):
        await signup(name)
    await put(client, "alice", "m1", meeting())
    bobs, _ = await get(client, "bob", "m1")
    assert bobs is not None
    alarm = "BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:soon\r\nTRIGGER:-PT10M\r\nEND:VALARM\r\n"
    mine = answered(bobs.to_ical().decode(), "ACCEPTED").replace("END:VEVENT", alarm + "END:VEVENT")
    assert (await put(client, "bob", "m1", mine))[0] == 204
    _, bob_headers = await get(client, "bob", "m1")
    # alice's client saves its stale copy with a new title: bob's answer is kept
    assert (await put(client, "alice", "m1", meeting(summary="Plan again")))[0] == 204
    organizer_copy, _ = await get(client, "alice", "m1")
    bobs, later_headers = await get(client, "bob", "m1")
    assert partstat(organizer_copy, "bob") == "ACCEPTED" and partstat(bobs, "bob") == "ACCEPTED"
    assert bobs is not None and "Plan again" in bobs.to_ical().decode() and "TRIGGER:-PT10M" in bobs.to_ical().decode()
    assert later_headers["Schedule-Tag"] != bob_headers["Schedule-Tag"]  # the organizer changed it
    assert len(await inbox(client, "bob")) == 2
    assert (await put(client, "alice", "m1", meeting(start="20270302T140000Z", summary="Plan again")))[0] == 204
    organizer_copy, _ = await get(client, "alice", "m1")
    bobs, _ = await get(client, "bob", "m1")
    assert partstat(organizer_copy, "bob") == "NEEDS-ACTION" and partstat(bobs, "bob") == "NEEDS-ACTION"
    assert bobs is not None and "TRIGGER:-PT10M" in bobs.to_ical().decode()
    assert len(await inbox(client, "bob")) == 3
    # the same text again changes nothing: no copy written, no message
    assert (await put(client, "alice", "m1", meeting(start="20270302T140000Z", summary="Plan again")))[0] == 204
    assert len(await inbox(client, "bob")) == 3


async def test_removing_an_attendee_or_the_meeting_cancels(client: TestClient, signup: People) -> None:
    for name in ("alice", "bob", "carol"):
        await signup(name)
    await put(client, "alice", "m1", meeting(attendees=("bob", "carol")))
    assert (await get(client, "carol", "m1"))[0] is not None
    assert (await put(client, "alice", "m1", meeting(attendees=("bob",))))[0] == 204
    assert (await get(client, "carol", "m1"))[0] is None
    assert "METHOD:CANCEL" in (await inbox(client, "carol"))[-1]
    removed = await client.delete(CALENDAR.format("alice") + "m1.ics", headers=basic("alice"))
    assert removed.status == 204
    assert (await get(client, "bob", "m1"))[0] is None
    cancel = (await inbox(client, "bob"))[-1]
    assert "METHOD:CANCEL" in cancel and "STATUS:CANCELLED" in cancel


async def test_an_attendee_may_change_only_what_is_theirs(client: TestClient, signup: People) -> None:
    for name in ("alice", "bob"):
        await signup(name)
    await put(client, "alice", "m1", meeting())
    bobs, _ = await get(client, "bob", "m1")
    assert bobs is not None
    text = bobs.to_ical().decode()
    code, _, body = await put(client, "bob", "m1", text.replace("SUMMARY:Plan", "SUMMARY:Mine now"))
    assert code == 403 and "valid-attendee-change" in body
    code, _, body = await put(client, "bob", "m1", text.replace("DTSTART:20270302T090000Z", "DTSTART:20270302T100000Z"))
    assert code == 403 and "valid-attendee-change" in body
    ours = text.replace("END:VEVENT", "TRANSP:TRANSPARENT\r\nX-BOB-NOTE:bring slides\r\nEND:VEVENT")
    assert (await put(client, "bob", "m1", ours))[0] == 204
    organizer_copy, _ = await get(client, "alice", "m1")
    assert organizer_copy is not None and "X-BOB-NOTE" not in organizer_copy.to_ical().decode()
    assert await inbox(client, "alice") == []  # no answer changed: nothing sent


async def test_an_attendee_removing_their_copy_declines(client: TestClient, signup: People) -> None:
    for name in ("alice", "bob", "carol"):
        await signup(name)
    await put(client, "alice", "m1", meeting(attendees=("bob", "carol")))
    gone = await client.delete(CALENDAR.format("bob") + "m1.ics", headers=basic("bob"))
    assert gone.status == 204
    organizer_copy, _ = await get(client, "alice", "m1")
    assert partstat(organizer_copy, "bob") == "DECLINED"
    quiet = await client.delete(CALENDAR.format("carol") + "m1.ics", headers={**basic("carol"), "Schedule-Reply": "F"})
    assert quiet.status == 204
    organizer_copy, _ = await get(client, "alice", "m1")
    assert partstat(organizer_copy, "carol") == "NEEDS-ACTION"  # Schedule-Reply: F sends nothing
    # a minor change does not bring a declined copy back
    await put(client, "alice", "m1", meeting(attendees=("bob", "carol"), summary="Plan B"))
    assert (await get(client, "bob", "m1"))[0] is None


async def test_schedule_tag_keeps_a_client_from_losing_a_change(client: TestClient, signup: People) -> None:
    """RFC 6638 3.2.10 and 3.3: If-Schedule-Tag-Match lets a write through when scheduling only
    recorded answers meanwhile (keeping them) and refuses it (412) when the organizer changed
    the meeting."""
    for name in ("alice", "bob"):
        await signup(name)
    _, created, _ = await put(client, "alice", "m1", meeting())
    organizer_tag = created["Schedule-Tag"]
    bobs, bob_headers = await get(client, "bob", "m1")
    assert bobs is not None
    await put(client, "bob", "m1", answered(bobs.to_ical().decode(), "ACCEPTED"))
    # alice's client still has the version from before bob's answer, and its tag
    code, _, _ = await put(client, "alice", "m1", meeting(summary="Agenda"), **{"If-Schedule-Tag-Match": organizer_tag})
    assert code == 204
    organizer_copy, headers = await get(client, "alice", "m1")
    assert partstat(organizer_copy, "bob") == "ACCEPTED" and headers["Schedule-Tag"] != organizer_tag
    code, _, _ = await put(client, "alice", "m1", meeting(summary="Again"), **{"If-Schedule-Tag-Match": organizer_tag})
    assert code == 412
    # bob's client writes from the copy it had before alice's change: refused, nothing lost
    code, _, _ = await put(
        client, "bob", "m1", answered(bobs.to_ical().decode(), "DECLINED"),
        **{"If-Schedule-Tag-Match": bob_headers["Schedule-Tag"].strip('"')},
    )  # fmt: skip
    assert code == 412
    now, _ = await get(client, "bob", "m1")
    assert now is not None and "SUMMARY:Agenda" in now.to_ical().decode()


async def test_schedule_agent_and_force_send(client: TestClient, signup: People) -> None:
    for name in ("alice", "bob", "carol"):
        await signup(name)
    text = meeting(attendees=("bob", "carol")).replace("ATTENDEE;CN=carol", "ATTENDEE;SCHEDULE-AGENT=CLIENT;CN=carol")
    await put(client, "alice", "m1", text)
    assert (await get(client, "carol", "m1"))[0] is None and await inbox(client, "carol") == []
    assert len(await inbox(client, "bob")) == 1
    await put(client, "alice", "m1", text)  # unchanged: nothing sent
    assert len(await inbox(client, "bob")) == 1
    forced = text.replace("ATTENDEE;CN=bob", "ATTENDEE;SCHEDULE-FORCE-SEND=REQUEST;CN=bob")
    await put(client, "alice", "m1", forced)
    assert len(await inbox(client, "bob")) == 2
    stored, _ = await get(client, "alice", "m1")
    assert stored is not None and "SCHEDULE-FORCE-SEND" not in stored.to_ical().decode()


async def test_a_series_is_answered_and_changed_per_instance(client: TestClient, signup: People) -> None:
    """RFC 5546 per-instance exchanges: an attendee declines one instance (an override in
    their copy), the organizer moves one instance and cancels another (EXDATE)."""
    for name in ("alice", "bob"):
        await signup(name)
    weekly = meeting(extra="RRULE:FREQ=WEEKLY;COUNT=4\r\n")
    await put(client, "alice", "m1", weekly)
    bobs, _ = await get(client, "bob", "m1")
    assert bobs is not None
    override = (
        "BEGIN:VEVENT\r\nUID:m1\r\nDTSTAMP:20270101T000000Z\r\nRECURRENCE-ID:20270309T090000Z\r\n"
        "DTSTART:20270309T090000Z\r\nDURATION:PT1H\r\nSUMMARY:Plan\r\nORGANIZER;CN=alice:mailto:alice@example.org\r\n"
        "ATTENDEE;CN=bob;PARTSTAT=DECLINED:mailto:bob@example.org\r\nEND:VEVENT\r\n"
    )
    accepted = answered(bobs.to_ical().decode(), "ACCEPTED").replace("END:VCALENDAR", override + "END:VCALENDAR")
    assert (await put(client, "bob", "m1", accepted))[0] == 204
    organizer_copy, _ = await get(client, "alice", "m1")
    assert partstat(organizer_copy, "bob", 0) == "ACCEPTED" and partstat(organizer_copy, "bob", 1) == "DECLINED"
    # alice moves the third instance and cancels the fourth
    stored = organizer_copy.to_ical().decode()  # type: ignore[union-attr]
    moved = (
        "BEGIN:VEVENT\r\nUID:m1\r\nDTSTAMP:20270101T000000Z\r\nRECURRENCE-ID:20270316T090000Z\r\n"
        "DTSTART:20270316T150000Z\r\nDURATION:PT1H\r\nSUMMARY:Plan\r\nORGANIZER;CN=alice:mailto:alice@example.org\r\n"
        "ATTENDEE;CN=bob;PARTSTAT=NEEDS-ACTION:mailto:bob@example.org\r\nEND:VEVENT\r\n"
    )
    changed = stored.replace("RRULE:FREQ=WEEKLY;COUNT=4", "RRULE:FREQ=WEEKLY;COUNT=4\r\nEXDATE:20270323T090000Z")
    changed = changed.replace("END:VCALENDAR", moved + "END:VCALENDAR")
    assert (await put(client, "alice", "m1", changed))[0] == 204
    bobs, _ = await get(client, "bob", "m1")
    text = bobs.to_ical().decode()  # type: ignore[union-attr]
    assert "DTSTART:20270316T150000Z" in text and "EXDATE:20270323T090000Z" in text
    assert partstat(bobs, "bob", 0) == "NEEDS-ACTION"  # the rule changed (EXDATE): asked again
    messages = await inbox(client, "bob")
    assert "METHOD:CANCEL" in messages[-1] and "RECURRENCE-ID:20270323T090000Z" in messages[-1]


async def test_a_room_answers_on_its_own(client: TestClient, signup: People) -> None:
    for name in ("alice", "bob", "room1"):
        await signup(name)
    services: Services = client.app[SERVICES]
    room = await services.users.get_by_name("room1")
    assert room is not None
    await services.store.update_user(room.id, cutype="ROOM")
    found = await client.request(
        "PROPFIND", "/dav/principals/room1/", headers={**basic("room1"), "Depth": "0"},
        data='<propfind xmlns="DAV:"><prop><calendar-user-type xmlns="urn:ietf:params:xml:ns:caldav"/>'
        "</prop></propfind>",
    )  # fmt: skip
    assert "ROOM" in await found.text()
    await put(client, "alice", "m1", meeting(attendees=("bob", "room1")))
    organizer_copy, _ = await get(client, "alice", "m1")
    assert partstat(organizer_copy, "room1") == "ACCEPTED" and partstat(organizer_copy, "bob") == "NEEDS-ACTION"
    assert (status(organizer_copy, "room1"), status(organizer_copy, "bob")) == ("2.0", "1.2")  # it answered at once
    assert partstat((await get(client, "room1", "m1"))[0], "room1") == "ACCEPTED"
    assert "METHOD:REPLY" in (await inbox(client, "alice"))[-1]
    await put(client, "bob", "m2", meeting("m2", ("room1",), organizer="bob", start="20270302T093000Z"))
    clash, _ = await get(client, "bob", "m2")
    assert partstat(clash, "room1") == "DECLINED"


async def test_the_inbox_is_its_owners_and_expires(client: TestClient, signup: People) -> None:
    for name in ("alice", "bob"):
        await signup(name)
    await put(client, "alice", "m1", meeting())
    listing = await client.request("PROPFIND", INBOX.format("bob"), headers={**basic("bob"), "Depth": "1"})
    text = await listing.text()
    assert "schedule-inbox" in text and text.count("<D:response>") == 2
    [href] = [h for h in re.findall(r"<D:href>([^<]+)</D:href>", text) if h.endswith(".ics")]
    assert (await client.get(href, headers=basic("alice"))).status == 404  # not hers
    default = await client.request(
        "PROPFIND", INBOX.format("bob"), headers={**basic("bob"), "Depth": "0"},
        data='<propfind xmlns="DAV:"><prop><schedule-default-calendar-URL xmlns="urn:ietf:params:xml:ns:caldav"/>'
        "</prop></propfind>",
    )  # fmt: skip
    assert "/dav/calendars/bob/calendar/" in await default.text()
    assert (await client.delete(href, headers=basic("bob"))).status == 204
    assert await inbox(client, "bob") == []
    await put(client, "alice", "m2", meeting("m2"))
    assert len(await inbox(client, "bob")) == 1
    services: Services = client.app[SERVICES]
    expiring = build(dataclasses.replace(services.config, inbox_days=0), services.store)
    bob = await services.users.get_by_name("bob")
    assert bob is not None and await expiring.scheduling.inbox(bob) == []  # delivered before "0 days ago"


async def test_calendar_auto_schedule_is_advertised(client: TestClient, alice: Account) -> None:
    response = await client.options("/dav/calendars/alice/", headers=basic("alice"))
    assert "calendar-auto-schedule" in response.headers["DAV"]


def thunderbird(uid: str, agent: str = "", partstat: str = "NEEDS-ACTION", extra: str = "") -> str:
    """An invitation as Thunderbird 128 writes it (``agent``: the SCHEDULE-AGENT it adds when the
    user prefers to send invitations by e-mail itself)."""
    return (
        "BEGIN:VCALENDAR\r\nPRODID:-//Mozilla.org/NONSGML Mozilla Calendar V1.1//EN\r\nVERSION:2.0\r\n"
        "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\n"
        "TZNAME:CET\r\nDTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10\r\nEND:STANDARD\r\n"
        "BEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nTZNAME:CEST\r\nDTSTART:19700329T020000\r\n"
        "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n"
        f"BEGIN:VEVENT\r\nCREATED:20270101T090000Z\r\nLAST-MODIFIED:20270101T090000Z\r\nDTSTAMP:20270101T090000Z\r\n"
        f"UID:{uid}\r\nSUMMARY:Quarterly review\r\n"
        f"ORGANIZER;RSVP=FALSE;CN=Alice;PARTSTAT=ACCEPTED;ROLE=CHAIR{agent}:mailto:alice@example.org\r\n"
        f"ATTENDEE;RSVP=FALSE;CN=Alice;PARTSTAT=ACCEPTED;ROLE=CHAIR{agent}:mailto:alice@example.org\r\n"
        f"ATTENDEE;RSVP=TRUE;PARTSTAT={partstat};ROLE=REQ-PARTICIPANT{agent}:mailto:bob@example.org\r\n"
        "X-MOZ-SEND-INVITATIONS:TRUE\r\nX-MOZ-SEND-INVITATIONS-UNDISCLOSED:FALSE\r\n"
        "DTSTART;TZID=Europe/Berlin:20270302T100000\r\nDTEND;TZID=Europe/Berlin:20270302T110000\r\n"
        f"TRANSP:OPAQUE\r\nSEQUENCE:0\r\n{extra}X-MOZ-GENERATION:1\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


async def test_thunderbird_invites_through_the_server(client: TestClient, signup: People) -> None:
    """Thunderbird sees calendar-auto-schedule and leaves the invitation to the server: its PUT
    (If-None-Match: *), the one-href multiget it re-reads with, bob's Thunderbird accepting (a
    PUT with If-Match, its own X-MOZ lines changed)."""
    for name in ("alice", "bob"):
        await signup(name)
    code, _, _ = await put(client, "alice", "tb-1", thunderbird("tb-1"), **{"If-None-Match": "*"})
    assert code == 201
    multiget = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<C:calendar-multiget xmlns:D="DAV:" '
        'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/><C:calendar-data/></D:prop>'
        "<D:href>/dav/calendars/bob/calendar/tb-1.ics</D:href></C:calendar-multiget>"
    )
    response = await client.request(
        "REPORT", CALENDAR.format("bob"), data=multiget, headers={**basic("bob"), "Depth": "1"}
    )
    text = await response.text()
    assert response.status == 207 and "UID:tb-1" in text and "PARTSTAT=NEEDS-ACTION" in text
    etag = re.search(r"<D:getetag>&quot;([^&]+)&quot;</D:getetag>|<D:getetag>\"([^\"]+)\"</D:getetag>", text)
    assert etag is not None
    bobs, _ = await get(client, "bob", "tb-1")
    accepted = answered(bobs.to_ical().decode(), "ACCEPTED").replace(  # type: ignore[union-attr]
        "END:VEVENT", "X-MOZ-RECEIVED-SEQUENCE:0\r\nX-MOZ-GENERATION:2\r\nEND:VEVENT"
    )
    code, _, _ = await put(client, "bob", "tb-1", accepted, **{"If-Match": f'"{etag.group(1) or etag.group(2)}"'})
    assert code == 204
    organizer_copy, _ = await get(client, "alice", "tb-1")
    assert partstat(organizer_copy, "bob") == "ACCEPTED"
    assert partstat(organizer_copy, "alice") == "ACCEPTED"  # the organizer as attendee: left alone


async def test_thunderbird_sending_invitations_itself_gets_none_from_the_server(
    client: TestClient, signup: People
) -> None:
    """With "prefer client-side e-mail scheduling", Thunderbird marks every attendee
    SCHEDULE-AGENT=CLIENT and mails them itself: the server delivers nothing (no duplicate)."""
    for name in ("alice", "bob"):
        await signup(name)
    code, headers, _ = await put(
        client, "alice", "tb-2", thunderbird("tb-2", ";SCHEDULE-AGENT=CLIENT"), **{"If-None-Match": "*"}
    )
    assert code == 201 and "ETag" in headers  # stored as sent
    assert (await get(client, "bob", "tb-2"))[0] is None and await inbox(client, "bob") == []


async def test_apple_calendar_answers_with_its_schedule_tag(client: TestClient, signup: People) -> None:
    """Apple Calendar on the attendee's side: it reads the copy (with its Schedule-Tag) and
    answers with If-Schedule-Tag-Match and its own X-APPLE lines, though another attendee's
    answer changed the copy meanwhile (that answer is kept); its own answer keeps the tag."""
    for name in ("alice", "bob", "carol"):
        await signup(name)
    await put(client, "alice", "ap-1", meeting("ap-1", ("bob", "carol")))
    bobs, headers = await get(client, "bob", "ap-1")
    tag = headers["Schedule-Tag"]
    carols, _ = await get(client, "carol", "ap-1")
    carol_accepts = (
        carols.to_ical()
        .decode()
        .replace(  # type: ignore[union-attr]
            "PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:carol@", "PARTSTAT=ACCEPTED:mailto:carol@"
        )
    )
    assert (await put(client, "carol", "ap-1", carol_accepts))[0] == 204
    apple = answered(bobs.to_ical().decode(), "ACCEPTED").replace(  # type: ignore[union-attr]
        "END:VEVENT", "X-APPLE-TRAVEL-ADVISORY-BEHAVIOR:AUTOMATIC\r\nTRANSP:OPAQUE\r\nEND:VEVENT"
    )
    code, answer_headers, _ = await put(client, "bob", "ap-1", apple, **{"If-Schedule-Tag-Match": tag})
    assert code == 204 and answer_headers["Schedule-Tag"] == tag  # an answer is not consequential
    bobs, _ = await get(client, "bob", "ap-1")
    assert partstat(bobs, "carol") == "ACCEPTED"  # carol's answer, which Apple's copy did not have, is kept
    organizer_copy, _ = await get(client, "alice", "ap-1")
    assert (partstat(organizer_copy, "bob"), partstat(organizer_copy, "carol")) == ("ACCEPTED", "ACCEPTED")


async def test_the_json_api_shows_invitations_and_answers_them(client: TestClient, signup: People) -> None:
    """REST: a slot shows its organizer, attendees and the asking user's participation; the
    invitations not answered yet are listed; one request answers one, and the organizer's
    calendar program sees the answer as from any other."""
    alice, bob = await signup("alice"), await signup("bob")
    await signup("carol")
    await put(client, "alice", "m1", meeting(attendees=("bob", "carol")))
    await put(client, "alice", "m2", meeting("m2", ("carol",)))
    pending = await (await bob.get("/v1/me/invitations")).json()
    assert [p["uid"] for p in pending] == ["m1"]
    [invitation] = pending
    assert invitation["organizer"] == "alice@example.org" and invitation["participation"] == "needs-action"
    assert [(a["email"], a["status"]) for a in invitation["attendees"]] == [
        ("bob@example.org", "needs-action"), ("carol@example.org", "needs-action"),
    ]  # fmt: skip
    answer = f"/v1/slots/{invitation['id']}/answer"
    refused = await client.post(answer, json={"status": "maybe"}, headers=bob.headers)
    assert refused.status == 422 and "status" in await refused.text()
    answered = await client.post(answer, json={"status": "tentative"}, headers=bob.headers)
    assert answered.status == 200 and (await answered.json())["participation"] == "tentative"
    assert await (await bob.get("/v1/me/invitations")).json() == []
    organizer_copy, _ = await get(client, "alice", "m1")
    assert partstat(organizer_copy, "bob") == "TENTATIVE"
    shown = await (await alice.get(f"/v1/slots/{(await (await alice.get('/v1/me/slots')).json())[0]['id']}")).json()
    assert shown["participation"] is None and shown["organizer"] == "alice@example.org"
    own = await client.post(f"/v1/slots/{shown['id']}/answer", json={"status": "accepted"}, headers=alice.headers)
    assert own.status == 422  # her own meeting is no invitation to her
