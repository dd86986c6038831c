"""Free/busy, one meaning at every door that answers it (CalDAV free-busy-query, WCAP
get_freebusy, the busy-times feed), as RFC 4791 7.10 and RFC 5545 give it: STATUS and TRANSP
decide the FBTYPE or leave an event out, periods are clipped to the range asked and merged where
they touch, floating times and dates are the asker's wall clock, and a series counts its
overrides and its cancelled occurrences. Scheduling will lean on this."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from aiohttp.test_utils import TestClient
from icalendar import Calendar

from protocol.ical.busy import BUSY, TENTATIVE, busy_calendar, busy_periods, merged
from server.http import SERVICES
from server.services import Services
from tests.helpers import CAL, Account, basic

DAY = date.today() + timedelta(days=1)  #: within the feed's window (90 days back, 400 ahead)


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def at(days: int, hour: int, minute: int = 0) -> str:
    """A UTC date-time ``days`` after DAY."""
    return stamp(datetime.combine(DAY, time(), UTC) + timedelta(days=days, hours=hour, minutes=minute))


def local(days: int, hour: int) -> str:
    """A floating date-time ``days`` after DAY."""
    return at(days, hour).removesuffix("Z")


def vevent(uid: str, *lines: str) -> str:
    return (
        "BEGIN:VEVENT\r\n"
        + "".join(f"{line}\r\n" for line in (f"UID:{uid}", "DTSTAMP:20250101T000000Z", *lines))
        + "END:VEVENT\r\n"
    )


def resource(*components: str) -> str:
    return "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n" + "".join(components) + "END:VCALENDAR\r\n"


#: the calendar's events, each a resource: name -> text
EVENTS = {
    "busy": resource(vevent("busy", f"DTSTART:{at(0, 10)}", f"DTEND:{at(0, 11)}", "STATUS:CONFIRMED")),
    "touching": resource(vevent("touching", f"DTSTART:{at(0, 11)}", f"DTEND:{at(0, 11, 30)}")),
    "transparent": resource(vevent("transparent", f"DTSTART:{at(0, 12)}", f"DTEND:{at(0, 13)}", "TRANSP:TRANSPARENT")),
    "cancelled": resource(vevent("cancelled", f"DTSTART:{at(0, 13)}", f"DTEND:{at(0, 14)}", "STATUS:CANCELLED")),
    "tentative": resource(vevent("tentative", f"DTSTART:{at(0, 14)}", f"DTEND:{at(0, 15)}", "STATUS:TENTATIVE")),
    "overnight": resource(vevent("overnight", f"DTSTART:{at(-1, 23)}", f"DTEND:{at(0, 1)}")),  # before the range
    "floating": resource(vevent("floating", f"DTSTART:{local(0, 16)}", f"DTEND:{local(0, 17)}")),
    "all-day": resource(vevent("all-day", f"DTSTART;VALUE=DATE:{(DAY + timedelta(days=4)):%Y%m%d}")),
    "series": resource(
        vevent("series", f"DTSTART:{at(1, 6)}", f"DTEND:{at(1, 7)}", "RRULE:FREQ=DAILY;COUNT=3"),
        vevent("series", f"RECURRENCE-ID:{at(2, 6)}", f"DTSTART:{at(2, 8)}", f"DTEND:{at(2, 9)}"),
        vevent("series", f"RECURRENCE-ID:{at(3, 6)}", f"DTSTART:{at(3, 6)}", f"DTEND:{at(3, 7)}", "STATUS:CANCELLED"),
    ),
}
RANGE = (at(0, 0), at(5, 0))  # DAY 00:00Z to DAY+5 00:00Z


def expected(zone: ZoneInfo) -> list[tuple[str, str, str]]:
    """The periods of RANGE, floating times and dates read on ``zone``'s wall clock."""
    midnight = datetime.combine(DAY, time(), zone)
    return sorted([
        ("BUSY", at(0, 0), at(0, 1)),  # clipped to the range
        ("BUSY", at(0, 10), at(0, 11, 30)),  # merged with the one that touches it
        ("BUSY-TENTATIVE", at(0, 14), at(0, 15)),
        ("BUSY", stamp(midnight.replace(hour=16)), stamp(midnight.replace(hour=17))),  # the asker's 16:00
        ("BUSY", at(1, 6), at(1, 7)),
        ("BUSY", at(2, 8), at(2, 9)),  # the overridden occurrence, moved; the next one cancelled
        # the asker's whole day, clipped to the range
        ("BUSY", stamp(datetime.combine(DAY + timedelta(days=4), time(), zone)),
         min(stamp(datetime.combine(DAY + timedelta(days=5), time(), zone)), RANGE[1])),
    ], key=lambda p: (p[1], p[0]))  # fmt: skip


