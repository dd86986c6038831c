"""The import's plain reader (issue 17) against icalendar's path it stands in for: on every
component of the real-world corpora and on generated ones, a component it accepts is one
icalendar's path accepts without a repair or a warning, with the same block; and whole files
give the same resources, errors and warnings with it and without it. Also the fixed-step walk of
simple rules against dateutil's."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import formats
from protocol.formats import ParseOptions, ParseResult, ics, ics_walk, lines_of, whole_lines
from protocol.formats.plain import plain_block
from protocol.ical import walk
from protocol.ical.resources import ParsedComponent
from protocol.ical.values import OBJECT_COMPONENTS, to_utc
from protocol.ical.walk import Timing, _last_start, timing_instances
from tests.corpora import CORPORA

MAX = 10_000


def corpus_files() -> list[Path]:
    return sorted(path for folder in CORPORA.values() for path in folder.glob("*.ics"))


def components(text: str) -> Iterator[tuple[str, int, list[str]]]:
    """Each top-level event, todo and journal of a file: (name, first line, lines); after the
    file's time zones are known, as the import reads them."""
    result = ParseResult("ics")
    if ics._plan(whole_lines(lines_of(text)()), ParseOptions(), result) is None:
        return
    for _, name, line, lines in ics_walk.walk(whole_lines(lines_of(text)()), lambda problem: None):
        if name in OBJECT_COMPONENTS:
            yield name, line, lines


def by_icalendar(name: str, lines: list[str], line: int) -> tuple[ParsedComponent | None, ParseResult]:
    result = ParseResult("ics")
    block = ics._read_component(name, lines, line, result, None, ParseOptions(max_instances=MAX))
    return block, result


def fields(block: ParsedComponent) -> dict[str, object]:
    return {f.name: getattr(block, f.name) for f in dataclasses.fields(block) if f.name != "component"}


def agrees(name: str, lines: list[str], line: int) -> bool:
    """Whether the plain reader took the component; fails when it took it differently."""
    plain = plain_block(name, lines, line, MAX)
    if plain is None:
        return False
    expected, result = by_icalendar(name, lines, line)
    assert not result.errors and not result.warnings, (lines, result)
    assert expected is not None
    assert fields(plain) == fields(expected), lines
    return True


def read_with(text: str, pool: Executor | None = None) -> tuple[list[dict[str, object]], ...]:
    """A file's resources, errors and warnings (read with ``pool`` as the helper processes)."""
    result = formats.parse(text, "ics", ParseOptions(max_instances=MAX, pool=pool))
    problems = [dataclasses.asdict(p) for p in result.errors], [dataclasses.asdict(p) for p in result.warnings]
    return [dataclasses.asdict(resource) for resource in result.resources], *problems


def read(text: str, monkeypatch: pytest.MonkeyPatch, plain: bool) -> tuple[list[dict[str, object]], ...]:
    with monkeypatch.context() as patch:
        if not plain:
            patch.setattr(ics, "plain_block", lambda *args: None)
        return read_with(text)


def test_the_corpora_read_the_same_with_and_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    taken = total = 0
    for path in corpus_files():
        text = path.read_bytes().decode("utf-8", "replace")
        for name, line, lines in components(text):
            total += 1
            taken += agrees(name, lines, line)
        assert read(text, monkeypatch, True) == read(text, monkeypatch, False), path.name
    # the corpora are mostly odd cases, yet a good part of them is plain
    assert total > 500 and taken > total // 2, (taken, total)  # most of them


