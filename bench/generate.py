"""Sample calendars for the benchmarks: realistic events, some recurring, some zoned."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta


def ics(count: int, seed: int = 1, prefix: str = "bench", days: int = 2 * 365, notes: int = 0) -> bytes:
    """A .ics file of ``count`` events from 2024 on over ``days`` days: 80% UTC, 10% zoned
    weekly series of 20 instances, 10% all-day; each with a COMMENT of ``notes`` characters
    (folded) when asked, to make big files."""
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    stamp = "20240101T000000Z"
    lines = [
        "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Almanac//Bench//EN",
        "BEGIN:VTIMEZONE", "TZID:Europe/Berlin",
        "BEGIN:STANDARD", "DTSTART:19701025T030000", "TZOFFSETFROM:+0200", "TZOFFSETTO:+0100",
        "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU", "END:STANDARD",
        "BEGIN:DAYLIGHT", "DTSTART:19700329T020000", "TZOFFSETFROM:+0100", "TZOFFSETTO:+0200",
        "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU", "END:DAYLIGHT", "END:VTIMEZONE",
    ]  # fmt: skip
    for n in range(count):
        begin = start + timedelta(minutes=30 * rng.randrange(0, days * 48))
        kind = rng.random()
        lines += ["BEGIN:VEVENT", f"UID:{prefix}-{n}@almanac.test", f"DTSTAMP:{stamp}"]
        if kind < 0.1:
            local = begin.strftime("%Y%m%dT%H%M%S")
            lines += [f"DTSTART;TZID=Europe/Berlin:{local}", "DURATION:PT1H", "RRULE:FREQ=WEEKLY;COUNT=20"]
        elif kind < 0.2:
            lines += [f"DTSTART;VALUE=DATE:{begin:%Y%m%d}", f"DTEND;VALUE=DATE:{begin + timedelta(days=1):%Y%m%d}"]
        else:
            end = begin + timedelta(minutes=30 * rng.randrange(1, 6))
            lines += [f"DTSTART:{begin:%Y%m%dT%H%M%SZ}", f"DTEND:{end:%Y%m%dT%H%M%SZ}"]
        lines += [
            f"SUMMARY:Meeting {n} about item {rng.randrange(1000)}",
            f"DESCRIPTION:Agenda for meeting {n}: review\\, plan and decide.",
            f"LOCATION:Room {rng.randrange(1, 40)}",
        ]
        if notes:
            comment = "COMMENT:" + "".join(rng.choice("abcdefgh ") for _ in range(notes))
            lines += [comment[:74], *(" " + comment[i : i + 73] for i in range(74, len(comment), 73))]
        lines.append("END:VEVENT")
    lines += ["END:VCALENDAR", ""]
    return "\r\n".join(lines).encode()