def periods(text: str) -> list[tuple[str, str, str]]:
    found = [(kind, *span.split("/")) for kind, span in re.findall(r"FREEBUSY;FBTYPE=([A-Z-]+):(\S+)", text)]
    return sorted(((k, s, e) for k, s, e in found), key=lambda p: (p[1], p[0]))


async def test_free_busy_means_one_thing_at_every_door(client: TestClient, alice: Account) -> None:
    services: Services = client.app[SERVICES]
    [group] = (await (await alice.get("/v1/me/calendars")).json())["result"]
    zoned = await alice.patch(f"/v1/groups/{group['id']}", json={"timezone": "Europe/Berlin"})
    assert zoned.status == 200
    for name, text in EVENTS.items():
        put = await client.put(f"{CAL}{name}.ics", data=text, headers=basic("alice"))
        assert put.status == 201, (name, await put.text())
    query = (
        '<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav">'
        f'<C:time-range start="{RANGE[0]}" end="{RANGE[1]}"/></C:free-busy-query>'
    )
    caldav = await client.request("REPORT", CAL, data=query, headers={**basic("alice"), "Depth": "1"})
    assert caldav.status == 200
    assert periods(await caldav.text()) == expected(ZoneInfo("Europe/Berlin"))  # the calendar's zone

    login = await (await client.get("/login.wcap", params={"user": "alice", "password": "correct horse"})).text()
    session = login.split("X-NSCP-WCAP-SESSION-ID:")[1].split("\r\n")[0]
    params = {"id": session, "calid": "alice", "dtstart": RANGE[0], "dtend": RANGE[1]}
    wcap = await (await client.get("/get_freebusy.wcap", params=params)).text()
    assert periods(wcap) == expected(ZoneInfo("Europe/Berlin"))
    new_york = await (await client.get("/get_freebusy.wcap", params={**params, "tzid": "America/New_York"})).text()
    assert periods(new_york) == expected(ZoneInfo("America/New_York"))  # the asker's zone

    user = await services.users.get(alice.data["id"])
    assert user is not None
    [calendar] = await services.calendars.of(user)
    token = await services.calendars.set_feed(user, calendar, on=True, busy_only=True)
    feed = await (await client.get(f"/feeds/{token}.ics")).text()
    shown, days = set(), []
    berlin = ZoneInfo("Europe/Berlin")
    for event in Calendar.from_ical(feed).walk("VEVENT"):
        kind = "BUSY-TENTATIVE" if event.get("STATUS") == "TENTATIVE" else "BUSY"
        first, last = event.decoded("DTSTART"), event.decoded("DTEND")
        if not isinstance(first, datetime):  # whole days stay dates (on the calendar's wall clock)
            days.append(first)
            first, last = (datetime.combine(d, time(), berlin) for d in (first, last))
        shown.add((stamp(first), stamp(last), kind))
    assert days == [DAY + timedelta(days=4)]  # the all-day event, as a date
    for kind, start, end in expected(ZoneInfo("Europe/Berlin")):
        if start != RANGE[0]:  # the feed's own range does not cut the overnight event
            assert (start, end, kind) in shown, (kind, start, end)
    assert (at(-1, 23), at(0, 1), "BUSY") in shown
    assert not any(start in (at(0, 12), at(0, 13), at(3, 6)) for start, _, _ in shown)  # transparent, cancelled


async def test_the_ends_of_time_are_answered_at_every_door(client: TestClient, alice: Account) -> None:
    """A range from the first instant of year 1 or to the last of 9999, in UTC or on a wall clock
    west of it, is answered with the events there, never with an overflow (a 500, WCAP's 53)."""
    ends = {"first": ("00010101T000000Z", "00010111T000000Z"), "last": ("99991220T000000Z", "99991231T235959Z")}
    for name, day in (("first", "00010102"), ("last", "99991228")):
        text = resource(vevent(name, f"DTSTART:{day}T100000", "DURATION:PT1H", "RRULE:FREQ=DAILY;COUNT=3"))
        assert (await client.put(f"{CAL}{name}.ics", data=text, headers=basic("alice"))).status == 201
    login = await (await client.get("/login.wcap", params={"user": "alice", "password": "correct horse"})).text()
    session = login.split("X-NSCP-WCAP-SESSION-ID:")[1].split("\r\n")[0]
    for name, (start, end) in ends.items():
        query = (
            '<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav">'
            f'<C:time-range start="{start}" end="{end}"/></C:free-busy-query>'
        )
        caldav = await client.request("REPORT", CAL, data=query, headers={**basic("alice"), "Depth": "1"})
        assert caldav.status == 200 and len(periods(await caldav.text())) == 3, name
        for zone in ("", "America/New_York"):
            params = {"id": session, "calid": "alice", "dtstart": start, "dtend": end, "tzid": zone}
            params = {key: value for key, value in params.items() if value}
            busy = await (await client.get("/get_freebusy.wcap", params=params)).text()
            assert "X-NSCP-WCAP-ERRNO:0" in busy and len(periods(busy)) >= 2, (name, zone, busy)
            fetched = await (await client.get("/fetchcomponents_by_range.wcap", params=params)).text()
            assert "X-NSCP-WCAP-ERRNO:0" in fetched and fetched.count(f"UID:{name}") >= 2, (name, zone, fetched)