def test_a_bench_file_is_read_by_it_entirely(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.generate import ics as generated

    text = generated(300, seed=3, notes=100).decode()
    taken = [agrees(name, lines, line) for name, line, lines in components(text)]
    assert all(taken) and len(taken) == 300
    assert read(text, monkeypatch, True) == read(text, monkeypatch, False)


# --------------------------------------------------------------------------- generated components

# Each kind of line: plain ones first, then those the plain reader must leave to icalendar or
# that icalendar refuses or repairs. A component is mostly plain lines with an odd one or two.
STAMPS = ["DTSTAMP:20240101T000000Z"], ["DTSTAMP:20241301T000000Z", "DTSTAMP:20240101T250000Z", "DTSTAMP:20240101",
                                        "DTSTAMP:PT1H", "DTSTAMP:", "DTSTAMP:20240229T120000"]  # fmt: skip
STARTS = (
    [
        "DTSTART:20240310T013000Z",
        "DTSTART:20240310T013000",
        "DTSTART;VALUE=DATE:20240310",
        "DTSTART;VALUE=date:20240310",
        "DTSTART:20240310",
        "DTSTART;TZID=Europe/Berlin:20240331T023000",
        'DTSTART;TZID="America/New_York":20241103T013000',
        "dtstart:20240310T013000Z",
    ],
    [
        "DTSTART;TZID=Europe/Berlin:20240310T013000Z",
        "DTSTART;TZID=Mars/Olympus:20240310T013000",
        "DTSTART;TZID=Europe/Berlin;TZID=UTC:20240310T013000",
        "DTSTART;VALUE=PERIOD:20240310T013000Z/PT1H",
        "DTSTART:PT1H",
        "DTSTART:20240230T000000Z",
        "DTSTART ;VALUE=DATE:20240310",
        "DTSTART;TZID=Europe/Berlin;VALUE=DATE:20240310",
    ],
)
ENDS = (
    [
        "DTEND:20240310T033000Z",
        "DTEND;VALUE=DATE:20240311",
        "DTEND;TZID=Europe/Berlin:20240331T043000",
        "DURATION:PT2H",
        "DURATION:P1W",
        "DUE:20240311T000000Z",
    ],
    ["DTEND:20240309T033000Z", "DURATION:-PT2H", "DURATION:20240101", "DTEND:nonsense"],
)
RULES = (
    [
        "RRULE:FREQ=WEEKLY;COUNT=10",
        "RRULE:FREQ=DAILY;INTERVAL=3",
        "RRULE:FREQ=HOURLY;COUNT=30;INTERVAL=7",
        "RRULE:FREQ=MONTHLY;BYDAY=-1SU;COUNT=5",
        "RRULE:FREQ=YEARLY;UNTIL=20300101T000000Z",
        "RRULE:FREQ=WEEKLY;WKST=SU;INTERVAL=2",
    ],
    [
        "RRULE:FREQ=WEEKLY;COUNT=3;UNTIL=20300101T000000Z",
        "RRULE:FREQ=DAILY;COUNT=0",
        "RRULE:FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30",
        "RRULE:",
        "RRULE:FREQ=SOMETIMES",
        "EXDATE:20240317T013000Z",
        "RDATE;VALUE=DATE:20240401",
        "EXRULE:FREQ=DAILY",
    ],
)
OTHERS = (
    [
        "SUMMARY:Lunch\\, then a walk\\nand a \\;nap",
        "SUMMARY;LANGUAGE=en:Plain",
        "DESCRIPTION:a \\\\ backslash",
        'LOCATION;ALTREP="http://example.org/a;b":Room',
        "CLASS:confidential",
        "SEQUENCE:2",
        "PRIORITY:1",
        'ATTENDEE;CN="Doe, Jane";ROLE=REQ-PARTICIPANT:mailto:jane@example.org',
        "URL:http://example.org/",
        "CATEGORIES:Work,Personal\\,Urgent",
        "X-FOO;VALUE=INTEGER:3",
        "X-BAR:anything \\; at all",
        "X-EMPTY-PARAM;X-P=:v",
        "ATTACH;FMTTYPE=text/plain:http://example.org/f",
        "CREATED:20240101T000000Z",
        "STATUS:CONFIRMED",
        "TRANSP:OPAQUE",
        "REQUEST-STATUS:2.0;Success",
    ],
    [
        "SUMMARY:twice",
        "CLASS;VALUE=URI:http://example.org",
        "SEQUENCE:two",
        "GEO:1.5;2.5",
        "ATTENDEE;CN=Jo\\nhn:mailto:john@example.org",
        "ORGANIZER:mailto:a\\nb@example.org",
        "URL:http://example.org/\\n",
        "X-FOO;VALUE=INTEGER:nope",
        "X-CARET;X-P=a^nb:v",
        'X-LIST;MEMBER="a","b":v',
        "LAST-MODIFIED:2024-01-01",
        "RECURRENCE-ID:20240317T013000Z",
        "FREEBUSY:20240101T000000Z/PT1H",
        "no colon here",
        ";NAME:value",
        "X-NAME;:value",
        "1BAD:value",
        "X-CONTROL:a\x07b",
    ],
)
ALARMS = (
    [
        ["BEGIN:VALARM", "ACTION:DISPLAY", "TRIGGER:-PT15M", "DESCRIPTION:Soon", "END:VALARM"],
        ["BEGIN:VALARM", "ACTION:DISPLAY", "TRIGGER;VALUE=DATE-TIME:20240310T000000Z", "END:VALARM"],
    ],
    [
        ["BEGIN:VALARM", "ACTION:AUDIO", "TRIGGER:soon", "END:VALARM"],
        ["BEGIN:VALARM", "TRIGGER:-PT5M", "BEGIN:VALARM", "END:VALARM", "END:VALARM"],
        ["BEGIN:X-THING", "X-A:1", "END:X-THING"],
        ["BEGIN:valarm", "TRIGGER:-PT5M", "END:valarm"],
    ],
)
UIDS = ["UID:u-1@example.org", "UID:a\\,b"], ["UID: spaced ", "UID:", "SUMMARY:no UID"]


def folded(line: str, width: int) -> list[str]:
    """A content line folded every ``width`` characters (RFC 5545 3.1: anywhere)."""
    return [line[:width]] + [" " + line[i : i + width] for i in range(width, len(line), width)]


def lines_of_kind(draw: st.DrawFn, kind: tuple[list, list], most: int) -> list:
    """Up to ``most`` plain lines of a kind; now and then an odd one among them."""
    plain, odd = kind
    chosen = draw(st.lists(st.sampled_from(plain), max_size=most))
    if draw(st.integers(0, 5)) == 0:
        chosen.append(draw(st.sampled_from(odd)))
    return chosen


@st.composite
def component(draw: st.DrawFn) -> tuple[str, list[str]]:
    name = draw(st.sampled_from(["VEVENT", "VEVENT", "VTODO", "VJOURNAL"]))
    body = [draw(st.sampled_from(UIDS[0])), *lines_of_kind(draw, UIDS, 0), *lines_of_kind(draw, STAMPS, 1)]
    body += [draw(st.sampled_from(STARTS[0])), *lines_of_kind(draw, STARTS, 0)]
    for kind, most in ((ENDS, 1), (RULES, 1), (OTHERS, 4)):
        body += lines_of_kind(draw, kind, most)
    body = draw(st.permutations(body))
    for alarm in lines_of_kind(draw, ALARMS, 1):
        body += alarm
    width = draw(st.sampled_from([0, 0, 9, 30]))
    lines = [f"BEGIN:{name}"]
    for line in body:
        lines += folded(line, width) if width else [line]
    return name, [*lines, f"END:{name}"]


def test_what_it_takes_icalendar_takes_alike() -> None:
    taken: list[bool] = []

    @settings(max_examples=1500, deadline=None)
    @given(component())
    def check(drawn: tuple[str, list[str]]) -> None:
        name, lines = drawn
        taken.append(agrees(name, lines, 3))

    check()
    # a reader that declined everything would agree too: it takes the plain ones (one in six
    # here: most drawn components carry an odd line on purpose)
    assert sum(taken) > len(taken) // 10, (sum(taken), len(taken))


def test_it_takes_the_plain_ones_and_leaves_the_rest() -> None:
    plain = ["BEGIN:VEVENT", "UID:1", "DTSTAMP:20240101T000000Z", "DTSTART:20240310T013000Z",
             "DURATION:PT1H", "SUMMARY:Tea", "END:VEVENT"]  # fmt: skip
    assert agrees("VEVENT", plain, 1)
    for odd in ("RECURRENCE-ID:20240310T013000Z", "SUMMARY:twice", "DTEND:20240310T023000Z", "X-A;X-B=^n:c"):
        assert plain_block("VEVENT", [*plain[:-1], odd, "END:VEVENT"], 1, MAX) is None, odd
    assert plain_block("VEVENT", ["BEGIN:VEVENT", "DTSTART:20240310T013000Z", "END:VEVENT"], 1, MAX) is None


# --------------------------------------------------------------------------- fixed-step rules

ZONES = [None, UTC, ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")]


@settings(max_examples=400, deadline=None)
@given(
    freq=st.sampled_from(["SECONDLY", "MINUTELY", "HOURLY", "DAILY", "WEEKLY", "MONTHLY"]),
    interval=st.sampled_from([None, 1, 2, 7]),
    count=st.sampled_from([None, 1, 2, 25, 400]),
    wkst=st.sampled_from([None, "SU", "MO"]),
    start=st.datetimes(datetime(1990, 1, 1), datetime(2040, 1, 1)).map(lambda d: d.replace(microsecond=0)),
    all_day=st.booleans(),
    zone=st.sampled_from(ZONES),
    after_days=st.none() | st.integers(-30, 3000),
    length=st.sampled_from([timedelta(0), timedelta(hours=1), timedelta(days=2)]),
)
def test_fixed_steps_walk_as_dateutil_does(
    freq: str,
    interval: int | None,
    count: int | None,
    wkst: str | None,
    start: datetime,
    all_day: bool,
    zone: ZoneInfo | None,
    after_days: int | None,
    length: timedelta,
) -> None:
    rule = f"FREQ={freq}" + (f";INTERVAL={interval}" if interval else "") + (f";COUNT={count}" if count else "")
    rule += f";WKST={wkst}" if wkst else ""
    first: date = start.date() if all_day else start.replace(tzinfo=zone)
    times = Timing(first, length, [rule])
    horizon = to_utc(first)[0] + timedelta(days=60)
    after = None if after_days is None else to_utc(first)[0] + timedelta(days=after_days)
    fast = timing_instances(times, 500, horizon, after), _last_start(first, rule, MAX)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(walk, "_fixed_steps", lambda rule: None)
        slow = timing_instances(times, 500, horizon, after), _last_start(first, rule, MAX)
    assert fast == slow


def test_fixed_steps_stop_where_dateutil_does() -> None:
    """Near the year 9999 the walk ends as dateutil's does, without an error."""
    times = Timing(datetime(9999, 12, 1), timedelta(hours=1), ["FREQ=WEEKLY"])
    spans, rest = timing_instances(times, 100, datetime(9999, 12, 31, tzinfo=UTC))
    assert len(spans) == 5 and rest is None
    assert _last_start(datetime(9999, 12, 1), "FREQ=DAILY;COUNT=100", MAX) == datetime(9999, 12, 31)


def test_line_errors_keep_their_lines_with_it() -> None:
    text = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTART:20240101T000000Z\r\nEND:VEVENT\r\n"
        "BEGIN:VEVENT\r\nUID:b\r\nDTSTART:20241301T000000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    result = formats.parse(text, "ics")
    assert [r.uid for r in result.resources] == ["a"]
    assert [e.line for e in result.errors] == [7] and "DTSTART" in result.errors[0].error


# --------------------------------------------------------------------------- the helper processes


def big_file() -> str:
    """A file big enough for the pool: plain events, a series with an override, invalid events,
    a custom time zone, repairs; with their lines numbered as the import reads them."""
    from bench.generate import ics as generated

    text = generated(ics.POOLED_FROM + 300, seed=5).decode()
    odd = (
        "BEGIN:VTIMEZONE\r\nTZID:Custom Zone\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\n"
        "TZOFFSETFROM:+0300\r\nTZOFFSETTO:+0300\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
        "BEGIN:VEVENT\r\nUID:custom\r\nDTSTART;TZID=Custom Zone:20240101T100000\r\nEND:VEVENT\r\n"
        "BEGIN:VEVENT\r\nUID:bad\r\nDTSTART:20241301T100000Z\r\nEND:VEVENT\r\n"
        "BEGIN:VEVENT\r\nUID:series\r\nDTSTART:20240101T100000Z\r\nRRULE:FREQ=DAILY;COUNT=5\r\nEND:VEVENT\r\n"
        "BEGIN:VEVENT\r\nUID:series\r\nRECURRENCE-ID:20240102T100000Z\r\nDTSTART:20240102T120000Z\r\nEND:VEVENT\r\n"
        "BEGIN:VEVENT\r\nUID:mended\r\nDTSTART:20240101T100000Z\r\nDTEND:20240101T110000Z\r\nDURATION:PT1H\r\n"
        "END:VEVENT\r\n"
    )
    middle = text.index("BEGIN:VEVENT", len(text) // 2)
    return text[:middle] + odd + text[middle:]


class Watched(Executor):
    """A pool that keeps the futures it gave, to tell which chunks its processes read."""

    def __init__(self, pool: Executor) -> None:
        self.pool = pool
        self.futures: list[Future[object]] = []

    def submit(self, fn: Callable[..., object], /, *args: object, **kwargs: object) -> Future[object]:
        self.futures.append(self.pool.submit(fn, *args, **kwargs))
        return self.futures[-1]

    def read_there(self) -> int:
        read = sum(f.done() and not f.cancelled() and f.exception() is None for f in self.futures)
        self.futures.clear()
        return read


def test_a_big_file_reads_the_same_with_helper_processes() -> None:
    from server.services.imports import ParseProcesses

    text = big_file()
    alone = read_with(text, None)
    assert len(alone[0]) > ics.POOLED_FROM and alone[1] and alone[2]  # errors and warnings too
    processes = ParseProcesses(1)
    pool = Watched(processes)
    try:
        processes.submit(int).result()  # started
        assert read_with(text, pool) == alone
        assert pool.read_there() > 0
        # a helper that died is started again; what it was reading is read here meanwhile
        process = next(iter(processes._pool._processes.values()))  # type: ignore[union-attr]
        process.kill()
        process.join()
        assert read_with(text, pool) == alone
        assert read_with(text, pool) == alone
        assert pool.read_there() > 0
    finally:
        processes.shutdown()


class FailingPool(Executor):
    """A pool whose every answer is a failure (a process that died under each chunk)."""

    def submit(self, fn: Callable[..., object], /, *args: object, **kwargs: object) -> Future[object]:
        future: Future[object] = Future()
        future.set_running_or_notify_cancel()
        future.set_exception(BrokenProcessPool("gone"))
        return future


def test_a_failing_pool_changes_nothing() -> None:
    text = big_file()
    assert read_with(text, FailingPool()) == read_with(text, None)
