"""protocol/itip.py: the iTIP messages one change makes, an attendee's copy, a REPLY applied, and
what an attendee may change (RFC 5546, RFC 6638 3.2)."""

from __future__ import annotations

from datetime import UTC, datetime

from icalendar import Alarm, Calendar

from protocol.itip import (
    address,
    answered,
    answers,
    apply_reply,
    attendee_addresses,
    attendee_change_refused,
    attendee_copy,
    attendees,
    by_instance,
    cancel,
    cancelled_instances,
    merge_answers,
    organizer,
    partstat,
    reply,
    request,
    significant,
    without_answers,
)

ALICE, BOB, CAROL, DAN = (
    "mailto:alice@example.org",
    "mailto:bob@example.org",
    "mailto:carol@example.org",
    "mailto:dan@example.org",
)
SECOND = datetime(2027, 1, 11, 9, tzinfo=UTC)  #: the series' second Monday (an override)
THIRD = datetime(2027, 1, 18, 9, tzinfo=UTC)

MEETING = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
    "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\n"
    "TZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
    "BEGIN:VEVENT\r\nUID:meeting-1\r\nDTSTAMP:20270101T000000Z\r\nSEQUENCE:0\r\n"
    "DTSTART;TZID=Europe/Berlin:20270104T100000\r\nDTEND;TZID=Europe/Berlin:20270104T110000\r\n"
    "RRULE:FREQ=WEEKLY;COUNT=4\r\nSUMMARY:Planning\r\n"
    "ORGANIZER;CN=Alice:MAILTO:Alice@Example.org\r\n"
    "ATTENDEE;PARTSTAT=ACCEPTED:mailto:alice@example.org\r\n"
    "ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE;SCHEDULE-STATUS=1.2:mailto:bob@example.org\r\n"
    "ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:carol@example.org\r\n"
    "END:VEVENT\r\n"
    "BEGIN:VEVENT\r\nUID:meeting-1\r\nDTSTAMP:20270101T000000Z\r\nSEQUENCE:0\r\n"
    "RECURRENCE-ID;TZID=Europe/Berlin:20270111T100000\r\n"
    "DTSTART;TZID=Europe/Berlin:20270111T140000\r\nDTEND;TZID=Europe/Berlin:20270111T150000\r\n"
    "SUMMARY:Planning (afternoon)\r\nORGANIZER;CN=Alice:mailto:alice@example.org\r\n"
    "ATTENDEE;PARTSTAT=ACCEPTED:mailto:alice@example.org\r\n"
    "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:carol@example.org\r\n"
    "ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:dan@example.org\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n"
)


def meeting() -> Calendar:
    return Calendar.from_ical(MEETING)


def test_who_organizes_and_who_attends() -> None:
    calendar = meeting()
    assert organizer(calendar) == ALICE  # addresses compare without case
    assert attendee_addresses(calendar) == {ALICE, BOB, CAROL, DAN}
    assert address(" MAILTO:Bob@Example.ORG ") == BOB and address("/dav/principals/Bob/") == "/dav/principals/Bob/"
    plain = Calendar.from_ical(MEETING.replace("ATTENDEE", "X-ATTENDEE"))
    assert organizer(plain) is None  # an ORGANIZER and no ATTENDEE: not a scheduling object


def test_a_request_holds_what_the_attendee_is_invited_to() -> None:
    to_bob = request(meeting(), BOB)
    assert to_bob is not None and to_bob["METHOD"] == "REQUEST"
    assert [c.name for c in to_bob.subcomponents] == ["VTIMEZONE", "VEVENT"]  # not in the override
    master = by_instance(to_bob)[None]
    assert [d.dt for prop in [master["EXDATE"]] for d in prop.dts] == [SECOND.astimezone(master["DTSTART"].dt.tzinfo)]
    assert "SCHEDULE-STATUS" not in attendees(master)[BOB].params  # the server's own parameter stays home
    to_carol = request(meeting(), CAROL)
    assert (
        to_carol is not None
        and set(by_instance(to_carol)) == {None, SECOND}
        and "EXDATE" not in by_instance(to_carol)[None]
    )
    to_dan = request(meeting(), DAN)
    assert to_dan is not None and set(by_instance(to_dan)) == {SECOND}  # only the instance he is in
    assert request(meeting(), "mailto:eve@example.org") is None