def test_a_busy_times_feed_changes_only_with_its_periods() -> None:
    """The busy-times feed: one opaque event per period, named by the calendar; its UID and
    stamp come from the period alone, so the same periods give the same text (subscribers'
    ETags hold) and a tentative period beside a busy one of the same times is another event."""
    start = datetime(2030, 1, 1, 10, tzinfo=UTC)
    periods = [(start, start + timedelta(hours=1), "BUSY"), (start, start + timedelta(hours=1), "BUSY-TENTATIVE")]
    text = busy_calendar("Alice's work", periods)
    assert text == busy_calendar("Alice's work", list(periods))
    feed = Calendar.from_ical(text)
    assert str(feed["X-WR-CALNAME"]) == "Alice's work" and str(feed["PRODID"]) == "-//Almanac//busy times//EN"
    assert str(feed["VERSION"]) == "2.0"
    busy, tentative = feed.walk("VEVENT")
    assert busy["UID"] != tentative["UID"] and str(busy["UID"]).endswith("@busy.almanac")
    for event, summary in ((busy, "Busy"), (tentative, "Busy (tentative)")):
        assert (event.decoded("DTSTART"), event.decoded("DTEND"), event.decoded("DTSTAMP")) == (
            start,
            start + timedelta(hours=1),
            start,
        )
        assert str(event["SUMMARY"]) == summary and str(event["TRANSP"]) == "OPAQUE"
    assert "STATUS" not in busy and str(tentative["STATUS"]) == "TENTATIVE"
    moved = busy_calendar("Alice's work", [(start + timedelta(hours=1), start + timedelta(hours=2), "BUSY")])
    assert Calendar.from_ical(moved).walk("VEVENT")[0]["UID"] != busy["UID"]


def test_what_counts_among_the_instances_of_one_resource() -> None:
    """busy_periods reads each VEVENT of a text (the instances of one resource, or an iTIP
    message): a transparent, cancelled or start-less one is left out without ending the walk,
    one of no length blocks no time, and a todo is never busy (RFC 4791 7.10 asks for VEVENTs)."""
    start, end = datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 1, 2, tzinfo=UTC)
    hour = timedelta(hours=1)

    def event(hour_: int, *lines: str) -> str:
        return vevent("x", f"DTSTART:20300101T{hour_:02}0000Z", "DURATION:PT1H", *lines)

    text = resource(
        vevent("x", "SUMMARY:no start, as in a METHOD:REQUEST reply"),
        event(8, "TRANSP:TRANSPARENT"),
        event(9),
        event(10, "STATUS:CANCELLED"),
        event(11),
        vevent("x", "DTSTART:20300101T120000Z"),  # no length
        "BEGIN:VTODO\r\nUID:t\r\nDTSTAMP:20250101T000000Z\r\nDTSTART:20300101T130000Z\r\n"
        "DUE:20300101T140000Z\r\nEND:VTODO\r\n",
        event(15, "STATUS:TENTATIVE"),
    )
    nine, eleven, three = (datetime(2030, 1, 1, h, tzinfo=UTC) for h in (9, 11, 15))
    assert busy_periods([text], start, end) == [(nine, nine + hour, BUSY), (eleven, eleven + hour, BUSY),
                                                (three, three + hour, TENTATIVE)]  # fmt: skip


def test_merging_joins_each_kind_on_its_own() -> None:
    """Periods of one FBTYPE that overlap, touch or nest are one; a tentative period between
    two touching busy ones does not keep them apart."""
    at_ = [datetime(2030, 1, 1, h, tzinfo=UTC) for h in range(24)]
    periods = [
        (at_[9], at_[10], BUSY),
        (at_[9], at_[11], TENTATIVE),
        (at_[10], at_[12], BUSY),
        (at_[14], at_[18], BUSY),
        (at_[15], at_[16], BUSY),  # inside the one before
        (at_[20], at_[21], BUSY),
    ]
    assert merged(reversed(periods)) == [
        (at_[9], at_[11], TENTATIVE),
        (at_[9], at_[12], BUSY),
        (at_[14], at_[18], BUSY),
        (at_[20], at_[21], BUSY),
    ]
