"""iMIP (RFC 6047): invitations, updates and cancellations to attendees outside the server go
out by e-mail through a real SMTP server run in the test process (aiosmtpd), from the queue in
the store: each change once, never for the past, each message by one sender of several nodes."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from email.message import EmailMessage, Message

import aiosmtplib
import pytest
from aiohttp.test_utils import TestClient
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope

from protocol.ical.resources import resource_from_calendar
from protocol.ical.values import parse_resource
from server.app import create_app
from server.config import Config
from server.http import SERVICES
from server.services import Services
from server.services.calendars import object_write
from storage.model import Mail, ObjectPut
from tests.helpers import basic, free_port

SENDER = "calendar@almanac.test"


class Received:
    """What the SMTP server was given."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:  # noqa: N802 (aiosmtpd's name)
        self.envelopes.append(envelope)
        return "250 OK"

    def messages(self) -> list[Message]:
        return [email.message_from_bytes(e.content) for e in self.envelopes]  # type: ignore[arg-type]


@pytest.fixture
def smtp() -> Iterator[tuple[Received, int]]:
    received, port = Received(), free_port()
    controller = Controller(received, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield received, port
    finally:
        controller.stop()


@pytest.fixture
async def mailing(
    aiohttp_client: Callable[..., Awaitable[TestClient]], config: Config, smtp: tuple[Received, int]
) -> AsyncIterator[tuple[TestClient, Received, Config]]:
    mailed = dataclasses.replace(
        config, smtp_host="127.0.0.1", smtp_port=smtp[1], smtp_sender=SENDER, smtp_starttls="never",
        smtp_receiver=f"127.0.0.1:{free_port()}", smtp_rsvp_url="https://calendar.almanac.test/app/rsvp/",
    )  # fmt: skip
    client = await aiohttp_client(create_app(mailed))
    for name in ("alice", "bob"):
        signed = await client.post(
            "/v1/users", json={"username": name, "password": "correct horse", "email": f"{name}@example.org"}
        )
        assert signed.status == 201
    yield client, smtp[0], mailed


def meeting(summary: str = "Plan", start: str = "20270405T090000Z", attendees: str = "carol@elsewhere.example") -> str:
    lines = "".join(f"ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{a}\r\n" for a in attendees.split())
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:im-1\r\nDTSTAMP:20270101T000000Z\r\n"
        f"DTSTART:{start}\r\nDURATION:PT1H\r\nSUMMARY:{summary}\r\nORGANIZER:mailto:alice@example.org\r\n"
        f"ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@example.org\r\n{lines}END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


async def put(client: TestClient, text: str) -> int:
    headers = {**basic("alice"), "Content-Type": "text/calendar"}
    return (await client.put("/dav/calendars/alice/calendar/im-1.ics", data=text, headers=headers)).status


async def mails(received: Received, count: int, seconds: float = 10) -> list[Message]:
    """The messages once there are ``count`` (or after ``seconds``)."""
    deadline = time.monotonic() + seconds
    while len(received.envelopes) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return received.messages()


def calendar_part(message: Message) -> tuple[str, str]:
    part = next(p for p in message.walk() if p.get_content_type() == "text/calendar")
    return str(part.get_param("method")), part.get_payload(decode=True).decode()  # type: ignore[union-attr]


async def test_an_outside_attendee_is_invited_updated_and_cancelled_by_mail(
    mailing: tuple[TestClient, Received, Config],
) -> None:
    client, received, _ = mailing
    assert await put(client, meeting()) == 201
    [invitation] = await mails(received, 1)
    assert received.envelopes[0].mail_from == SENDER and received.envelopes[0].rcpt_tos == ["carol@elsewhere.example"]
    assert invitation["Subject"] == "Invitation: Plan" and invitation["To"] == "carol@elsewhere.example"
    token = invitation["Reply-To"].removeprefix("calendar+").removesuffix("@almanac.test")
    assert token and invitation["Reply-To"] == f"calendar+{token}@almanac.test"
    method, text = calendar_part(invitation)
    assert method == "REQUEST" and "METHOD:REQUEST" in text and "UID:im-1" in text
    stored = await (await client.get("/dav/calendars/alice/calendar/im-1.ics", headers=basic("alice"))).text()
    assert "SCHEDULE-STATUS=1.1:mailto:carol@elsewhere.example" in stored.replace("\r\n ", "")  # pending
    assert await put(client, meeting()) == 204  # the same again: no second mail
    await asyncio.sleep(2)
    assert len(received.envelopes) == 1
    assert await put(client, meeting("Plan, with numbers")) == 204
    update = (await mails(received, 2))[1]
    assert update["Subject"].startswith("Updated invitation") and update["Reply-To"] == invitation["Reply-To"]
    removed = await client.delete("/dav/calendars/alice/calendar/im-1.ics", headers=basic("alice"))
    assert removed.status == 204
    cancel = (await mails(received, 3))[2]
    assert calendar_part(cancel)[0] == "CANCEL" and cancel["Subject"].startswith("Cancelled")


async def test_nothing_is_mailed_for_the_past(mailing: tuple[TestClient, Received, Config]) -> None:
    client, received, _ = mailing
    assert await put(client, meeting(start="20200405T090000Z")) == 201
    await asyncio.sleep(2)
    assert received.envelopes == []


async def test_two_nodes_send_each_message_once(
    aiohttp_client: Callable[..., Awaitable[TestClient]], mailing: tuple[TestClient, Received, Config]
) -> None:
    """Two servers on one store each run a sender: every message goes out once."""
    client, received, config = mailing
    await aiohttp_client(create_app(dataclasses.replace(config, worker=1)))
    for n in range(5):
        assert await put(client, meeting(f"Plan {n}")) in (201, 204)
    await mails(received, 5)
    await asyncio.sleep(2)
    subjects = [m["Subject"] for m in received.messages()]
    assert len(subjects) == 5 and len(set(subjects)) == 5


def answer(
    token: str, partstat: str = "ACCEPTED", sender: str = "carol@elsewhere.example", outlook: bool = False
) -> str:
    """An attendee's answer as their mail program sends it (``outlook``: without ORGANIZER)."""
    organizer = "" if outlook else "ORGANIZER:mailto:alice@example.org\r\n"
    calendar = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Microsoft Corporation//Outlook 16.0 MIMEDIR//EN\r\n"
        "METHOD:REPLY\r\nBEGIN:VEVENT\r\nUID:im-1\r\nDTSTAMP:20270102T000000Z\r\n"
        f"DTSTART:20270405T090000Z\r\n{organizer}ATTENDEE;PARTSTAT={partstat}:mailto:{sender}\r\n"
        "ATTENDEE;PARTSTAT=DECLINED:mailto:bob@example.org\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = sender, f"calendar+{token}@almanac.test", f"{partstat}: Plan"
    mail.set_content("My answer.")
    mail.add_alternative(calendar.encode(), maintype="text", subtype="calendar", params={"method": "REPLY"})
    return mail.as_string()


async def send(config: Config, sender: str, recipient: str, message: str) -> tuple[int, str]:
    """A mail server forwarding one mail to the receiver: its answer (code, message)."""
    host, _, port = config.smtp_receiver.rpartition(":")
    try:
        await aiosmtplib.send(message, sender=sender, recipients=[recipient], hostname=host, port=int(port),
                              start_tls=False)  # fmt: skip
    except aiosmtplib.SMTPRecipientsRefused as refused:
        return refused.recipients[0].code, refused.recipients[0].message
    except aiosmtplib.SMTPResponseException as refused:
        return refused.code, refused.message
    return 250, "OK"


async def test_an_answer_by_mail_is_applied_when_token_and_sender_match(
    mailing: tuple[TestClient, Received, Config],
) -> None:
    """Carol answers from her mail program (Outlook's way: no ORGANIZER): applied to alice's
    copy, alice's inbox gets it, bob's copy shows it; a wrong token, another sender or an answer
    for someone else are refused with a permanent error, and change nothing."""
    client, received, config = mailing
    assert await put(client, meeting()) == 201
    [invitation] = await mails(received, 1)
    to = invitation["Reply-To"]
    token = to.removeprefix("calendar+").removesuffix("@almanac.test")
    code, text = await send(config, "carol@elsewhere.example", "calendar+nosuchtoken@almanac.test", answer("x"))
    assert code == 550 and "no such reply address" in text
    code, _ = await send(config, "carol@elsewhere.example", "someone@almanac.test", answer(token))
    assert code == 550  # not a reply address at all
    code, text = await send(config, "mallory@elsewhere.example", to, answer(token, sender="mallory@elsewhere.example"))
    assert code == 550 and "must come from carol@elsewhere.example" in text
    stored = await (await client.get("/dav/calendars/alice/calendar/im-1.ics", headers=basic("alice"))).text()
    assert "PARTSTAT=NEEDS-ACTION;RSVP=TRUE;SCHEDULE-STATUS=1.1:mailto:carol" in stored.replace("\r\n ", "")
    code, _ = await send(config, "carol@elsewhere.example", to, answer(token, "TENTATIVE", outlook=True))
    assert code == 250
    stored = await (await client.get("/dav/calendars/alice/calendar/im-1.ics", headers=basic("alice"))).text()
    unfolded = stored.replace("\r\n ", "")
    assert "PARTSTAT=TENTATIVE;SCHEDULE-STATUS=2.0:mailto:carol@elsewhere.example" in unfolded
    assert "PARTSTAT=NEEDS-ACTION;SCHEDULE-STATUS=1.2:mailto:bob@example.org" in unfolded  # not carol's to say
    bobs = await (await client.get("/dav/calendars/bob/calendar/im-1.ics", headers=basic("bob"))).text()
    assert "PARTSTAT=TENTATIVE:mailto:carol@elsewhere.example" in bobs.replace("\r\n ", "")
    inbox = await client.request("PROPFIND", "/dav/scheduling/alice/inbox/", headers={**basic("alice"), "Depth": "1"})
    assert (await inbox.text()).count(".ics</D:href>") == 1


async def test_an_attendee_without_a_calendar_program_answers_on_the_rsvp_page(
    mailing: tuple[TestClient, Received, Config],
) -> None:
    """The invitation's text names a web page (no sign-in: its token is the credential) with
    accept, maybe and decline; the answer reaches the organizer as one by mail would; an
    unknown token is not found, and the link expires with the meeting."""
    client, received, _ = mailing
    assert await put(client, meeting()) == 201
    [invitation] = await mails(received, 1)
    plain = next(p for p in invitation.walk() if p.get_content_type() == "text/plain").get_payload(decode=True)
    link = next(w for w in plain.decode().split() if w.startswith("https://calendar.almanac.test/app/rsvp/"))
    page = link.removeprefix("https://calendar.almanac.test")
    shown = await client.get(page)
    text = await shown.text()
    assert shown.status == 200 and "Plan" in text and "alice@example.org invites you" in text and "Decline" in text
    answered = await client.post(page, data={"answer": "decline"})
    assert answered.status == 200 and "has your answer" in await answered.text()
    stored = await (await client.get("/dav/calendars/alice/calendar/im-1.ics", headers=basic("alice"))).text()
    assert "PARTSTAT=DECLINED;SCHEDULE-STATUS=2.0:mailto:carol@elsewhere.example" in stored.replace("\r\n ", "")
    assert (await client.get("/app/rsvp/unknown-token-123")).status == 404
    past = meeting(start="20200405T090000Z")
    headers = {**basic("alice"), "Content-Type": "text/calendar"}
    assert (await client.put("/dav/calendars/alice/calendar/im-1.ics", data=past, headers=headers)).status == 204
    expired = await client.get(page)
    assert expired.status == 404 and "expired" in await expired.text()


async def test_a_failed_send_waits_its_turn_and_is_sent_once(services: Services) -> None:
    """The queue's rules: a claimed message is no one else's while leased; a failure makes it
    due again later (not before), a success takes it out; a change queued twice is one mail."""
    user = await services.users.create("alice", "correct horse", "alice@example.org")
    mail = Mail(user.id, "change-1", "carol@elsewhere.example", "Subject: x\r\n\r\nbody\r\n")
    [calendar] = await services.calendars.of(user)
    event = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:q\r\nDTSTAMP:20270101T000000Z\r\n"
    event += "DTSTART:20270101T000000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    write = object_write(resource_from_calendar(parse_resource(event)))
    store = services.store
    await store.write_scheduled([ObjectPut(calendar.id, write)], mail=[mail])
    await store.write_scheduled([ObjectPut(calendar.id, write, if_etag="*")], mail=[mail])  # the same change again
    now = int(time.time())
    first = await store.claim_mail("node-a", now, now + 120)
    assert first is not None and first.attempts == 1
    assert await store.claim_mail("node-b", now, now + 120) is None  # leased, and no second copy queued
    await store.mail_done(first.id, "node-a", "421 try later", now + 60)
    assert await store.claim_mail("node-b", now + 30, now + 150) is None  # not due yet
    again = await store.claim_mail("node-b", now + 61, now + 181)
    assert again is not None and again.id == first.id and again.attempts == 2
    await store.mail_done(again.id, "node-b", None, None)
    assert await store.claim_mail("node-a", now + 10_000, now + 10_120) is None  # sent: never again


async def test_the_meeting_the_issue_asks_for(mailing: tuple[TestClient, Received, Config]) -> None:
    """Alice invites bob (here), a room and carol (outside) from a CalDAV client; bob accepts
    through WCAP, the room on its own, carol by mail; alice's copy shows all three answers; she
    moves one instance of the series and every copy follows (carol is mailed the update); she
    cancels and it is gone everywhere (carol is mailed the cancellation)."""
    client, received, config = mailing
    await client.post(
        "/v1/users", json={"username": "room1", "password": "correct horse", "email": "room1@example.org"}
    )
    services: Services = client.app[SERVICES]
    room = await services.users.get_by_name("room1")
    assert room is not None
    await services.users.set_type(room, "room")
    series = meeting(attendees="carol@elsewhere.example room1@example.org").replace(
        "DURATION:PT1H\r\n", "DURATION:PT1H\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\n"
    )
    assert await put(client, series) == 201
    [invitation] = await mails(received, 1)
    token = invitation["Reply-To"].removeprefix("calendar+").removesuffix("@almanac.test")
    bob = await client.get("/wcap/login.wcap", params={"user": "bob", "password": "correct horse"})
    session = next(line.split(":", 1)[1] for line in (await bob.text()).splitlines() if "SESSION-ID" in line).strip()
    stored = await client.get("/wcap/storeevents.wcap", params={
        "id": session, "calid": "bob", "uid": "im-1", "storetype": "2", "method": "4",
        "attendees": "PARTSTAT=ACCEPTED^bob",
    })  # fmt: skip
    assert "X-NSCP-WCAP-ERRNO:0" in await stored.text()
    assert (await send(config, "carol@elsewhere.example", invitation["Reply-To"], answer(token)))[0] == 250
    organizer_copy = await (await client.get("/dav/calendars/alice/calendar/im-1.ics", headers=basic("alice"))).text()
    unfolded = organizer_copy.replace("\r\n ", "")
    for who in ("bob@example.org", "room1@example.org", "carol@elsewhere.example"):
        assert re.search(rf"ATTENDEE;[^\r\n]*PARTSTAT=ACCEPTED[^\r\n]*:mailto:{re.escape(who)}", unfolded), who
    moved = organizer_copy.replace("END:VCALENDAR", (
        "BEGIN:VEVENT\r\nUID:im-1\r\nDTSTAMP:20270101T000000Z\r\nRECURRENCE-ID:20270412T090000Z\r\n"
        "DTSTART:20270412T150000Z\r\nDURATION:PT1H\r\nSUMMARY:Plan\r\nORGANIZER:mailto:alice@example.org\r\n"
        "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@example.org\r\nATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:room1@example.org\r\n"
        "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:carol@elsewhere.example\r\nEND:VEVENT\r\nEND:VCALENDAR"
    ))  # fmt: skip
    assert await put(client, moved) == 204
    for user in ("bob", "room1"):
        copy = await (await client.get(f"/dav/calendars/{user}/calendar/im-1.ics", headers=basic(user))).text()
        assert "DTSTART:20270412T150000Z" in copy, user
    update = (await mails(received, 2))[1]
    assert update["Subject"].startswith("Updated invitation") and "20270412T150000Z" in calendar_part(update)[1]
    assert (await client.delete("/dav/calendars/alice/calendar/im-1.ics", headers=basic("alice"))).status == 204
    for user in ("bob", "room1"):
        assert (await client.get(f"/dav/calendars/{user}/calendar/im-1.ics", headers=basic(user))).status == 404
    assert calendar_part((await mails(received, 3))[2])[0] == "CANCEL"