def test_a_cancel_takes_the_event_or_instances_away() -> None:
    whole = cancel(meeting(), BOB)
    [event] = [c for c in whole.subcomponents if c.name == "VEVENT"]
    assert (whole["METHOD"], event["STATUS"], str(event["UID"])) == ("CANCEL", "CANCELLED", "meeting-1")
    assert list(attendees(event)) == [BOB] and "RECURRENCE-ID" not in event
    one = cancel(meeting(), CAROL, [THIRD, SECOND])
    assert set(by_instance(one)) == {THIRD, SECOND}  # one not overridden, one overridden


def test_a_reply_is_applied_to_the_organizers_copy() -> None:
    copy = attendee_copy(request(meeting(), CAROL) or Calendar(), CAROL)
    assert "METHOD" not in copy
    for component in by_instance(copy).values():
        attendees(component)[CAROL].params["PARTSTAT"] = "ACCEPTED"
    answer = reply(copy, CAROL)
    assert answer["METHOD"] == "REPLY"
    assert {(a.attendee, a.instance, a.partstat) for a in answers(answer)} == {
        (CAROL, None, "ACCEPTED"),
        (CAROL, SECOND, "ACCEPTED"),
    }
    organizers = meeting()
    assert len(apply_reply(organizers, answer)) == 2
    for component in by_instance(organizers).values():
        line = attendees(component)[CAROL]
        assert (partstat(line), line.params["SCHEDULE-STATUS"], "RSVP" in line.params) == ("ACCEPTED", "2.0", False)


def test_a_reply_for_one_instance_overrides_it_on_the_organizers_side() -> None:
    bobs = attendee_copy(request(meeting(), BOB) or Calendar(), BOB)
    declined = reply(bobs, BOB)
    for component in declined.subcomponents:
        if component.name == "VEVENT":
            component.add("RECURRENCE-ID", THIRD)
            attendees(component)[BOB].params["PARTSTAT"] = "DECLINED"
    organizers = meeting()
    assert [a.instance for a in apply_reply(organizers, declined)] == [THIRD]
    parts = by_instance(organizers)
    assert (
        partstat(attendees(parts[THIRD])[BOB]) == "DECLINED" and partstat(attendees(parts[None])[BOB]) == "NEEDS-ACTION"
    )
    stranger = reply(bobs, BOB)
    for component in stranger.subcomponents:
        if component.name == "VEVENT":
            component["ATTENDEE"] = "mailto:eve@example.org"
    assert apply_reply(meeting(), stranger) == []  # not invited: nothing applied


def test_what_makes_attendees_answer_again() -> None:
    old = meeting()
    retitled = Calendar.from_ical(MEETING.replace("SUMMARY:Planning\r\n", "SUMMARY:Plans\r\n"))
    assert not significant(old, retitled)
    moved = Calendar.from_ical(MEETING.replace("20270104T100000", "20270104T103000"))
    assert significant(old, moved)
    shorter = Calendar.from_ical(MEETING.replace("COUNT=4", "COUNT=3"))
    assert significant(old, shorter)
    cancelled = Calendar.from_ical(MEETING.replace("SUMMARY:Planning\r\n", "SUMMARY:Planning\r\nSTATUS:CANCELLED\r\n"))
    assert significant(old, cancelled)


def test_an_attendee_may_change_only_what_is_theirs() -> None:
    copy = attendee_copy(request(meeting(), CAROL) or Calendar(), CAROL)
    text = copy.to_ical().decode()

    def changed(edit: str, new: str) -> str | None:
        assert edit in text, edit
        return attendee_change_refused(copy, Calendar.from_ical(text.replace(edit, new)), CAROL)

    accepted = "PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:carol@example.org"
    assert changed(accepted, "PARTSTAT=ACCEPTED:mailto:carol@example.org") is None
    assert changed("SUMMARY:Planning\r\n", "SUMMARY:Planning\r\nTRANSP:TRANSPARENT\r\nX-MY-NOTE:bring cake\r\n") is None
    alarm = "BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:soon\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\n"
    assert changed("SUMMARY:Planning\r\n", "SUMMARY:Planning\r\n" + alarm) is None
    assert changed("SUMMARY:Planning\r\n", "SUMMARY:My planning\r\n") is not None
    assert (
        changed("DTSTART;TZID=Europe/Berlin:20270104T100000", "DTSTART;TZID=Europe/Berlin:20270104T120000") is not None
    )
    assert changed(accepted, "PARTSTAT=ACCEPTED:mailto:mallory@example.org") is not None
    declined_third = "RRULE:FREQ=WEEKLY;COUNT=4\r\nEXDATE;TZID=Europe/Berlin:20270118T100000\r\n"
    assert changed("RRULE:FREQ=WEEKLY;COUNT=4\r\n", declined_third) is None  # an instance removed: declined
    one_instance = meeting()
    mine = attendee_copy(request(one_instance, CAROL) or Calendar(), CAROL)
    override = Calendar.from_ical(mine.to_ical())
    from protocol.ical.instances import override_instance

    instance = override_instance(override, THIRD)
    attendees(instance)[CAROL].params["PARTSTAT"] = "TENTATIVE"
    assert attendee_change_refused(mine, override, CAROL) is None  # one instance answered
    instance["SUMMARY"] = "Mine now"
    assert attendee_change_refused(mine, override, CAROL) is not None


def test_an_update_keeps_what_the_attendee_owns() -> None:
    first = attendee_copy(request(meeting(), CAROL) or Calendar(), CAROL)
    master = by_instance(first)[None]
    attendees(master)[CAROL].params["PARTSTAT"] = "ACCEPTED"
    master.add("TRANSP", "TRANSPARENT")
    master.add("X-MY-NOTE", "bring cake")
    alarm = Alarm()
    alarm.add("ACTION", "DISPLAY")
    alarm.add("TRIGGER", datetime(2027, 1, 4, 8, tzinfo=UTC))
    master.add_component(alarm)
    update = request(Calendar.from_ical(MEETING.replace("SUMMARY:Planning\r\n", "SUMMARY:Plans\r\n")), CAROL)
    assert update is not None
    kept = by_instance(attendee_copy(update, CAROL, first, reset=False))[None]
    assert (str(kept["SUMMARY"]), kept["TRANSP"], str(kept["X-MY-NOTE"])) == ("Plans", "TRANSPARENT", "bring cake")
    assert [c.name for c in kept.subcomponents] == ["VALARM"] and partstat(attendees(kept)[CAROL]) == "ACCEPTED"
    reset = by_instance(attendee_copy(update, CAROL, first, reset=True))[None]
    assert partstat(attendees(reset)[CAROL]) == "NEEDS-ACTION" and reset["TRANSP"] == "TRANSPARENT"


def test_what_an_attendees_write_answers_and_what_it_keeps() -> None:
    """``answered``: the instances whose PARTSTAT changed and the ones removed with an EXDATE
    (declined); ``reply`` says both; ``merge_answers`` keeps what scheduling recorded of the
    others; ``without_answers`` tells answers-only changes apart."""
    old = meeting()
    new = Calendar.from_ical(
        MEETING.replace("RRULE:FREQ=WEEKLY;COUNT=4\r\n", "RRULE:FREQ=WEEKLY;COUNT=4\r\nEXDATE:20270118T090000Z\r\n")
    )
    attendees(by_instance(new)[SECOND])[CAROL].params["PARTSTAT"] = "TENTATIVE"
    attendees(by_instance(new)[None])[BOB].params["PARTSTAT"] = "DECLINED"  # not carol's to say
    changed, declined = answered(old, new, CAROL)
    assert changed == [SECOND] and declined == [THIRD]
    message = reply(new, CAROL, changed, declined)
    assert sorted((a.instance, a.partstat) for a in answers(message)) == [(SECOND, "TENTATIVE"), (THIRD, "DECLINED")]
    merge_answers(new, old, [BOB])
    assert partstat(attendees(by_instance(new)[None])[BOB]) == "NEEDS-ACTION"  # scheduling's record wins
    assert without_answers(new) != without_answers(old)  # the EXDATE is more than an answer
    answered_only = meeting()
    attendees(by_instance(answered_only)[None])[BOB].params["PARTSTAT"] = "ACCEPTED"
    assert without_answers(answered_only) == without_answers(meeting())


def test_instances_taken_from_an_attendee() -> None:
    """``cancelled_instances``: an EXDATE added to a series that invites them, and an override
    that invited them and no longer does (the master not inviting them)."""
    new = Calendar.from_ical(
        MEETING.replace("RRULE:FREQ=WEEKLY;COUNT=4\r\n", "RRULE:FREQ=WEEKLY;COUNT=4\r\nEXDATE:20270118T090000Z\r\n")
        .replace("ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:dan@example.org\r\n", "")
    )  # fmt: skip
    assert cancelled_instances(meeting(), new, CAROL) == [THIRD]
    assert cancelled_instances(meeting(), new, DAN) == [SECOND]
    assert cancelled_instances(meeting(), meeting(), CAROL) == []
